"""Migrations are named functions, checked against a store frozen as the first release wrote it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runner.store import SCHEMA_VERSION, Store
from runner.store.migrations import MIGRATIONS, v1_initial

FROZEN_V1 = Path(__file__).parent / "fixtures" / "store_v1.sql"


def _frozen_store(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(FROZEN_V1.read_text())
    conn.close()


def _schema(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")
    return {name: " ".join(sql.split()) for name, sql in rows}


def test_the_first_migration_makes_exactly_the_frozen_version_1_schema(tmp_path: Path) -> None:
    frozen = tmp_path / "frozen.sqlite"
    _frozen_store(frozen)
    made = sqlite3.connect(tmp_path / "made.sqlite")
    v1_initial(made)
    with sqlite3.connect(frozen) as old:
        assert _schema(made) == _schema(old)
    assert MIGRATIONS[0] is v1_initial
    assert [m.__name__ for m in MIGRATIONS] == ["v1_initial", "v2_probes", "v3_studies", "v4_rendered_prompts",
                                                "v5_run_owners", "v6_from_cache"]


def test_a_version_1_store_is_migrated_and_keeps_its_jobs_and_scores(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    _frozen_store(path)
    store = Store.open(path)
    try:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "jobs", "scores", "probes", "studies"} <= tables
        assert store.succeeded_ids() == {"j1"}
        assert [j.text for j in store.jobs(["j1"])] == ["yes"]
        assert [j.error for j in store.jobs(["j2"])] == ["HTTP 500: boom"]
        assert store.scores_for(["j1"]) == {("j1", "binary:abc"): {"outcome": "answered"}}
        assert store.latest_study("context_window") is None
    finally:
        store.close()


def test_a_read_only_open_of_a_version_1_store_neither_migrates_nor_writes(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    _frozen_store(path)
    before = path.read_bytes()
    store = Store.open_readonly(path)
    assert store is not None
    try:
        assert store.version == 1
        assert store.succeeded_ids() == {"j1"}
        assert store.latest_study("context_window") is None
    finally:
        store.close()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]


def test_an_empty_store_file_is_read_as_no_results_and_migrated_by_a_run(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"")
    assert Store.open_readonly(path) is None
    store = Store.open(path)
    try:
        assert store.succeeded_ids() == set()
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        store.close()
