#!/usr/bin/env python3
"""Render every bundled content image in every bundled style into one contact sheet.

    python scripts/gallery.py [--size 256] [--iterations 40] [--step-engine ort] [-o docs/gallery.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.images import bundled, load_image, resize_longest, save_image  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.stylizer import Stylizer  # noqa: E402


def _cell(image: np.ndarray, size: int) -> np.ndarray:
    """Centre ``image`` on a white ``size`` x ``size`` tile."""
    image = resize_longest(image, size)
    tile = np.full((size, size, 3), 255, np.uint8)
    h, w = image.shape[:2]
    tile[(size - h) // 2:(size - h) // 2 + h, (size - w) // 2:(size - w) // 2 + w] = image
    return tile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=40, help="L-BFGS evaluations at each of 2 scales")
    parser.add_argument("--step-engine", choices=("auto", "tf", "ort"), default="auto")
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "gallery.png"))
    args = parser.parse_args()
    contents, styles = bundled("content"), bundled("style")
    stylizer = Stylizer()   # one engine for every picture
    settings = Settings(size=args.size, iterations=args.iterations, scales=2, min_size=args.size // 2,
                        step_engine=args.step_engine)
    pad = 4
    cell = args.size + pad
    sheet = np.full(((len(contents) + 1) * cell, (len(styles) + 1) * cell, 3), 255, np.uint8)
    for j, style_path in enumerate(styles, 1):
        sheet[:args.size, j * cell:j * cell + args.size] = _cell(load_image(style_path), args.size)
    for i, content_path in enumerate(contents, 1):
        content = load_image(content_path)
        sheet[i * cell:i * cell + args.size, :args.size] = _cell(content, args.size)
        for j, style_path in enumerate(styles, 1):
            outcome = stylizer.run(content, [load_image(style_path)], settings)
            sheet[i * cell:i * cell + args.size, j * cell:j * cell + args.size] = _cell(outcome.image, args.size)
            print(f"{content_path.stem} x {style_path.stem}: {outcome.seconds:.1f} s", flush=True)
    save_image(sheet, args.output, {"nst.gallery": f"size {args.size}, {args.iterations} iterations a scale, "
                                                   f"2 scales, step engine {args.step_engine}"})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
