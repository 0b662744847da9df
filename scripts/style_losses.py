"""The three style losses side by side at equal time: a contact sheet (rows: styles; columns: the
photograph, then gram, w2, sliced) and each picture's cost on the Gram objective.

"Equal time" is equal estimated time, so that a busy machine does not decide it: each loss's
step is timed at every scale's size in this process (the fastest of three), and each scale gets
the evaluations that cost what the Gram loss's default count costs there.

    python scripts/style_losses.py [--size 512] [--out docs/style_losses.png]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LOSSES = ("gram", "w2", "sliced")
STYLES = ("starry_night", "the_wave")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--content", default="chelsea")
    parser.add_argument("--out", default="docs/style_losses.png")
    args = parser.parse_args()
    from bench.schedule import reference_seconds
    from engine import plan as planning
    from engine.images import bundled, load_image
    from engine.settings import DEFAULTS
    from engine.stylizer import Stylizer
    pick = lambda kind, stem: load_image(next(p for p in bundled(kind) if p.stem == stem))  # noqa: E731
    content = pick("content", args.content)
    stylizer = Stylizer(provider="cpu")
    base = DEFAULTS.replace(size=args.size)
    shapes = [s for s, _ in planning.schedule(base, content.shape)]
    times = {loss: reference_seconds(stylizer, base.replace(style_loss=loss), content, pick("style", STYLES[0]),
                                     shapes) for loss in LOSSES}
    counts = {loss: tuple(max(1, round(base.iterations * times["gram"][s] / times[loss][s])) for s in shapes)
              for loss in LOSSES}
    rows = []
    for stem in STYLES:
        style = pick("style", stem)
        row = [content]
        for loss in LOSSES:
            settings = base.replace(style_loss=loss, scale_iterations=counts[loss])
            outcome = stylizer.run(content, [style], settings)
            estimate = sum(n * times[loss][s] for n, s in zip(counts[loss], shapes))
            print(f"{stem}, {loss}: evaluations {counts[loss]}, estimated {estimate:.0f} s, "
                  f"wall {outcome.seconds:.0f} s", flush=True)
            row.append(outcome.image)
        rows.append(row)
    h, w = rows[0][1].shape[:2]
    sheet = Image.new("RGB", (w * 4, (h + 24) * len(rows) + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for column, label in enumerate(("photograph", *LOSSES)):
        draw.text((column * w + 6, 6), label, fill="black")
    for r, row in enumerate(rows):
        for column, picture in enumerate(row):
            tile = Image.fromarray(picture).resize((w, h), Image.LANCZOS)
            sheet.paste(tile, (column * w, 24 + r * (h + 24)))
        draw.text((w + 6, 24 + r * (h + 24) + h + 4), f"style: {STYLES[r]}", fill="black")
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out}; s per evaluation by loss and size: "
          + "; ".join(f"{loss} " + ", ".join(f"{times[loss][s]:.3f}" for s in shapes) for loss in LOSSES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
