"""Flicker of a stylized video, temporal loss against independent frames at equal evaluations.

    python -m bench.video --size 256 --frames 30 --iterations 20 --json docs/bench-video.json

The clip is a bundled photograph panned 2 px a frame (and zoomed slightly) at 12 fps, so its true
motion is known. Flicker: the mean over frames of the masked mean absolute difference (0-255)
between each output and the previous output warped onto it by the input's flow. Writes a frame
strip (rows: input, independent, temporal) with --strip."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--rate", type=int, default=12)
    p.add_argument("--iterations", type=int, default=20, help="evaluations per frame (one scale)")
    p.add_argument("--temporal-weights", default="0,2e3", help="comma-separated; 0 is independent frames")
    p.add_argument("--style", default="starry_night")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json")
    p.add_argument("--strip", help="PNG: every few frames of the input and of each run, one row each")
    p.add_argument("--gif", help="GIF: independent and temporal side by side")
    args = p.parse_args(argv)

    import numpy as np
    from PIL import Image

    from batch.cluster import connect
    from bench.machine import cpu, describe_cpu
    from engine.images import examples_dir, load_image
    from engine.settings import Settings
    from engine.stylizer import Stylizer
    from video.run import compute_flows, flicker, frame_shape, stylize_frames
    from video.synthetic import panned_frames

    photo = load_image(examples_dir() / "content" / "astronaut.jpg")
    shape = frame_shape((photo.shape[0] * 3 // 4, photo.shape[1]), args.size)
    frames = panned_frames(photo, args.frames, shape, step=2.0 * args.size / 256, zoom=1.003)
    style = load_image(examples_dir() / "style" / f"{args.style}.jpg")
    settings = Settings(size=args.size, iterations=args.iterations, scales=1, targets="ort", step_engine="ort")
    start = time.perf_counter()
    with connect(workers=args.workers) as client:
        flows = compute_flows(client, frames)
    flow_seconds = time.perf_counter() - start
    stylizer = Stylizer(provider="cpu", threads=os.cpu_count())
    rows = []
    runs = {}
    for weight in (float(w) for w in args.temporal_weights.split(",")):
        start = time.perf_counter()
        outputs = stylize_frames(stylizer, frames, flows, [style], settings, temporal_weight=weight)
        seconds = time.perf_counter() - start
        runs[weight] = outputs
        rows.append({"temporal_weight": weight, "flicker": flicker(outputs, flows), "seconds": seconds})
        print(f"temporal weight {weight:g}: flicker {rows[-1]['flicker']:.2f} (0-255), {seconds:.1f} s", flush=True)
    base = rows[0]["flicker"]
    for row in rows:
        row["ratio_to_first"] = row["flicker"] / base if base else None
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": describe_cpu(cpu()),
              "command": "python -m bench.video " + " ".join(argv if argv is not None else sys.argv[1:]),
              "size": list(shape), "frames": args.frames, "iterations": args.iterations,
              "flow_seconds": flow_seconds, "rows": rows}
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    picks = list(range(0, args.frames, max(1, args.frames // 6)))[:6]
    if args.strip:
        lines = [np.concatenate([frames[i] for i in picks], 1)] + \
                [np.concatenate([runs[w][i] for i in picks], 1) for w in runs]
        Image.fromarray(np.concatenate(lines, 0)).save(args.strip, optimize=True)
    if args.gif and len(runs) >= 2:
        first, last = list(runs.values())[0], list(runs.values())[-1]
        pictures = [Image.fromarray(np.concatenate([a, b], 1)) for a, b in zip(first, last)]
        pictures[0].save(args.gif, save_all=True, append_images=pictures[1:], duration=int(1000 / args.rate), loop=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
