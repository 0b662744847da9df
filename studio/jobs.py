"""The job queue: jobs wait in a bounded line, each worker thread holds one engine (``Stylizer``) and
runs one job at a time, and a preview thread encodes the picture as it forms.

The engine's callback is the hot path: it only records numbers and, at least once a second where
the evaluations' pace allows (after every one when they are slower), hands a copy of the image to
the preview thread, which finishes it as the engine finishes its result (``Progress.finish``: the
colour work), encodes the JPEG and writes the file. Every state change is written to the
``JobStore`` first, and a job's pictures are written under ``--data`` when it is accepted
(``studio.files``), so a restart finds each finished job and its picture, resumes the jobs that
were waiting, and marks the one that was running interrupted (its last preview kept, to run again).
A stop lets a running evaluation finish and keeps the best picture so far, however long that takes;
a job still preparing (exporting a model) goes back to the line for the next start."""
from __future__ import annotations

import collections
import io
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import one_line
from engine.settings import Settings, SettingsError

from .files import DiskFull, JobFiles
from .store import JobStore

log = logging.getLogger("studio")
FINISHED = ("done", "cancelled", "failed", "interrupted")
KEEP_FINISHED = 64       # finished jobs kept in memory for their followers; older ones are read from the store
PREVIEW_INTERVAL = 1.0   # s: at least one preview this often, as far as the evaluations' pace allows


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"the queue is full; try again in {retry_after} s")
        self.retry_after = retry_after


class NotCancellable(Exception):
    """The job has already finished (or, for a re-run, was not interrupted)."""


@dataclass
class Job:
    id: str
    settings: Settings
    sources: dict                  # {"content": name, "style": [names]}: what the pictures were called
    created: float                 # its pictures are files under --data until it ends (studio.files)
    state: str = "queued"
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    result: str | None = None      # file name under results/, once written
    progress: dict = field(default_factory=dict)
    preview: int = 0               # how many previews were written: a page reloads the picture when it grows
    version: int = 0               # grows with every change a follower should hear about
    # CPU s the server spent on this job besides the engine, one sum per thread that adds to it
    callback_seconds: float = 0.0  # the worker, in the engine's callback
    preview_seconds: float = 0.0   # the preview thread: colour, JPEG, file
    stop: threading.Event = field(default_factory=threading.Event)
    worker: str = ""               # the name of the worker thread running it

    def changed(self) -> None:
        self.version += 1


