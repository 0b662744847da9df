"""What a request to make a picture sends, checked before any work: its fields read by the settings'
own declarations (``engine.settings``: the CLI's checks, the CLI's text forms), its pictures by the
CLI's own reader (``load_image``), and the engine's own refusals for the photograph's size
(``engine.plan.check``). Every refusal is a ``BadInput`` carrying an HTTP status and one line for
the person."""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import plan as planning
from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, ImageError, bundled, header_pixels, load_image, resize_longest
from engine.masks import check_masks
from engine.settings import CONTROLS, IMAGE_INPUTS, MAX_STYLES, Settings, SettingsError

# the form's fields besides the settings: (kind, several allowed, what it is)
FIELDS = {
    "content": ("file", False, "the photograph (or give content_name)"),
    "content_name": ("text", False, "a bundled photograph, e.g. chelsea.jpg"),
    "style": ("file", True, "painting(s) to upload"),
    "style_name": ("text", True, "bundled painting(s), e.g. starry_night.jpg; they come before uploaded ones"),
    "settings": ("text", False, "settings as a JSON object, named as in Settings (a field of the same name "
                                "may not be given too)"),
    **{i.form: ("file", i.per_style, i.help + ("; one per painting, in their order: bundled ones first" if
                                               i.per_style else "")) for i in IMAGE_INPUTS},
}
IMAGE_FIELDS = {i.form: i for i in IMAGE_INPUTS}
MAX_FILES = 2 * MAX_STYLES + 3   # paintings, their masks, the photograph, its mask, a starting picture
MAX_FIELDS = len(CONTROLS) + MAX_STYLES + 8
# Decoded pixels of one request, its photograph, paintings, masks and starting picture together,
# read from the files' headers before any is decoded: 192 MB as RGB, however small the files (an
# 8000x8000 plain PNG is 0.2 MB on the wire). Each picture is shrunk to what the run uses once read.
MAX_REQUEST_PIXELS = 64_000_000
# Requests decoding pictures at once: each may hold MAX_REQUEST_PIXELS; the rest wait their turn.
DECODING = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))


