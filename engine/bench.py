"""``cli.py bench``: feature extraction (TensorFlow vs ONNX Runtime) and the style-transfer loop.

Every ratio is measured in one run on one machine; absolute times drift, ratios less so.
"""
from __future__ import annotations

import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from models.vgg19 import conv_flops

ROOT = Path(__file__).resolve().parent.parent
SEED_LOSS_WEIGHTS = {"content_weight": 1e4, "style_weight": 1.0, "tv_weight": 10.0}  # NST's alpha, beta, var


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-run allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-product rate in GFLOP/s (numpy's BLAS, n x n)."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    return 2 * n ** 3 / _median_seconds(lambda: a @ b, repeats) / 1e9


def _machine() -> str:
    import os
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}"


def feature_bench(args) -> dict:
    from .ort_backend import OrtFeatures, cuda_unavailable_reason
    sizes = [int(s) for s in (args.sizes or "256,512,1024").split(",")]
    precisions = [p for p in args.precisions.split(",") if p]
    rate = matmul_rate()
    print(f"float32 matrix product (numpy, 2048^3): {rate:.1f} GFLOP/s")
    rows = []
    models, reference = {}, None
    if not args.no_tf:
        from models.weights import load_weights
        from .spec import FeatureSpec
        from .tf_backend import TfFeatures
        from exporter.export import export
        weights = load_weights(args.weights)
        spec = FeatureSpec(weights.sha256)
        reference = TfFeatures(spec, weights)
        for precision in precisions:
            models[precision] = export(spec, weights, precision=precision, log=lambda *_: None).path
    else:
        for precision in precisions:
            found = sorted(Path(args.model_dir or ".").glob(f"vgg19-*-{precision}.onnx"))
            if found:
                models[precision] = found[0]
    providers = ["cpu"]
    if args.provider in ("auto", "cuda") and cuda_unavailable_reason() is None:
        providers = ["cuda"] if args.provider == "cuda" else ["cpu", "cuda"]
    elif args.provider == "cuda":
        print(f"CUDA: {cuda_unavailable_reason()}")
    engines = []
    for provider in providers:
        for precision, path in models.items():
            if provider == "cpu" and precision == "fp16":
                continue  # no half-precision convolution kernels on x86 CPUs: fp16 is for CUDA
            if provider == "cuda" and precision == "int8":
                continue
            engines.append((f"ORT {provider.upper()} {precision}", OrtFeatures(path, provider=provider)))
    for size in sizes:
        image = np.random.default_rng(size).random((1, size, size, 3), dtype=np.float32)
        gflop = conv_flops(size, size, "block5_conv2") / 1e9
        base = None
        candidates = ([("TensorFlow CPU fp32", reference)] if reference else []) + engines
        for name, engine in candidates:
            run = (lambda e=engine: e.run_on_device(image)) if "CUDA" in name else (lambda e=engine: e(image))
            seconds = _median_seconds(run, args.repeats)
            base = base or (seconds if name.startswith("TensorFlow") else None)
            row = {"size": size, "backend": name, "ms": seconds * 1e3, "gflop": gflop,
                   "gflops": gflop / seconds, "of_matmul": gflop / seconds / rate,
                   "speedup_vs_tf": base / seconds if base else None}
            rows.append(row)
            speed = f"{row['speedup_vs_tf']:.2f}x" if base else "-"
            print(f"{size:>5}px  {name:<22} {row['ms']:9.1f} ms  {row['gflops']:7.1f} GFLOP/s  "
                  f"{row['of_matmul']:6.1%} of matmul  {speed:>6} vs TF", flush=True)
    return {"kind": "features", "matmul_gflops": rate, "machine": _machine(), "repeats": args.repeats,
            "rows": rows, "date": time.strftime("%Y-%m-%d")}


# -- the style-transfer loop --------------------------------------------------------------

def _seed_run(iterations: int, images: str) -> dict:
    """The seed's NST.generate_image at 512 px: per-step time and the cost it reaches."""
    from .nst import NST
    data = np.load(images)
    nst = NST(data["style"], data["content"])
    nst.generate_image(iterations=2)  # trace and compile outside the timing
    start = time.perf_counter()
    image, cost = nst.generate_image(iterations=iterations)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "per_step": seconds / iterations, "cost": cost,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _fast_run(iterations: int, target_cost: float | None, scales: int, step_engine: str, images: str,
              output: str) -> dict:
    """The stylize loop on the seed's 512 px images and objective; times to reach ``target_cost``.

    With ``step_engine="ort"`` the graphs were exported by the parent, so this process never
    imports TensorFlow and its peak memory is the TensorFlow-free loop's own."""
    from .stylize import Settings, stylize
    data = np.load(images)
    events = []
    start = time.perf_counter()
    outcome = stylize(data["content"], [data["style"]],
                      Settings(size=512, iterations=iterations, scales=scales, min_size=256, step_engine=step_engine,
                               provider="cpu", **SEED_LOSS_WEIGHTS),
                      callback=lambda p: events.append((p.scale, p.iteration, p.loss, time.perf_counter() - start)),
                      log=lambda *_: None)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(output, outcome.image)
    final_scale = [e for e in events if e[0] == scales - 1]
    steps = np.diff([e[3] for e in final_scale])
    reached = next((e for e in final_scale if target_cost is not None and e[2] <= target_cost), None)
    return {"step_engine": step_engine, "seconds": outcome.seconds, "per_step": float(np.median(steps[1:])),
            "cost": outcome.loss, "time_to_target": reached[3] if reached else None,
            "evaluations_to_target": (sum(1 for e in events if e[0] < scales - 1) + reached[1]) if reached else None,
            "iterations": outcome.iterations, "peak_rss_mb": peak, "tensorflow_imported": _tf_loaded()}


