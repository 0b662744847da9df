"""Ctrl-C for a long video: the first stops after the frames in progress, the second at once (the
cluster's workers do not hear it: ``video.cluster``)."""
from __future__ import annotations

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
