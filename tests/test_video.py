"""Video: a clip made here from a bundled photograph panned by a known amount; real PyAV, real DIS
flow, a real Dask cluster on loopback and the real engine."""
import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytest.importorskip("distributed")

import av  # noqa: E402

from engine.images import load_image  # noqa: E402
from video import flow  # noqa: E402
from video.synthetic import panned_frames, write_clip  # noqa: E402
from video.temporal import TemporalLoss  # noqa: E402

from conftest import EXAMPLES  # noqa: E402


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


def test_mask_on_a_real_pan_zeroes_the_new_edge(photo):
    a, b = panned_frames(photo, 2, (72, 96), step=3.0)
    _, mask = flow.pair(a, b)
    assert mask[:, -3:].max() == 0                 # entered the picture: nothing to follow
    assert mask.mean() > 0.7


def test_temporal_loss_falls_when_followed(weights):
    rng = np.random.default_rng(0)
    target = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    mask = np.ones((24, 32), np.float32)
    mask[:, :8] = 0
    loss = TemporalLoss(target, mask, 1e3)
    x = rng.random((1, 24, 32, 3), dtype=np.float32)
    value, gradient = loss(x)
    # finite difference in one unmasked pixel; none from the masked ones
    e = np.zeros_like(x)
    e[0, 5, 20, 1] = 1e-3
    assert (loss(x + e)[0] - loss(x - e)[0]) / 2e-3 == pytest.approx(gradient[0, 5, 20, 1], rel=1e-2)
    assert np.all(gradient[0, :, :8] == 0)
    assert loss(x - 0.1 * gradient / np.abs(gradient).max())[0] < value
    assert loss(target.astype(np.float32)[None] / 255)[0] == pytest.approx(0, abs=1e-9)
    # at another scale the target and mask follow the image's shape
    assert loss(np.zeros((1, 48, 64, 3), np.float32))[1].shape == (1, 48, 64, 3)


def test_a_run_follows_the_temporal_loss(weights, photo):
    """The engine adds the penalty: its part falls over the run, and the picture ends closer to the
    target than the same run without it."""
    from engine.images import resize_exact
    from engine.settings import Settings
    from engine.stylizer import Stylizer
    content = resize_exact(photo, (36, 48))
    style = resize_exact(load_image(EXAMPLES / "style" / "the_wave.jpg"), (48, 48))
    target = resize_exact(load_image(EXAMPLES / "style" / "starry_night.jpg"), (36, 48))
    penalty = TemporalLoss(target, np.ones((36, 48), np.float32), 1e11)
    settings = Settings(size=48, iterations=8, scales=1, targets="ort", step_engine="ort")
    stylizer = Stylizer(weights, provider="cpu", threads=2)
    seen = []
    followed = stylizer.run(content, [style], settings, penalty=penalty,
                            callback=lambda p: seen.append(p.parts["penalty"]))
    alone = stylizer.run(content, [style], settings)
    assert seen[-1] < 0.5 * seen[0]
    assert penalty(followed.image[None] / 255.0)[0] < 0.5 * penalty(alone.image[None] / 255.0)[0]


def _probe(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.average_rate, [s.type for s in container.streams], (stream.width, stream.height)


def test_video_cli_keeps_frames_rate_and_audio(photo, tmp_path, capsys):
    import cli
    clip = tmp_path / "clip.mp4"
    write_clip(clip, panned_frames(photo, 8, (48, 64), step=2.0), rate=12)
    out = tmp_path / "out.mp4"
    assert cli.main(["video", str(clip), "-o", str(out), "--size", "64", "--iterations", "3", "--workers", "2",
                     "-q"]) == 0, capsys.readouterr().err
    frames, rate, streams, size = _probe(out)
    assert (frames, rate, size) == (8, 12, (64, 48))
    assert streams == ["video", "audio"]
    part = tmp_path / "part.mp4"
    assert cli.main(["video", str(clip), "-o", str(part), "--size", "32", "--iterations", "2", "--frames", "2:6",
                     "--temporal-weight", "0", "--workers", "1", "-q"]) == 0
    assert _probe(part)[0] == 4


def test_video_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
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
    capsys.readouterr()
    for weight in ("nan", "inf", "-1"):
        assert cli.main(["video", str(fake), "-o", str(out), "--temporal-weight", weight, "-q"]) == 2
        assert "--temporal-weight must be a finite number, 0 or more" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [fake]
