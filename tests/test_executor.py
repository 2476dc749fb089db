"""The executor against the project's fault-injection server: every job accounted for."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import Project, base_experiment
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer, answer_text, request_key

# 30% of requests get a fault, spread over every kind the server knows.
FAULTS = FaultPlan(rate_429=0.06, rate_500=0.05, rate_503=0.05, rate_reset=0.05, rate_hang=0.02,
                   rate_malformed=0.04, rate_empty_choices=0.03, hang_s=1.0, retry_after_s=0, seed=7)


def _rows(store: Path) -> list[tuple[str, str, str | None, str | None, str | None, int]]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT job_id, status, error, text, request_json, attempts FROM jobs").fetchall()


def _big_experiment(project: Project, url: str, items: int) -> Path:
    project.write_dataset([{"id": f"x{n:04d}", "config": {"port": n}, "valid": n % 3 == 0}
                           for n in range(items)])
    exp = base_experiment(f"{url}/v1")
    exp["backend"].update(concurrency=32, timeout_s=0.3, max_retries=3)
    return project.write(exp)


def test_2000_jobs_with_30_percent_faults_are_all_accounted_for(project: Project, capsys) -> None:  # type: ignore[no-untyped-def]
    with ThreadedFaultServer(FAULTS) as server:
        # 250 items x 2 prompts x 2 temperatures x 2 repeats
        path = _big_experiment(project, server.url, 250)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        stats = server.stats()

        rows = _rows(project.store_path())
        assert len(rows) == 2000
        assert len({r[0] for r in rows}) == 2000  # no job stored twice
        ok = [r for r in rows if r[1] == "ok"]
        failed = [r for r in rows if r[1] == "failed"]
        assert len(ok) + len(failed) == 2000
        assert failed, "with 30% faults and empty choices not retried, some jobs must fail"
        reasons = {"response had no choices", "HTTP 429", "HTTP 500", "HTTP 503", "connection error",
                   "timed out after 0.3 s", "malformed response body"}
        assert {(r[2] or "").split(":")[0] for r in failed} <= reasons
        # Every stored answer is the one the server gave for exactly that job's request body.
        for _, _, _, text, request_json, _ in ok:
            assert text == answer_text(request_key(json.loads(request_json or "{}")))
        assert sum(stats["faults"].values()) > 0.25 * stats["requests"]
        assert any(r[5] > 1 for r in ok), "some successes needed retries"

        # The report's counts equal the store's.
        capsys.readouterr()
        assert main(["report", str(path), "--format", "json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["totals"] == {"planned": 2000, "ok": len(ok), "failed": len(failed), "missing": 0}
        assert sum(r["n"] + r["failed"] for r in report["tables"][0]["rows"]) == 2000

        # The next run, against a healthy server, retries only the failed jobs.
        server.set_plan(FaultPlan())
        server.reset()
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        assert server.stats()["requests"] == len(failed)
    assert all(r[1] == "ok" for r in _rows(project.store_path()))
