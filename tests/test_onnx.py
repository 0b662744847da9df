import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from engine.ort.backend import BackendError, OrtFeatures, cuda_unavailable_reason
from parity import PRECISION_TOLERANCE, compare, parity_images
from engine.spec import FeatureSpec

ROOT = Path(__file__).resolve().parent.parent
CUDA_REASON = cuda_unavailable_reason()


@pytest.fixture(scope="module")
def tf_reference(exported, weights):
    from engine.tf.backend import TfFeatures
    return TfFeatures(exported.spec, weights)


def test_export_is_checked_labelled_and_reused(exported, weights):
    assert exported.max_rel_error < 1e-5 and len(exported.checks) == 4
    model = onnx.load(str(exported.path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert FeatureSpec.from_json(meta["nst.spec"]) == exported.spec
    assert meta["nst.weights_sha256"] == weights.sha256
    assert {"tensorflow", "tf2onnx", "onnx", "onnxruntime", "opset"} <= set(json.loads(meta["nst.tools"]))
    assert [o.name for o in model.graph.output] == list(exported.spec.layers)
    assert model.opset_import[0].version == 17
    from exporter.export import export
    again = export(exported.spec, weights, exported.path)
    assert again.reused


@pytest.mark.parametrize("size", [(64, 64), (333, 517)])
def test_cpu_parity_with_tensorflow(exported, tf_reference, size):
    engine = OrtFeatures(exported.path, spec=exported.spec, provider="cpu")
    assert engine.provider == "cpu"
    for image in parity_images(size):
        rows = compare(tf_reference(image[None]), engine(image[None]))
        assert [r["layer"] for r in rows] == list(exported.spec.layers)
        assert max(r["max_rel"] for r in rows) < PRECISION_TOLERANCE["fp32"]


def test_batch_and_dynamic_shapes(exported):
    engine = OrtFeatures(exported.path, provider="cpu")
    out = engine(np.random.default_rng(1).random((2, 40, 72, 3), dtype=np.float32))
    assert out["block1_conv1"].shape == (2, 40, 72, 64) and out["block5_conv2"].shape == (2, 2, 4, 512)
    device = engine.run_on_device(np.zeros((1, 32, 32, 3), np.float32))
    assert device["block2_conv1"].numpy().shape == (1, 16, 16, 128)


def test_spec_mismatch_is_refused(exported):
    other = FeatureSpec(exported.spec.weights_sha256, exported.spec.layers, "max")
    with pytest.raises(BackendError, match="re-export"):
        OrtFeatures(exported.path, spec=other, provider="cpu")
    with pytest.raises(BackendError, match="no such ONNX model"):
        OrtFeatures(exported.path.with_name("missing.onnx"))


def test_auto_provider_is_clean_and_says_which_ran(exported):
    code = ("import sys; sys.path.insert(0, '.'); from engine.ort.backend import OrtFeatures;"
            f"e = OrtFeatures({str(exported.path)!r}, provider='auto'); print(e.describe())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    expected = "CPU" if CUDA_REASON else "CUDA"
    assert f"({expected}, fp32)" in result.stdout
    assert result.stderr == ""


@pytest.mark.skipif(CUDA_REASON is None, reason="CUDA is present: the refusal is not reachable")
def test_cuda_refused_with_reason_when_absent(exported):
    with pytest.raises(BackendError, match="--provider cuda: "):
        OrtFeatures(exported.path, provider="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(CUDA_REASON is not None, reason=f"CUDA: {CUDA_REASON}")
def test_cuda_parity_with_tensorflow(exported, tf_reference):
    engine = OrtFeatures(exported.path, spec=exported.spec, provider="cuda", cuda_options={"use_tf32": "0"})
    assert engine.provider == "cuda"
    for image in parity_images((333, 517)):
        rows = compare(tf_reference(image[None]), {k: v.numpy() for k, v in engine.run_on_device(image[None]).items()})
        assert max(r["max_rel"] for r in rows) < PRECISION_TOLERANCE["fp32"]


def test_ort_side_runs_without_tensorflow(exported, tf_reference, tmp_path):
    """Save the TensorFlow side, then check it with TensorFlow made unimportable."""
    from parity import save_reference
    reference = tmp_path / "reference.npz"
    save_reference(reference, exported.spec, tf_reference, sizes=((48, 80),))
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor name in ('tensorflow', 'keras', 'tf2onnx'):\n    sys.modules[name] = None\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    probe = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True)
    assert probe.returncode != 0
    result = subprocess.run([sys.executable, "cli.py", "parity", "--reference", str(reference),
                             "--model", str(exported.path), "--provider", "cpu"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout and "block5_conv2" in result.stdout


def test_fp16_and_int8_variants(exported, weights, tf_reference, tmp_path):
    from exporter.export import export
    for precision in ("fp16", "int8"):
        result = export(exported.spec, weights, tmp_path / f"{precision}.onnx", precision=precision)
        assert 0 < result.max_rel_error < PRECISION_TOLERANCE[precision]
        engine = OrtFeatures(result.path, spec=exported.spec, provider="cpu")
        assert engine.precision == precision
        image = parity_images((64, 96), random=False)[0]
        worst = max(r["max_rel"] for r in compare(tf_reference(image[None]), engine(image[None])))
        assert worst < PRECISION_TOLERANCE[precision]
        assert worst > 1e-5  # really reduced precision, not a float32 copy