class Previews:
    """One thread that turns the latest offered image of each running job into a JPEG on disk: the
    engine's thread only copies an array. A job's newer image replaces one not yet encoded."""

    def __init__(self, files: JobFiles):
        self.files = files
        self._pending: dict[str, tuple] = {}
        self._wake = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="studio-previews", daemon=True)
        self._thread.start()

    def offer(self, job: Job, image: np.ndarray, finish) -> None:
        """``finish``: the run's own ending for a picture (``Progress.finish``)."""
        with self._wake:
            self._pending[job.id] = (job, image, finish)
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                job, image, finish = self._pending.pop(next(iter(self._pending)))
            try:
                self.write(job, image, finish)
            except OSError as exc:   # a full disk: the job goes on, and its result says whether it fits
                log.warning("preview of job %s not written: %s", job.id, one_line(exc))
            except Exception:   # a preview is not worth a job; the result is written by the worker
                log.exception("preview of job %s", job.id)

    def write(self, job: Job, image: np.ndarray, finish) -> None:
        from PIL import Image
        begin = time.thread_time()   # CPU time: what the engine's threads lose, not waits for a core
        picture = finish(image)      # as the result will be
        data = io.BytesIO()
        # JPEG: a twentieth of a fast PNG's encoding time (0.2 ms against 4.3 at 256 px here), for a picture
        # that lives a second; the result is a PNG with its settings
        Image.fromarray(picture).save(data, format="JPEG", quality=92)
        if job.result is not None:   # the result came first: it replaced the previews
            return
        self.files.write_preview(job.id, data.getvalue())
        job.preview += 1
        job.preview_seconds += time.thread_time() - begin
        job.changed()

    def close(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._thread.join(timeout=5)


class Studio:
    """The queue, its workers and the record of every job.

    ``workers``: engines, each running one job at a time (a 512 px picture uses the whole CPU, so
    one by default; they share the process's one memory budget, ``engine.memory``); ``queue_size``:
    jobs that may wait; ``threads``: each engine's CPU threads (default: the cores shared evenly);
    ``warm``: run a tiny job on each engine at start, so that the first person's picture does not
    wait for sessions to load; ``keep``, ``keep_days``: finished jobs kept, with their pictures
    (0: no limit)."""

    def __init__(self, data: Path, *, workers: int = 1, queue_size: int = 8, threads: int | None = None,
                 provider: str = "cpu", preview_interval: float = PREVIEW_INTERVAL, warm: bool = True,
                 weights=None, history: int = 50, keep: int = 0, keep_days: float = 0):
        self.data = Path(data)
        self.files = JobFiles(self.data)
        self.store = JobStore(self.data / "jobs.sqlite")
        self.queue_size, self.preview_interval, self.history_size = queue_size, preview_interval, history
        self.keep, self.keep_days = keep, keep_days
        self.provider, self.warm, self._weights = provider, warm, weights
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self.jobs: dict[str, Job] = {}        # waiting, running, and the last KEEP_FINISHED finished
        self._finished: collections.deque[str] = collections.deque()
        self.waiting: collections.deque[Job] = collections.deque()
        self.running: dict[str, Job] = {}
        self._lock = threading.Condition()
        self._closing = False
        self._resume()
        self.previews = Previews(self.files)
        self._workers = [threading.Thread(target=self._work, name=f"studio-worker-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._workers:
            thread.start()

    def _resume(self) -> None:
        """Take up what the last server left: waiting jobs back in the line (in their order), running
        ones marked interrupted, litter of a crash removed, old jobs pruned."""
        queued, interrupted = self.store.recover(time.time())
        for row in queued:
            if not self.files.has_inputs(row["id"]):
                self.store.update(row["id"], state="failed", finished=time.time(),
                                  error="the server stopped before this job ran, and its pictures were lost")
                continue
            try:
                settings = Settings.from_dict(row["settings"])
            except SettingsError as exc:   # settings an earlier version allowed
                self.store.update(row["id"], state="failed", finished=time.time(), error=str(exc))
                continue
            job = Job(row["id"], settings, row["sources"], row["created"])
            self.jobs[job.id] = job
            self.waiting.append(job)
        if queued or interrupted:
            log.warning("resumed %d waiting job(s); %d job(s) that were running marked interrupted",
                        len(self.waiting), len(interrupted))
        self.files.tidy(set(self.store.ids("queued", "interrupted")))
        self._prune()

    # -- what the API calls --------------------------------------------------------------

    def submit(self, submission) -> Job:
        """Queue a checked job (``studio.inputs.Submission``): its pictures are written under
        --data first (``DiskFull`` when they cannot be), so that a restart finds it."""
        if len(self.waiting) >= self.queue_size:
            raise QueueFull(self.retry_after())
        job = Job(secrets.token_hex(8), submission.settings, submission.sources, time.time())
        self.files.save_inputs(job.id, submission.content, submission.styles, submission.pictures)
        with self._lock:
            try:
                if len(self.waiting) >= self.queue_size:
                    raise QueueFull(self.retry_after())
                try:
                    self.store.add({"id": job.id, "state": job.state, "created": job.created,
                                    "settings": job.settings.to_dict(), "sources": job.sources})
                except sqlite3.Error as exc:
                    raise DiskFull(f"the job could not be recorded under --data: {exc}") from None
            except BaseException:
                self.files.remove_inputs(job.id)
                raise
            self.jobs[job.id] = job
            self.waiting.append(job)
            self._changed_positions()
            self._lock.notify()
        return job

    def rerun(self, job_id: str) -> dict | None:
        """An interrupted job back in the line, from its kept pictures; None for no such job."""
        with self._lock:
            row = self.store.get(job_id)
            if row is None:
                return None
            if row["state"] != "interrupted" or not self.files.has_inputs(job_id):
                raise NotCancellable(f"job {job_id} is {row['state']}: only an interrupted job can be run again")
            if len(self.waiting) >= self.queue_size:
                raise QueueFull(self.retry_after())
            self.store.update(job_id, state="queued", started=None, finished=None, error=None, evaluations=None,
                              total=None, loss=None, seconds=None)
            self._forget(job_id)
            job = Job(job_id, Settings.from_dict(row["settings"]), row["sources"], row["created"])
            self.jobs[job.id] = job
            self.waiting.append(job)
            self._changed_positions()
            self._lock.notify()
        return self.snapshot(job_id)

    def retry_after(self) -> int:
        """Seconds until a place in the line is likely free: the soonest end of a running job."""
        with self._lock:
            left = [j.progress.get("left") for j in self.running.values()]
        left = [s for s in left if s is not None]
        return max(1, math.ceil(min(left))) if left else 5

    def cancel(self, job_id: str) -> dict | None:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                row = self.store.get(job_id)
                if row is None:
                    return None
                raise NotCancellable(f"job {job_id} has already ended ({row['state']})")
            if job.state in FINISHED:
                raise NotCancellable(f"job {job_id} has already {job.state}")
            if job.state == "queued":
                self.waiting.remove(job)
                self._finish(job, "cancelled")
                self._changed_positions()
            else:
                job.stop.set()   # the worker ends the run after this evaluation, keeping the best picture
                job.changed()
        return self.snapshot(job_id)

    def snapshot(self, job_id: str) -> dict | None:
        job = self.jobs.get(job_id)
        if job is not None:
            return self._job_view(job)
        row = self.store.get(job_id)
        return self._row_view(row) if row else None

    def history(self, limit: int | None = None) -> list[dict]:
        rows = self.store.recent(limit or self.history_size)
        return [self._job_view(self.jobs[r["id"]]) if r["id"] in self.jobs else self._row_view(r) for r in rows]

    def image(self, job_id: str) -> Path | None:
        """The result once written, else the latest preview, else None."""
        for path in (self.files.result(job_id), self.files.preview(job_id)):
            if path.is_file():
                return path
        return None

    def close(self) -> None:
        """Stop: the line is kept for the next start (its pictures are on disk); a running job ends
        after the evaluation in progress, however long, and keeps its best picture; a job still
        preparing (no evaluation yet: an export can take minutes) goes back to the line."""
        with self._lock:
            self._closing = True
            for job in self.running.values():
                job.stop.set()
            self._lock.notify_all()
        for thread in self._workers:
            while thread.is_alive():
                thread.join(timeout=0.5)
                with self._lock:
                    job = next((j for j in self.running.values() if j.worker == thread.name), None)
                    if job is not None and "evaluations" not in job.progress:   # preparing or waiting
                        self._requeue(job)
                        break
        self.previews.close()
        self.store.close()

    # -- views -----------------------------------------------------------------------------

    def _job_view(self, job: Job) -> dict:
        position = None
        if job.state == "queued":
            with self._lock:   # the line changes under other threads
                position = next((i + 1 for i, j in enumerate(self.waiting) if j is job), None)
        return {"id": job.id, "state": job.state, "position": position, "created": job.created,
                "started": job.started, "finished": job.finished, "settings": job.settings.to_dict(),
                "sources": job.sources, "error": job.error, "progress": dict(job.progress),
                "preview": job.preview, "result": job.result is not None,
                "overhead": {"callback": round(job.callback_seconds, 4), "previews": round(job.preview_seconds, 4)},
                "stopping": job.stop.is_set() and job.state == "running"}

    def _row_view(self, row: dict) -> dict:
        progress = {"evaluations": row["evaluations"], "total": row["total"], "loss": row["loss"],
                    "elapsed": row["seconds"]} if row["evaluations"] is not None else {}
        preview = int(row["state"] == "interrupted" and self.files.preview(row["id"]).is_file())
        return {"id": row["id"], "state": row["state"], "position": None, "created": row["created"],
                "started": row["started"], "finished": row["finished"], "settings": row["settings"],
                "sources": row["sources"], "error": row["error"], "progress": progress, "preview": preview,
                "result": row["result"] is not None, "overhead": None, "stopping": False}

    def _changed_positions(self) -> None:
        for job in self.waiting:
            job.changed()

    # -- the workers -----------------------------------------------------------------------

    def _engine(self):
        from engine.store import ArtifactStore
        from engine.stylizer import Stylizer
        stylizer = Stylizer(self._weights, provider=self.provider, threads=self.threads,
                            store=ArtifactStore(log=log.info), log=log.info)
        if self.warm:
            # the sessions, the step graph and the Winograd rewrite load on a first run: do it now on a
            # 64 px picture with the page's default engine, not on the first person's job
            from engine.images import bundled, load_image
            picture = load_image(bundled("content")[0])[:64, :64]
            try:
                stylizer.run(picture, [picture], Settings(size=64, scales=1, iterations=1))
            except Exception as exc:   # jobs may still run (another engine, or the error again, per job)
                log.warning("warming the engine failed: %s", one_line(exc))
        return stylizer

    def _work(self) -> None:
        stylizer, failure = None, None
        try:
            stylizer = self._engine()
        except Exception as exc:   # every job then fails with this line, and the server still answers
            log.exception("the engine did not load")
            failure = f"the engine did not load: {one_line(exc)}"
        while True:
            with self._lock:
                while not self.waiting and not self._closing:
                    self._lock.wait()
                if self._closing:
                    return
                job = self.waiting.popleft()
                job.state, job.started, job.worker = "running", time.time(), threading.current_thread().name
                job.progress = {"phase": "preparing"}
                self.running[job.id] = job
                self._changed_positions()
                job.changed()
            if failure:
                self._end(job, "failed", error=failure)
                continue
            try:
                self.store.update(job.id, state="running", started=job.started)
                self._run(stylizer, job)
            except Exception as exc:   # never lose the worker: the job fails with one line
                if not isinstance(exc, (DiskFull, SettingsError)):   # a refusal needs no traceback
                    log.exception("job %s", job.id)
                self._end(job, "failed", error=one_line(exc))

    def _run(self, stylizer, job: Job) -> None:
        from engine.metadata import picture_metadata
        from engine.stylizer import Interrupted

        try:
            content, styles, pictures = self.files.load_inputs(job.id)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"the job's pictures could not be read back from --data: {one_line(exc)}") from None
        masked = bool(pictures.get("masks")) or pictures.get("content_mask") is not None
        plan = stylizer.plan(job.settings, content.shape, masked=masked)   # may export a model on a first use
        last_preview = -math.inf

        def on_progress(p) -> None:
            nonlocal last_preview
            begin = time.thread_time()
            job.progress = {
                "phase": "running", "evaluations": p.evaluations, "total": p.total, "scale": p.scale + 1,
                "scales": p.scales, "width": p.shape[1], "height": p.shape[0], "loss": p.loss, "elapsed": p.elapsed,
                "rate": p.rate, "left": p.left}
            job.changed()
            now = time.perf_counter()
            # a preview now if waiting for the next evaluation would leave more than the interval
            # since the last one: about once a second when evaluations are quick, every one when slow
            if now - last_preview + p.evaluation_seconds >= self.preview_interval:
                last_preview = now
                self.previews.offer(job, p.image.copy(), p.finish)   # the optimizer reuses its array
            job.callback_seconds += time.thread_time() - begin

        def waiting(mb: float) -> None:
            job.progress = {"phase": "waiting for memory", "memory_mb": round(mb)}
            job.changed()

        try:
            outcome = stylizer.run(content, styles, job.settings, callback=on_progress, stop=job.stop, plan=plan,
                                   on_wait=waiting, **pictures)
        except Interrupted:
            with self._lock:
                if self._closing:   # the server stops: this job runs at the next start
                    self._requeue(job)
                    return
            self._end(job, "cancelled", error="stopped before the first evaluation: no picture")
            return
        del content, styles, pictures
        job.result = self.files.write_result(job.id, outcome.image, picture_metadata(outcome, **job.sources))
        job.progress = {**job.progress, "phase": "finished", "evaluations": outcome.iterations, "loss": outcome.loss,
                        "elapsed": outcome.seconds, "left": 0.0}
        self._end(job, "cancelled" if outcome.interrupted else "done")

    def _requeue(self, job: Job) -> None:
        """A job the stop caught before its first evaluation: waiting again, in the store, for the
        next start (its pictures are still on disk). Under the lock."""
        if job.id in self.running:
            self.running.pop(job.id)
            self.store.update(job.id, state="queued", started=None)
            job.state = "queued"
            job.changed()

    def _end(self, job: Job, state: str, error: str | None = None) -> None:
        with self._lock:
            if self.running.pop(job.id, None) is None:   # requeued by a stop meanwhile
                return
            job.error = error
            self._finish(job, state)

    def _finish(self, job: Job, state: str) -> None:
        """Record the end (the store first: a follower told "done" can always read it back); under
        the lock. A store that cannot write (a full disk) is logged: the job still ends here."""
        job.finished = time.time()
        p = job.progress
        try:
            self.store.update(job.id, state=state, finished=job.finished, error=job.error, result=job.result,
                              evaluations=p.get("evaluations"), total=p.get("total"), loss=p.get("loss"),
                              seconds=p.get("elapsed"))
        except sqlite3.Error as exc:
            log.error("job %s: its end could not be recorded: %s", job.id, exc)
        job.state = state
        self.files.remove_inputs(job.id)
        job.changed()
        self._finished.append(job.id)
        while len(self._finished) > KEEP_FINISHED:
            self.jobs.pop(self._finished.popleft(), None)
        self._prune()

    def _forget(self, job_id: str) -> None:
        if job_id in self._finished:
            self._finished.remove(job_id)
        self.jobs.pop(job_id, None)

    def _prune(self) -> None:
        """Old finished jobs and their files gone, as ``keep`` and ``keep_days`` say."""
        if not (self.keep or self.keep_days):
            return
        try:
            gone = self.store.prune(self.keep, time.time() - self.keep_days * 86400 if self.keep_days else None)
        except sqlite3.Error as exc:
            log.error("old jobs could not be pruned: %s", exc)
            return
        for job_id in gone:
            self._forget(job_id)
            self.files.remove(job_id)
