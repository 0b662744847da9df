"""Every job the server has accepted, in SQLite, so that a restart loses no finished one.

Only state changes are written (accepted, started, finished); progress lives in memory. The
pictures themselves are files beside the database (``studio.files``). States: queued, running,
done, cancelled, failed, and interrupted (running when its server died)."""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

COLUMNS = ("id", "state", "created", "started", "finished", "settings", "sources", "error", "evaluations",
           "total", "loss", "seconds", "result")
JSON_COLUMNS = ("settings", "sources")
UNFINISHED = ("queued", "running")
INTERRUPTED = "the server stopped while this job was running: its last preview is kept, and it can be run again"


class JobStore:
    """One SQLite file; one connection shared by the server's threads under a lock (the writes are a
    few a job, so there is nothing to gain from more)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._closed = False
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL: a reader never sees half a transaction, and a crash leaves the last committed state
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY, state TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
            settings TEXT NOT NULL, sources TEXT NOT NULL, error TEXT, evaluations INTEGER, total INTEGER,
            loss REAL, seconds REAL, result TEXT)""")

    def recover(self, now: float) -> tuple[list[dict], list[str]]:
        """What a previous server left unfinished: the jobs that were waiting (oldest first), which
        the new one resumes, and those that were running, now marked interrupted (their worker died
        with that process; their last preview is kept and they can be run again)."""
        with self._lock:
            running = [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = 'running'")]
            self._db.execute("UPDATE jobs SET state = 'interrupted', finished = ?, error = ? WHERE state = 'running'",
                             (now, INTERRUPTED))
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE state = 'queued' "
                                    "ORDER BY created").fetchall()
        return [self._row(r) for r in rows], running

    def add(self, row: dict) -> None:
        values = [json.dumps(row.get(c)) if c in JSON_COLUMNS else row.get(c) for c in COLUMNS]
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                             values)

    def update(self, job_id: str, **changes) -> None:
        names = [c for c in changes if c in COLUMNS and c != "id"]
        values = [json.dumps(changes[c]) if c in JSON_COLUMNS else changes[c] for c in names]
        with self._lock:
            if self._closed:   # a worker that outlived the server's stop: its job was recorded as queued
                return
            self._db.execute(f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in names)} WHERE id = ?",
                             [*values, job_id])

    def prune(self, keep: int, before: float | None) -> list[str]:
        """Forget finished jobs beyond the newest ``keep`` (0: no limit) and those finished before
        ``before`` (a time; None: no limit). Returns their ids, whose files the caller removes."""
        finished = "state NOT IN ('queued', 'running')"
        with self._lock:
            ids = []
            if keep:
                ids += [r[0] for r in self._db.execute(
                    f"SELECT id FROM jobs WHERE {finished} ORDER BY created DESC LIMIT -1 OFFSET ?", (keep,))]
            if before is not None:
                ids += [r[0] for r in self._db.execute(f"SELECT id FROM jobs WHERE {finished} AND finished < ?",
                                                       (before,))]
            ids = list(dict.fromkeys(ids))
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in ids])
        return ids

    def ids(self, *states: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                f"SELECT id FROM jobs WHERE state IN ({', '.join('?' * len(states))})", states)]

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._row(row) if row else None

    def recent(self, limit: int) -> list[dict]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs ORDER BY created DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [self._row(r) for r in rows]

    @staticmethod
    def _row(row) -> dict:
        data = dict(zip(COLUMNS, row))
        for c in JSON_COLUMNS:
            data[c] = json.loads(data[c])
        return data

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()
