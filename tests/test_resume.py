"""A run killed with SIGKILL half way loses nothing and resumes without repeating stored jobs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import Project, base_experiment
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer, request_key


def _stored(store: Path) -> dict[str, tuple[str, str]]:
    """job_id -> (text, request key) of the jobs that succeeded."""
    if not store.is_file():
        return {}
    with sqlite3.connect(store, timeout=10) as conn:
        rows = conn.execute("SELECT job_id, text, request_json FROM jobs WHERE status='ok'").fetchall()
    return {job_id: (text, request_key(json.loads(req))) for job_id, text, req in rows}


def _runner(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(path), "--quiet", "--no-report"],
                            cwd=path.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_half_way_then_resume_equals_an_uninterrupted_run(project: Project) -> None:
    project.write_dataset([{"id": f"r{n:03d}", "config": {"port": n}, "valid": n % 2 == 0} for n in range(50)])
    with ThreadedFaultServer(FaultPlan(latency_s=0.02)) as server:
        exp = base_experiment(f"{server.url}/v1")  # 50 items x 2 prompts x 2 temperatures x 2 repeats = 400
        killed = project.write(exp, name="killed.yaml")
        whole = project.write(exp, name="whole.yaml")

        proc = _runner(killed)
        store = project.store_path("killed")
        deadline = time.monotonic() + 60
        while len(_stored(store)) < 150 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = _stored(store)
        assert 150 <= len(before) < 400, "the kill must land half way"

        server.reset()
        assert _runner(killed).wait(timeout=120) == 0
        by_key = server.stats()["by_key"]
        repeated = [job for job, (_, key) in before.items() if key in by_key]
        assert repeated == [], "a job already stored was requested again"
        assert server.stats()["requests"] == 400 - len(before)

        assert _runner(whole).wait(timeout=120) == 0

    resumed, uninterrupted = _stored(store), _stored(project.store_path("whole"))
    assert len(resumed) == 400
    assert resumed == uninterrupted
    with sqlite3.connect(store) as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY id")]
    assert statuses == ["running", "finished"]  # the killed run never got to close its record
