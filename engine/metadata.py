"""What a written picture says about how it was made: PNG text chunks that the CLI, the studio
and the batch runner write alike, and read back (a batch skips a picture already made with the
same settings)."""
from __future__ import annotations

import json
from pathlib import Path

VERSION = "0.1.0"
SETTINGS_KEY = "nst.settings"
WEIGHTS_KEY = "weights_sha256"   # in the settings' JSON: a picture made with other weights is another picture


def picture_metadata(outcome, **sources) -> dict:
    """PNG text for ``outcome`` (an ``engine.Outcome``): its settings with ``sources`` (the
    content, style and init image names, or anything else worth keeping) and the weights'
    sha256 merged in, which backends did the work, and the scale the picture comes from (below
    the last when the run was stopped early: that scale's picture, upsampled)."""
    made = {**outcome.settings, **sources}
    if getattr(outcome, "weights_sha256", ""):
        made[WEIGHTS_KEY] = outcome.weights_sha256
    text = {"Software": f"nst {VERSION}", SETTINGS_KEY: json.dumps(made, sort_keys=True),
            "nst.targets": outcome.targets, "nst.step": outcome.step, "nst.weights": outcome.weights}
    scale, scales = getattr(outcome, "scale", 1), getattr(outcome, "scales", 1)
    text["nst.scale"] = f"{scale}/{scales}" + (" (stopped early: that scale's picture, upsampled)"
                                               if scale < scales else "")
    return text


def read_settings(path) -> dict | None:
    """The settings a picture written by ``picture_metadata`` holds; None for a file that is not
    such a picture (missing, unreadable, truncated, or without them)."""
    from PIL import Image
    try:
        with Image.open(Path(path)) as img:
            img.load()   # a truncated file fails here, not later
            text = getattr(img, "text", {}).get(SETTINGS_KEY)
        return json.loads(text) if text else None
    except (OSError, SyntaxError, ValueError):
        return None
