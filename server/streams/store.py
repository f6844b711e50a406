"""Stream definitions on disk (SQLite, beside the jobs): a stream that was being watched
is watched again after a restart, until it is deleted."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    spec TEXT NOT NULL,
    secret TEXT NOT NULL
);
"""


class StreamStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def add(self, stream_id: str, spec: dict, secret: str) -> float:
        created = time.time()
        with self._lock:
            self._db.execute("INSERT INTO streams VALUES (?, ?, ?, ?)",
                             (stream_id, created, json.dumps(spec), secret))  # fmt: skip
        return created

    def remove(self, stream_id: str) -> bool:
        with self._lock:
            return self._db.execute("DELETE FROM streams WHERE id = ?", (stream_id,)).rowcount > 0

    def all(self) -> list[tuple[str, float, dict, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created, spec, secret FROM streams ORDER BY created"
            ).fetchall()
        return [(r[0], r[1], json.loads(r[2]), r[3]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
