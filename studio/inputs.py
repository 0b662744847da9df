"""What a request to make a picture sends, checked before any work: its settings (through
``Settings``, the CLI's own checks) and its images (through ``load_image``, the CLI's own reader).
Every refusal is a ``BadInput`` carrying an HTTP status and one line for the person."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, ImageError, bundled, load_image, resize_longest
from engine.settings import Settings, SettingsError
from models.vgg19 import min_side


class BadInput(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def settings_from(fields: dict, extra: dict | None) -> Settings:
    """``fields``: the form's settings (None where not given); ``extra``: any other ``Settings``
    fields as a dict. Unknown names and values outside the CLI's limits are refused (422)."""
    given = {**(extra or {}), **{k: v for k, v in fields.items() if v is not None}}
    if isinstance(given.get("style_blend"), str):
        try:
            given["style_blend"] = tuple(float(v) for v in given["style_blend"].split(",") if v.strip())
        except ValueError:
            raise BadInput(422, f"style_blend {given['style_blend']!r} is not a comma-separated list of numbers") \
                from None
    if isinstance(given.get("preserve_colors"), str):   # a form's true/false: the CLI's flag, luminance
        given["preserve_colors"] = {"true": "luminance", "on": "luminance", "1": "luminance", "false": "none",
                                    "off": "none", "0": "none"}.get(given["preserve_colors"].lower(),
                                                                   given["preserve_colors"])
    if given.get("init") == "image":
        raise BadInput(422, "init 'image' is not offered here: use content or noise")
    try:
        return Settings.from_dict(given)
    except SettingsError as exc:
        raise BadInput(422, str(exc)) from None
    except TypeError as exc:   # a value of a kind Settings cannot take at all
        raise BadInput(422, str(exc).splitlines()[0]) from None


def bundled_names(kind: str) -> list[str]:
    return [p.name for p in bundled(kind)]


def bundled_path(kind: str, name: str) -> Path | None:
    """A bundled image by file name, with or without ``.jpg`` or its folder."""
    stem = Path(name).name
    for path in bundled(kind):
        if stem in (path.name, path.stem):
            return path
    return None


def _bundled_image(kind: str, name: str, field: str) -> tuple[np.ndarray, str]:
    path = bundled_path(kind, name)
    if path is None:
        what = "photograph" if kind == "content" else "painting"
        raise BadInput(422, f"{field} {name!r} is not a bundled {what} ({', '.join(bundled_names(kind))})")
    return load_image(path), f"{kind}/{path.name}"


def read_upload(name: str, data: bytes, folder: Path) -> np.ndarray:
    """An uploaded file as uint8 RGB, or a 400 naming the file and what is wrong with it: the file
    goes through the same reader (and the same refusals) as the CLI's."""
    shown = (Path(name or "upload").name or "upload")[:80]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="upload-", suffix=Path(shown).suffix[:10])
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        return load_image(tmp)
    except ImageError as exc:
        raise BadInput(400, str(exc).replace(tmp, shown)) from None
    finally:
        os.unlink(tmp)


def images_from(settings: Settings, content_upload, content_name, style_uploads, style_names, folder: Path):
    """The content image, the style images (bundled names first, then uploads, the order
    ``style_blend`` weighs them in) and what they are called. Each upload: ``(filename, bytes)``."""
    if content_upload is not None and content_name:
        raise BadInput(422, "content: give an uploaded file or content_name, not both")
    if content_upload is not None:
        content, content_source = read_upload(content_upload[0], content_upload[1], folder), content_upload[0]
    else:
        content, content_source = _bundled_image("content", content_name or DEFAULT_CONTENT, "content_name")
    styles, style_sources = [], []
    for name in style_names:
        image, source = _bundled_image("style", name, "style_name")
        styles.append(image)
        style_sources.append(source)
    for filename, data in style_uploads:
        styles.append(read_upload(filename, data, folder))
        style_sources.append(filename)
    if not styles:
        image, source = _bundled_image("style", DEFAULT_STYLE, "style_name")
        styles, style_sources = [image], [source]
    try:
        settings.check_styles(len(styles))
    except SettingsError as exc:
        raise BadInput(422, str(exc)) from None
    _check_size(settings, content.shape)
    # A queued job holds its pictures in memory: keep no more pixels than the run can use.
    content = _at_most(content, 2 * settings.size)
    styles = [_at_most(s, 2 * max(16, round(settings.size * settings.style_scale))) for s in styles]
    return content, styles, {"content": content_source, "style": style_sources}


def _check_size(settings: Settings, shape) -> None:
    """The engine's own refusal of a picture too small for the deepest layer, made before the job
    waits in the line rather than when it starts."""
    h, w = shape[:2]
    final = (max(1, round(h * settings.size / max(h, w))), max(1, round(w * settings.size / max(h, w))))
    smallest = min_side(tuple(settings.style_layers) + tuple(settings.content_layers))
    if min(final) < smallest:
        raise BadInput(422, f"size {settings.size} makes this picture {final[1]}x{final[0]} px; these layers need "
                            f"at least {smallest} px a side")


def _at_most(image: np.ndarray, longest: int) -> np.ndarray:
    return resize_longest(image, longest) if max(image.shape[:2]) > longest else image
