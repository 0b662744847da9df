"""The CUDA check in one run, on a GPU machine without TensorFlow: parity against a saved
TensorFlow reference (fp32, TF32, fp16), feature and step timings for each CUDA setting, and a
timed stylize, written as one JSON.

Where TensorFlow is, fill a bundle folder and print the command that packs it for the GPU machine
(../shared/gpu/README.md):
    python scripts/gpu_check.py --prepare BUNDLE
There, after ``source .gpu/unpack.sh``:
    python3 scripts/gpu_check.py --bundle /tmp/gpu-bundle --out gpu_check.json
``--provider cpu`` runs the same checks on the CPU provider (the CUDA-only variants are skipped),
which is how it is tested. Exit status: 0 written and every parity row passed; 1 parity failed
(the JSON is written) or a bundle, provider or output problem (one line, nothing written); 2 usage.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from bench.machine import SEED_LOSS_WEIGHTS, cpu, median_seconds  # noqa: E402
from bench.steps import CUDA_VARIANTS, step_inputs  # noqa: E402
from engine.ort.backend import BackendError, OrtFeatures, cuda_unavailable_reason  # noqa: E402
from engine.ort.step import OrtStep  # noqa: E402
from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec  # noqa: E402
from engine.store import ArtifactStore, ExportFailed, MissingArtifact, weights_identity  # noqa: E402
from models.atomic import atomic_path  # noqa: E402
from models.weights import WeightsError  # noqa: E402
from parity import PRECISION_TOLERANCE, load_reference, run_parity, save_reference  # noqa: E402

REFERENCE = "reference.npz"
NEEDS_CUDA = "needs CUDA"
WARMUP = 2   # calls after the first (cuDNN picks its kernels there) and before the timed ones
# (what, size, limit, unit): printed next to what was measured, never asserted
TARGETS = (("step", 512, 3.0, "ms"), ("stylize of 500 evaluations", 512, 5.0, "s"), ("fp16 features", 512, 0.7, "ms"))
GPU_BUNDLE = "/tmp/gpu-bundle"   # where ../shared/gpu/unpack.sh puts the files
# A reference holds every layer's outputs for a photograph and a noise image at each size, about 0.55 KB
# a pixel compressed: parity's own sizes (up to 512x512) make 275 MB, 6 more parts to send; these 45 MB.
BUNDLE_PARITY_SIZES = ((64, 64), (97, 131), (256, 256))


class CheckError(RuntimeError):
    """The run cannot start (a bundle file, the provider, the output); one line says why."""


def _line(exc: BaseException) -> str:
    from engine.errors import one_line
    return f"{type(exc).__name__}: {one_line(exc)}"


def _attempt(row: dict, measure) -> dict:
    """``row`` with what ``measure()`` returns, or with the one-line reason it failed: any failure
    (a CUDA option this build refuses, a kernel missing) must cost that row only."""
    try:
        row.update(measure())
    except Exception as exc:
        row["error"] = _line(exc)
        # the project's innermost line that raised it: a failure seen only on the GPU machine
        ours = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(ROOT))]
        if ours:
            row["where"] = [f"{Path(f.filename).relative_to(ROOT)}:{f.lineno} {f.line}" for f in ours[-3:]]
    return row


def _timed(fn, repeats: int) -> dict:
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(WARMUP):
        fn()
    return {"ms": median_seconds(fn, repeats) * 1e3, "first_ms": first * 1e3}


def _noise(size: int) -> np.ndarray:
    return np.random.default_rng(size).random((1, size, size, 3), dtype=np.float32)


def _step_spec(spec: FeatureSpec) -> StepSpec:
    return StepSpec(spec, SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,))


# -- the bundle ------------------------------------------------------------------------------

class Bundle:
    """The files a check needs, found by the spec of the saved reference and checked by their labels."""

    def __init__(self, folder: Path):
        if not folder.is_dir():
            raise CheckError(f"{folder}: no such bundle folder")
        self.folder, hint = folder, "make the bundle with `python scripts/gpu_check.py --prepare DIR` where TensorFlow is"
        if not (folder / REFERENCE).is_file():
            raise CheckError(f"{folder} has no {REFERENCE} (the saved TensorFlow outputs); {hint}")
        try:
            self.spec, self.cases = load_reference(folder / REFERENCE)
        except Exception as exc:  # numpy's and zipfile's errors for a damaged or foreign file
            raise CheckError(f"{folder / REFERENCE}: not a saved parity reference ({_line(exc)})") from None
        store = ArtifactStore(folder, exports=False)
        needed = {"fp32 feature extractor": store.feature_path(self.spec, "fp32"),
                  "fp16 feature extractor": store.feature_path(self.spec, "fp16"),
                  "step graph": store.step_path(_step_spec(self.spec))}
        for what, path in needed.items():
            if not path.is_file():
                raise CheckError(f"{folder} has no {path.name} (the {what} of the reference's spec); {hint}")
        self.fp32, self.fp16 = store.feature_model(self.spec, "fp32"), store.feature_model(self.spec, "fp16")
        self.step = store.step_graph(_step_spec(self.spec))
        self.weights = weights_identity(self.fp32)

    def describe(self) -> dict:
        return {"folder": str(self.folder), "spec": self.spec.describe(), "reference_cases": len(self.cases),
                "files": {p.name: p.stat().st_size for p in (self.fp32, self.fp16, self.step)}}


# -- the sections ----------------------------------------------------------------------------

def machine_section(probe: OrtFeatures) -> dict:
    gpu = None
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=60)
        gpu = query.stdout.strip().splitlines()[0] if query.returncode == 0 and query.stdout.strip() else None
    return {"cpu": cpu(), "python": platform.python_version(), "onnxruntime": ort.__version__,
            "available_providers": ort.get_available_providers(), "provider": probe.provider,
            "cuda_unavailable": cuda_unavailable_reason(), "gpu": gpu}


def parity_section(bundle: Bundle, provider: str, cuda: bool) -> dict:
    variants = (("fp32", bundle.fp32, {"use_tf32": "0"}, "fp32"),
                ("TF32", bundle.fp32, {"use_tf32": "1"}, "tf32" if cuda else "fp32"),
                ("fp16", bundle.fp16, {}, "fp16"))
    rows = []
    for label, model, options, precision in variants:
        row = {"variant": label, "precision": precision, "tolerance": PRECISION_TOLERANCE[precision]}
        if label == "TF32" and not cuda:
            row["note"] = "CPU provider: no TF32, so this row is fp32 again"

        def measure(model=model, options=options, tolerance=row["tolerance"]):
            candidate = OrtFeatures(model, spec=bundle.spec, provider=provider, cuda_options=options)
            ok, report = run_parity(bundle.cases, candidate, tolerance)
            worst = max(report, key=lambda r: r["max_rel"])
            return {"ok": ok, "worst_max_rel": worst["max_rel"], "worst_at": f"{worst['size']} {worst['layer']}"}

        rows.append(_attempt(row, measure))
    return {"cases": len(bundle.cases), "rows": rows}


def _variant(label: str, sizes, make, time_at) -> list[dict]:
    """One row per size; the session is made once for them all, and a failure to make it is each row's."""
    rows = [{"size": size, "variant": label} for size in sizes]
    try:
        engine = make()
    except Exception as exc:
        return [{**row, "error": _line(exc)} for row in rows]
    return [_attempt(row, lambda size=row["size"]: time_at(engine, size)) for row in rows]


