"""A process's own memory: its peak, and giving freed heap back to the system."""
from __future__ import annotations

import ctypes
import gc
import resource


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (``VmHWM``). Not ``getrusage``'s ``ru_maxrss``:
    on Linux that survives ``fork`` + ``exec``, so a child started by a large parent reports the
    parent's peak as its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def release_memory() -> None:
    """Collect, then hand freed heap back to the system: glibc keeps large freed blocks (ONNX
    Runtime's arenas) in the process, so one phase's peak would add to the next one's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def available_mb() -> float:
    """Memory this machine can give a new run now (``MemAvailable``), in MB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import os
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 20
