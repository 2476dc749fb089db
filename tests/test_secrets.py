"""A server that echoes the request's headers (a debug error page, a proxy) hands the API key back:
it must reach neither the store nor the terminal nor the events log, and the error must still say
what happened."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import Project, base_experiment
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

KEY = "sk-test-4f9c2e7a1b3d5e6f8a9b"
ENV = "RUNNER_TEST_ECHOED_KEY"


def _bytes_under(folder: Path) -> bytes:
    """Every file the run left in the results folder (the store, its -wal and -shm if any), as bytes."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_an_api_key_echoed_in_a_500_body_is_stored_and_printed_nowhere(
        project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(ENV, KEY)
    events = project.root / "events.jsonl"
    with ThreadedFaultServer(FaultPlan(rate_echo_headers=1.0)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["backend"].update(api_key_env=ENV, max_retries=1)
        path = project.write(exp)
        # The progress line on (it prints to stderr), retries logged as events, then the read verbs.
        assert main(["run", str(path), "--limit", "1", "--events", str(events)]) == 0
        assert server.stats()["faults"]["echo_headers"] == 16  # 8 jobs, each tried twice
        # Still open while the run's store may have its -wal beside it: read everything now.
        left = _bytes_under(project.root / "results")
        with sqlite3.connect(project.store_path()) as conn:
            errors = [r[0] for r in conn.execute("SELECT error FROM jobs")]
        assert main(["export", str(path)]) == 0
        assert main(["explain", str(path)]) == 0
        assert main(["report", str(path), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    logged = events.read_text()

    secret = KEY.encode()
    assert b"sk-test" in secret and secret not in left
    for name, text in (("stdout", out), ("stderr", err), ("events", logged)):
        assert KEY not in text, name
    # What happened is still said: a 500, with the server's words around the redacted parts.
    assert len(errors) == 8
    head = 'HTTP 500: {"error": {"message": "invalid API key [redacted]; request headers: {'
    for error in errors:
        assert error.startswith(head), error
        assert '\\"Authorization\\": \\"[redacted]\\"' in error, error
    retried = [json.loads(line) for line in logged.splitlines() if '"job_retrying"' in line]
    assert len(retried) == 8 and all("invalid API key [redacted]" in e["error"] for e in retried)
