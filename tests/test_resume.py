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

HALF = 200  # of the 400 jobs: the server answers this many, then holds every later request


def _stored(store: Path) -> dict[str, tuple[str, str]]:
    """job_id -> (text, request key) of the jobs that succeeded; empty before the runner made its tables."""
    if not store.is_file():
        return {}
    with sqlite3.connect(store, timeout=10) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='jobs'").fetchone() is None:
            return {}
        rows = conn.execute("SELECT job_id, text, request_json FROM jobs WHERE status='ok'").fetchall()
    return {job_id: (text, request_key(json.loads(req))) for job_id, text, req in rows}


def _wait_until_stored(store: Path, count: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait for the runner to store `count` answers; the server answers no more, so this state holds still."""
    deadline = time.monotonic() + timeout
    while len(_stored(store)) < count:
        assert proc.poll() is None, f"the runner exited early: {proc.returncode}"
        assert time.monotonic() < deadline, f"{len(_stored(store))} of {count} answers stored after {timeout} s"
        time.sleep(0.05)


def _runner(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(path), "--quiet", "--no-report"],
                            cwd=path.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_half_way_then_resume_equals_an_uninterrupted_run(project: Project) -> None:
    project.write_dataset([{"id": f"r{n:03d}", "config": {"port": n}, "valid": n % 2 == 0} for n in range(50)])
    with ThreadedFaultServer(FaultPlan(hold_after=HALF)) as server:
        exp = base_experiment(f"{server.url}/v1")  # 50 items x 2 prompts x 2 temperatures x 2 repeats = 400
        # Held requests must stay in flight until the kill, not time out, fail and get stored as failed.
        exp["backend"]["timeout_s"] = 300
        killed = project.write(exp, name="killed.yaml")
        whole = project.write(exp, name="whole.yaml")

        proc = _runner(killed)
        store = project.store_path("killed")
        try:
            server.wait_held(1, timeout=60)  # the server has had all HALF requests it answers
            _wait_until_stored(store, HALF, proc)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        before = _stored(store)
        assert len(before) == HALF, "the kill must land half way"
        assert server.stats()["answered"] == HALF

        server.set_plan(FaultPlan())  # no barrier for the resumed run
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
    assert statuses == ["interrupted", "finished"]  # the killed run's record, closed by the next open
