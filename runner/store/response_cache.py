"""Answers shared across experiments: a request asked by two experiments (or two steps of an
investigation) is sent once.

One SQLite file for the user (`$RUNNER_RESPONSE_CACHE`, else `responses.sqlite` in the runner's cache
folder, `$RUNNER_CACHE` or ~/.cache/llm-runner), keyed by the request's content hash: the backend's
identity, the model variant's identity, the messages as sent, the sampling parameters and the repeat
index (`runner.plan.planner.request_key`, carried by each `Job`). Unlike a job's id it leaves out
the dataset item's id, so two datasets holding the same config share the answer. A hit is stored
in the experiment's own store like any answer, with `from_cache` set, attempts 0 and the original
latency and timings (what the answer cost when it was sent), and counted in the report.

The repeat index is part of the key, so a cache hit returns what repeat r returned before: the
same as resuming a run. `runner run --fresh` sends every request (and adds the answers);
`--no-cache` neither reads nor writes the cache. Only the answers of jobs stored as succeeded are
kept (with their batch): a failed request, or one stopped while it was scored, is sent again.

Asking the cache costs a SELECT per job (~15 us, ~0.08 s of a 5,000-job run), so a second table lists
the scopes it holds answers for (a scope: one backend identity and model variant, `request_scope`),
and the executor asks per job only for a variant whose scope is listed when the variant starts. A
cache written before the table existed is listed as `*` (any scope: always asked). So a request
repeated inside one run whose variant the cache held nothing for is sent each time it comes up (as
two such requests in flight together always were), and answers a runner without the table adds to
a scope not listed yet are not found (sent again; the first answer stays stored).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import redact_secrets
from runner.store.raw import restore_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    request_json TEXT NOT NULL,
    response_json TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    latency_s REAL,
    timings_json TEXT,
    stored_at REAL NOT NULL
)
"""
_SCOPES = "CREATE TABLE scopes (scope TEXT PRIMARY KEY)"
ANY_SCOPE = "*"  # answers whose scope is not known (a cache from before the scopes table): always asked


def default_path() -> Path:
    explicit = os.environ.get("RUNNER_RESPONSE_CACHE")
    if explicit:
        return Path(explicit)
    root = os.environ.get("RUNNER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "llm-runner")
    return Path(root) / "responses.sqlite"


@dataclass(frozen=True)
class CachedAnswer:
    request: dict[str, Any]
    response: dict[str, Any]
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    timings: dict[str, Any] | None


class ResponseCache:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._unsaved: list[tuple[Any, ...]] = []
        self._scopes: set[str] = set()  # listed in the file already, or with the next flush
        self._unsaved_scopes: list[tuple[str]] = []

    @classmethod
    def open(cls, path: Path | None = None) -> ResponseCache:
        path = path or default_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        with conn:
            # IMMEDIATE: two runners opening one old cache at once list its answers' scopes once.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_SCHEMA)
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='scopes'").fetchone() is None:
                conn.execute(_SCOPES)
                if conn.execute("SELECT 1 FROM responses LIMIT 1").fetchone() is not None:
                    conn.execute("INSERT INTO scopes VALUES (?)", (ANY_SCOPE,))
        return cls(conn, path)

    def holds(self, scope: str) -> bool:
        """Whether the cache may hold an answer for this scope (`request_scope`): if not, asking it
        for each of the scope's jobs can only miss."""
        return scope in self._scopes or self.conn.execute(
            "SELECT 1 FROM scopes WHERE scope IN (?, ?) LIMIT 1", (scope, ANY_SCOPE)).fetchone() is not None

    def close(self) -> None:
        self.flush()
        self.conn.close()

    def get(self, key: str) -> CachedAnswer | None:
        row = self.conn.execute(
            "SELECT request_json, response_json, text, finish_reason, prompt_tokens, completion_tokens, latency_s,"
            " timings_json FROM responses WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        # A response kept as the store keeps it has a marker where the text stood (older rows: the whole one).
        return CachedAnswer(json.loads(row[0]), restore_text(json.loads(row[1]), row[2]), row[2], row[3], row[4],
                            row[5], row[6], json.loads(row[7]) if row[7] is not None else None)

    def add(self, key: str, request_json: str, response_json: str, text: str, finish_reason: str | None,
            prompt_tokens: int | None, completion_tokens: int | None, latency_s: float | None,
            timings_json: str | None, scope: str = ANY_SCOPE) -> None:
        """Keep an answer, its JSON as the store encoded it (`runner.store.database.encode_exchange`:
        secrets redacted, the text marked in the response); written with the next `flush` (the
        executor flushes with its store batch)."""
        self._unsaved.append((key, request_json, response_json, redact_secrets(text), finish_reason, prompt_tokens,
                              completion_tokens, latency_s, timings_json, time.time()))
        if scope not in self._scopes:
            self._scopes.add(scope)
            self._unsaved_scopes.append((scope,))

    @property
    def pending(self) -> int:
        """Answers added and not written yet."""
        return len(self._unsaved)

    def flush(self) -> None:
        if not self._unsaved:
            return
        with self.conn:
            self.conn.execute("BEGIN")
            # OR IGNORE: another runner may have stored the same request meanwhile; the first answer stays.
            self.conn.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  self._unsaved)
            self.conn.executemany("INSERT OR IGNORE INTO scopes VALUES (?)", self._unsaved_scopes)
        self._unsaved = []
        self._unsaved_scopes = []