def _tf_loaded() -> bool:
    return "tensorflow" in sys.modules


def _in_subprocess(call: str) -> dict:
    """Each loop in its own process, so that peak memory is its own."""
    code = f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); from engine import bench; print(json.dumps({call}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark child failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def stylize_bench(args) -> dict:
    """The seed loop against the stylize loop (each step engine), same images, objective and run."""
    import tempfile
    from models.keras_vgg19 import tf
    from .images import load_image, to_uint8
    from .nst import NST
    from .stylize import Settings, prepare
    engines = [e for e in (args.step_engines or "tf,ort").split(",") if e]
    content, style = (load_image(ROOT / p) for p in ("examples/content/chelsea.jpg", "examples/style/starry_night.jpg"))
    # the seed's own 512 px images (its bicubic resize), as uint8 for both loops
    content, style = (to_uint8(NST.scale_image(x).numpy()[0]) for x in (content, style))
    evaluations = args.fast_iterations or max(10, args.iterations // 3)
    with tempfile.TemporaryDirectory() as tmp:
        images = str(Path(tmp) / "images.npz")
        np.savez(images, content=content, style=style)
        print(f"seed NST.generate_image, {args.iterations} Adam iterations at 512 px ...", flush=True)
        seed = _in_subprocess(f"bench._seed_run({args.iterations}, {images!r})")
        print(f"  {seed['per_step']:.2f} s/step, cost {seed['cost']:.4g}, {seed['seconds']:.0f} s, "
              f"peak {seed['peak_rss_mb']:.0f} MB", flush=True)
        runs = {}
        for engine in engines:
            if engine == "ort":  # export beforehand, so that the timed child never needs TensorFlow
                prepare(content, Settings(size=512, scales=3, min_size=256, step_engine="ort"), log=lambda *_: None)
            output = str(Path(tmp) / f"{engine}.npy")
            fast = _in_subprocess(f"bench._fast_run({evaluations}, {seed['cost']!r}, 3, {engine!r}, {images!r}, "
                                  f"{output!r})")
            nst = NST(style, content)
            image = np.load(output).astype(np.float32)[None] / 255.0
            fast["checked_cost"] = float(nst.total_cost(tf.constant(image))[0])
            fast["step_speedup"] = seed["per_step"] / fast["per_step"]
            fast["time_to_seed_cost_fraction"] = (fast["time_to_target"] / seed["seconds"]
                                                  if fast["time_to_target"] else None)
            runs[engine] = fast
            print(f"stylize --step-engine {engine} (L-BFGS, 3 scales 256->512, {evaluations} evaluations each): "
                  f"{fast['per_step']:.2f} s/step at 512 px = {fast['step_speedup']:.2f}x the seed's; final cost "
                  f"{fast['checked_cost']:.4g} (seed {seed['cost']:.4g}); peak {fast['peak_rss_mb']:.0f} MB"
                  f"{'' if fast['tensorflow_imported'] else ' (TensorFlow never imported)'}", flush=True)
            print("  seed cost reached " + (
                f"after {fast['evaluations_to_target']} evaluations, {fast['time_to_target']:.0f} s = "
                f"{fast['time_to_seed_cost_fraction']:.1%} of the seed's {seed['seconds']:.0f} s"
                if fast["time_to_target"] else "never"), flush=True)
    return {"kind": "stylize", "machine": _machine(), "date": time.strftime("%Y-%m-%d"),
            "seed_iterations": args.iterations, "evaluations_per_scale": evaluations, "seed": seed, "stylize": runs}


# -- one loss-and-gradient step, each engine ----------------------------------------------

CUDA_VARIANTS = (("fp32", {"use_tf32": "0", "prefer_nhwc": "0"}),
                 ("TF32", {"use_tf32": "1", "prefer_nhwc": "0"}),
                 ("TF32 NHWC", {"use_tf32": "1", "prefer_nhwc": "1"}))


def _step_inputs(size: int, spec, weights, use_tf: bool):
    """The bundled content image at ``size`` (longest side), its targets from the bundled style."""
    from .images import load_image, resize_longest
    from .targets import Targets
    content = resize_longest(load_image(ROOT / "examples/content/chelsea.jpg"), size).astype(np.float32) / 255
    style = resize_longest(load_image(ROOT / "examples/style/starry_night.jpg"), size).astype(np.float32) / 255
    targets = Targets(spec, weights, "tf" if use_tf else "ort", "cpu", lambda *_: None)
    from .spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS
    contents, grams = targets(content, [style], [1.0], SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,))
    return content, contents, grams


def step_bench(args) -> dict:
    """Per-step time of every engine at each size, same images, same objective, same run."""
    from models.weights import load_weights
    from .ort_backend import cuda_unavailable_reason
    from .ort_step import OrtStep
    from .spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec
    from .stylize import step_graph
    sizes = [int(s) for s in (args.sizes or "256,512").split(",")]
    weights = load_weights(args.weights)
    spec = FeatureSpec(weights.sha256)
    style_layers = {n: 1 / len(SEED_STYLE_LAYERS) for n in SEED_STYLE_LAYERS}
    content_layers = {SEED_CONTENT_LAYER: 1.0}
    loss_weights = SEED_LOSS_WEIGHTS
    rate = matmul_rate()
    print(f"float32 matrix product (numpy, 2048^3): {rate:.1f} GFLOP/s")
    cuda = args.provider in ("auto", "cuda") and cuda_unavailable_reason() is None
    rows = []
    for size in sizes:
        content, contents, grams = _step_inputs(size, spec, weights, not args.no_tf)
        shape = content.shape[:2]
        image = np.clip(content + np.random.default_rng(0).normal(0, 0.05, content.shape), 0, 1)[None]
        image = image.astype(np.float32)
        engines = []
        if not args.no_tf:
            from models.keras_vgg19 import build_trunk
            from .objective import TfObjective
            trunk = build_trunk(weights, spec.layers)
            for name, jit in (("TensorFlow tf.function", False), ("TensorFlow XLA", True)):
                engines.append((name, TfObjective(trunk, style_layers=style_layers, content_layers=content_layers,
                                                  gram_targets=grams, content_targets=contents,
                                                  shape=(1, *shape, 3), jit=jit, **loss_weights)))
        path = step_graph(StepSpec(spec, tuple(style_layers), tuple(content_layers), *shape), weights,
                          lambda message: print(message, flush=True))
        variants = ([("ORT CPU", "cpu", None, False), ("ORT CPU Winograd", "cpu", None, True)]
                    if args.provider != "cuda" else [])
        variants += [(f"ORT CUDA {label}", "cuda", options, False) for label, options in CUDA_VARIANTS] if cuda else []
        for name, provider, options, winograd in variants:
            step = OrtStep(path, provider=provider, cuda_options=options, winograd=winograd)
            step.bind_targets(gram_targets=grams, content_targets=contents, style_layers=style_layers,
                              content_layers=content_layers, **loss_weights)
            engines.append((name, step))
        base, results = None, []
        for name, engine in engines:
            loss, grad, _ = engine(image)  # compile (XLA) or pick kernels (cuDNN) outside the timing
            results.append((loss, grad))
            seconds = _median_seconds(lambda e=engine: e(image), args.repeats)
            base = seconds if name == "TensorFlow XLA" else base
            rows.append({"size": size, "shape": list(shape), "engine": name, "ms": seconds * 1e3,
                         "speedup_vs_xla": base / seconds if base else None})
        del engines
        if not args.no_tf:  # float64 TensorFlow: what each engine's float32 step is judged against
            from models.keras_vgg19 import tf
            reference = TfObjective(build_trunk(weights, spec.layers, dtype="float64"), style_layers=style_layers,
                                    content_layers=content_layers, gram_targets=grams, content_targets=contents,
                                    shape=(1, *shape, 3), jit=False, dtype=tf.float64, **loss_weights)
            ref_loss, ref_grad, _ = reference(image.astype(np.float64))
            for row, (loss, grad) in zip(rows[-len(results):], results):
                row["loss_rel_error"] = abs(float(loss) - ref_loss) / abs(ref_loss)
                row["grad_rel_error"] = float(np.linalg.norm(np.asarray(grad, np.float64) - ref_grad)
                                              / np.linalg.norm(ref_grad))
        for row in rows[-len(results):]:
            speed = f"{row['speedup_vs_xla']:.2f}x vs XLA" if row["speedup_vs_xla"] else ""
            accuracy = (f"  vs float64: loss {row['loss_rel_error']:.1e}, gradient {row['grad_rel_error']:.1e}"
                        if "grad_rel_error" in row else "")
            print(f"{shape[1]:>4}x{shape[0]:<4} {row['engine']:<24} {row['ms']:9.1f} ms  {speed:<12}{accuracy}",
                  flush=True)
    return {"kind": "step", "matmul_gflops": rate, "machine": _machine(), "repeats": args.repeats,
            "rows": rows, "date": time.strftime("%Y-%m-%d")}


def main(args) -> int:
    result = (stylize_bench(args) if args.stylize else step_bench(args) if args.steps
              else feature_bench(args))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
