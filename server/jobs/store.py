"""Jobs on disk: one SQLite table (WAL), so a finished result outlives the server and a job
left "running" by a crash is found at the next start.

Every call is one short statement under a lock; the connection is shared by the event loop
and the threads that call it. Claiming the next queued job is one atomic UPDATE, so several
processes may share the database file (the Ray ingress replicas of one machine); each
renews a lease (`heartbeat`) on the jobs it runs, and only jobs whose lease ran out are
taken back by another.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TERMINAL = ("succeeded", "failed", "cancelled")
STATES = ("queued", "running", *TERMINAL)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    expires REAL,
    options TEXT NOT NULL,
    labels TEXT,
    video_path TEXT NOT NULL,
    video_bytes INTEGER NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created);
"""
_COLUMNS = ("id", "state", "created", "started", "finished", "expires", "options", "labels",
            "video_path", "video_bytes", "done", "total", "attempts", "result", "error",
            "kind")  # fmt: skip
KINDS = ("timeline", "index")  # a timeline as the result, or the windows into the library


@dataclass
class Job:
    id: str
    state: str
    created: float
    options: dict[str, Any]
    video_path: str
    video_bytes: int
    labels: list[str] | None = None
    started: float | None = None
    finished: float | None = None
    expires: float | None = None
    done: int = 0
    total: int = 0
    attempts: int = 0
    result: str | None = None  # the answer's JSON, as served
    error: dict[str, str] | None = None  # {"error": kind, "detail": message}
    kind: str = "timeline"

    @property
    def finished_state(self) -> bool:
        return self.state in TERMINAL

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> Job:
        d = dict(zip(_COLUMNS, row))
        d["options"] = json.loads(d["options"])
        d["labels"] = json.loads(d["labels"]) if d["labels"] else None
        d["error"] = json.loads(d["error"]) if d["error"] else None
        return cls(**d)


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "heartbeat" not in columns:  # a database from before leases
                self._db.execute("ALTER TABLE jobs ADD COLUMN heartbeat REAL")
            if "kind" not in columns:  # a database from before the library
                self._db.execute(
                    "ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'timeline'"
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _one(self, sql: str, args: tuple = ()) -> Job | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return Job._from_row(row) if row else None

    def _all(self, sql: str, args: tuple = ()) -> list[Job]:
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [Job._from_row(r) for r in rows]

    def _run(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def add(self, job: Job) -> None:
        self._run(
            f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
            (job.id, job.state, job.created, job.started, job.finished, job.expires,
             json.dumps(job.options), json.dumps(job.labels) if job.labels else None,
             job.video_path, job.video_bytes, job.done, job.total, job.attempts, job.result,
             json.dumps(job.error) if job.error else None, job.kind),
        )  # fmt: skip

    def get(self, job_id: str) -> Job | None:
        return self._one(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE id = ?", (job_id,))

    def recent(
        self, state: str | None = None, limit: int = 100, kind: str = "timeline"
    ) -> list[Job]:
        """Newest first, without their results."""
        cols = ", ".join("NULL" if c == "result" else c for c in _COLUMNS)
        if state:
            return self._all(
                f"SELECT {cols} FROM jobs WHERE state = ? AND kind = ? ORDER BY created DESC "
                "LIMIT ?",
                (state, kind, limit),
            )
        return self._all(
            f"SELECT {cols} FROM jobs WHERE kind = ? ORDER BY created DESC LIMIT ?", (kind, limit)
        )

    def claim(self) -> Job | None:
        """The oldest queued job, now running (one atomic statement)."""
        return self._one(
            f"UPDATE jobs SET state = 'running', started = ?1, heartbeat = ?1, "
            f"attempts = attempts + 1, done = 0 "
            f"WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY created LIMIT 1) "
            f"AND state = 'queued' RETURNING {', '.join(_COLUMNS)}",
            (time.time(),),
        )

    def progress(self, job_id: str, done: int, total: int) -> str | None:
        """Record progress; -> the job's state now (another process may have cancelled it)."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET done = ?, total = ?, heartbeat = ? "
                "WHERE id = ? AND state = 'running'",
                (done, total, time.time(), job_id),
            )
            row = self._db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def finish(
        self, job_id: str, state: str, ttl_s: float, result: str | None = None,
        error: dict[str, str] | None = None,
    ) -> bool:  # fmt: skip
        """Running or queued -> a terminal state; False if it had ended already."""
        now = time.time()
        return bool(self._run(
            "UPDATE jobs SET state = ?, finished = ?, expires = ?, result = ?, error = ? "
            "WHERE id = ? AND state IN ('queued', 'running')",
            (state, now, now + ttl_s, result, json.dumps(error) if error else None, job_id),
        ))  # fmt: skip

    def requeue(self, job_id: str) -> None:
        self._run("UPDATE jobs SET state = 'queued', done = 0 WHERE id = ? AND state = 'running'",
                  (job_id,))  # fmt: skip

    def beat(self, job_ids: list[str]) -> None:
        """The running jobs of this process are alive (their lease renewed)."""
        if job_ids:
            marks = ", ".join("?" * len(job_ids))
            self._run(f"UPDATE jobs SET heartbeat = ? WHERE state = 'running' AND id IN ({marks})",
                      (time.time(), *job_ids))  # fmt: skip

    def running(self, stale_before: float | None = None) -> list[Job]:
        """Running jobs; with `stale_before`, those whose lease was last renewed earlier
        (their process is gone: no other process sharing the file is still on them)."""
        cols = ", ".join(_COLUMNS)
        if stale_before is None:
            return self._all(f"SELECT {cols} FROM jobs WHERE state = 'running'")
        return self._all(f"SELECT {cols} FROM jobs WHERE state = 'running' "
                         f"AND (heartbeat IS NULL OR heartbeat < ?)", (stale_before,))  # fmt: skip

    def active(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')"
            ).fetchone()
        return int(row[0])

    def expired(self, now: float) -> list[Job]:
        return self._all(
            f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE expires IS NOT NULL AND expires < ?",
            (now,),
        )

    def delete(self, job_id: str) -> bool:
        return bool(self._run("DELETE FROM jobs WHERE id = ?", (job_id,)))

    def video_paths(self) -> set[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT video_path FROM jobs WHERE state IN ('queued', 'running')"
            ).fetchall()
        return {r[0] for r in rows}
