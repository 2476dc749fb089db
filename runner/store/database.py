"""SQLite store of runs, jobs and scores, one file per experiment, written as results arrive.

Finished jobs are committed in small batches (`save_jobs`; the executor commits at least every
0.1 s), so a crash or SIGKILL loses at most the requests in flight and the jobs that finished in the
last 0.1 s. Such a run cannot mark its own end, so the next open for writing marks every run whose
process is gone `interrupted` (`runner.store.owner`). WAL mode lets `runner report` read while a
run writes. The schema version lives in `PRAGMA user_version`; `runner.store.migrations` takes a
database from version i to i + 1, and opening a store for writing applies whatever is missing, so
old result folders keep working. The read verbs open it read-only (`open_readonly`) and never write.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from runner.errors import UserError, redact, redact_secrets
from runner.store.migrations import MIGRATIONS, SCHEMA_VERSION
from runner.store.owner import Owner, is_gone
from runner.store.raw import restore_text, strip_text
from runner.store.records import JobRecord, JobRow


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.version = SCHEMA_VERSION

    @classmethod
    def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise UserError(f"results store has schema version {version}, newer than this runner's "
                            f"{SCHEMA_VERSION}", file=path, fix="upgrade the runner")
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash (SIGKILL); only an OS crash may lose the tail.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        store = cls(conn, path)
        store._migrate()
        store._close_abandoned_runs()
        return store

    @classmethod
    def open_existing(cls, path: Path) -> Store | None:
        """An existing store opened for writing (migrated), or None: never creates one."""
        return cls.open(path) if path.is_file() else None

    @classmethod
    def open_readonly(cls, path: Path) -> Store | None:
        """For the read verbs (plan, report, explain): no write, no lock, no migration, no new file.

        A store written by an older runner is read as it is where its tables suffice; one from a
        newer runner is refused."""
        if not path.is_file():
            return None
        # With a -wal file present a writer may be live: read through WAL, read-only. Without one the
        # file is complete as it is; `immutable` then keeps SQLite from creating -wal and -shm files.
        wal = path.with_name(path.name + "-wal").exists()
        query = "mode=ro" if wal else "mode=ro&immutable=1"
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True, isolation_level=None, timeout=30)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise UserError(f"results store has schema version {version}, newer than this runner's "
                            f"{SCHEMA_VERSION}", file=path, fix="upgrade the runner")
        if version == 0:
            conn.close()  # an empty file (or one never migrated): nothing stored in it yet
            return None
        store = cls(conn, path)
        store.version = version
        return store

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        while True:
            with self.conn:
                # IMMEDIATE takes the write lock first, then the version is read again inside the
                # transaction: two runners opening an old store at once migrate it once.
                self.conn.execute("BEGIN IMMEDIATE")
                version = self.conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= SCHEMA_VERSION:
                    return
                MIGRATIONS[version](self.conn)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")

    def _close_abandoned_runs(self) -> None:
        """Mark `interrupted` the runs still `running` whose process is gone (killed before it could
        say so), with the counts and the time of the last job each stored. Live runs are left alone."""
        rows = self.conn.execute(
            "SELECT id, owner_host, owner_pid, owner_start FROM runs WHERE status='running'").fetchall()
        for run_id, host, pid, start in rows:
            if not is_gone(host, pid, start):
                continue
            # `AND status='running'`: another process opening the store at once may have done it already.
            self.conn.execute(
                "UPDATE runs SET status='interrupted',"
                " ended_at=COALESCE((SELECT MAX(finished_at) FROM jobs WHERE run_id=:id), started_at),"
                " succeeded=(SELECT COUNT(*) FROM jobs WHERE run_id=:id AND status='ok'),"
                " failed=(SELECT COUNT(*) FROM jobs WHERE run_id=:id AND status='failed')"
                " WHERE id=:id AND status='running'", {"id": run_id})

    # runs

    def start_run(self, *, name: str, experiment_hash: str, experiment_path: Path, planned: int,
                  args: dict[str, Any]) -> int:
        owner = Owner.current()
        cur = self.conn.execute(
            "INSERT INTO runs (experiment_name, experiment_hash, experiment_path, git_commit, started_at,"
            " planned, args_json, owner_host, owner_pid, owner_start) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, experiment_hash, str(experiment_path), git_commit_of(experiment_path), time.time(),
             planned, json.dumps(args), owner.host, owner.pid, owner.start),
        )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, *, status: str, succeeded: int, failed: int) -> None:
        self.conn.execute("UPDATE runs SET ended_at=?, status=?, succeeded=?, failed=? WHERE id=?",
                          (time.time(), status, succeeded, failed, run_id))

    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # jobs

    def save_job(self, row: JobRow) -> None:
        """Insert or replace one job's result (a retry of a failed job replaces it) in one commit."""
        self.save_jobs([row])

    def save_jobs(self, rows: list[JobRow]) -> None:
        """Insert or replace these jobs' results (a retry of a failed job replaces it), all in one commit.

        One transaction for many jobs: a commit costs about 190 us on its own, so the executor hands
        over what finished in the last fraction of a second together (`runner.execution.executor`).

        The last guard against a leaked API key: the error (server output) is redacted as the HTTP
        layer does; the answer and the raw exchange lose only the key's own bytes, since a pattern
        could change what the model said."""
        if not rows:
            return
        now = time.time()
        jobs = []
        scores: list[tuple[str, str, str]] = []
        # The jobs of one variant share its details dict (the executor's): encoded once per batch.
        variants: dict[int, str | None] = {}
        for row in rows:
            variant = variants.get(id(row.variant), "")
            if variant == "":
                variant = variants[id(row.variant)] = _dumps(row.variant)
            error = redact(row.error) if row.error is not None else None
            text = redact_secrets(row.text) if row.text is not None else None
            request_json, response_json, timings_json = row.encoded or encode_exchange(
                row.request, row.response, row.text, row.timings)
            jobs.append((row.job_id, row.run_id, row.cell_key, row.model, row.quantization, row.item_id, row.repeat,
                         str(row.status), row.attempts, error, request_json, response_json, text,
                         row.finish_reason, row.prompt_tokens, row.completion_tokens, row.latency_s,
                         timings_json, variant, now, row.rendered_prompt, row.rendered_by,
                         int(row.from_cache)))
            scores.extend((row.job_id, key, json.dumps(score)) for key, score in row.scores.items())
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("DELETE FROM scores WHERE job_id=?", [(row.job_id,) for row in rows])
            self.conn.executemany(
                "INSERT OR REPLACE INTO jobs (job_id, run_id, cell_key, model, quantization, item_id, repeat,"
                " status, attempts, error, request_json, response_json, text, finish_reason, prompt_tokens,"
                " completion_tokens, latency_s, timings_json, variant_json, finished_at, rendered_prompt, rendered_by,"
                " from_cache) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", jobs)
            self.conn.executemany("INSERT INTO scores (job_id, scorer_key, score_json) VALUES (?, ?, ?)", scores)

    def save_scores(self, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT OR REPLACE INTO scores (job_id, scorer_key, score_json) VALUES (?, ?, ?)",
                ((j, k, json.dumps(s)) for j, k, s in rows),
            )

    def succeeded_ids(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT job_id FROM jobs WHERE status='ok'")}

    def count_by_status(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())

    def jobs(self, job_ids: Iterable[str]) -> Iterator[JobRecord]:
        """Records for the given ids that exist, fetched in chunks (SQLite caps bound parameters)."""
        from_cache = "from_cache" if self.version >= 6 else "0"
        # Every job of a variant stores the same details: parsed once, one dict shared by its records
        # (100,000 copies of the sampler defaults were a third of a large report's memory).
        variants: dict[str | None, Any] = {}
        columns = ("job_id, status, attempts, error, text, finish_reason, prompt_tokens, completion_tokens,"
                   f" latency_s, timings_json, variant_json, {from_cache}")
        for row in self._rows_of(list(job_ids), "jobs", columns):
            yield JobRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8],
                            timings=None if row[9] is None else json.loads(row[9]),
                            variant=_shared(variants, row[10]), from_cache=bool(row[11]))

    def _rows_of(self, ids: list[str], table: str, columns: str) -> Iterator[Any]:
        """The rows of `table` (jobs or scores) whose job_id is one of `ids`, `columns` selected (job_id
        first), in no particular order. Most of the table asked for (a report of every job): one scan,
        filtered here, 2.5x faster than looking the ids up by key, 500 at a time (SQLite caps bound
        parameters), which is what a few ids get."""
        if not ids:
            return
        # rowid only grows (a replaced job gets a new one): an upper bound of the rows, found in the index.
        rows = self.conn.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0
        if len(ids) * 3 >= rows:
            wanted = set(ids)
            for row in self.conn.execute(f"SELECT {columns} FROM {table}"):
                if row[0] in wanted:
                    yield row
            return
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.conn.execute(f"SELECT {columns} FROM {table} WHERE job_id IN ({marks})", chunk)

    def response(self, job_id: str) -> Any:
        """A job's raw response as the server sent it (the answer's text put back in), or None."""
        row = self.conn.execute("SELECT response_json, text FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return None if row is None else restore_text(_loads(row[0]), row[1])

    def job_requests(self, job_ids: Iterable[str]) -> dict[str, tuple[Any, str | None, str | None]]:
        """job id -> (the request as sent, the prompt as the server rendered it, who rendered it): what
        `runner export` adds to the read path's records (kept out of it: a report needs none of it)."""
        ids = list(job_ids)
        rendered = "rendered_prompt, rendered_by" if self.version >= 4 else "NULL, NULL"
        out: dict[str, tuple[Any, str | None, str | None]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for job_id, request, prompt, by in self.conn.execute(
                    f"SELECT job_id, request_json, {rendered} FROM jobs WHERE job_id IN ({marks})", chunk):
                out[job_id] = (_loads(request), prompt, by)
        return out

    def rendered_prompts(self, job_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
        """job id -> (the prompt as the server rendered it, who rendered it), for the jobs that have one:
        the HTML report's response browser (without the request bodies `job_requests` also reads)."""
        if self.version < 4:
            return {}
        ids = list(job_ids)
        out: dict[str, tuple[str, str | None]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for job_id, prompt, by in self.conn.execute(
                    f"SELECT job_id, rendered_prompt, rendered_by FROM jobs WHERE job_id IN ({marks}) "
                    "AND rendered_prompt IS NOT NULL", chunk):
                out[job_id] = (prompt, by)
        return out

    def scores_for(self, job_ids: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        # Most stored scores are one of a few texts ({"outcome": "answered", "correct": true, ...}): each
        # text is parsed once and its dict shared (read only: `Score.from_dict` copies it into a Score).
        parsed: dict[str, dict[str, Any]] = {}
        for job_id, key, score in self._rows_of(list(job_ids), "scores", "job_id, scorer_key, score_json"):
            value = parsed.get(score)
            if value is None:
                value = parsed[score] = json.loads(score)
            out[(job_id, key)] = value
        return out


    def save_probe(self, backend_identity: str, variant_identity: str, results: list[dict[str, Any]]) -> None:
        self.conn.execute(
            "INSERT INTO probes (backend_identity, variant_identity, results_json, probed_at) VALUES (?, ?, ?, ?)",
            (backend_identity, variant_identity, json.dumps(results), time.time()))

    def latest_probe(self, backend_identity: str, variant_identity: str) -> list[dict[str, Any]] | None:
        row = self.conn.execute(
            "SELECT results_json FROM probes WHERE backend_identity=? AND variant_identity=? ORDER BY id DESC LIMIT 1",
            (backend_identity, variant_identity)).fetchone()
        return json.loads(row[0]) if row else None

    # studies

    def save_study(self, kind: str, experiment_hash: str, results: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO studies (kind, experiment_hash, results_json, finished_at) VALUES (?, ?, ?, ?)",
            (kind, experiment_hash, json.dumps(results), time.time()))

    def latest_study(self, kind: str) -> dict[str, Any] | None:
        if self.version < 3:
            return None  # a store from before studies were stored in it
        row = self.conn.execute("SELECT results_json FROM studies WHERE kind=? ORDER BY id DESC LIMIT 1",
                                (kind,)).fetchone()
        return json.loads(row[0]) if row else None


def encode_exchange(request: Any, response: Any, text: str | None, timings: Any,
                    request_json: str | None = None) -> tuple[str | None, str | None, str | None]:
    """A job's request, response (its text replaced by the marker, `runner.store.raw`) and timings as
    stored: JSON, secrets redacted. The response cache keeps the same three strings. `request_json`:
    the request as the backend encoded it to send it (`Completion.request_json`), the same text
    `_dumps` would make of it."""
    encoded = _dumps(request) if request_json is None else redact_secrets(request_json)
    return encoded, _dumps(strip_text(response, text)), _dumps(timings)


# What `json.dumps(value, ensure_ascii=False)` builds on every call (an encoder for its non-default
# options), built once: the same text, three to four times a stored job.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _dumps(value: Any) -> str | None:
    # A secret is letters and digits: replacing it inside JSON text leaves valid JSON.
    return None if value is None else redact_secrets(_ENCODE(value))


def _shared(parsed: dict[str | None, Any], value: str | None) -> Any:
    if value not in parsed:
        parsed[value] = _loads(value)
    return parsed[value]


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def git_commit_of(path: Path) -> str | None:
    """The commit that last touched the experiment file, with '+dirty' if it has local edits."""
    try:
        folder = str(path.resolve().parent)
        commit = subprocess.run(["git", "log", "-n1", "--format=%H", "--", path.name], cwd=folder,
                                capture_output=True, text=True, timeout=5)
        if commit.returncode != 0 or not commit.stdout.strip():
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", path.name], cwd=folder,
                               capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
