"""The Dask cluster a batch or a video runs on: an embedded LocalCluster on loopback (one process
per core, one thread each) or a scheduler someone already runs, and the worker plugin that makes
each worker hold one engine for all its pictures."""
from __future__ import annotations

import contextlib
import logging
import os

from distributed import Client, LocalCluster, WorkerPlugin

# The Stylizer of this worker process, made once by EnginePlugin.setup.
_ENGINE = None


class EnginePlugin(WorkerPlugin):
    """Loads the weights and builds one ``Stylizer`` per worker, with ONNX Runtime's threads set to
    the worker's (ORT ignores OMP_NUM_THREADS). Its store never exports: the client exported
    everything first, and a worker without TensorFlow could not. Each worker takes its share of
    its machine's memory (``hosts``: workers per host) as its engine's budget, within the memory
    limit Dask gives it, so that the workers of one machine together plan within one budget."""
    name = "nst-engine"

    def __init__(self, weights: str | None = None, provider: str = "cpu", hosts: dict | None = None):
        self.weights, self.provider, self.hosts = weights, provider, hosts or {}

    def setup(self, worker):
        global _ENGINE
        from engine.memory import BUDGET_SHARE, available_mb, share_budget
        from engine.store import ArtifactStore
        from engine.stylizer import Stylizer
        from models.weights import load_weights
        share = BUDGET_SHARE * available_mb() / max(1, self.hosts.get(_host(worker.address), 1))
        limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
        if limit:   # Dask's nanny ends a worker at 95% of its limit: stay under it
            share = min(share, 0.9 * limit / 2 ** 20)
        share_budget(share)
        _ENGINE = Stylizer(load_weights(self.weights), provider=self.provider, threads=max(1, worker.state.nthreads),
                           store=ArtifactStore(exports=False))


def _host(address: str) -> str:
    from urllib.parse import urlsplit
    return urlsplit(address).hostname or address


def workers_per_host(client) -> dict:
    """How many of the cluster's workers share each machine."""
    from collections import Counter
    return dict(Counter(_host(a) for a in client.scheduler_info()["workers"]))


def engine():
    """This worker's held Stylizer."""
    if _ENGINE is None:
        raise RuntimeError("this worker has no engine: the nst-engine plugin did not run")
    return _ENGINE


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None, *, weights: str | None = None,
            provider: str = "cpu"):
    """A Client with the engine plugin registered. ``scheduler``: ``tcp://HOST:8786`` of a running
    cluster; otherwise a LocalCluster of ``workers`` processes (default: every core) bound to
    127.0.0.1 with no dashboard, so nothing listens beyond loopback."""
    if scheduler:
        client, cluster = Client(scheduler, timeout="20s"), None
    else:
        workers = workers or os.cpu_count() or 1
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1", silence_logs=logging.ERROR)
        client = Client(cluster)
        client.wait_for_workers(workers)
    try:
        client.register_plugin(EnginePlugin(weights, provider, workers_per_host(client)))
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
