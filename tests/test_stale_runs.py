"""A run killed with SIGKILL cannot write its own end: the next open of the store for writing marks it
`interrupted`, and leaves a run whose process is alive (in another process, this one) `running`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import Project, base_experiment
from runner.cli import main
from runner.store import Store
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

ANSWERED = 2  # the server answers this many requests, then holds every later one


def _runs(store: Path) -> list[tuple[str, int | None, float | None]]:
    with sqlite3.connect(store, timeout=10) as conn:
        return conn.execute("SELECT status, succeeded, ended_at FROM runs ORDER BY id").fetchall()


def _stored(store: Path) -> int:
    if not store.is_file():
        return 0
    with sqlite3.connect(store, timeout=10) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='jobs'").fetchone() is None:
            return 0
        return int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])


def _held_run(path: Path, server: ThreadedFaultServer, store: Path) -> subprocess.Popen[bytes]:
    """`runner run` in a child process, once it has stored ANSWERED jobs and waits on held requests."""
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(path), "--quiet", "--no-report"],
                            cwd=path.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.wait_held(1, timeout=30)
    deadline = time.monotonic() + 30
    while _stored(store) < ANSWERED:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    return proc


def _experiment(project: Project, url: str) -> Path:
    exp = base_experiment(f"{url}/v1")
    exp["backend"]["timeout_s"] = 60  # held requests stay in flight until the kill
    return project.write(exp)


def test_a_killed_run_is_marked_interrupted_by_the_next_run(project: Project) -> None:
    store = project.store_path()
    with ThreadedFaultServer(FaultPlan(hold_after=ANSWERED)) as server:
        path = _experiment(project, server.url)
        proc = _held_run(path, server, store)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _runs(store) == [("running", None, None)]
        server.set_plan(FaultPlan())
        server.reset()
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    (killed, _, ended), (resumed, _, _) = _runs(store)
    assert (killed, resumed) == ("interrupted", "finished")
    assert _runs(store)[0][1] == ANSWERED and ended is not None  # what it stored, and when it last did


def test_a_live_run_in_another_process_is_left_running(project: Project) -> None:
    store = project.store_path()
    with ThreadedFaultServer(FaultPlan(hold_after=ANSWERED)) as server:
        path = _experiment(project, server.url)
        proc = _held_run(path, server, store)
        try:
            assert main(["score", str(path)]) == 0  # opens the store for writing while the run is live
            assert _runs(store) == [("running", None, None)]
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert main(["score", str(path)]) == 0
    assert [status for status, _, _ in _runs(store)] == ["interrupted"]


def test_a_run_whose_pid_now_belongs_to_another_process_is_interrupted(tmp_path: Path) -> None:
    # The pid is this test's own (alive), the start time someone else's: the pid was reused.
    path = tmp_path / "results.sqlite"
    store = Store.open(path)
    mine = store.start_run(name="t", experiment_hash="h", experiment_path=tmp_path / "exp.yaml", planned=1, args={})
    reused = store.start_run(name="t", experiment_hash="h", experiment_path=tmp_path / "exp.yaml", planned=1,
                             args={})
    store.conn.execute("UPDATE runs SET owner_start='another-boot:1' WHERE id=?", (reused,))
    store.close()
    Store.open(path).close()
    assert [status for status, _, _ in _runs(path)] == ["running", "interrupted"]
    assert mine == 1