def _skipped(label: str, sizes) -> list[dict]:
    return [{"size": size, "variant": label, "skipped": NEEDS_CUDA} for size in sizes]


def _cuda_graph_features(model: Path, image: np.ndarray, expected: dict, repeats: int) -> dict:
    """A CUDA graph replays the kernels captured on the first run at the addresses they used then,
    so the input and every output stay bound to device buffers made once here."""
    engine = OrtFeatures(model, provider="cuda", cuda_options={"prefer_nhwc": "1", "enable_cuda_graph": "1"})
    binding, outputs = engine.session.io_binding(), {}
    kept = ort.OrtValue.ortvalue_from_numpy(image, "cuda", 0)
    binding.bind_ortvalue_input(engine.input_name, kept)
    for name in engine.output_names:
        outputs[name] = ort.OrtValue.ortvalue_from_shape_and_type(expected[name].shape, np.float32, "cuda", 0)
        binding.bind_ortvalue_output(name, outputs[name])
    timing = _timed(lambda: engine.session.run_with_iobinding(binding), repeats)
    # a replay that computed nothing would still be fast: compare with the fp32 outputs
    error = max(float(np.max(np.abs(outputs[n].numpy() - expected[n])) / np.max(np.abs(expected[n])))
                for n in engine.output_names)
    return {**timing, "max_rel_vs_fp32": error}


