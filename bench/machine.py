"""What every benchmark needs: timing, this machine's matrix-product rate, and its name."""
from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np

SEED_LOSS_WEIGHTS = (1e4, 1.0, 10.0)  # NST's alpha, beta, var: (content, style, tv)
# the instruction sets that change the ratios between engines (measured: Winograd's gain over XLA)
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def median_seconds(fn, repeats: int) -> float:
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
    return 2 * n ** 3 / median_seconds(lambda: a @ b, repeats) / 1e9


def cpu() -> dict:
    """The CPU's model name, family and model numbers (two "AMD EPYC" seen here differ only there
    and in their flags) and the flags in ``FLAGS`` it has (``/proc/cpuinfo``, as ``lscpu`` shows them)."""
    found = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags") and key not in found:
                    found[key] = value.strip()
                if len(found) == 4:
                    break
    except OSError:
        pass
    flags = set(found.get("flags", "").split())
    return {"model": found.get("model name") or platform.processor() or platform.machine(),
            "family": found.get("cpu family"), "model_number": found.get("model"),
            "cores": os.cpu_count(), "flags": [f for f in FLAGS if f in flags]}


def describe_cpu(info: dict) -> str:
    family = f" (family {info['family']}, model {info['model_number']})" if info.get("family") else ""
    return f"{info['model']}{family}, {info['cores']} cores, {' '.join(info['flags']) or 'no AVX2'}"
