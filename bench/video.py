"""Video benchmarks, each a command anyone can rerun; every clip is made here from the bundled
photographs, so its true motion is known.

    python -m bench.video quality --json docs/bench-video.json --strip docs/video_strip.png --gif docs/video.gif
    python -m bench.video borders --json docs/bench-video-borders.json
    python -m bench.video scaling --json docs/bench-video-scaling.json
    python -m bench.video memory --json docs/bench-video-memory.json

quality: independent frames, Ruder et al.'s short-term loss and the default (previous frame and
anchor), on two clips: "pan" (a photograph panned and zoomed by a camera) and "static" (a
photograph standing still while a cut-out of another moves across its lower half: occlusion and
disocclusion). Flicker (0-255), Lai et al.'s warping error, and on the static clip the drift of the
top band that nothing crosses (last frame against frame 10, against consecutive frames) with its
sharpness. One chunk, so that no border is measured.

borders: the pan clip in several chunks, borders cut, cross-faded ("blend") or handed over
("bridge"): the flicker of the pairs at the borders against the pairs inside chunks.

scaling: frames per hour of one worker against two (one core each) on a 1080p pan at --size; the
workers' engines are warmed first, and cluster start-up is reported apart.

memory: a 1080p pan of each length in --seconds, each run in its own process: that process's peak
(VmHWM) and its workers'; with a constant peak, the memory does not grow with the clip."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _photo(name: str):
    from engine.images import examples_dir, load_image
    return load_image(examples_dir() / "content" / f"{name}.jpg")


def _style(name: str):
    from engine.images import examples_dir, load_image
    return load_image(examples_dir() / "style" / f"{name}.jpg")


def make_clip(kind: str, path: Path, shape, count: int, rate: int, *, preset: str = "medium") -> Path:
    """``pan``: the astronaut photograph panned 2 px a frame at 256 px wide (scaled with the width)
    and zoomed 0.3% a frame; ``static``: it standing still at ``shape`` while a round cut-out of the
    cat moves left to right across its lower half."""
    from video.synthetic import iter_panned, iter_pasted, write_clip
    if kind == "pan":
        frames = iter_panned(_photo("astronaut"), count, shape, step=2.0 * shape[1] / 256, zoom=1.003)
    elif kind == "static":
        frames = iter_pasted(_photo("astronaut"), _photo("chelsea"), count, shape)
    else:
        raise ValueError(kind)
    write_clip(path, frames, rate, preset=preset)
    return path


def run_video(clip: Path, output: Path, settings, *, workers: int, style: str, chunks=None, overlap: int | None = None,
              border: str = "bridge", temporal=None, warm: bool = False):
    """One video through the real pipeline on a fresh LocalCluster, its frames kept; the report,
    with the cluster's start and the engines' warm-up timed apart."""
    from batch.run import export_first
    from video.cluster import connect
    from video.io import probe
    from video.run import Temporal, frame_shape, stylize_video
    info = probe(clip)
    shape = frame_shape((info.height, info.width), settings.size)
    export_first(settings.replace(size=max(shape)), None, "cpu")
    styles = [_style(style)]
    begin = time.perf_counter()
    with connect(workers=workers) as client:
        started = time.perf_counter() - begin
        warmed = 0.0
        if warm:
            begin = time.perf_counter()
            client.run(_warm, settings.replace(size=max(shape), iterations=1), shape, styles)
            warmed = time.perf_counter() - begin
        from engine.memory import peak_rss_mb
        before = peak_rss_mb()
        _reset_peak()   # from here, VmHWM is the peak while the frames stream (the start's is kept apart)
        cpu_before = _cpu_seconds(client)
        report = stylize_video(client, clip, output, styles, settings, temporal=temporal or Temporal(), chunks=chunks,
                               overlap=overlap, border=border, keep_frames=True, quiet=True)
        cpu_after = _cpu_seconds(client)
        report.peak_mb["client_before_frames"] = round(before)
        report.cpu_s = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after}
    return report, started, warmed


def _cpu_seconds(client) -> dict:
    """CPU seconds so far of this process (client, scheduler, decoding, encoding) and of each
    worker (its engine's threads): what a run costs whatever else shares the machine."""
    return {"client": time.process_time(), **client.run(time.process_time)}


def cpu_bound_seconds(cpu_s: dict, cores: int) -> float:
    """The least wall time a run with these CPU seconds takes on ``cores`` cores of its own:
    no process faster than its own CPU time, and all of them no faster than the cores allow. Each
    Dask process also burns ~0.023 CPU s per wall second doing nothing (its event loops, measured
    here), so a run slowed by other load reports more CPU than it needs: the ratio is then low."""
    return max(max(cpu_s.values()), sum(cpu_s.values()) / cores)


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets this process's VmHWM to its current resident size."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _warm(settings, shape, styles):
    """On a worker: one tiny run at the frame's size, so that its sessions exist before the clock."""
    import numpy as np

    from batch.cluster import engine
    engine().run(np.full((*shape, 3), 128, np.uint8), styles, settings)


def measure(clip: Path, work: Path, shape, *, band_rows=None, layout=None) -> dict:
    """Per pair flicker and warping error of a kept work folder's video against its input frames;
    with ``band_rows``, the drift of that band; with ``layout``, the pairs split into border and
    inside pairs."""
    import numpy as np

    from video import metrics
    from video.io import frames
    from video.run import final_frames
    flicker, warping, pairs, sharpness = [], [], [], []
    band = {}
    previous = None
    outputs = final_frames(work)
    for (t, frame), (u, output) in zip(frames(clip, shape), outputs):
        assert t == u, (t, u)
        if previous is not None:
            p_frame, p_output = previous
            flicker.append(metrics.pair_flicker(p_frame, frame, p_output, output))
            warping.append(metrics.pair_warping_error(p_frame, frame, p_output, output))
            pairs.append(t)
            if band_rows is not None:
                band.setdefault("consecutive", []).append(metrics.band_difference(output, p_output, band_rows))
        if band_rows is not None:
            if t == 0:
                band["first"] = output
            if t == 10:
                band["frame10"] = output
            band["last"] = output
        previous = frame, output
        sharpness.append(metrics.sharpness(output, slice(None)))
    # a temporal loss that blurs (a copy of a copy of a warped picture) flickers less: measured beside it
    result = {"frames": len(flicker) + 1, "flicker": float(np.mean(flicker)), "warping_error": float(np.mean(warping)),
              "sharpness_last": float(np.mean(sharpness[-5:])), "sharpness_first": sharpness[0],
              "flicker_pairs": [round(v, 3) for v in flicker]}
    if band_rows is not None and "frame10" in band:
        result["drift"] = {"last_vs_10": metrics.band_difference(band["last"], band["frame10"], band_rows),
                           "consecutive": float(np.mean(band["consecutive"])),
                           "sharpness_first": metrics.sharpness(band["first"], band_rows),
                           "sharpness_last": metrics.sharpness(band["last"], band_rows),
                           "brightness_first": float(band["first"][band_rows].mean()),
                           "brightness_last": float(band["last"][band_rows].mean())}
    if layout is not None:
        # pair (t-1, t) is at a border where the picture passes from one chunk to the next: from the
        # first frame of the overlap (the earlier chunk's stop) to the first after it (its end)
        border = {t for before in layout[:-1] for t in range(before[1], before[2] + 1)}
        at = [f for p, f in zip(pairs, flicker) if p in border]
        inside = [f for p, f in zip(pairs, flicker) if p not in border]
        result["border"] = {"pairs": sorted(border), "mean": float(np.mean(at)), "max": float(np.max(at)),
                            "inside_mean": float(np.mean(inside)), "ratio_mean": float(np.mean(at) / np.mean(inside)),
                            "ratio_max": float(np.max(at) / np.mean(inside))}
    return result


def _settings(args):
    from engine.settings import Settings
    return Settings(size=args.size, iterations=args.iterations, scales=1, targets="ort", step_engine="ort")


def _header(args, argv) -> dict:
    from bench.machine import cpu, describe_cpu
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": describe_cpu(cpu()),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "command": "python -m bench.video " + " ".join(argv if argv is not None else sys.argv[1:])}


def _schemes() -> dict:
    """The rows of the quality table: what each frame follows (``video.run.Temporal``)."""
    from video.run import Temporal
    return {"independent": Temporal(weight=0.0),
            "short-term": Temporal(anchor=False, sharp=False),          # Ruder et al. 2016, as before issue 23
            "short-term-bicubic": Temporal(anchor=False),
            "anchor-everywhere": Temporal(still=0.0),
            "default": Temporal()}


def cmd_quality(args, argv) -> dict:
    import numpy as np
    from PIL import Image

    from video.run import final_frames, frame_shape
    report = {**_header(args, argv), "size": args.size, "frames": args.frames, "iterations": args.iterations,
              "clips": {}}
    strip, gif = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.clips.split(","):
            source_shape = (256, 384) if kind == "static" else (192, 256)   # brought to --size by the run
            shape = frame_shape(source_shape, args.size)
            clip = make_clip(kind, Path(tmp) / f"{kind}.mp4", source_shape, args.frames, args.rate)
            rows = {}
            band = slice(0, shape[0] // 2 - 2) if kind == "static" else None
            for name in args.schemes.split(","):
                start = time.perf_counter()
                out = Path(tmp) / f"{kind}-{name}.mp4"
                run, _, _ = run_video(clip, out, _settings(args), workers=1, chunks=1, style=args.style,
                                      temporal=_schemes()[name])
                row = measure(clip, run.work_dir, shape, band_rows=band)
                row["seconds"] = round(time.perf_counter() - start, 1)
                rows[name] = row
                line = f"{kind} {name}: flicker {row['flicker']:.3f}, warping error {row['warping_error']:.5f}"
                if "drift" in row:
                    line += f", drift {row['drift']['last_vs_10']:.2f} vs consecutive {row['drift']['consecutive']:.2f}"
                print(line, flush=True)
                pictures = [image for _, image in final_frames(run.work_dir)]
                picks = list(range(0, len(pictures), max(1, len(pictures) // 6)))[:6]
                if name == args.schemes.split(",")[0]:
                    from video.io import frames
                    inputs = [f for _, f in frames(clip, shape)]
                    strip.append(np.concatenate([inputs[i] for i in picks], 1))
                strip.append(np.concatenate([pictures[i] for i in picks], 1))
                gif.setdefault(kind, []).append(pictures)
            base = rows[next(iter(rows))]
            for row in rows.values():
                for key in ("flicker", "warping_error"):
                    row[f"{key}_vs_first"] = row[key] / base[key] if base[key] else None
            report["clips"][kind] = {"shape": list(shape), "rows": rows}
    if args.strip:
        width = max(s.shape[1] for s in strip)
        padded = [np.pad(s, ((0, 4), (0, width - s.shape[1]), (0, 0)), constant_values=255) for s in strip]
        Image.fromarray(np.concatenate(padded, 0)).save(args.strip, optimize=True)
    if args.gif:
        # every scheme side by side, one clip under the other, at most 48 frames
        length = min(min(len(p) for p in runs) for runs in gif.values())
        frames_ = []
        for t in range(min(length, 48)):
            lines = [np.concatenate([p[t] for p in runs], 1) for runs in gif.values()]
            width = max(line.shape[1] for line in lines)
            lines = [np.pad(line, ((0, 2), (0, width - line.shape[1]), (0, 0)), constant_values=255) for line in lines]
            frames_.append(Image.fromarray(np.concatenate(lines, 0)))
        frames_[0].save(args.gif, save_all=True, append_images=frames_[1:], duration=int(1000 / args.rate), loop=0,
                        optimize=True)
    return report


def cmd_borders(args, argv) -> dict:
    from video.run import Temporal, frame_shape
    report = {**_header(args, argv), "size": args.size, "frames": args.frames, "iterations": args.iterations,
              "chunks": args.chunks, "overlap": args.overlap, "overlap_effort": args.overlap_effort, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        shape = frame_shape((192, 256), args.size)
        clip = make_clip("pan", Path(tmp) / "pan.mp4", shape, args.frames, args.rate)
        for border in args.borders.split(","):
            start = time.perf_counter()
            run, _, _ = run_video(clip, Path(tmp) / f"{border}.mp4", _settings(args), workers=args.workers,
                                  chunks=args.chunks, overlap=args.overlap, border=border, style=args.style,
                                  temporal=Temporal() if args.overlap_effort is None else
                                  Temporal(overlap_effort=args.overlap_effort))
            layout = json.loads((run.work_dir / "manifest.json").read_text())["layout"]
            if len(layout) < 2:
                raise SystemExit(f"{args.frames} frames make one chunk with this overlap: no border to measure "
                                 f"(more --frames, or a smaller --overlap)")
            row = measure(clip, run.work_dir, shape, layout=layout)
            row.update(seconds=round(time.perf_counter() - start, 1), layout=layout, made=run.made)
            report["rows"][border] = row
            b = row["border"]
            print(f"{border}: border flicker mean {b['mean']:.3f} max {b['max']:.3f}, inside {b['inside_mean']:.3f}: "
                  f"{b['ratio_mean']:.2f}x (max {b['ratio_max']:.2f}x); {run.made} frames made", flush=True)
    return report


def cmd_scaling(args, argv) -> dict:
    from video.run import frame_shape
    report = {**_header(args, argv), "size": args.size, "seconds_of_video": args.seconds, "fps": args.rate,
              "iterations": args.iterations, "rows": []}
    count = round(args.seconds * args.rate)
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip("pan", Path(tmp) / "pan.mp4", (1080, 1920), count, args.rate, preset="veryfast")
        for workers in (int(w) for w in args.workers.split(",")):
            start = time.perf_counter()
            run, started, warmed = run_video(clip, Path(tmp) / f"w{workers}.mp4", _settings(args), workers=workers,
                                             overlap=args.overlap, style=args.style, warm=True)
            seconds = run.seconds
            row = {"workers": workers, "chunks": run.chunks, "frames": run.frames, "made": run.made,
                   "seconds": round(seconds, 1), "frames_per_hour": round(run.frames * 3600 / seconds),
                   "cluster_start": round(started, 1), "warm_up": round(warmed, 1), "peak_mb": run.peak_mb,
                   "wall": round(time.perf_counter() - start, 1), "cpu_s": run.cpu_s,
                   "cpu_s_per_frame": round(sum(run.cpu_s.values()) / run.frames, 3),
                   "cpu_bound_seconds": round(cpu_bound_seconds(run.cpu_s, os.cpu_count() or 1), 1)}
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    rows = report["rows"]
    if len(rows) >= 2:
        # the measured ratio needs a quiet machine; the CPU-bound one (each run on the machine's cores
        # alone, from its CPU seconds) does not depend on what else ran
        report["ratio"] = rows[-1]["frames_per_hour"] / rows[0]["frames_per_hour"]
        report["cpu_bound_ratio"] = ((rows[-1]["frames"] / rows[-1]["cpu_bound_seconds"]) /
                                     (rows[0]["frames"] / rows[0]["cpu_bound_seconds"]))
        print(f"ratio {report['ratio']:.2f}x (measured), {report['cpu_bound_ratio']:.2f}x (CPU-bound, "
              f"from CPU seconds on {os.cpu_count()} cores)", flush=True)
    report["frame_shape"] = list(frame_shape((1080, 1920), args.size))
    return report


def cmd_memory(args, argv) -> dict:
    report = {**_header(args, argv), "size": args.size, "fps": args.rate, "iterations": args.iterations, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (float(s) for s in args.seconds.split(",")):
            clip = make_clip("pan", Path(tmp) / f"pan{seconds:g}.mp4", (1080, 1920), round(seconds * args.rate),
                             args.rate, preset="veryfast")
            child = subprocess.run(
                [sys.executable, "-m", "bench.video", "one", str(clip), str(Path(tmp) / f"out{seconds:g}.mp4"),
                 "--size", str(args.size), "--iterations", str(args.iterations), "--workers", str(args.workers),
                 "--style", args.style],
                cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
            if child.returncode:
                raise RuntimeError(child.stderr.strip().splitlines()[-1])
            row = {"seconds_of_video": seconds, **json.loads(child.stdout.strip().splitlines()[-1])}
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
    return report


def cmd_one(args, argv) -> dict:
    """A child of ``memory``: one video, its report as one JSON line (its own peak among them)."""
    from engine.settings import Settings
    settings = Settings(size=args.size, iterations=args.iterations, scales=1, targets="ort", step_engine="ort")
    run, started, _ = run_video(Path(args.clip), Path(args.output), settings, workers=args.workers, style=args.style,
                                overlap=args.overlap)
    workers = [v for k, v in run.peak_mb.items() if not k.startswith("client")]
    print(json.dumps({"frames": run.frames, "chunks": run.chunks, "seconds": round(run.seconds, 1),
                      "client_peak_mb": max(run.peak_mb["client"], run.peak_mb["client_before_frames"]),
                      "client_peak_frames_mb": run.peak_mb["client"], "client_end_mb": round(_rss_mb()),
                      "worker_peak_mb": max(workers) if workers else None}))
    return {}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q, size, iterations, rate):
        q.add_argument("--size", type=int, default=size, help="longest side of the frames, px")
        q.add_argument("--iterations", type=int, default=iterations, help="evaluations per frame (one scale)")
        q.add_argument("--rate", type=int, default=rate, help="frames per second of the clip")
        q.add_argument("--style", default="starry_night")
        q.add_argument("--json", help="also write the results here")

    q = sub.add_parser("quality")
    common(q, 128, 20, 12)
    q.add_argument("--frames", type=int, default=48)
    q.add_argument("--clips", default="pan,static")
    q.add_argument("--schemes", default=",".join(_schemes()))
    q.add_argument("--strip", help="PNG: every few frames of each clip's input and of each scheme, one row each")
    q.add_argument("--gif", help="GIF: the schemes side by side, the clips one under the other")
    q = sub.add_parser("borders")
    common(q, 128, 20, 12)
    q.add_argument("--frames", type=int, default=96)
    q.add_argument("--chunks", type=int, default=4)
    q.add_argument("--overlap", type=int, help="default: the video command's")
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--borders", default="cut,blend,bridge")
    q.add_argument("--overlap-effort", type=float, help="share of the evaluations for the overlap's frames "
                                                        "(default: the video command's)")
    q = sub.add_parser("scaling")
    common(q, 256, 10, 30)
    q.add_argument("--seconds", type=float, default=10)
    q.add_argument("--workers", default="1,2")
    q.add_argument("--overlap", type=int, help="default: the video command's")
    q = sub.add_parser("memory")
    common(q, 256, 1, 30)
    q.add_argument("--seconds", default="2,20")
    q.add_argument("--workers", type=int, default=2)
    q = sub.add_parser("one")
    q.add_argument("clip")
    q.add_argument("output")
    q.add_argument("--size", type=int, default=256)
    q.add_argument("--iterations", type=int, default=1)
    q.add_argument("--workers", type=int, default=2)
    q.add_argument("--overlap", type=int, help="default: the video command's")
    q.add_argument("--style", default="starry_night")
    args = p.parse_args(argv)
    report = {"quality": cmd_quality, "borders": cmd_borders, "scaling": cmd_scaling, "memory": cmd_memory,
              "one": cmd_one}[args.command](args, argv)
    if report and getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
