"""Ctrl-C for a long run: the first asks it to stop after the work in progress, the second aborts at
once. Used by ``stylize`` (one picture) and ``video`` (frames on a cluster, whose workers do not hear it)."""
from __future__ import annotations

import os
import signal
import sys
import threading


class CtrlC:
    """``event`` is set by the first Ctrl-C (with ``message`` logged); the second raises
    KeyboardInterrupt, or with ``in_thread`` leaves the process at once, writing nothing."""

    def __init__(self, log, message: str):
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

    def in_thread(self, work):
        """``work()``'s result, run in a daemon thread; a KeyboardInterrupt here (the second
        Ctrl-C) leaves it behind, to end with the process."""
        outcome = {}

        def target():
            try:
                outcome["value"] = work()
            except BaseException as exc:   # noqa: BLE001 - handed to the main thread as it is
                outcome["error"] = exc

        thread = threading.Thread(target=target, name="stylize", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(timeout=0.1)
        except KeyboardInterrupt:
            # out at once: the run's thread may be inside ONNX Runtime, whose threads abort an
            # interpreter that finalizes around them ("terminate called", status -6)
            print("nst: error: interrupted", file=sys.stderr, flush=True)
            os._exit(130)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
