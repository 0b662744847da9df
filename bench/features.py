"""Feature extraction: TensorFlow vs ONNX Runtime, each available provider and precision."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from models.vgg19 import conv_flops

from .machine import cpu, describe_cpu, matmul_rate, median_seconds


def feature_bench(args) -> dict:
    from engine.ort.backend import OrtFeatures, cuda_unavailable_reason
    sizes = [int(s) for s in (args.sizes or "256,512,1024").split(",")]
    precisions = [p for p in args.precisions.split(",") if p]
    machine = cpu()
    rate = matmul_rate()
    print(f"{describe_cpu(machine)}; float32 matrix product (numpy, 2048^3): {rate:.1f} GFLOP/s")
    rows = []
    models, reference = {}, None
    if not args.no_tf:
        from engine.spec import FeatureSpec
        from engine.store import ArtifactStore
        from engine.tf.backend import TfFeatures
        from models.weights import load_weights
        weights = load_weights(args.weights)
        spec = FeatureSpec(weights.sha256)
        reference = TfFeatures(spec, weights)
        store = ArtifactStore()
        for precision in precisions:
            models[precision] = store.feature_model(spec, precision)
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
            seconds = median_seconds(run, args.repeats)
            base = base or (seconds if name.startswith("TensorFlow") else None)
            row = {"size": size, "backend": name, "ms": seconds * 1e3, "gflop": gflop,
                   "gflops": gflop / seconds, "of_matmul": gflop / seconds / rate,
                   "speedup_vs_tf": base / seconds if base else None}
            rows.append(row)
            speed = f"{row['speedup_vs_tf']:.2f}x" if base else "-"
            print(f"{size:>5}px  {name:<22} {row['ms']:9.1f} ms  {row['gflops']:7.1f} GFLOP/s  "
                  f"{row['of_matmul']:6.1%} of matmul  {speed:>6} vs TF", flush=True)
    return {"kind": "features", "matmul_gflops": rate, "cpu": machine, "repeats": args.repeats,
            "rows": rows, "date": time.strftime("%Y-%m-%d")}