def features_section(bundle: Bundle, args, cuda: bool, probe: OrtFeatures) -> dict:
    def on_device(model, options):
        return lambda: OrtFeatures(model, spec=bundle.spec, provider=args.provider, cuda_options=options)

    def time_at(engine, size):
        image = _noise(size)
        return _timed(lambda: engine.run_on_device(image), args.repeats)

    rows = []
    for label, options in CUDA_VARIANTS:
        rows += (_variant(label, args.sizes, on_device(bundle.fp32, options), time_at)
                 if cuda or label == "fp32" else _skipped(label, args.sizes))
    rows += _variant("fp16 NHWC" if cuda else "fp16", args.sizes, on_device(bundle.fp16, {"prefer_nhwc": "1"}), time_at)
    if cuda:
        expected = {size: {n: v.numpy() for n, v in probe.run_on_device(_noise(size)).items()} for size in args.sizes}
        rows += _variant("fp16 NHWC CUDA graphs", args.sizes, lambda: None,
                         lambda _, size: _cuda_graph_features(bundle.fp16, _noise(size), expected[size], args.repeats))
    else:
        rows += _skipped("fp16 NHWC CUDA graphs", args.sizes)
    return {"input": "(1, size, size, 3) float32, IO binding (outputs stay on the device)", "rows": rows}


