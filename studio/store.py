"""Every job the server has accepted, in SQLite, so that a restart loses no finished one.

Only state changes are written (accepted, started, finished); progress lives in memory. The
pictures themselves are files beside the database, written atomically by the worker."""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

COLUMNS = ("id", "state", "created", "started", "finished", "settings", "sources", "error", "evaluations",
           "total", "loss", "seconds", "result")
JSON_COLUMNS = ("settings", "sources")
UNFINISHED = ("queued", "running")


class JobStore:
    """One SQLite file; one connection shared by the server's threads under a lock (the writes are a
    few a job, so there is nothing to gain from more)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # WAL: a reader never sees half a transaction, and a crash leaves the last committed state
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS jobs (
            id TEXT PRIMARY KEY, state TEXT NOT NULL, created REAL NOT NULL, started REAL, finished REAL,
            settings TEXT NOT NULL, sources TEXT NOT NULL, error TEXT, evaluations INTEGER, total INTEGER,
            loss REAL, seconds REAL, result TEXT)""")

    def recover(self, now: float) -> int:
        """Mark every job a previous server left queued or running as failed: its inputs and its
        worker died with that process. Returns how many."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET error = CASE state WHEN 'running' THEN "
                "'the server stopped while this job was running' ELSE "
                "'the server stopped before this job ran' END, state = 'failed', finished = ? "
                "WHERE state IN ('queued', 'running')", (now,))
            return cursor.rowcount

    def add(self, row: dict) -> None:
        values = [json.dumps(row.get(c)) if c in JSON_COLUMNS else row.get(c) for c in COLUMNS]
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                             values)

    def update(self, job_id: str, **changes) -> None:
        names = [c for c in changes if c in COLUMNS and c != "id"]
        values = [json.dumps(changes[c]) if c in JSON_COLUMNS else changes[c] for c in names]
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {', '.join(f'{c} = ?' for c in names)} WHERE id = ?",
                             [*values, job_id])

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
            self._db.close()
