"""Images in and out, and the arithmetic on them: every common kind of file to 8-bit RGB,
outputs written atomically, the bundled examples (package data), resizing, [0, 1] floats and
colour preservation."""
from __future__ import annotations

import os
import threading
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from models.atomic import atomic_path

# Far above any picture a 2-core machine can stylize, far below a decompression bomb.
MAX_PIXELS = 100_000_000
# warnings.catch_warnings swaps the process's list of filters: two threads inside it at once (the studio
# decoding two uploads) can leave one's "error" filter in place for good, and every later header read of
# a large picture then fails. Every use here takes turns.
_WARNINGS = threading.Lock()
OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


class ImageError(ValueError):
    """An input or output image problem, stated in one line."""
    exit_status = 1   # a problem with an input, not with how the command was used


def _to_rgb(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # Pillow's own conversion to 8 bits clips 16-bit values at 255; scale instead.
        values = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        gray = np.clip(np.round(np.asarray(img) * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
    elif mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    elif mode == "LA":
        img = img.convert("RGBA")
    if img.mode == "RGBA" or img.mode == "RGBa":
        # Transparent pixels have arbitrary colours underneath: show them on white.
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def _open(source, *, bombs: str) -> Image.Image:
    with _WARNINGS, warnings.catch_warnings():
        warnings.simplefilter(bombs, Image.DecompressionBombWarning)
        return Image.open(source)


def header_pixels(source) -> int | None:
    """Width x height from an image file's header, without decoding it; None for a file Pillow
    cannot open. A picture Pillow refuses outright (over twice its own limit) counts as that bound."""
    try:
        with _open(source, bombs="ignore") as img:
            width, height = img.size
        return width * height
    except Image.DecompressionBombError:
        return 2 * Image.MAX_IMAGE_PIXELS + 1
    except Exception:   # noqa: BLE001 - anything Pillow cannot open is refused by load_image, in one line
        return None


def load_image(path, *, name: str | None = None) -> np.ndarray:
    """Read an image file as an ``(h, w, 3)`` uint8 RGB array, EXIF orientation applied. ``path``:
    a file's name, or a binary file open for reading (an upload), which errors call ``name``."""
    if hasattr(path, "read"):
        source, path = path, name or "the image"
        source.seek(0, os.SEEK_END)
        empty = source.tell() == 0
        source.seek(0)
    else:
        source = path = Path(path)
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        if not path.is_file():
            raise ImageError(f"{path}: not a file")
        empty = path.stat().st_size == 0
    if empty:
        raise ImageError(f"{path}: the file is empty")
    try:
        with _open(source, bombs="error") as img:
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageError(f"{path}: {width}x{height} is too large "
                                 f"(more than {MAX_PIXELS // 1_000_000} megapixels)")
            img.load()
            img = ImageOps.exif_transpose(img)
            array = _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: too large, refused as a possible decompression bomb") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: the file is damaged or truncated ({exc})") from None
    if array.size == 0:
        raise ImageError(f"{path}: the image has no pixels")
    return array


def examples_dir() -> Path:
    """The bundled example images (``content/``, ``style/``): package data, so that a plain
    ``pip install`` has them too (setuptools installs the repository's ``examples/`` as
    ``nst_examples``); in a checkout that was never installed (a GPU machine), its ``examples/``."""
    try:
        return Path(str(resources.files("nst_examples")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "examples"


def bundled(kind: str) -> list[Path]:
    """The bundled ``content`` or ``style`` images, by name."""
    return sorted((examples_dir() / kind).glob("*.jpg"))


DEFAULT_CONTENT = "content/chelsea.jpg"
DEFAULT_STYLE = "style/starry_night.jpg"


def bundled_photo(shape) -> np.ndarray:
    """The default content photograph resized to ``shape`` (h, w) with Lanczos, float32 [0, 1]."""
    h, w = shape
    photo = load_image(examples_dir() / DEFAULT_CONTENT)
    return np.asarray(Image.fromarray(photo).resize((w, h), Image.LANCZOS), np.float32) / 255.0


def resize_longest(image: np.ndarray, longest: int) -> np.ndarray:
    """Resize a uint8 RGB array so its longest side is ``longest`` px (Lanczos), aspect kept."""
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def as_float(image: np.ndarray) -> np.ndarray:
    """uint8 ``(h, w, 3)`` -> float32 in [0, 1]."""
    return image.astype(np.float32) / 255.0


def resize_float(image: np.ndarray, shape) -> np.ndarray:
    """Bicubic resize of a float ``(1, h, w, 3)`` image to ``shape`` (h, w), clipped to [0, 1]."""
    channels = [np.asarray(Image.fromarray(image[0, :, :, c], mode="F").resize((shape[1], shape[0]), Image.BICUBIC))
                for c in range(3)]
    return np.clip(np.stack(channels, -1)[None], 0, 1).astype(np.float32)


def resize_field(field: np.ndarray, shape) -> np.ndarray:
    """Bilinear resize of a float array ``(h, w)``, ``(h, w, c)`` or ``(1, h, w, c)`` to ``shape``
    (h, w), values unclipped (optimizer state, masks, flows)."""
    array = np.asarray(field, np.float32)
    axis = 1 if array.ndim == 4 else 0
    if array.shape[axis:axis + 2] == tuple(shape):
        return array
    channels = array[..., None] if array.ndim == 2 else array.reshape(*array.shape[axis:axis + 2], -1)
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c]), mode="F")
                               .resize((shape[1], shape[0]), Image.BILINEAR)) for c in range(channels.shape[-1])], -1)
    return out[..., 0] if array.ndim == 2 else out[None] if array.ndim == 4 else out


