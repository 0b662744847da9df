"""A process's own memory: its peak, giving freed heap back to the system, and the one budget its
engines share."""
from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
import threading
from collections import deque


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


BUDGET_SHARE = 0.75   # of the memory available when the process first plans: what its runs may use


class StoppedWaiting(Exception):
    """``stop`` turned true while a run waited for memory."""


class Budget:
    """The memory the runs of one process may use at once, shared by all its engines (a server's
    workers, a batch worker's one): each run reserves its plan's peak before it starts and gives it
    back when it ends; one that does not fit waits, first come first served, for others to end
    rather than over-commit the machine. A run larger than the whole budget runs alone."""

    def __init__(self, total_mb: float):
        self.total_mb = float(total_mb)
        self.used_mb = 0.0
        self._turns: deque = deque()
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, mb: float, stop=None, on_wait=None):
        """Hold ``mb`` (at most the whole budget) for the block. ``stop()`` is checked while
        waiting (``StoppedWaiting``); ``on_wait(mb)`` is called once if the run has to wait."""
        mb = min(float(mb), self.total_mb)
        turn = object()
        with self._changed:
            self._turns.append(turn)
            try:
                told = False
                while self._turns[0] is not turn or self.used_mb + mb > self.total_mb:
                    if stop is not None and stop():
                        raise StoppedWaiting(f"stopped while waiting for {mb:.0f} MB of memory")
                    if on_wait is not None and not told:
                        on_wait(mb)
                        told = True
                    self._changed.wait(timeout=0.25)
                self.used_mb += mb
            finally:
                self._turns.remove(turn)
                self._changed.notify_all()
        try:
            yield mb
        finally:
            with self._changed:
                self.used_mb -= mb
                self._changed.notify_all()


_budget: Budget | None = None
_budget_lock = threading.Lock()


def budget() -> Budget:
    """This process's budget: ``BUDGET_SHARE`` of the memory available when it is first asked for
    (a batch worker is given its share of the machine instead: ``share_budget``)."""
    global _budget
    with _budget_lock:
        if _budget is None:
            _budget = Budget(BUDGET_SHARE * available_mb())
        return _budget


def share_budget(total_mb: float) -> Budget:
    """Set this process's budget: one of several processes on a machine takes its share."""
    global _budget
    with _budget_lock:
        _budget = Budget(total_mb)
        return _budget
