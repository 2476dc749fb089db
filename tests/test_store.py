"""The SQLite store: schema version, WAL, migrations, one row per job, and scores that follow their job."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, base_experiment
from runner import Store, UserError
from runner.cli import main
from runner.store import SCHEMA_VERSION, JobRow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "results" / "results.sqlite")
    yield s
    s.close()


def _run_id(store: Store) -> int:
    runs = store.runs()
    if runs:
        return int(runs[0]["id"])
    return store.start_run(name="t", experiment_hash="h", experiment_path=store.path, planned=0, args={})


def _save(store: Store, job_id: str, status: str = "ok", **extra: Any) -> None:
    fields: dict[str, Any] = {"run_id": _run_id(store), "cell_key": "[]", "model": "m", "quantization": None,
                              "item_id": "i1", "repeat": 0, "attempts": 1}
    fields.update(extra)
    store.save_job(JobRow(job_id=job_id, status=status, **fields))


def _pragma(path: Path, name: str) -> Any:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        conn.close()


def _tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def test_new_store_has_the_current_schema_version_and_wal(store: Store) -> None:
    assert SCHEMA_VERSION >= 1
    assert store.path.is_file()
    assert _pragma(store.path, "user_version") == SCHEMA_VERSION
    assert _pragma(store.path, "journal_mode") == "wal"
    assert {"runs", "jobs", "scores"} <= _tables(store.path)


def test_reopening_keeps_data_and_version(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    s = Store.open(path)
    _save(s, "j1")
    s.close()
    s = Store.open(path)
    try:
        assert s.succeeded_ids() == {"j1"}
        assert _pragma(path, "user_version") == SCHEMA_VERSION
    finally:
        s.close()


def test_saving_a_job_twice_keeps_one_row_and_the_last_result(store: Store) -> None:
    run_id = store.start_run(name="t", experiment_hash="h", experiment_path=store.path, planned=1, args={})
    _save(store, "j1", "failed", run_id=run_id, attempts=5, error="HTTP 500: boom")
    assert store.succeeded_ids() == set()
    _save(store, "j1", "ok", run_id=run_id, attempts=2, text='{"valid": true}', finish_reason="stop",
          completion_tokens=4, timings={"predicted_per_second": 12.5})
    assert store.count_by_status() == {"ok": 1}
    (record,) = list(store.jobs(["j1"]))
    assert (record.status, record.attempts, record.error, record.text) == ("ok", 2, None, '{"valid": true}')
    assert record.timings == {"predicted_per_second": 12.5}
    assert store.conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 1


def test_succeeded_ids_are_only_the_ok_jobs(store: Store) -> None:
    _save(store, "a", "ok")
    _save(store, "b", "failed", error="x")
    _save(store, "c", "ok")
    _save(store, "c", "failed", error="later failure replaces")
    assert store.succeeded_ids() == {"a"}
    assert store.count_by_status() == {"ok": 1, "failed": 2}


def test_status_must_be_ok_or_failed(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        _save(store, "j", "pending")
    assert store.count_by_status() == {}


def test_jobs_returns_only_existing_ids_across_chunks(store: Store) -> None:
    ids = [f"j{n:04d}" for n in range(600)]  # more than one 500-id chunk
    for job_id in ids:
        _save(store, job_id)
    found = {r.job_id for r in store.jobs([*ids, "missing"])}
    assert found == set(ids)


def test_jobs_and_scores_read_the_same_by_scan_as_by_lookup(store: Store) -> None:
    # Most of the table asked for is read by one scan, a few ids by key: the same records either way,
    # the ones not asked for left out (here 600 of 900 jobs, then 2 of them).
    ids = [f"j{n:04d}" for n in range(900)]
    for n, job_id in enumerate(ids):
        _save(store, job_id, "ok" if n % 7 else "failed", text=f"answer {n}", latency_s=n / 10,
              scores={"binary:aaa": {"outcome": "answered", "n": n % 3}, "exact:bbb": {"outcome": "empty"}})
    asked = ids[:600:2] + ids[1:600:2] + ["missing"]
    scanned = {r.job_id: r for r in store.jobs(asked)}
    scores = store.scores_for(asked)
    assert set(scanned) == set(ids[:600]) and len(scores) == 1200
    for few in (["j0003", "j0598"], ["j0007"]):
        assert {r.job_id: r for r in store.jobs(few)} == {j: scanned[j] for j in few}
        assert store.scores_for(few) == {k: v for k, v in scores.items() if k[0] in few}
    assert scanned["j0007"].status == "failed" and scanned["j0598"].text == "answer 598"
    assert scores[("j0598", "binary:aaa")] == {"outcome": "answered", "n": 1}


def test_scores_are_replaced_when_a_job_is_saved_again(store: Store) -> None:
    _save(store, "j1", scores={"binary:aaa": {"outcome": "answered"}, "exact:bbb": {"outcome": "empty"}})
    assert store.scores_for(["j1"]) == {("j1", "binary:aaa"): {"outcome": "answered"},
                                        ("j1", "exact:bbb"): {"outcome": "empty"}}
    _save(store, "j1", scores={"binary:aaa": {"outcome": "no_json"}})
    assert store.scores_for(["j1"]) == {("j1", "binary:aaa"): {"outcome": "no_json"}}
    _save(store, "j1", "failed", error="x")
    assert store.scores_for(["j1"]) == {}


def test_scores_of_other_jobs_are_untouched(store: Store) -> None:
    _save(store, "j1", scores={"k": {"v": 1}})
    _save(store, "j2", scores={"k": {"v": 2}})
    _save(store, "j1", scores={})
    assert store.scores_for(["j1", "j2"]) == {("j2", "k"): {"v": 2}}


def test_save_scores_upserts(store: Store) -> None:
    _save(store, "j1", scores={"k": {"v": 1}})
    store.save_scores([("j1", "k", {"v": 3}), ("j1", "k2", {"v": 4})])
    assert store.scores_for(["j1"]) == {("j1", "k"): {"v": 3}, ("j1", "k2"): {"v": 4}}


def test_runs_are_recorded(store: Store) -> None:
    run_id = store.start_run(name="exp", experiment_hash="h", experiment_path=store.path, planned=10,
                             args={"limit_items": 2})
    store.finish_run(run_id, status="finished", succeeded=9, failed=1)
    (run,) = store.runs()
    assert (run["id"], run["experiment_name"], run["status"], run["planned"], run["succeeded"], run["failed"]) == (
        run_id, "exp", "finished", 10, 9, 1)
    assert run["ended_at"] >= run["started_at"]


def _make_newer(path: Path, version: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE future (x)")
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def test_opening_a_newer_database_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    _make_newer(path, 99)
    with pytest.raises(UserError) as info:
        Store.open(path)
    assert info.type is UserError
    assert (info.value.file, info.value.key) == (str(path), None)
    assert str(info.value) == (f"{path}: results store has schema version 99, newer than this runner's "
                               f"{SCHEMA_VERSION}; upgrade the runner")
    assert _pragma(path, "user_version") == 99  # nothing migrated backwards


def test_cli_reports_a_newer_database_as_a_user_error(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write(base_experiment())
    _make_newer(project.store_path(), SCHEMA_VERSION + 1)
    assert main(["report", str(path)]) == 2
    assert "upgrade" in capsys.readouterr().err


def test_a_version_0_database_is_migrated_forward(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    path.write_bytes(b"")  # what sqlite3 leaves behind before any schema: user_version 0
    assert _pragma(path, "user_version") == 0
    s = Store.open(path)
    try:
        assert _pragma(path, "user_version") == SCHEMA_VERSION
        assert {"runs", "jobs", "scores"} <= _tables(path)
        _save(s, "j1", scores={"k": {"v": 1}})
        assert s.succeeded_ids() == {"j1"}
    finally:
        s.close()


def test_open_existing_is_none_and_creates_nothing_for_a_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "results" / "exp" / "results.sqlite"
    assert Store.open_existing(path) is None
    assert not path.exists()
    assert not (tmp_path / "results").exists()


def test_open_existing_opens_a_present_store(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    Store.open(path).close()
    s = Store.open_existing(path)
    assert s is not None
    try:
        assert s.count_by_status() == {}
    finally:
        s.close()
