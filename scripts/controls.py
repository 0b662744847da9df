#!/usr/bin/env python3
"""Pictures of the controls for docs/: two styles by masks, the colour modes side by side, and a
large output rendered within a memory limit (with a crop at 100%).

    python scripts/controls.py masks   [-o docs/masks.png]
    python scripts/controls.py colors  [-o docs/colors.png]
    python scripts/controls.py large   [--size 2048] [--memory-limit 3000] [-o docs/large.png]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.images import examples_dir, load_image, resize_exact, resize_longest, save_image  # noqa: E402
from engine.memory import peak_rss_mb  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.stylizer import Stylizer  # noqa: E402

PAD = 4


def _row(images, height: int) -> np.ndarray:
    cells = [resize_exact(i, (height, round(i.shape[1] * height / i.shape[0]))) for i in images]
    width = sum(c.shape[1] for c in cells) + PAD * (len(cells) - 1)
    row = np.full((height, width, 3), 255, np.uint8)
    x = 0
    for c in cells:
        row[:, x:x + c.shape[1]] = c
        x += c.shape[1] + PAD
    return row


def masks(args) -> str:
    """The Starry Night on the left, The Scream on the right: one mask each, blended across the middle fifth."""
    content = load_image(examples_dir() / "content" / "astronaut.jpg")
    styles = [load_image(examples_dir() / "style" / n) for n in ("starry_night.jpg", "the_scream.jpg")]
    h, w = resize_longest(content, args.size).shape[:2]
    ramp = np.clip((np.arange(w)[None, :] - 0.4 * w) / (0.2 * w), 0, 1).repeat(h, 0)
    left = np.round(255 * (1 - ramp)).astype(np.uint8)
    outcome = Stylizer().run(content, styles, Settings(size=args.size, step_engine=args.step_engine),
                             masks=[left, 255 - left])
    grey = lambda m: np.repeat(m[..., None], 3, axis=2)  # noqa: E731
    sheet = _row([resize_exact(content, (h, w)), grey(left), outcome.image, *styles], h)
    save_image(sheet, args.output, {"nst.controls": "masks: photo | mask of style 1 | output | style 1 | style 2"})
    return f"{outcome.seconds:.0f} s"


def colors(args) -> str:
    content = load_image(examples_dir() / "content" / "chelsea.jpg")
    style = load_image(examples_dir() / "style" / "starry_night.jpg")
    stylizer = Stylizer()
    base = Settings(size=args.size, step_engine=args.step_engine)
    pictures = [stylizer.run(content, [style], base.replace(**change)).image
                for change in ({}, {"preserve_colors": "luminance"}, {"preserve_colors": "histogram"},
                               {"style_colors": True})]
    sheet = _row([resize_exact(content, pictures[0].shape[:2]), *pictures, style], pictures[0].shape[0])
    save_image(sheet, args.output, {"nst.controls": "photo | plain | --preserve-colors luminance | "
                                                    "--preserve-colors histogram | --style-colors | style"})
    return ""


def large(args) -> str:
    content = load_image(examples_dir() / "content" / "coffee.jpg")
    style = load_image(examples_dir() / "style" / "starry_night.jpg")
    settings = Settings(size=args.size, memory_limit=args.memory_limit, step_engine=args.step_engine,
                        scale_iterations=tuple(int(n) for n in args.scale_iterations.split(",")))
    start = time.perf_counter()
    outcome = Stylizer(lean=True, log=print).run(
        content, [style], settings,
        callback=lambda p: print(f"scale {p.scale + 1}/{p.scales} {p.shape[1]}x{p.shape[0]} "
                                 f"{p.iteration}/{p.iterations} loss {p.loss:.4g} {p.elapsed:.0f} s", flush=True))
    peak = peak_rss_mb()
    save_image(outcome.image, args.output, {"nst.settings": settings.to_json()})
    h, w = outcome.image.shape[:2]
    crop = outcome.image[h // 2 - 256:h // 2 + 256, w // 2 - 384:w // 2 + 384]
    save_image(crop, Path(args.output).with_name(Path(args.output).stem + "_crop.png"))   # at 100%
    save_image(resize_longest(outcome.image, 1024), Path(args.output).with_name(Path(args.output).stem + "_preview.png"))
    return f"{w}x{h} in {time.perf_counter() - start:.0f} s, peak resident memory {peak:.0f} MB; {outcome.step}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("masks", "colors", "large"))
    parser.add_argument("--size", type=int)
    parser.add_argument("--step-engine", choices=("auto", "tf", "ort"), default="ort")
    parser.add_argument("--memory-limit", type=int, default=3000, help="large: MB")
    parser.add_argument("--scale-iterations", default="60,40,16", help="large: evaluations at each of 3 scales")
    parser.add_argument("-o", "--output")
    args = parser.parse_args()
    args.size = args.size or {"large": 2048}.get(args.what, 384)
    args.output = args.output or str(ROOT / "docs" / f"{args.what}.png")
    note = {"masks": masks, "colors": colors, "large": large}[args.what](args)
    print(f"wrote {args.output} {note}".strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
