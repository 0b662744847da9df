"""What a written picture says about how it was made: PNG text chunks that the CLI, the studio
and the batch runner write alike, and read back (a batch skips a picture already made with the
same settings)."""
from __future__ import annotations

import json
from pathlib import Path

VERSION = "0.1.0"
SETTINGS_KEY = "nst.settings"


def picture_metadata(outcome, **sources) -> dict:
    """PNG text for ``outcome`` (an ``engine.Outcome``): its settings with ``sources`` (the
    content, style and init image names, or anything else worth keeping) merged in, and which
    backends did the work."""
    return {"Software": f"nst {VERSION}", SETTINGS_KEY: json.dumps({**outcome.settings, **sources}, sort_keys=True),
            "nst.targets": outcome.targets, "nst.step": outcome.step, "nst.weights": outcome.weights}


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