def steps_section(bundle: Bundle, args, cuda: bool, probe: OrtFeatures) -> dict:
    inputs = {}
    for size in args.sizes:
        content, bound = step_inputs(size, bundle.spec, probe)
        noisy = np.clip(content + np.random.default_rng(0).normal(0, 0.05, content.shape), 0, 1)
        inputs[size] = noisy[None].astype(np.float32), bound

    def time_at(engine, size):
        image, bound = inputs[size]
        engine.bind_targets(bound)
        loss = engine(image)[0]
        return {"shape": list(image.shape[1:3]), "loss": loss, **_timed(lambda: engine(image), args.repeats)}

    reference = {}   # size -> (loss, gradient) of the float32 graph (no TF32), what the others are compared with

    def time_on_device(engine, size):
        # the image already on the device and the gradient left there, as engine.ort.device_lbfgs runs it
        image, bound = inputs[size]
        engine.bind_targets(bound)
        if engine.image_buffer is not None:   # a CUDA graph: the image staged in the step's own buffer
            engine.image_buffer.update_inplace(image)
            kept = None
        else:
            kept = ort.OrtValue.ortvalue_from_numpy(image, engine.device, 0)
        loss, grad, _ = engine.on_device(kept)
        grad = grad.numpy()
        if size not in reference:
            exact = OrtStep(bundle.step, provider=args.provider, winograd=False, sized=False,
                            cuda_options={"use_tf32": "0"})
            exact.bind_targets(bound)
            reference[size] = exact(image)[:2]
        loss_ref, grad_ref = reference[size]
        error = {"loss_rel_error": abs(loss - loss_ref) / abs(loss_ref),
                 "grad_rel_error": float(np.abs(grad - grad_ref).max() / np.abs(grad_ref).max()),
                 "grad_finite": bool(np.isfinite(grad).all())}
        return {"shape": list(image.shape[1:3]), "loss": loss, **error,
                **_timed(lambda: engine.on_device(kept), args.repeats)}

    rows = []
    if not cuda:
        rows += _variant("ORT CPU Winograd", args.sizes,
                         lambda: OrtStep(bundle.step, provider="cpu", winograd=True), time_at)
    for label, options in CUDA_VARIANTS:
        rows += (_variant(f"ORT CUDA {label} any-size", args.sizes,
                          lambda options=options: OrtStep(bundle.step, provider="cuda", cuda_options=options,
                                                          winograd=False, sized=False), time_at)
                 if cuda else _skipped(f"ORT CUDA {label} any-size", args.sizes))
    nchw, exhaustive = {"prefer_nhwc": "0"}, {"cudnn_conv_algo_search": "EXHAUSTIVE"}
    plain = {"cuda_graph": False}
    sized = (("TF32 NHWC sized", plain, time_at), ("TF32 NHWC sized, on device", plain, time_on_device),
             ("TF32 NHWC sized, targets folded, on device", {"fold_targets": True}, time_on_device),
             ("TF32 NCHW sized, on device", {"cuda_options": nchw, **plain}, time_on_device),
             ("TF32 NHWC EXHAUSTIVE sized, on device", {"cuda_options": exhaustive, **plain}, time_on_device),
             ("TF32 NHWC sized, CUDA graph", {"cuda_graph": True}, time_at),
             ("TF32 NHWC sized, CUDA graph, on device", {"cuda_graph": True}, time_on_device),
             ("TF32 NHWC EXHAUSTIVE sized, CUDA graph, on device", {"cuda_options": exhaustive, "cuda_graph": True},
              time_on_device))
    for label, extra, timer in sized:
        label = f"ORT CUDA {label}"
        rows += (_variant(label, args.sizes, lambda extra=extra: OrtStep(bundle.step, provider="cuda", winograd=False,
                                                                         sized=True, **extra), timer)
                 if cuda else _skipped(label, args.sizes))
    return {"loss_weights": list(SEED_LOSS_WEIGHTS), "rows": rows}


