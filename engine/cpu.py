"""What this CPU can do that the engine's choices depend on (read from /proc/cpuinfo; no TensorFlow)."""
from __future__ import annotations

import functools


@functools.cache
def flags() -> frozenset:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_bf16() -> bool:
    """bfloat16 arithmetic in hardware (AVX512_BF16: AMD Zen 4 on, Intel Cooper Lake; AMX: Intel
    Sapphire Rapids on). Without it oneDNN emulates bfloat16, slower than float32."""
    return bool({"avx512_bf16", "amx_bf16"} & flags())