def resize_exact(image: np.ndarray, shape) -> np.ndarray:
    """uint8 RGB resized to exactly ``shape`` (h, w) with Lanczos (the aspect ratio may change)."""
    if image.shape[:2] == tuple(shape):
        return image
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.LANCZOS))


def preserve_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Luminance of ``stylized`` with the chroma of ``content`` (both uint8 RGB, same shape), in YCbCr."""
    out = Image.fromarray(stylized).convert("YCbCr")
    src = Image.fromarray(content).convert("YCbCr")
    y = out.getchannel("Y")
    _, cb, cr = src.split()
    return np.asarray(Image.merge("YCbCr", (y, cb, cr)).convert("RGB"))


def to_uint8(image) -> np.ndarray:
    """Float ``[0, 1]`` (or uint8) ``(h, w, 3)`` or ``(1, h, w, 3)`` -> uint8 ``(h, w, 3)``."""
    array = np.asarray(image)
    if array.ndim == 4:
        array = array[0]
    if array.dtype == np.uint8:
        return array
    return np.clip(np.round(array * 255.0), 0, 255).astype(np.uint8)


def check_output_path(path, formats=OUTPUT_FORMATS, error=ImageError) -> Path:
    """Refuse, before any work, an output that could not be written (``formats``: the suffixes
    taken; ``error``: the failure class raised, a video's own)."""
    path = Path(path)
    if path.suffix.lower() not in formats:
        raise error(f"{path}: unsupported output type {path.suffix or '(none)'}; "
                    f"use one of {', '.join(sorted(formats))}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise error(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise error(f"{path}: the folder {folder} is not writable")
    if path.is_dir():
        raise error(f"{path}: is a folder")
    return path


def save_image(image, path, metadata: dict | None = None) -> Path:
    """Write atomically (temporary file in the same folder, then rename); PNG keeps ``metadata`` as text."""
    path = check_output_path(path)
    fmt = OUTPUT_FORMATS[path.suffix.lower()]
    pil = Image.fromarray(to_uint8(image))
    kwargs = {}
    if fmt == "PNG" and metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_itxt(str(key), str(value))
        kwargs["pnginfo"] = info
    elif fmt == "JPEG":
        kwargs.update(quality=95, subsampling=0)
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt, **kwargs)
    return path
