"""A real studio server for the tests: ``python cli.py serve`` in a child process on a free loopback
port, and a reader of its event streams."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
FAST = {"size": "64", "scales": "1", "step_engine": "ort"}   # a picture in a fraction of a second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``file_size``: the largest file the server may write, in bytes (RLIMIT_FSIZE): a write past
    it fails as a write to a full disk does."""

    def __init__(self, data: Path, *options: str, log: Path | None = None, file_size: int | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(log or data.parent / f"server-{self.port}.log")

        def limits():
            if file_size is not None:
                import resource
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

        # the child inherits NST_CACHE_DIR (tests/conftest.py): the suite's weights and exported models
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "serve", "--port", str(self.port), "--data", str(data),
             "--provider", "cpu", *options], stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
            preexec_fn=limits)
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(self.url("/api/bundled"), timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        """The server's resident memory now."""
        with open(f"/proc/{self.process.pid}/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))

    def url(self, path: str) -> str:
        return self.base + path

    def submit(self, files=None, **fields):
        data = {**FAST, **{k: v if isinstance(v, list) else str(v) for k, v in fields.items()}}
        return requests.post(self.url("/api/jobs"), data=data, files=files, timeout=60)

    def job(self, job_id: str) -> dict:
        return requests.get(self.url(f"/api/jobs/{job_id}"), timeout=10).json()

    def events(self, job_id: str, timeout: float = 120):
        """(event, job) pairs of a job's stream, until the server ends it; a job that has not ended
        within ``timeout`` seconds is an error (its stream's pings would otherwise keep a test waiting)."""
        deadline = time.monotonic() + timeout
        with requests.get(self.url(f"/api/jobs/{job_id}/events"), stream=True, timeout=timeout) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            event = None
            for line in answer.iter_lines(decode_unicode=True):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} did not end within {timeout:.0f} s")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    yield event, json.loads(line[5:])

    def wait(self, job_id: str, timeout: float = 120) -> dict:
        """The job once finished (its last event)."""
        last = None
        for event, job in self.events(job_id, timeout):
            last = job
        return last

    def close(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
