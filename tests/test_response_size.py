"""A response body is read up to `backend.max_response_bytes` and no further: a larger answer fails
its job at once (asking again gets the same), one just under the cap is an answer like any other."""

from __future__ import annotations

import sqlite3

from conftest import Project, base_experiment
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

CAP = 64 * 1024


def _jobs(project: Project) -> list[tuple[str, int, str | None, int]]:
    with sqlite3.connect(project.store_path()) as conn:
        return conn.execute("SELECT status, attempts, error, length(text) FROM jobs").fetchall()


def test_a_body_over_the_cap_fails_its_job_without_retries_or_reading_it_all(project: Project) -> None:
    # 256 MiB, chunked: reading it all (or waiting for it) would take longer than timeout_s, so a
    # run that did would store timeouts, not this error.
    with ThreadedFaultServer(FaultPlan(rate_huge=1.0, huge_bytes=256 * 1024 * 1024)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["backend"]["max_response_bytes"] = CAP
        path = project.write(exp)
        assert main(["run", str(path), "--limit", "1", "--quiet", "--no-report"]) == 0
        assert server.stats()["requests"] == 8  # one attempt per job: no retry can help
    message = "response body larger than 64 KiB (backend.max_response_bytes); raise it or lower max_tokens"
    assert _jobs(project) == [("failed", 1, message, None)] * 8


def test_a_body_under_the_cap_is_an_answer(project: Project) -> None:
    with ThreadedFaultServer(FaultPlan(rate_huge=1.0, huge_bytes=CAP - 1024)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["backend"]["max_response_bytes"] = CAP
        path = project.write(exp)
        assert main(["run", str(path), "--limit", "1", "--quiet", "--no-report"]) == 0
    rows = _jobs(project)
    assert len(rows) == 8
    assert all(status == "ok" and CAP - 2048 < length < CAP for status, _, _, length in rows), rows
