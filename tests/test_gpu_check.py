"""scripts/gpu_check.py on the CPU provider: a bundle made by --prepare where TensorFlow is, then
checked by a process that can import neither TensorFlow nor the installed project, as on the GPU
machine."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.settings import DEFAULTS
from parity import PRECISION_TOLERANCE

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_check.py"
CUDA_ONLY = {"features": {"TF32", "TF32 NHWC", "fp16 NHWC CUDA graphs"},
             "steps": {"ORT CUDA fp32 any-size", "ORT CUDA TF32 any-size", "ORT CUDA TF32 NHWC any-size",
                       "ORT CUDA TF32 NHWC sized", "ORT CUDA TF32 NHWC sized, on device",
                       "ORT CUDA TF32 NHWC sized, targets folded, on device", "ORT CUDA TF32 NCHW sized, on device",
                       "ORT CUDA TF32 NHWC EXHAUSTIVE sized, on device", "ORT CUDA TF32 NHWC sized, CUDA graph",
                       "ORT CUDA TF32 NHWC sized, CUDA graph, on device",
                       "ORT CUDA TF32 NHWC EXHAUSTIVE sized, CUDA graph, on device"}}
RAN_ON_CPU = {"features": {"fp32", "fp16"}, "steps": {"ORT CPU Winograd"}}


def _gpu_machine_environment(tmp_path):
    """TensorFlow and scipy cannot be imported (the GPU machine has onnxruntime, numpy and Pillow),
    nor the bundled images' package that only a pip install makes."""
    blocker = tmp_path / "block"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor name in ('tensorflow', 'keras', 'tf2onnx', 'tf_keras', 'scipy', 'nst_examples'):\n"
        "    sys.modules[name] = None\n")
    return {**os.environ, "PYTHONPATH": str(blocker)}


def _check(bundle, out, tmp_path):
    return subprocess.run([sys.executable, str(SCRIPT), "--bundle", str(bundle), "--out", str(out),
                           "--provider", "cpu", "--sizes", "48", "--repeats", "2", "--evaluations", "4",
                           "--stylize-size", "64", "--budget-size", "64"],
                          capture_output=True, text=True, cwd=ROOT, env=_gpu_machine_environment(tmp_path))


@pytest.fixture(scope="module")
def bundle(weights, tmp_path_factory):
    """Exported here once: both feature models and the step graph (child processes), the reference."""
    folder = tmp_path_factory.mktemp("bundle")
    run = subprocess.run([sys.executable, str(SCRIPT), "--prepare", str(folder), "--parity-sizes", "48x48,61x80"],
                          capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "../shared/gpu/prepare.sh" in run.stdout and "--bundle /tmp/gpu-bundle" in run.stdout
    return folder


def test_check_runs_every_section_without_tensorflow(bundle, tmp_path):
    out = tmp_path / "result.json"
    run = _check(bundle, out, tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    sections = ("machine", "parity", "features", "steps", "profile", "stylize")
    assert [name for name in sections if "error" in result[name]] == []
    assert result["machine"]["provider"] == "cpu" and result["machine"]["onnxruntime"]

    parity = {row["variant"]: row for row in result["parity"]["rows"]}
    assert result["parity"]["cases"] == 4
    assert parity["fp32"]["ok"] and parity["fp32"]["worst_max_rel"] <= PRECISION_TOLERANCE["fp32"]
    assert parity["TF32"]["ok"] and "fp32 again" in parity["TF32"]["note"]
    assert parity["fp16"]["ok"] and parity["fp16"]["worst_max_rel"] <= PRECISION_TOLERANCE["fp16"]
    # half precision really ran: its error is far above fp32's
    assert parity["fp16"]["worst_max_rel"] > 10 * parity["fp32"]["worst_max_rel"]

    for name in ("features", "steps"):
        rows = result[name]["rows"]
        timed = [row for row in rows if "ms" in row]
        assert {row["variant"] for row in timed} == RAN_ON_CPU[name]
        assert all(row["size"] == 48 and row["ms"] > 0 and row["first_ms"] > 0 for row in timed)
        others = [row for row in rows if "ms" not in row]
        assert {row["variant"] for row in others} == CUDA_ONLY[name]
        assert all(row.get("skipped") == "needs CUDA" for row in others), others

    profile = result["profile"]
    assert profile["size"] == 48 and profile["provider"] == "cpu" and profile["model_run_ms"] > 0
    assert any(key.startswith("Conv ") or key.startswith("FusedMatMul ") for key in profile["by_op"])

    single, budget = result["stylize"], result["stylize"]["default_budget"]
    assert single["step_s"] > 0 and single["loop_s"] is not None
    assert single["host_loop"]["evaluations"] == 4 and "beside it" not in single["host_loop"]["step"]
    assert single["held"]["evaluations"] == 4 and single["held"]["loss"] == single["loss"]
    assert "ONNX Runtime" in single["step"] and "ONNX Runtime" in single["targets"]
    assert single["evaluations"] == 4 and single["size"] == 64
    assert single["wall_s"] > 0 and single["s_per_evaluation"] > 0
    assert "error" not in budget and budget["evaluations"] == DEFAULTS.iterations and budget["wall_s"] > 0
    assert budget["loss"] < single["loss"]   # the default count went further than 4
    assert [t["measured"] for t in result["targets"]] == [None] * 3   # nothing at 512 px here
    assert "target: step at 512 px" in run.stdout and f"wrote {out}" in run.stdout


def test_a_missing_bundle_file_is_one_line(bundle, tmp_path):
    partial = tmp_path / "partial"
    partial.mkdir()
    fp16 = next(bundle.glob("vgg19-*-fp16.onnx"))
    for path in bundle.glob("*"):
        if path != fp16:
            (partial / path.name).symlink_to(path)
    out = tmp_path / "result.json"
    run = _check(partial, out, tmp_path)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and fp16.name in lines[0] and "--prepare" in lines[0], run.stderr
    assert not out.exists()
