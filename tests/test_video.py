"""Video: clips made here from the bundled photographs, so their motion is known; real PyAV, real
DIS flow, a real Dask cluster on loopback, the real engine, and real signals (SIGINT, SIGKILL) sent
to a real run."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("distributed")

import av  # noqa: E402

from engine.images import load_image  # noqa: E402
from video import chunks, flow  # noqa: E402
from video.io import VideoError, VideoWriter, audio_plan  # noqa: E402
from video.synthetic import iter_panned, panned_frames, write_clip  # noqa: E402
from video.temporal import TemporalLoss  # noqa: E402

from conftest import EXAMPLES, ROOT  # noqa: E402


@pytest.fixture(scope="module")
def photo():
    return load_image(EXAMPLES / "content" / "astronaut.jpg")


def test_dis_flow_recovers_a_known_shift(photo):
    a, b = panned_frames(photo, 2, (72, 96), step=3.0)
    backward = flow.dis_flow(b, a)   # frame 1 -> frame 0: the content moved left by 3 px
    inner = backward[8:-8, 8:-8]
    assert np.median(inner[..., 0]) == pytest.approx(3.0, abs=0.25)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.25)
    warped = flow.warp(a, backward)
    assert np.abs(warped[8:-8, 8:-8].astype(float) - b[8:-8, 8:-8]).mean() < 4


def test_mask_is_zero_where_the_scene_was_hidden():
    """A square moves 6 px right over a still background: the strip it uncovers, where the backward
    flow's point goes forward somewhere else, and the picture's border that the flow leaves, get 0."""
    h, w = 40, 60
    forward = np.zeros((h, w, 2), np.float32)     # frame 0 -> 1
    forward[10:30, 20:40, 0] = 6
    backward = np.zeros((h, w, 2), np.float32)    # frame 1 -> 0
    backward[10:30, 26:46, 0] = -6
    mask = flow.consistency_mask(backward, forward)
    assert mask[12:28, 20:25].max() == 0           # disoccluded: the uncovered strip
    assert mask[12:28, 29:44].min() == 1           # the square itself, followed correctly
    assert mask[:, :15].min() == 1                 # still background
    backward[..., 0] += 4                          # a pan: everything came from 4 px to the right
    assert flow.consistency_mask(backward, forward - 4)[:, -4:].max() == 0
    # a still picture's flow is never exactly 0: its edges stay trusted (they were not, and drifted)
    still = np.random.default_rng(0).uniform(-0.01, 0.01, (h, w, 2)).astype(np.float32)
    assert flow.consistency_mask(still, -still).min() == 1


def test_mask_on_a_real_pan_zeroes_the_new_edge(photo):
    a, b = panned_frames(photo, 2, (72, 96), step=3.0)
    _, mask = flow.pair(a, b)
    assert mask[:, -3:].max() == 0                 # entered the picture: nothing to follow
    assert mask.mean() > 0.7


def test_temporal_loss_of_several_references():
    """Two references are one quadratic: value and gradient are the sum of each one's; it falls when
    followed; masked pixels get no gradient; the start picture is the references' weighted mean where
    they are trusted and the frame elsewhere."""
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2))
    ca = np.ones((24, 32), np.float32)
    ca[:, :8] = 0
    cb = np.full((24, 32), 3.0, np.float32)
    cb[:, :4] = 0
    both, one, other = TemporalLoss([(a, ca), (b, cb)], 1e3), TemporalLoss([(a, ca)], 1e3), TemporalLoss([(b, cb)], 1e3)
    x = rng.random((1, 24, 32, 3), dtype=np.float32)
    value, gradient = both(x)
    assert value == pytest.approx(one(x)[0] + other(x)[0], rel=1e-5)
    np.testing.assert_allclose(gradient, one(x)[1] + other(x)[1], rtol=1e-3, atol=1e-4 * np.abs(gradient).max())
    e = np.zeros_like(x)
    e[0, 5, 20, 1] = 1e-3
    assert (both(x + e)[0] - both(x - e)[0]) / 2e-3 == pytest.approx(gradient[0, 5, 20, 1], rel=1e-2)
    assert np.all(gradient[0, :, :4] == 0)
    assert both(x - 0.1 * gradient / np.abs(gradient).max())[0] < value
    frame = np.zeros((24, 32, 3), np.uint8)
    start = both.start(frame)
    assert np.all(start[:, :4] == 0)                                   # nothing trusted: the frame
    np.testing.assert_array_equal(start[:, 4:8], b[:, 4:8])            # only b trusted there
    mean = (a[:, 8:].astype(float) + 3 * b[:, 8:].astype(float)) / 4
    assert np.abs(start[:, 8:] - mean).max() <= 0.5 + 1e-6
    assert both(np.zeros((1, 48, 64, 3), np.float32))[1].shape == (1, 48, 64, 3)   # any scale


def test_a_run_follows_the_temporal_loss(weights, photo):
    """The engine adds the penalty: its part falls over the run, and the picture ends closer to the
    target than the same run without it."""
    from engine.images import resize_exact
    from engine.settings import Settings
    from engine.stylizer import Stylizer
    content = resize_exact(photo, (36, 48))
    style = resize_exact(load_image(EXAMPLES / "style" / "the_wave.jpg"), (48, 48))
    target = resize_exact(load_image(EXAMPLES / "style" / "starry_night.jpg"), (36, 48))
    penalty = TemporalLoss([(target, np.ones((36, 48), np.float32))], 1e11)
    settings = Settings(size=48, iterations=8, scales=1, targets="ort", step_engine="ort")
    stylizer = Stylizer(weights, provider="cpu", threads=2)
    seen = []
    followed = stylizer.run(content, [style], settings, penalty=penalty,
                            callback=lambda p: seen.append(p.parts["penalty"]))
    alone = stylizer.run(content, [style], settings)
    assert seen[-1] < 0.5 * seen[0]
    assert penalty(followed.image[None] / 255.0)[0] < 0.5 * penalty(alone.image[None] / 255.0)[0]


def test_an_output_the_frame_hardly_shares_is_not_followed(weights, photo):
    """Across a scene cut (or from a chunk's lead far back on a pan) the flow is noise: the few
    specks its check trusts are not followed, and the frame is made as on its own; a frame that
    shares the scene follows its reference."""
    from engine.images import resize_exact
    from engine.settings import Settings
    from engine.stylizer import Stylizer
    from video.frame import MIN_COVERAGE, FrameJob, make_frame
    style = resize_exact(load_image(EXAMPLES / "style" / "the_wave.jpg"), (48, 48))
    a, b = panned_frames(photo, 2, (48, 64), step=2.0)
    cut = resize_exact(load_image(EXAMPLES / "content" / "coffee.jpg"), (48, 64))
    settings = Settings(size=64, iterations=4, scales=1, targets="ort", step_engine="ort")
    stylizer = Stylizer(weights, provider="cpu", threads=2)
    job = FrameJob(index=1, chunk=0, settings=settings, weight=1e11, references=(0,), sharp=True)
    earlier = stylizer.run(a, [style], settings).image
    alone = stylizer.run(b, [style], settings).image
    after_cut = make_frame(job, b, [style], cut, earlier, stylizer=stylizer)
    assert after_cut.notes["coverage"][0] < MIN_COVERAGE
    np.testing.assert_array_equal(after_cut.image, alone)
    followed = make_frame(job, b, [style], a, earlier, stylizer=stylizer)
    assert followed.notes["coverage"][0] > 0.7
    assert np.abs(followed.image.astype(float) - alone).mean() > 1


def test_a_followed_frame_runs_its_last_scale_only(weights, photo):
    """A frame that follows an earlier output starts from it at its own scale: it runs the last
    scale alone (half the evaluations here), and ends closer to the output it follows."""
    from engine.images import resize_exact
    from engine.settings import Settings
    from engine.stylizer import Stylizer
    from video.frame import FrameJob, make_frame
    style = resize_exact(load_image(EXAMPLES / "style" / "the_wave.jpg"), (64, 64))
    a, b = panned_frames(photo, 2, (72, 96), step=1.0)
    settings = Settings(size=96, min_size=64, scales=2, iterations=3, targets="ort", step_engine="ort")
    stylizer = Stylizer(weights, provider="cpu", threads=2)
    earlier = stylizer.run(a, [style], settings.replace(iterations=12)).image
    made = {}
    for one_scale in (True, False):
        job = FrameJob(index=1, chunk=0, settings=settings, weight=1e11, references=(0,), sharp=True,
                       one_scale=one_scale)
        made[one_scale] = make_frame(job, b, [style], a, earlier, stylizer=stylizer)
    assert made[True].notes["evaluations"] == 3 and made[False].notes["evaluations"] == 6
    lighter = FrameJob(index=1, chunk=0, settings=settings, weight=1e11, references=(0,), one_scale=True, effort=0.34)
    assert make_frame(lighter, b, [style], a, earlier, stylizer=stylizer).notes["evaluations"] == 1
    backward, mask = flow.pair(a, b)
    target = TemporalLoss([(flow.warp(earlier, backward, sharp=True), mask)], 1.0)
    away = {k: target(m.image[None].astype(np.float32) / 255)[0] for k, m in made.items()}
    assert away[True] < 0.5 * away[False], away


def test_chunks_share_the_work_and_cover_the_clip():
    for start, stop, count, overlap, effort in [(0, 900, 2, 8, 1), (0, 10, 2, 2, 1), (5, 300, 4, 6, 1),
                                                (0, 7, 3, 2, 1), (0, 50, 3, 0, 1), (0, 900, 2, 48, 0.25),
                                                (5, 300, 4, 30, 0.25)]:
        layout = chunks.plan(start, stop, count, overlap, effort=effort)
        assert layout[0].start == start and layout[-1].stop == layout[-1].end == stop
        for before, after in zip(layout, layout[1:]):
            assert before.stop == after.start and before.end == min(stop, after.start + overlap)
            assert after.stop - after.start >= 2 * overlap          # the overlap lies inside the next chunk
        work = [c.stop - c.start + effort * (c.end - c.stop) for c in layout]
        assert max(work) - min(work) <= 1                           # the overlap counted as work
        assert [chunks.owner(layout, t).index for t in range(start, stop)] == sorted(
            chunks.owner(layout, t).index for t in range(start, stop))
    assert len(chunks.plan(0, 7, 3, 2)) == 1                        # too short for two: one chunk
    layout = chunks.plan(0, 10, 2, 2)
    assert [chunks.handover(layout[0], t) for t in range(3, 7)] == [0, pytest.approx(1 / 3), pytest.approx(2 / 3), 1]
    # a bridge closes the gap between the two chunks' pictures by even steps: 2/3, 1/3, then the switch
    gap, gaps = 1.0, []
    for t in range(3, 6):
        gap *= 1 - chunks.bridge_share(layout[0], t)
        gaps.append(gap)
    assert gaps == [1, pytest.approx(2 / 3), pytest.approx(1 / 3)]
    # the default overlap grows with the chunks, 8 to 48 frames, its work within an eighth of a chunk's:
    # a 4 s clip's, then a 30 s clip's (30 fps); a bridge's frames at a quarter of the work get 4x as many
    for effort, expected in ((1, [8, 8, 30, 48]), (0.25, [11, 28, 48, 48])):
        firsts = [chunks.plan(0, n, 2, effort=effort)[0] for n in (48, 120, 480, 900)]
        assert [c.end - c.stop for c in firsts] == expected
    # an overlap frame's work, as the chunks are sized: what it really runs (at least one evaluation)
    from engine.settings import Settings
    from video.run import Temporal, _effort
    assert [_effort(Temporal(), "bridge", Settings(size=64, iterations=n)) for n in (1, 10, 20)] == [1, 0.2, 0.25]
    assert _effort(Temporal(), "blend", Settings(size=64)) == _effort(Temporal(weight=0), "bridge", Settings(size=64)) == 1


def _probe(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
    with av.open(str(path)) as container:
        return (frames, container.streams.video[0].average_rate, [s.type for s in container.streams],
                (container.streams.video[0].width, container.streams.video[0].height), container.format.name)


def _decoded(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.mark.parametrize("suffix, audio, expected", [(".mp4", "aac", "copy"), (".mov", "pcm_s16le", "copy"),
                                                     (".mkv", "pcm_s16le", "copy"), (".mp4", "pcm_s16le", "aac")])
def test_the_container_follows_the_suffix_with_audio(photo, tmp_path, suffix, audio, expected):
    """mp4, mov and mkv by the suffix, the audio copied where the container takes it, re-encoded to
    AAC (and said so) where not; the file appears only when closed, with the audio cut at its end."""
    source = tmp_path / f"source{'.mkv' if audio == 'pcm_s16le' else '.mp4'}"
    write_clip(source, panned_frames(photo, 12, (48, 64)), rate=12, audio_codec=audio)
    out = tmp_path / f"out{suffix}"
    mode, words = audio_plan(source, out)
    assert mode == expected and (expected == "copy" or "re-encoded to AAC" in words)
    writer = VideoWriter(out, Fraction(12), (48, 64), source=source, audio=mode, start_seconds=0.25)
    for image in panned_frames(photo, 6, (48, 64)):
        writer.write(image)
    assert not out.exists()
    assert writer.close() and writer.audio_written
    frames, rate, streams, size, container = _probe(out)
    assert (frames, rate, streams, size) == (6, 12, ["video", "audio"], (64, 48))
    assert container.split(",")[0] in {".mp4": "mov", ".mov": "mov", ".mkv": "matroska"}[suffix]
    with av.open(str(out)) as c:
        kept = sum(f.samples for f in c.decode(audio=0)) / 44100
    assert 0.3 < kept <= 0.5 + 0.11                     # 6 frames at 12 fps, whole packets
    assert list(tmp_path.iterdir()) == [source, out] or sorted(tmp_path.iterdir()) == sorted([source, out])


_ENCODE_AGAIN = """
import hashlib, sys
from fractions import Fraction
import numpy as np
from PIL import Image
from engine.images import load_image
from video.io import VideoWriter
from video.synthetic import panned_frames
small = panned_frames(load_image(sys.argv[1]), 10, (48, 64), step=2.0)
frames = [np.asarray(Image.fromarray(f).resize((456, 256), Image.BICUBIC)) for f in small]
for attempt in range(6):
    writer = VideoWriter(sys.argv[2], Fraction(24), (256, 456))
    for image in frames:
        writer.write(image)
    writer.close()
    print(hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest())
"""


def test_the_same_pictures_make_the_same_file(tmp_path):
    """A resumed run's video is the uninterrupted run's only if encoding is reproducible: with x264's
    macroblock tree on, 4 of 24 encodes of these frames (456x256, --size 256's 16:9) differed."""
    digests = set()
    for _ in range(4):
        child = subprocess.run([sys.executable, "-c", _ENCODE_AGAIN, str(EXAMPLES / "content" / "astronaut.jpg"),
                                str(tmp_path / "out.mp4")], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert child.returncode == 0, child.stderr[-2000:]
        digests.update(child.stdout.split())
    assert len(digests) == 1, digests


def _cli(*args):
    return [sys.executable, str(ROOT / "cli.py"), "video", *map(str, args)]


def _wait_for(condition, seconds=240.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _pngs(folder: Path) -> list:
    return sorted(folder.glob("c*/*.png"))


def test_stopped_and_killed_runs_resume_to_the_same_video(photo, tmp_path, capsys):
    """The same command after Ctrl-C, then after a SIGKILL at a random moment, makes the video an
    uninterrupted run makes. Ctrl-C finishes the frames in progress and leaves a playable video of
    the frames done; SIGKILL loses at most the frames in progress (one a chunk): every frame already
    finished is kept whole, and the next run makes only the rest."""
    import cli
    clip = tmp_path / "clip.mp4"
    write_clip(clip, panned_frames(photo, 10, (48, 64), step=2.0), rate=12)
    options = ["--size", "64", "--iterations", "3", "--workers", "2", "--overlap", "2"]
    reference = tmp_path / "reference.mp4"
    assert cli.main(["video", str(clip), "-o", str(reference), *options, "-q"]) == 0, capsys.readouterr().err
    assert "12 made, 0 resumed" in capsys.readouterr().out        # 10 frames and a 2-frame overlap
    assert _probe(reference)[:3] == (10, 12, ["video", "audio"])

    out, work = tmp_path / "out.mp4", tmp_path / "out.mp4.frames"
    run = subprocess.Popen(_cli(clip, "-o", out, *options), cwd=ROOT, start_new_session=True,
                           stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (work / "c00" / "000001.png").exists())
    at_ctrl_c = len(_pngs(work))
    os.killpg(run.pid, signal.SIGINT)                              # as a terminal's Ctrl-C: the whole group
    assert run.wait(timeout=240) == 130
    last = run.stderr.read().strip().splitlines()[-1]
    assert "interrupted: " in last and "the same command resumes" in last, last
    after_ctrl_c = len(_pngs(work))
    assert after_ctrl_c > at_ctrl_c                                # the frames in progress were finished
    partial = _probe(out)[0]
    assert 2 <= partial < 10 and f"holds the first {partial} of 10 frames" in last

    run = subprocess.Popen(_cli(clip, "-o", out, *options), cwd=ROOT, start_new_session=True,
                           stderr=subprocess.DEVNULL)
    rng = random.Random()
    _wait_for(lambda: len(_pngs(work)) > after_ctrl_c)
    time.sleep(rng.uniform(0, 1.0))                                # a random moment of the run
    os.killpg(run.pid, signal.SIGKILL)
    run.wait(timeout=60)
    kept = _pngs(work)
    for png in kept:                                               # whole frames only
        assert load_image(png).shape == (48, 64, 3)
    layout = json.loads((work / "manifest.json").read_text())["layout"]
    for chunk, (first, _, _) in zip(("c00", "c01"), layout):     # each chunk's, in order from its start
        indices = sorted(int(p.stem) for p in (work / chunk).glob("*.png"))
        assert indices == list(range(first, first + len(indices)))
    # the second chunk's first frame followed the first chunk's first picture, warped onto it
    second = work / "c01" / f"{layout[1][0]:06d}.png"
    assert json.loads(Image.open(second).text["nst-video"])["references"] == [0]

    assert cli.main(["video", str(clip), "-o", str(out), *options, "-q"]) == 0, capsys.readouterr().err
    made = int(capsys.readouterr().out.split(" made")[0].rsplit("(", 1)[1])
    assert made == 12 - len(kept)                                  # nothing finished was made again
    np.testing.assert_array_equal(_decoded(out), _decoded(reference))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4", "reference.mp4"]


def test_memory_does_not_grow_with_the_clip(photo, tmp_path):
    """720p clips of 12 and 96 frames (two chunks each) through the pipeline, each in its own process: its peak while
    the frames stream, its memory at the end, and its workers' peak, the same within a few MB.
    Holding the decoded clip would add 2.8 MB a frame; keeping each frame's task (its five frames at
    the working size, as Dask's message log did) 0.3 MB."""
    peaks = {}
    for count in (12, 96):
        clip = tmp_path / f"clip{count}.mp4"
        write_clip(clip, iter_panned(photo, count, (720, 1280), step=10.0), rate=24, preset="ultrafast")
        child = subprocess.run([sys.executable, "-m", "bench.video", "one", str(clip), str(tmp_path / f"{count}.mp4"),
                                "--size", "128", "--iterations", "1", "--workers", "2", "--overlap", "2"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert child.returncode == 0, child.stderr[-2000:]
        peaks[count] = json.loads(child.stdout.strip().splitlines()[-1])
        assert (peaks[count]["frames"], peaks[count]["chunks"]) == (count, 2)
    for key in ("client_peak_frames_mb", "client_end_mb", "worker_peak_mb"):   # while the frames stream, and after
        assert peaks[96][key] - peaks[12][key] < 10, peaks


def test_video_cli_bad_input_is_one_line_and_writes_nothing(photo, tmp_path, capsys):
    import cli
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    out = tmp_path / "out.mp4"
    assert cli.main(["video", str(fake), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a video FFmpeg can read" in err
    assert cli.main(["video", str(tmp_path / "none.mp4"), "-o", str(out), "-q"]) == 1
    assert cli.main(["video", str(fake), "-o", str(out), "--frames", "5:2", "-q"]) == 2
    assert cli.main(["video", str(fake), "-o", str(tmp_path / "out.gif"), "-q"]) == 1
    assert cli.main(["video", str(fake), "-o", str(tmp_path / "no" / "out.mp4"), "-q"]) == 1
    capsys.readouterr()
    for weight in ("nan", "inf", "-1"):
        assert cli.main(["video", str(fake), "-o", str(out), "--temporal-weight", weight, "-q"]) == 2
        assert "--temporal-weight must be a finite number, 0 or more" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [fake]
    # a work folder made for other settings is refused, naming them, and left as it is
    clip = tmp_path / "clip.mp4"
    write_clip(clip, panned_frames(photo, 4, (48, 64)), rate=12)
    from engine.settings import Settings
    from video.run import prepare
    job = prepare(clip, out, [photo], Settings(size=64, iterations=3), chunks=2, overlap=2)
    job.work.close()
    capsys.readouterr()
    assert cli.main(["video", str(clip), "-o", str(out), "--size", "64", "--iterations", "4", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings (iterations 3, now 4" in err, err
    with pytest.raises(VideoError, match="another run is using"):   # one run at a time holds a folder
        held = prepare(clip, out, [photo], Settings(size=64, iterations=3), chunks=2, overlap=2)
        try:
            prepare(clip, out, [photo], Settings(size=64, iterations=3), chunks=2, overlap=2)
        finally:
            held.work.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "fake.mp4", "out.mp4.frames"]
