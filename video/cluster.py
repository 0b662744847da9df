"""The cluster a video runs on: the batch's (``batch.cluster``: a LocalCluster on loopback or a
scheduler someone runs, each worker holding one engine), with two things a long video needs.

- Workers deaf to Ctrl-C: a terminal's Ctrl-C reaches every process of its group, the local
  workers too, which would die mid-frame (and the run hang on them). They are started with SIGINT
  ignored, which child processes inherit, so that only the command decides what a Ctrl-C means.
- No message log: Dask keeps the last 1000 messages of every connection whole (for its
  developers), and every frame's task carries its frames, ~0.5 MB at 256 px: measured here, the
  command's memory grew 0.24 MB a frame (a 20 s 1080p clip peaked 300 MB above a 2 s one) until
  ``distributed.admin.low-level-log-length`` was 0 (then 7 MB in all over 800 tasks)."""
from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def sigint_ignored():
    """SIGINT ignored in this process for the block: child processes started in it (a
    LocalCluster's nannies and workers) keep ignoring it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None, **options):
    """``batch.cluster.connect`` for a video; the log stays off while the client lives (a worker
    that reconnects makes a new connection)."""
    import dask

    from batch.cluster import connect as batch_connect
    with dask.config.set({"distributed.admin.low-level-log-length": 0}), contextlib.ExitStack() as stack:
        with sigint_ignored():
            client = stack.enter_context(batch_connect(scheduler, workers, **options))
        yield client
