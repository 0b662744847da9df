"""``python -m bench.soak``: the studio under load for a long while. A real server (``cli.py serve`` in a
child process on a loopback port, its own data folder) and N simulated people on loopback, each a
thread doing what a person on the page does, at a person's pace: submitting pictures of their own
(waiting out a 429 as Retry-After says), polling their jobs, following event streams, downloading
results, cancelling some, listing the history.

Measured: every answer's status (no 5xx allowed), every accepted job accounted for at the end
(done or cancelled, none failed or lost), the p50/p99 of ``GET /api/jobs/{id}`` while jobs run,
and the server's resident memory after the first minute against its memory at the end (within 10%).
The full run (50 clients, 10 minutes) is ``python -m bench.soak``; ``--seconds 120 --settle 30``
is a short one."""
from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests
from PIL import Image

from bench.machine import cpu
from bench.serve import ROOT, Server

FINISHED = ("done", "cancelled", "failed", "interrupted")


class Soak:
    def __init__(self, base: str, seconds: float, seed: int):
        self.base, self.until, self.seed = base, time.monotonic() + seconds, seed
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.errors: list[str] = []        # transport errors and 5xx, one line each
        self.accepted: set[str] = set()
        self.poll_latencies: list[float] = []
        self.busy = threading.Event()      # set while the server runs a job (polled by the sampler)
        with Image.open(ROOT / "examples" / "content" / "coffee.jpg") as img:
            self.photo = img.convert("RGB")

    def request(self, method: str, path: str, **kwargs):
        begin = time.perf_counter()
        try:
            answer = requests.request(method, self.base + path, timeout=kwargs.pop("timeout", 30), **kwargs)
        except requests.RequestException as exc:
            with self.lock:
                self.errors.append(f"{method} {path}: {type(exc).__name__}")
            return None, time.perf_counter() - begin
        took = time.perf_counter() - begin
        with self.lock:
            self.statuses[answer.status_code] += 1
            if answer.status_code >= 500:
                self.errors.append(f"{method} {path}: {answer.status_code} {answer.text[:200]}")
        return answer, took

    def client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        mine: list[str] = []
        while time.monotonic() < self.until:
            action = rng.choices(["submit", "poll", "follow", "download", "cancel", "history"],
                                 weights=[2, 6, 1, 2, 1, 1])[0]
            if action == "submit" or not mine:
                self.submit(rng, index, mine)
            elif action == "poll":
                answer, took = self.request("GET", f"/api/jobs/{rng.choice(mine)}")
                if answer is not None and answer.ok and self.busy.is_set():
                    with self.lock:
                        self.poll_latencies.append(took)
            elif action == "follow":
                self.follow(rng.choice(mine), rng.uniform(1, 4))
            elif action == "download":
                self.request("GET", f"/api/jobs/{rng.choice(mine)}/image?download=true")
            elif action == "cancel":
                self.request("POST", f"/api/jobs/{rng.choice(mine)}/cancel")
            else:
                self.request("GET", "/api/jobs?limit=12")
            time.sleep(rng.uniform(0.3, 1.5))   # a person's pace

    def submit(self, rng: random.Random, index: int, mine: list) -> None:
        size = rng.choice((48, 64, 80))
        data = io.BytesIO()
        self.photo.resize((size + index % 7, size * 2 // 3)).save(data, format="PNG")
        fields = {"size": str(size), "scales": "1", "iterations": str(rng.randint(2, 20)), "step_engine": "ort"}
        answer, _ = self.request("POST", "/api/jobs", data=fields,
                                 files={"content": (f"client-{index}.png", data.getvalue(), "image/png")})
        if answer is not None and answer.status_code == 202:
            job = answer.json()["id"]
            mine.append(job)
            with self.lock:
                self.accepted.add(job)
        elif answer is not None and answer.status_code == 429:
            time.sleep(min(float(answer.headers.get("Retry-After", 1)), 5))

    def follow(self, job: str, seconds: float) -> None:
        """Read a job's event stream for a while (or to its end), then hang up as a closed tab does."""
        try:
            with requests.get(f"{self.base}/api/jobs/{job}/events", stream=True, timeout=(5, 30)) as answer:
                with self.lock:
                    self.statuses[answer.status_code] += 1
                end = time.monotonic() + seconds
                for _ in answer.iter_lines():
                    if time.monotonic() > end:
                        break
        except requests.RequestException as exc:
            with self.lock:
                self.errors.append(f"events {job}: {type(exc).__name__}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS:"))


def run(clients: int, seconds: float, settle: float, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as data:
        server = Server(Path(data), 2)
        try:
            soak = Soak(server.base, seconds, seed)
            samples, begin = [], time.monotonic()
            threads = [threading.Thread(target=soak.client, args=(i,), daemon=True) for i in range(clients)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                jobs = requests.get(server.base + "/api/jobs?limit=20", timeout=30).json()
                (soak.busy.set if any(j["state"] == "running" for j in jobs) else soak.busy.clear)()
                samples.append((time.monotonic() - begin, rss_mb(server.process.pid)))
                time.sleep(1)
            # the end: what is still waiting or running is cancelled, then every accepted job must be finished
            for job in soak.accepted:
                requests.post(f"{server.base}/api/jobs/{job}/cancel", timeout=30)
            deadline, states = time.monotonic() + 120, {}
            while time.monotonic() < deadline:
                states = {j: requests.get(f"{server.base}/api/jobs/{j}", timeout=30).json().get("state")
                          for j in soak.accepted}
                if all(s in FINISHED for s in states.values()):
                    break
                time.sleep(1)
            end_rss = rss_mb(server.process.pid)
        finally:
            server.close()
    settled = next((mb for at, mb in samples if at >= settle), samples[-1][1])
    latencies = sorted(soak.poll_latencies)
    outcome = Counter(states.values())
    return {"clients": clients, "seconds": seconds, "requests": sum(soak.statuses.values()),
            "statuses": dict(sorted(soak.statuses.items())), "server_errors": len(soak.errors),
            "errors": soak.errors[:20], "accepted": len(soak.accepted), "jobs": dict(outcome),
            "accounted": outcome["done"] + outcome["cancelled"] == len(soak.accepted),
            "poll_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
            "poll_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
            "polls_while_running": len(latencies), "rss_after_settle_mb": round(settled, 1),
            "rss_peak_mb": round(max(mb for _, mb in samples), 1), "rss_end_mb": round(end_rss, 1),
            "rss_growth": round(end_rss / settled - 1, 4)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--settle", type=float, default=60, help="the memory the end is compared with: at this second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu(),
              **run(args.clients, args.seconds, args.settle, args.seed)}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    ok = result["server_errors"] == 0 and result["accounted"] and result["rss_growth"] <= 0.10
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