def profile_section(bundle: Bundle, args, cuda: bool, probe: OrtFeatures) -> dict:
    """Where one step's time goes at the largest size, from ONNX Runtime's own profiler: time and
    node count by operator type and by the provider that ran it (a node on the CPU inside a CUDA
    graph costs copies both ways)."""
    import tempfile
    size = max(args.sizes)
    content, bound = step_inputs(size, bundle.spec, probe)
    image = np.clip(content + np.random.default_rng(0).normal(0, 0.05, content.shape), 0, 1)[None].astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        engine = OrtStep(bundle.step, provider=args.provider, winograd=not cuda,
                         profile_prefix=str(Path(folder) / "step"))
        engine.bind_targets(bound)
        for _ in range(WARMUP + 1):
            engine(image)
        runs = 5
        for _ in range(runs):
            engine(image)
        events = json.loads(Path(engine.session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    by_op: dict = {}
    for event in nodes:
        key = f"{event['args'].get('op_name', '?')} {event['args'].get('provider', '?').replace('ExecutionProvider', '')}"
        entry = by_op.setdefault(key, {"ms": 0.0, "nodes": 0})
        entry["ms"] += event["dur"] / 1e3 / (runs + WARMUP + 1)
        entry["nodes"] += 1
    for entry in by_op.values():
        entry["nodes"] //= runs + WARMUP + 1
    model_runs = [e["dur"] / 1e3 for e in events if e.get("name") == "model_run"]
    ranked = dict(sorted(by_op.items(), key=lambda kv: -kv[1]["ms"]))
    return {"size": size, "provider": engine.provider, "model_run_ms": float(np.median(model_runs)) if model_runs else None,
            "kernel_ms": sum(v["ms"] for v in by_op.values()), "by_op": ranked}


def _timed_run(stylizer, content, style, settings) -> dict:
    elapsed, steps = [], []

    def heard(progress):
        elapsed.append(progress.elapsed)
        steps.append(progress.evaluation_seconds)

    start = time.perf_counter()
    outcome = stylizer.run(content, [style], settings, callback=heard)
    wall = time.perf_counter() - start
    gaps = np.diff(elapsed)
    per_evaluation = float(np.median(gaps)) if len(gaps) else None
    step = float(np.median(steps[1:])) if len(steps) > 1 else None
    # what an evaluation costs beyond the step engine's own call: the optimizer's vector work and
    # the callback, on the host
    loop = per_evaluation - step if per_evaluation is not None and step is not None else None
    return {"size": settings.size, "scales": settings.scale_sizes(), "iterations_per_scale": settings.iterations,
            "evaluations": outcome.iterations, "wall_s": wall, "first_evaluation_s": elapsed[0] if elapsed else None,
            "s_per_evaluation": per_evaluation, "step_s": step, "loop_s": loop, "loss": outcome.loss,
            "step": outcome.step, "targets": outcome.targets, "weights": outcome.weights}


def stylize_section(bundle: Bundle, args) -> dict:
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, examples_dir, load_image
    from engine.settings import Settings
    from engine import stylizer as stylizer_module   # here: an import the GPU machine cannot do costs this section only
    from engine.stylizer import Stylizer
    content, style = (load_image(examples_dir() / name) for name in (DEFAULT_CONTENT, DEFAULT_STYLE))
    stylizer = Stylizer(bundle.weights, provider=args.provider, store=ArtifactStore(bundle.folder, exports=False))
    single = Settings(size=args.stylize_size, scales=1, iterations=args.evaluations, step_engine="ort", targets="ort")
    result = _attempt({}, lambda: _timed_run(stylizer, content, style, single))
    if stylizer_module.DEVICE_LOOP:
        # the same run with L-BFGS on the host, as before engine.ort.device_lbfgs
        saved, stylizer_module.DEVICE_LOOP = stylizer_module.DEVICE_LOOP, ()
        try:
            result["host_loop"] = _attempt({}, lambda: _timed_run(stylizer, content, style, single))
        finally:
            stylizer_module.DEVICE_LOOP = saved
    # the same run again on the held engine: its sessions made, as a server's would be
    result["held"] = _attempt({}, lambda: _timed_run(stylizer, content, style, single))
    if args.provider == "cuda":
        from engine.ort import step as step_module
        saved, step_module.CUDA_GRAPH = step_module.CUDA_GRAPH, not step_module.CUDA_GRAPH
        try:   # a fresh engine with the step replayed as a CUDA graph or not (the other of the default)
            fresh = Stylizer(bundle.weights, provider=args.provider, store=ArtifactStore(bundle.folder, exports=False))
            result["other_cuda_graph"] = _attempt({}, lambda: _timed_run(fresh, content, style, single.replace(iterations=5)))
            if "error" not in result["other_cuda_graph"]:
                result["other_cuda_graph"] = _attempt({}, lambda: _timed_run(fresh, content, style, single))
        finally:
            step_module.CUDA_GRAPH = saved
    # the same held engine: sessions made by the first run are reused, as a server's would be
    result["default_budget"] = _attempt({}, lambda: _timed_run(stylizer, content, style,
                                                               Settings(size=args.budget_size, step_engine="ort")))
    return result


# -- the run ---------------------------------------------------------------------------------

def _targets(result: dict) -> list[dict]:
    def best(rows, size, chosen):
        times = [r["ms"] for r in rows if r.get("size") == size and "ms" in r and chosen(r["variant"])]
        return min(times) if times else None

    single = result.get("stylize", {})
    # the held engine's run: the first run of a process also makes its sessions (~1 s, reported beside)
    timed = single.get("held") or single
    measured = (best(result.get("steps", {}).get("rows", []), 512, lambda v: v.startswith("ORT CUDA")),
                timed.get("wall_s") if (single.get("size"), single.get("iterations_per_scale")) == (512, 500) else None,
                best(result.get("features", {}).get("rows", []), 512, lambda v: v.startswith("fp16")))
    return [{"what": f"{what} at {size} px", "limit": limit, "unit": unit, "measured": value,
             "met": None if value is None else value <= limit} for (what, size, limit, unit), value in zip(TARGETS, measured)]


def _summary(result: dict) -> list[str]:
    def cell(row):
        error = f" (loss {row['loss_rel_error']:.1e}, gradient {row['grad_rel_error']:.1e} off)" \
            if "grad_rel_error" in row else ""
        return f"{row['ms']:.2f} ms{error}" if "ms" in row else row.get("skipped") or row.get("error", "?")

    machine = result["machine"]
    lines = [f"{machine.get('provider', '?')} provider, onnxruntime {ort.__version__}, GPU: {machine.get('gpu')}"]
    lines += [f"{name}: {result[name]['error']}" for name in ("machine", "parity", "features", "steps", "profile")
              if "error" in result[name]]
    for row in result["parity"].get("rows", []):
        lines.append(f"parity {row['variant']:<5} " + (row["error"] if "error" in row else
                     f"{'PASS' if row['ok'] else 'FAIL'} worst {row['worst_max_rel']:.1e} "
                     f"(tolerance {row['tolerance']:.0e}) at {row['worst_at']}"))
    for name in ("features", "steps"):
        for row in result[name].get("rows", []):
            lines.append(f"{name:<8} {row['size']:>4} px  {row['variant']:<24} {cell(row)}")
    for key, run in (("single scale", result["stylize"]), ("single scale, host loop", result["stylize"].get("host_loop")),
                     ("single scale, held engine", result["stylize"].get("held")),
                     ("single scale, held, CUDA graph the other way", result["stylize"].get("other_cuda_graph")),
                     ("default budget", result["stylize"].get("default_budget"))):
        if run:
            lines.append(f"stylize {key}: " + (run.get("error") or
                         f"{run['size']} px, {run['evaluations']} evaluations in {run['wall_s']:.2f} s wall, "
                         f"{(run['s_per_evaluation'] or 0) * 1e3:.1f} ms each ({(run['step_s'] or 0) * 1e3:.1f} the step), "
                         f"loss {run['loss']:.4g}; {run['step']}"))
    profile = result.get("profile", {})
    if "by_op" in profile:
        top = ", ".join(f"{k} {v['ms']:.2f} ms x{v['nodes']}" for k, v in list(profile["by_op"].items())[:6])
        lines.append(f"profile {profile['size']} px step: run {profile['model_run_ms']:.2f} ms, kernels {profile['kernel_ms']:.2f} ms: {top}")
    for t in result["targets"]:
        got = "not measured here" if t["measured"] is None else f"{t['measured']:.2f} {t['unit']}"
        lines.append(f"target: {t['what']} <= {t['limit']} {t['unit']}: {got}")
    return lines


def check(args) -> int:
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CheckError(f"{out}: the folder {out.parent} does not exist")
    bundle = Bundle(Path(args.bundle))
    probe = OrtFeatures(bundle.fp32, spec=bundle.spec, provider=args.provider)
    cuda = probe.provider == "cuda"
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "bundle": bundle.describe(),
              "options": {k: getattr(args, k) for k in ("provider", "sizes", "repeats", "evaluations",
                                                        "stylize_size", "budget_size")}}
    sections = {"machine": lambda: machine_section(probe),
                "parity": lambda: parity_section(bundle, args.provider, cuda),
                "features": lambda: features_section(bundle, args, cuda, probe),
                "steps": lambda: steps_section(bundle, args, cuda, probe),
                "profile": lambda: profile_section(bundle, args, cuda, probe),
                "stylize": lambda: stylize_section(bundle, args)}
    for name, measure in sections.items():
        result[name] = _attempt({}, measure)
        # after every section: a CUDA fault that kills the process keeps what came before
        with atomic_path(out) as tmp:
            Path(tmp).write_text(json.dumps({**result, "targets": _targets(result)}, indent=2))
    result["targets"] = _targets(result)
    print("\n".join(_summary(result)) + f"\nwrote {out}", flush=True)
    failed = [r["variant"] for r in result["parity"].get("rows", [{"variant": "all"}]) if r.get("ok") is not True]
    if failed:
        print(f"gpu_check: parity failed or did not run for {', '.join(failed)} (see {out})", file=sys.stderr)
    return 1 if failed else 0


def prepare(args) -> int:
    try:
        from engine.tf.backend import TfFeatures
    except ImportError as exc:
        raise CheckError(f"--prepare needs TensorFlow ({exc})") from None
    from models.weights import load_weights
    folder = Path(args.prepare)
    folder.mkdir(parents=True, exist_ok=True)
    weights = load_weights(args.weights)
    spec = FeatureSpec(weights.sha256)
    store = ArtifactStore(folder, log=lambda message: print(message, flush=True))
    files = [store.feature_model(spec, "fp32"), store.feature_model(spec, "fp16"), store.step_graph(_step_spec(spec))]
    reference = folder / REFERENCE
    with atomic_path(reference) as tmp, open(tmp, "wb") as f:  # np.savez would add .npz to a name
        count = save_reference(f, spec, TfFeatures(spec, weights), args.parity_sizes)
    print(f"saved TensorFlow outputs for {count} images to {reference}")
    print(f"pack it, from the project root:\n  ../shared/gpu/prepare.sh {' '.join(str(p) for p in files + [reference])}\n"
          f"then send the parts it lists; the last command ends with\n"
          f"  source .gpu/unpack.sh && python3 scripts/gpu_check.py --bundle {GPU_BUNDLE} --out gpu_check.json")
    return 0


def _sizes(pairs: bool):
    """A parser of ``256,512`` -> [256, 512] or, with ``pairs``, of ``64x64,97x131`` -> ((64, 64), (97, 131))."""
    def parse(text: str):
        try:
            sizes = [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",")]
        except ValueError:
            sizes = []
        if not sizes or any(len(s) != (2 if pairs else 1) for s in sizes):
            raise argparse.ArgumentTypeError(f"{text!r} is not a list like {'64x64,97x131' if pairs else '256,512'}")
        if min(map(min, sizes)) < 32:
            raise argparse.ArgumentTypeError(f"{text!r}: sizes must be at least 32 px")
        return tuple(sizes) if pairs else [s[0] for s in sizes]
    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--bundle", help="the folder --prepare filled (on the GPU machine: /tmp/gpu-bundle)")
    mode.add_argument("--prepare", metavar="DIR", help="where TensorFlow is: export the models and the reference to DIR")
    parser.add_argument("--out", help="the JSON result (with --bundle)")
    parser.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--sizes", type=_sizes(False), default=[256, 512], help="feature and step sizes, px")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--evaluations", type=int, default=500, help="of the single-scale stylize")
    parser.add_argument("--stylize-size", type=int, default=512)
    parser.add_argument("--budget-size", type=int, default=512, help="of the 3-scale default-budget stylize")
    parser.add_argument("--weights", help="--prepare: a Keras VGG19 notop .h5 (default: the resolver's)")
    parser.add_argument("--parity-sizes", type=_sizes(True), default=BUNDLE_PARITY_SIZES,
                        help="--prepare: the reference's sizes (default 64x64,97x131,256x256)")
    args = parser.parse_args(argv)
    if args.bundle and not args.out:
        parser.error("--bundle needs --out")
    for name in ("repeats", "evaluations"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    try:
        return prepare(args) if args.prepare else check(args)
    except (CheckError, BackendError, MissingArtifact, ExportFailed, WeightsError) as exc:
        print(f"gpu_check: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
