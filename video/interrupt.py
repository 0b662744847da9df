"""Ctrl-C for a long video: the first stops after the frames in progress, the second at once.

A terminal's Ctrl-C reaches every process of its group, the local cluster's workers too, which
would die mid-frame (and the run hang on them): they are started with SIGINT ignored, which
processes inherit, and only this process decides what a Ctrl-C means."""
from __future__ import annotations

import contextlib
import signal
import threading


class CtrlC:
    """``event`` is set by the first Ctrl-C; the second raises KeyboardInterrupt."""

    def __init__(self, log, message: str = "stopping after the frames in progress (the video of the frames done "
                                           "is written); Ctrl-C again to stop now"):
        self.event, self.log, self.message = threading.Event(), log, message
        self.previous = signal.signal(signal.SIGINT, self._first)

    def _first(self, *_):
        self.event.set()
        self.log(self.message)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def close(self) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


@contextlib.contextmanager
def sigint_ignored():
    """SIGINT ignored in this process for the block: child processes started in it (a
    LocalCluster's nannies and workers) keep ignoring it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
