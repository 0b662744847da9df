"""Read a legacy (pre-zip) ``torch.save`` file with numpy alone, safely.

The file is five pickles and raw storage bytes written one after another
(magic number, protocol version, system info, the object, the storage keys),
then for each storage key an int64 element count and the elements.

Unpickling runs whatever globals the file names, so ``find_class`` allows only
the four that a state dict of CPU tensors needs and refuses everything else.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
_STORAGE_DTYPES = {"ByteStorage": np.uint8, "FloatStorage": np.float32}


class UnsafePickleError(ValueError):
    """The file names a global outside the allowed set."""


class FormatError(ValueError):
    """The file is not a legacy torch.save file of CPU tensors we can read."""


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _TensorRef:
    key: str
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, offset, size, stride, *_ignored):
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickleError(f"refusing to unpickle global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise FormatError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, location, numel = pid[:5]
        if location != "cpu":
            raise FormatError(f"storage {key} is on {location!r}, expected 'cpu'")
        self.storages[key] = (storage_type.name, int(numel))
        return key


def _restricted_load(stream):
    unpickler = _RestrictedUnpickler(stream)
    unpickler.storages = {}
    return unpickler.load(), unpickler.storages


def load_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """Return the tensors of a legacy torch.save state dict as numpy arrays."""
    stream = io.BytesIO(data)
    try:
        if _restricted_load(stream)[0] != MAGIC_NUMBER:
            raise FormatError("not a legacy torch.save file (bad magic number)")
        if _restricted_load(stream)[0] != PROTOCOL_VERSION:
            raise FormatError("unsupported torch.save protocol version")
        sys_info = _restricted_load(stream)[0]
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
            raise FormatError("only little-endian torch.save files are supported")
        state, storages = _restricted_load(stream)
        keys = _restricted_load(stream)[0]
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError) as exc:
        raise FormatError(f"corrupt torch.save file ({exc})") from None

    buffers = {}
    for key in keys:
        if key not in storages:
            raise FormatError(f"storage {key} is listed but never referenced")
        kind, numel = storages[key]
        count_bytes = stream.read(8)
        if len(count_bytes) != 8:
            raise FormatError("file is truncated")
        count = int(np.frombuffer(count_bytes, "<i8")[0])
        if count != numel:
            raise FormatError(f"storage {key} holds {count} elements, expected {numel}")
        dtype = np.dtype(_STORAGE_DTYPES[kind])
        raw = stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise FormatError("file is truncated")
        buffers[key] = np.frombuffer(raw, dtype.newbyteorder("<"))

    if not isinstance(state, dict):
        raise FormatError("the file does not hold a state dict")
    arrays = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef) or ref.key not in buffers:
            raise FormatError(f"entry {name!r} is not a tensor")
        flat = buffers[ref.key]
        n = int(np.prod(ref.size, dtype=np.int64))
        contiguous = tuple(int(np.prod(ref.size[i + 1:], dtype=np.int64)) for i in range(len(ref.size)))
        if ref.stride != contiguous or ref.offset + n > flat.size:
            raise FormatError(f"entry {name!r} is not a contiguous tensor")
        arrays[name] = flat[ref.offset:ref.offset + n].reshape(ref.size).copy()
    return arrays
