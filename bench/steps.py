"""One loss-and-gradient step of each engine, same images, same objective, same run."""
from __future__ import annotations

import tempfile
import time

import numpy as np

from .machine import SEED_LOSS_WEIGHTS, cpu, describe_cpu, matmul_rate, median_seconds

CUDA_VARIANTS = (("fp32", {"use_tf32": "0", "prefer_nhwc": "0"}),
                 ("TF32", {"use_tf32": "1", "prefer_nhwc": "0"}),
                 ("TF32 NHWC", {"use_tf32": "1", "prefer_nhwc": "1"}))


def step_inputs(size: int, spec, backend):
    """The bundled content image at ``size`` (longest side), its targets with the bundled style
    (the seed's layers and weights) as the ``Targets`` a step is bound to."""
    from engine.images import DEFAULT_CONTENT, DEFAULT_STYLE, as_float, examples_dir, load_image, resize_longest
    from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS
    from engine.targets import Targets, compute_targets
    content = as_float(resize_longest(load_image(examples_dir() / DEFAULT_CONTENT), size))
    style = as_float(resize_longest(load_image(examples_dir() / DEFAULT_STYLE), size))
    style_layers = {n: 1 / len(SEED_STYLE_LAYERS) for n in SEED_STYLE_LAYERS}
    content_layers = {SEED_CONTENT_LAYER: 1.0}
    contents, grams = compute_targets(backend, content, [style], [1.0], style_layers, content_layers)
    return content, Targets(content.shape[:2], grams, contents, style_layers, content_layers, SEED_LOSS_WEIGHTS)


def step_bench(args) -> dict:
    from engine.ort.backend import OrtFeatures, cuda_unavailable_reason
    from engine.ort.step import OrtStep
    from engine.spec import SEED_CONTENT_LAYER, SEED_STYLE_LAYERS, FeatureSpec, StepSpec
    from engine.store import ArtifactStore
    from models.weights import load_weights
    sizes = [int(s) for s in (args.sizes or "256,512").split(",")]
    weights = load_weights(args.weights)
    spec = FeatureSpec(weights.sha256)
    step_spec = StepSpec(spec, SEED_STYLE_LAYERS, (SEED_CONTENT_LAYER,))
    store = ArtifactStore(exports=not args.no_tf, log=lambda message: print(message, flush=True))
    graph = store.step_graph(step_spec)
    machine = cpu()
    rate = matmul_rate()
    print(f"{describe_cpu(machine)}; float32 matrix product (numpy, 2048^3): {rate:.1f} GFLOP/s", flush=True)
    cuda = args.provider in ("auto", "cuda") and cuda_unavailable_reason() is None
    features = OrtFeatures(store.feature_model(spec), spec=spec, provider="cpu")
    rows = []
    for size in sizes:
        content, bound = step_inputs(size, spec, features)
        shape = content.shape[:2]
        image = np.clip(content + np.random.default_rng(0).normal(0, 0.05, content.shape), 0, 1)[None]
        image = image.astype(np.float32)
        engines = []
        if not args.no_tf:
            from engine.tf.objective import TfStep
            from models.keras_vgg19 import build_trunk
            trunk = build_trunk(weights, spec.layers)
            for name, jit in (("TensorFlow tf.function", False), ("TensorFlow XLA", True)):
                engines.append((name, TfStep(trunk, style_layers=SEED_STYLE_LAYERS,
                                             content_layers=(SEED_CONTENT_LAYER,), jit=jit)))
            from engine.cpu import has_bf16
            if has_bf16():   # oneDNN's bfloat16 kernels (stylize --precision bf16); emulated, slower, elsewhere
                engines.append(("TensorFlow bf16 (oneDNN)", TfStep(
                    build_trunk(weights, spec.layers, dtype="mixed_bfloat16"), style_layers=SEED_STYLE_LAYERS,
                    content_layers=(SEED_CONTENT_LAYER,), jit=False)))
        variants = ([("ORT CPU", "cpu", None, False, graph), ("ORT CPU Winograd", "cpu", None, True, graph)]
                    if args.provider != "cuda" else [])
        if args.fixed_size and args.provider != "cuda":
            variants.append(("ORT CPU Winograd, fixed-size graph", "cpu", None, True,
                             _fixed_size_graph(step_spec, weights, shape)))
        variants += [(f"ORT CUDA {label}", "cuda", options, False, graph)
                     for label, options in CUDA_VARIANTS] if cuda else []
        for name, provider, options, winograd, path in variants:
            engines.append((name, OrtStep(path, provider=provider, cuda_options=options, winograd=winograd)))
        base, results = None, []
        for name, engine in engines:
            engine.bind_targets(bound)
            loss, grad, _ = engine(image)  # compile (XLA) or pick kernels (cuDNN) outside the timing
            results.append((loss, grad))
            seconds = median_seconds(lambda e=engine: e(image), args.repeats)
            base = seconds if name == "TensorFlow XLA" else base
            rows.append({"size": size, "shape": list(shape), "engine": name, "ms": seconds * 1e3,
                         "speedup_vs_xla": base / seconds if base else None})
        del engines
        if not args.no_tf:  # float64 TensorFlow: what each engine's float32 step is judged against
            from engine.tf.objective import TfStep
            from models.keras_vgg19 import build_trunk, tf
            reference = TfStep(build_trunk(weights, spec.layers, dtype="float64"), style_layers=SEED_STYLE_LAYERS,
                               content_layers=(SEED_CONTENT_LAYER,), jit=False, dtype=tf.float64)
            reference.bind_targets(bound)
            ref_loss, ref_grad, _ = reference(image.astype(np.float64))
            for row, (loss, grad) in zip(rows[-len(results):], results):
                row["loss_rel_error"] = abs(float(loss) - ref_loss) / abs(ref_loss)
                row["grad_rel_error"] = float(np.linalg.norm(np.asarray(grad, np.float64) - ref_grad)
                                              / np.linalg.norm(ref_grad))
        for row in rows[-len(results):]:
            speed = f"{row['speedup_vs_xla']:.2f}x vs XLA" if row["speedup_vs_xla"] else ""
            accuracy = (f"  vs float64: loss {row['loss_rel_error']:.1e}, gradient {row['grad_rel_error']:.1e}"
                        if "grad_rel_error" in row else "")
            print(f"{shape[1]:>4}x{shape[0]:<4} {row['engine']:<36} {row['ms']:9.1f} ms  {speed:<12}{accuracy}",
                  flush=True)
    return {"kind": "step", "matmul_gflops": rate, "cpu": machine, "repeats": args.repeats,
            "rows": rows, "date": time.strftime("%Y-%m-%d")}


def _fixed_size_graph(spec, weights, shape):
    """The step exported for this one size (what earlier versions cached), to compare with the
    graph of any size; written to a temporary folder, never to the store. Its accuracy is in the
    table's error columns, so the export's own check is skipped."""
    from exporter.step import export_step
    folder = tempfile.mkdtemp(prefix="nst-fixed-step-")
    return export_step(spec, weights, f"{folder}/step-{shape[1]}x{shape[0]}.onnx", fixed_shape=shape, check=False,
                       log=lambda *_: None).path
