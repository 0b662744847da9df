"""Run a batch's jobs on a cluster: skip what is made, submit the rest with retries, a progress bar
over pictures, and a summary table at the end."""
from __future__ import annotations

import itertools
import sys
import uuid
from collections import Counter

from engine.errors import one_line

from .jobs import Job, Result, is_done, stylize_job


def export_first(settings, weights=None, provider: str = "cpu", log=None) -> None:
    """Find or export every model these settings need, here in the client, so that workers only load
    them (a worker's store never exports). The step graph serves every image size. ``weights``: a
    ``VGG19Weights``, or what ``load_weights`` takes."""
    from engine.store import ArtifactStore
    from engine.stylizer import Stylizer
    from models.weights import load_weights
    size = max(settings.size, 64)
    if weights is None or isinstance(weights, str):
        weights = load_weights(weights)
    Stylizer(weights, provider=provider, store=ArtifactStore(log=log), lean=True,
             log=log).plan(settings, (size, size, 3))


def run_batch(client, jobs: list[Job], *, retries: int = 2, quiet: bool = False, on_result=None) -> list[Result]:
    """Every job's result, in the order of ``jobs``. A picture is tried again up to ``retries``
    times, both when its run raises and when its worker dies under it (killed, out of memory: the
    scheduler's allowed failures, set from ``retries``); outputs are written atomically, so
    nothing is half-written, and a retry finds a picture already made and skips it."""
    from distributed import KilledWorker, as_completed
    from tqdm import tqdm
    client.run_on_scheduler(_allow_failures, retries)
    results: dict[str, Result] = {}
    todo = []
    for job in jobs:
        if is_done(job):
            results[str(job.output)] = Result(str(job.output), "skipped", reason="same settings and inputs")
        else:
            todo.append(job)
    # a fresh key each submission: a key of an earlier run still held would return its old result
    futures: dict = {}

    def submit(job: Job):
        future = client.submit(stylize_job, job, retries=retries, pure=False,
                               key=f"nst-{job.output.name}-{uuid.uuid4().hex}")
        futures[future] = job
        return future

    # a thread's worth of pictures at a time: Dask hands a worker every task it is given at once, and
    # a dead worker's tasks all count as failed on it, the waiting ones too (--retries 0 would fail them)
    waiting = iter(todo)
    threads = max(1, sum(client.nthreads().values()))
    running = as_completed([submit(job) for job in itertools.islice(waiting, threads)])
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="picture", disable=quiet, file=sys.stderr,
               dynamic_ncols=True)
    try:
        for future in running:
            job = futures[future]
            following = next(waiting, None)
            if following is not None:
                running.add(submit(following))
            try:
                result = future.result()
            except KilledWorker:
                result = Result(str(job.output), "failed", reason=f"its worker died while making it, "
                                                                  f"{retries + 1} time(s) (out of memory?)")
            except Exception as exc:  # noqa: BLE001 - any failure of one picture is that picture's line
                result = Result(str(job.output), "failed", reason=one_line(exc))
            results[str(job.output)] = result
            bar.update(1)
            if on_result:
                on_result(result)
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        for job in todo:
            results.setdefault(str(job.output), Result(str(job.output), "failed", reason="interrupted"))
        raise BatchInterrupted([results[str(j.output)] for j in jobs]) from None
    finally:
        bar.close()
    _remove_leftovers(jobs)
    return [results[str(j.output)] for j in jobs]


def _allow_failures(retries: int, dask_scheduler=None) -> None:
    """On the scheduler: a task whose worker dies is tried on ``retries`` more workers (Dask's
    ``distributed.scheduler.allowed-failures``, which a submission's ``retries`` does not cover).
    """
    dask_scheduler.allowed_failures = retries


def _remove_leftovers(jobs) -> None:
    """Temporary files a killed worker left beside an output (every attempt has ended now): the
    output itself is whole or absent, these are only litter."""
    for job in jobs:
        for leftover in job.output.parent.glob(f".{job.output.name}.*.tmp"):
            leftover.unlink(missing_ok=True)


class BatchInterrupted(Exception):
    def __init__(self, results):
        super().__init__("interrupted")
        self.results = results


def summary(results: list[Result]) -> str:
    """One line per picture (output, status, seconds or reason), then the totals."""
    width = max((len(r.output) for r in results), default=6)
    lines = [f"{'output':<{width}}  status   detail"]
    for r in results:
        detail = f"{r.seconds:.1f} s" if r.status == "done" else r.reason
        lines.append(f"{r.output:<{width}}  {r.status:<7}  {detail}")
    counts = Counter(r.status for r in results)
    lines.append(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed")
    return "\n".join(lines)
