"""Schema migrations, one named function per step: `MIGRATIONS[i]` takes a store from version i to
i + 1. A released step is never edited; a new one is appended. tests/test_store_migrations.py
opens a frozen version-1 store and checks that every step applies and keeps its data.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


def v1_initial(conn: sqlite3.Connection) -> None:
    """Runs, jobs (request, response, tokens, timings, variant details) and cached scores."""
    _script(conn, """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment_name TEXT NOT NULL,
        experiment_hash TEXT NOT NULL,
        experiment_path TEXT NOT NULL,
        git_commit TEXT,
        started_at REAL NOT NULL,
        ended_at REAL,
        status TEXT NOT NULL DEFAULT 'running',
        planned INTEGER,
        succeeded INTEGER,
        failed INTEGER,
        args_json TEXT
    );
    CREATE TABLE jobs (
        job_id TEXT PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        cell_key TEXT NOT NULL,
        model TEXT NOT NULL,
        quantization TEXT,
        item_id TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
        attempts INTEGER NOT NULL,
        error TEXT,
        request_json TEXT,
        response_json TEXT,
        text TEXT,
        finish_reason TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s REAL,
        timings_json TEXT,
        variant_json TEXT,
        finished_at REAL NOT NULL
    );
    CREATE INDEX jobs_status ON jobs(status);
    CREATE TABLE scores (
        job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
        scorer_key TEXT NOT NULL,
        score_json TEXT NOT NULL,
        PRIMARY KEY (job_id, scorer_key)
    );
    """)


def v2_probes(conn: sqlite3.Connection) -> None:
    """What `runner probe` measured of each model variant, for warnings before a run."""
    _script(conn, """
    CREATE TABLE probes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        backend_identity TEXT NOT NULL,
        variant_identity TEXT NOT NULL,
        results_json TEXT NOT NULL,
        probed_at REAL NOT NULL
    );
    CREATE INDEX probes_variant ON probes(backend_identity, variant_identity);
    """)


def v3_studies(conn: sqlite3.Connection) -> None:
    """Results of studies (searches such as the context-window study), formerly a side JSON file."""
    _script(conn, """
    CREATE TABLE studies (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        experiment_hash TEXT NOT NULL,
        results_json TEXT NOT NULL,
        finished_at REAL NOT NULL
    );
    CREATE INDEX studies_kind ON studies(kind);
    """)


def v4_rendered_prompts(conn: sqlite3.Connection) -> None:
    """The prompt as the server rendered it (chat template applied), and who rendered it."""
    _script(conn, """
    ALTER TABLE jobs ADD COLUMN rendered_prompt TEXT;
    ALTER TABLE jobs ADD COLUMN rendered_by TEXT;
    """)


def v5_run_owners(conn: sqlite3.Connection) -> None:
    """The process that started each run (host, pid, start time), to tell a killed run from a live one."""
    _script(conn, """
    ALTER TABLE runs ADD COLUMN owner_host TEXT;
    ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
    ALTER TABLE runs ADD COLUMN owner_start TEXT;
    """)


def v6_from_cache(conn: sqlite3.Connection) -> None:
    """Whether a job's answer came from the response cache shared across experiments (no request sent)."""
    _script(conn, """
    ALTER TABLE jobs ADD COLUMN from_cache INTEGER NOT NULL DEFAULT 0;
    """)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [v1_initial, v2_probes, v3_studies, v4_rendered_prompts,
                                                          v5_run_owners, v6_from_cache]
SCHEMA_VERSION = len(MIGRATIONS)


def _script(conn: sqlite3.Connection, script: str) -> None:
    # Statement by statement inside the caller's transaction (executescript would commit first).
    for statement in (s.strip() for s in script.split(";")):
        if statement:
            conn.execute(statement)