class BadInput(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def refused(exc: SettingsError) -> BadInput:
    """A setting's refusal in the API's words: a picture input by its form field's name."""
    names = {i.name: i.form for i in IMAGE_INPUTS}
    return BadInput(422, f"{names.get(exc.field, exc.field)} {exc.problem}")


def request_schema() -> dict:
    """The OpenAPI request body of a job: every field of ``FIELDS`` and every setting, from their
    declarations (a setting's form field is text, read as the CLI reads its option)."""
    from engine.settings import DEFAULTS
    properties = {}
    for name, (kind, many, what) in FIELDS.items():
        one = {"type": "string", "format": "binary"} if kind == "file" else {"type": "string"}
        properties[name] = ({"type": "array", "items": one, "description": what} if many
                            else {**one, "description": what})
    properties.update({name: c.schema(getattr(DEFAULTS, name)) for name, c in CONTROLS.items()})
    schema = {"type": "object", "properties": properties}
    return {"required": False, "content": {"multipart/form-data": {"schema": schema},
                                           "application/x-www-form-urlencoded": {"schema": schema}}}


# what the page starts with where it differs from the settings' defaults (none now: auto runs the
# ONNX Runtime step on a CPU too, the fastest there; docs/BENCHMARKS.md)
PAGE_DEFAULTS: dict = {}


def settings_description() -> dict:
    """Every setting's declaration with its default as a form field writes it, and the pictures a
    job takes besides the photograph and the paintings: what the page builds its controls from."""
    from dataclasses import asdict

    from engine.settings import DEFAULTS
    controls = []
    for name, control in CONTROLS.items():
        default = PAGE_DEFAULTS.get(name, getattr(DEFAULTS, name))
        text = control.schema(default)["default"]
        controls.append({**asdict(control), "default": text if control.kind in ("ints", "floats", "layers")
                         else default})
    return {"settings": controls, "images": [asdict(i) for i in IMAGE_INPUTS]}


@dataclass
class Submission:
    """A job as the form gave it, checked: the settings, the pictures (uint8, no larger than the run
    can use) and what each was called."""
    settings: Settings
    content: np.ndarray
    styles: list
    pictures: dict = field(default_factory=dict)   # IMAGE_INPUTS name -> array (masks: a list)
    sources: dict = field(default_factory=dict)


def _fields(form) -> dict[str, list]:
    """The form's parts by name, each checked for its kind and count; a file input a browser sent
    empty (no file chosen) is no part."""
    parts: dict[str, list] = {}
    for name, value in form.multi_items():
        is_file = not isinstance(value, str)
        if is_file and not value.filename and not value.size:
            continue
        if name in FIELDS:
            kind, many, _ = FIELDS[name]
        elif name in CONTROLS:
            kind, many = "text", False
        else:
            raise BadInput(422, f"{name[:40]} is not a setting or a field of this form")
        if (kind == "file") != is_file:
            raise BadInput(422, f"{name} must be {'a file' if kind == 'file' else 'text, not a file'}")
        if parts.get(name) and not many:
            raise BadInput(422, f"{name} is given more than once")
        parts.setdefault(name, []).append(value)
    return parts


def settings_from(texts: dict, extra: str | None) -> Settings:
    """``texts``: settings' form fields; ``extra``: the ``settings`` field's JSON object. A name in
    both, a name that is no setting and a value outside the CLI's limits are refused (422)."""
    typed = {}
    if extra:
        try:
            typed = json.loads(extra)
        except json.JSONDecodeError as exc:
            raise BadInput(422, f"settings is not a JSON object ({exc.msg})") from None
        if not isinstance(typed, dict):
            raise BadInput(422, "settings must be a JSON object")
        both = sorted(set(typed) & set(texts))
        if both:
            raise BadInput(422, f"{both[0]} is given twice: as a field and in settings")
    try:
        return Settings.from_text(texts, typed)
    except SettingsError as exc:
        raise refused(exc) from None


def read_job(form) -> Submission:
    """A job's form -> a ``Submission``, or the first thing wrong with it as a ``BadInput``: the
    settings, the number of pictures and their pixels (from the files' headers) are checked before
    any picture is decoded."""
    parts = _fields(form)
    texts = {name: values[0] for name, values in parts.items() if name in CONTROLS}
    for image in IMAGE_FIELDS.values():   # a starting picture given: start from it
        if image.sets and image.form in parts and image.sets[0] not in texts:
            texts[image.sets[0]] = image.sets[1]
    settings = settings_from(texts, parts.get("settings", [None])[0])
    try:
        settings.check_styles(len(parts.get("style", [])) + len(parts.get("style_name", [])) or 1)
    except SettingsError as exc:
        raise refused(exc) from None
    _check_pixels(parts)
    with DECODING:
        return _decoded(parts, settings)


def _check_pixels(parts: dict) -> None:
    """The request's pictures, decoded, within ``MAX_REQUEST_PIXELS``: a 413 naming the total."""
    paths = [bundled_path("content", n) for n in parts.get("content_name", [])]
    paths += [bundled_path("style", n) for n in parts.get("style_name", [])]
    if "content" not in parts and "content_name" not in parts:
        paths.append(bundled_path("content", DEFAULT_CONTENT))
    if "style" not in parts and "style_name" not in parts:
        paths.append(bundled_path("style", DEFAULT_STYLE))
    total = sum(_header_pixels(p) for p in paths if p is not None)
    total += sum(_header_pixels(upload.file) for name, values in parts.items()
                 if FIELDS.get(name, ("",))[0] == "file" for upload in values)
    if total > MAX_REQUEST_PIXELS:
        raise BadInput(413, f"the pictures of this job come to {total / 1e6:.1f} megapixels decoded; at most "
                            f"{MAX_REQUEST_PIXELS / 1e6:.0f} are taken: send smaller pictures (the run uses at most "
                            f"twice the size asked)")


def _header_pixels(source) -> int:
    """A file's pixels from its header (0 for what is not an image: its own check says what is wrong)."""
    if hasattr(source, "seek"):
        source.seek(0)
    try:
        return header_pixels(source) or 0
    finally:
        if hasattr(source, "seek"):
            source.seek(0)


def _decoded(parts: dict, settings: Settings) -> Submission:
    content_upload = parts.get("content", [None])[0]
    content_name = parts.get("content_name", [None])[0]
    if content_upload is not None and content_name:
        raise BadInput(422, "content: give an uploaded file or content_name, not both")
    if content_upload is not None:
        content, content_source = read_upload(content_upload), _name(content_upload)
    else:
        content, content_source = _bundled_image("content", content_name or DEFAULT_CONTENT, "content_name")
    styles, style_sources = [], []
    for name in parts.get("style_name", []):
        image, source = _bundled_image("style", name, "style_name")
        styles.append(image)
        style_sources.append(source)
    for upload in parts.get("style", []):
        styles.append(read_upload(upload))
        style_sources.append(_name(upload))
    if not styles:
        image, source = _bundled_image("style", DEFAULT_STYLE, "style_name")
        styles, style_sources = [image], [source]
    pictures, sources = {}, {"content": content_source, "style": style_sources}
    for form_name, image in IMAGE_FIELDS.items():
        uploads = parts.get(form_name, [])
        if uploads:
            read = [read_upload(u) for u in uploads]
            pictures[image.name] = read if image.per_style else read[0]
            sources[image.name] = [_name(u) for u in uploads] if image.per_style else _name(uploads[0])
    try:
        for image in IMAGE_FIELDS.values():
            if not image.sets:
                continue
            name, choice = image.sets
            if getattr(settings, name) != choice and image.name in pictures:
                raise SettingsError(image.name, f"is given, but {name} is {getattr(settings, name)!r}: give "
                                                f"{name} {choice} or no file")
            if getattr(settings, name) == choice and image.name not in pictures:
                raise SettingsError(name, f"is {choice!r} but no {image.form} was given")
        settings.check_styles(len(styles))
        check_masks(pictures.get("masks"), pictures.get("content_mask"), len(styles))
        planning.check(settings, content.shape)
    except SettingsError as exc:
        raise refused(exc) from None
    # A queued job's pictures are kept until it runs: no more pixels than the run can use.
    longest = 2 * settings.size
    content = _at_most(content, longest)
    styles = [_at_most(s, 2 * settings.style_size(settings.size)) for s in styles]
    pictures = {name: [_at_most(m, longest) for m in value] if isinstance(value, list) else _at_most(value, longest)
                for name, value in pictures.items()}
    return Submission(settings, content, styles, pictures, sources)


def bundled_names(kind: str) -> list[str]:
    return [p.name for p in bundled(kind)]


def bundled_path(kind: str, name: str) -> Path | None:
    """A bundled image by file name, with or without ``.jpg`` or its folder."""
    stem = Path(name).name
    for path in bundled(kind):
        if stem in (path.name, path.stem):
            return path
    return None


def _bundled_image(kind: str, name: str, field_name: str) -> tuple[np.ndarray, str]:
    path = bundled_path(kind, name)
    if path is None:
        what = "photograph" if kind == "content" else "painting"
        raise BadInput(422, f"{field_name} {name[:80]!r} is not a bundled {what} ({', '.join(bundled_names(kind))})")
    return load_image(path), f"{kind}/{path.name}"


def _name(upload) -> str:
    return (Path(upload.filename or "upload").name or "upload")[:80]


def read_upload(upload) -> np.ndarray:
    """An uploaded file as uint8 RGB, or a 400 naming the file and what is wrong with it: the file
    goes through the same reader (and the same refusals) as the CLI's."""
    try:
        return load_image(upload.file, name=_name(upload))
    except ImageError as exc:
        raise BadInput(400, str(exc)) from None


def _at_most(image: np.ndarray, longest: int) -> np.ndarray:
    return resize_longest(image, longest) if max(image.shape[:2]) > longest else image
