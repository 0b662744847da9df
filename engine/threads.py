"""The BLAS threads of the optimizer's vector work. threadpoolctl's limits are the process's, not a
thread's: two engines in one process (a server's workers) each setting and then restoring them
would reset each other's. One limit is held here while any run wants one, the smallest asked."""
from __future__ import annotations

import contextlib
import threading

_lock = threading.Lock()
_wanted: list[int] = []
_original = None   # the limiter that remembers the limits from before the first run


@contextlib.contextmanager
def blas_threads(threads: int):
    """Limit BLAS to ``threads`` (or fewer, where another run in this process asked for fewer)
    for the block; the limits from before come back when the last such block ends."""
    global _original
    from threadpoolctl import threadpool_limits
    with _lock:
        _wanted.append(threads)
        limiter = threadpool_limits(limits=min(_wanted))
        if _original is None:
            _original = limiter
    try:
        yield
    finally:
        with _lock:
            _wanted.remove(threads)
            if _wanted:
                threadpool_limits(limits=min(_wanted))
            else:
                _original.restore_original_limits()
                _original = None
