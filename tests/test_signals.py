"""Signals stop a run at once whatever a scorer is doing; scorers run with a time limit off the loop.

Every case runs `runner run` in a child process against the fault server on loopback: a stuck
scorer in the test process would spin there for the rest of the suite, and a regression would hang
the child, which the generous waits below catch (they detect a hang; the latency itself is
measured by bench/sigterm.py, not asserted).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, base_experiment
from runner.cli import INTERRUPTED
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

HANG_S = 10.0  # longer than any of these runs needs: only a hang gets there

# Fails item i03's first answer by spinning for ever (pure Python, so it holds the GIL in turns);
# writes `spinning` first, so a test knows the scorer is stuck before it sends a signal.
SPIN_ON_I03 = '''
from pathlib import Path

def score(text, finish_reason, fields):
    if fields["id"] == "i03":
        Path(__file__).with_name("spinning").touch()
        while True:
            pass
    return True
'''

ANSWER_LATER = '''
def score(text, finish_reason, fields):
    return True
'''


Start = Callable[[Path], "subprocess.Popen[str]"]


@pytest.fixture
def start() -> Iterator[Start]:
    """start(path): `runner run` in a child process; any child still running at the end (a failed
    test) is killed, never left spinning."""
    children: list[subprocess.Popen[str]] = []

    def run(path: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(path), "--quiet", "--no-report"],
                                cwd=path.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        children.append(proc)
        return proc

    yield run
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _experiment(project: Project, url: str, scorers: list[dict[str, Any]], **limits: Any) -> Path:
    exp = base_experiment(f"{url}/v1")
    exp["backend"]["concurrency"] = 1  # jobs in plan order: i00 and i01, i02 (two repeats each), then i03
    exp["scorers"] = scorers
    if limits:
        exp["limits"] = limits
    return project.write(exp)


def _jobs(project: Project) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(project.store_path()) as conn:
        return conn.execute("SELECT item_id, status, error FROM jobs ORDER BY finished_at").fetchall()


def _run_status(project: Project) -> list[str]:
    with sqlite3.connect(project.store_path()) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY id")]


def _wait_for(condition: Any, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert proc.poll() is None, f"the runner exited early ({proc.returncode}): {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"{what} not within {HANG_S} s"
        time.sleep(0.02)


def _finish(proc: subprocess.Popen[str], timeout: float, what: str) -> str:
    """The child's stderr once it exits (the `start` fixture kills it if it never does)."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the runner did not {what} within {timeout} s") from None


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, list[str]]:
    proc.send_signal(sig)
    err = _finish(proc, HANG_S, f"stop after signal {sig}")
    return proc.returncode, err.strip().splitlines()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_run_whose_scorer_spins_and_the_next_run_resumes(project: Project, start: Start,
                                                                          sig: int, code: int) -> None:
    (project.root / "spin.py").write_text(SPIN_ON_I03)
    with ThreadedFaultServer(FaultPlan()) as server:
        path = _experiment(project, server.url, [{"type": "python", "function": "spin:score"}],
                           scorer_timeout_s=600)
        proc = start(path)
        _wait_for((project.root / "spinning").exists, proc, "the scorer spinning")
        returncode, err = _stop(proc, sig)
        assert returncode == code
        assert err[-1] == INTERRUPTED == "interrupted: finished jobs are stored; run the same command again to resume"
        assert err[-2].startswith("run 1: 6 succeeded, 0 failed, 0 resumed from the store, ")
        assert [(item, status) for item, status, _ in _jobs(project)] == [
            ("i00", "ok"), ("i00", "ok"), ("i01", "ok"), ("i01", "ok"), ("i02", "ok"), ("i02", "ok")]
        assert _run_status(project) == ["interrupted"]

        # The same command again, the scorer fixed: only what was not stored is asked for.
        (project.root / "spin.py").write_text(ANSWER_LATER)
        server.reset()
        resumed = start(path)
        err = _finish(resumed, 60, "finish")
        assert resumed.returncode == 0, err
        assert server.stats()["requests"] == 48 - 6
    assert len(_jobs(project)) == 48 and {status for _, status, _ in _jobs(project)} == {"ok"}
    assert _run_status(project) == ["interrupted", "finished"]


def _stored(project: Project) -> int:
    store = project.store_path()
    if not store.is_file():
        return 0
    with sqlite3.connect(store, timeout=10) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='jobs'").fetchone() is None:
            return 0
        return int(conn.execute("SELECT COUNT(*) FROM jobs WHERE status='ok'").fetchone()[0])


def test_sigterm_in_a_busy_run_stops_it_whatever_is_in_flight(project: Project, start: Start) -> None:
    # Eight workers, answers and scores arriving all the time: the signal lands while some job's score
    # is being handed back. (Python 3.11's asyncio.wait_for swallowed a cancel arriving with a result,
    # and the run then waited for ever; three stops make that all but certain to show.)
    project.write_dataset([{"id": f"b{n:03d}", "config": {"port": n}, "valid": n % 2 == 0} for n in range(125)])
    # 20 ms a request: ~400 answers a second, so the signal lands mid-run (at zero latency the run's
    # 1,000 jobs can all be done before the stored count is seen).
    with ThreadedFaultServer(FaultPlan(latency_s=0.02)) as server:
        exp = base_experiment(f"{server.url}/v1")  # 125 items x 4 cells x 2 repeats = 1000 jobs
        exp["backend"]["concurrency"] = 8
        path = project.write(exp)
        for run, at_least in ((1, 100), (2, 250), (3, 400)):
            proc = start(path)
            _wait_for(lambda n=at_least: _stored(project) >= n, proc, f"{at_least} jobs stored")
            returncode, err = _stop(proc, signal.SIGTERM)
            assert returncode == 143, err
            stored = _stored(project)
            assert stored < 1000, "the run finished before the signal: nothing was tested"
            assert err[-2].startswith(f"run {run}: ")
            assert _run_status(project)[-1] == "interrupted"
    assert _run_status(project) == ["interrupted"] * 3


# Imported when the experiment is validated, before any event loop: the run is still being prepared.
SLOW_IMPORT = '''
import time
from pathlib import Path

Path(__file__).with_name("importing").touch()
time.sleep(600)

def score(text, finish_reason, fields):
    return True
'''


def test_sigterm_while_the_run_is_being_prepared_exits_143_and_writes_nothing(project: Project,
                                                                              start: Start) -> None:
    (project.root / "slow.py").write_text(SLOW_IMPORT)
    path = _experiment(project, "http://127.0.0.1:9", [{"type": "python", "function": "slow:score"}])
    proc = start(path)
    _wait_for((project.root / "importing").exists, proc, "the scorer module importing")
    returncode, err = _stop(proc, signal.SIGTERM)
    assert returncode == 143  # not -15: killed by the signal, with no word on stderr
    assert err == [INTERRUPTED]
    assert not (project.root / "results").exists()


# Also leaves behind a thread that the interpreter joins on exit, as a model being derived in the
# loop's default executor (or a scorer's own worker) would.
SPIN_WITH_A_THREAD = '''
import threading, time
from pathlib import Path

def score(text, finish_reason, fields):
    if fields["id"] == "i03":
        threading.Thread(target=time.sleep, args=(600,), daemon=False).start()
        Path(__file__).with_name("spinning").touch()
        while True:
            pass
    return True
'''


def test_sigterm_does_not_wait_for_a_thread_the_interpreter_would_join(project: Project, start: Start) -> None:
    (project.root / "spin.py").write_text(SPIN_WITH_A_THREAD)
    with ThreadedFaultServer(FaultPlan()) as server:
        path = _experiment(project, server.url, [{"type": "python", "function": "spin:score"}],
                           scorer_timeout_s=600)
        proc = start(path)
        _wait_for((project.root / "spinning").exists, proc, "the scorer spinning")
        returncode, err = _stop(proc, signal.SIGTERM)
    assert returncode == 143
    assert err[-1] == INTERRUPTED
    assert _stored(project) == 6 and _run_status(project) == ["interrupted"]


def test_sigterm_stops_a_run_while_a_regex_backtracks(project: Project, start: Start) -> None:
    # The regex engine gives up only after timeout_s (here ten minutes); meanwhile it lets go of the
    # GIL, and the signal is handled on the event loop all the same.
    plan = FaultPlan(script={'"svc3"': ("a" * 40 + "!", "stop")})
    with ThreadedFaultServer(plan) as server:
        path = _experiment(project, server.url, [{"type": "regex", "pattern": "^(a|a)*$", "timeout_s": 600}])
        proc = start(path)
        _wait_for(lambda: server.stats()["requests"] >= 7, proc, "item i03's request")
        time.sleep(0.3)  # the answer is in the scorer by now, and stays there
        assert proc.poll() is None and len(_jobs(project)) == 6
        returncode, err = _stop(proc, signal.SIGTERM)
    assert returncode == 143
    assert err[-1] == INTERRUPTED
    assert [item for item, _, _ in _jobs(project)] == ["i00", "i00", "i01", "i01", "i02", "i02"]
    assert _run_status(project) == ["interrupted"]


SPIN_ONCE = '''
from pathlib import Path

def score(text, finish_reason, fields):
    marker = Path(__file__).with_name("spun")
    if fields["id"] == "i03" and not marker.exists():
        marker.touch()
        while True:
            pass
    return True
'''


def test_a_scorer_past_its_time_limit_fails_that_job_and_the_run_goes_on(project: Project, start: Start) -> None:
    (project.root / "spin.py").write_text(SPIN_ONCE)
    with ThreadedFaultServer(FaultPlan()) as server:
        path = _experiment(project, server.url, [{"type": "python", "function": "spin:score"}],
                           scorer_timeout_s=0.5)
        proc = start(path)
        err = _finish(proc, 60, "finish")
    assert proc.returncode == 0, err  # and it exits although the abandoned scorer still spins
    jobs = _jobs(project)
    assert len(jobs) == 48
    failed = [(item, error) for item, status, error in jobs if status == "failed"]
    assert failed == [("i03", "scorer 'python' did not finish within 0.5 s on item 'i03'; fix the scorer or raise "
                              "limits.scorer_timeout_s")]
    assert _run_status(project) == ["finished"]


SPIN_FROM_I02 = '''
def score(text, finish_reason, fields):
    while fields["id"] >= "i02":
        pass
    return True
'''


def test_four_stuck_scorer_calls_stop_the_run_with_one_line(project: Project, start: Start) -> None:
    (project.root / "spin.py").write_text(SPIN_FROM_I02)
    with ThreadedFaultServer(FaultPlan()) as server:
        path = _experiment(project, server.url, [{"name": "spinner", "type": "python", "function": "spin:score"}],
                           scorer_timeout_s=0.5)
        proc = start(path)
        err = _finish(proc, 60, "stop")
    assert proc.returncode == 2
    assert err.strip().splitlines() == [
        f"runner: {path}: scorers[0]: 4 scorer calls are still running after the 0.5 s limit, so the run stops "
        "here (finished jobs are stored); fix scorer 'spinner' or raise limits.scorer_timeout_s"]
    assert [(item, status) for item, status, _ in _jobs(project)] == [
        ("i00", "ok"), ("i00", "ok"), ("i01", "ok"), ("i01", "ok"),
        ("i02", "failed"), ("i02", "failed"), ("i03", "failed"), ("i03", "failed")]
    assert _run_status(project) == ["failed"]


def test_a_report_that_must_score_stored_answers_stops_at_the_time_limit_with_one_line(
        project: Project, start: Start) -> None:
    # The run scored with `binary`; the file then names a scorer that spins on item i02: the report has
    # to score the stored answers itself, and must neither hang nor write anything.
    (project.root / "spin.py").write_text(SPIN_FROM_I02)
    with ThreadedFaultServer(FaultPlan()) as server:
        path = _experiment(project, server.url, [{"type": "binary", "field": "valid"}], scorer_timeout_s=0.5)
        assert _finish(start(path), 60, "finish") is not None
        _experiment(project, server.url, [{"name": "spinner", "type": "python", "function": "spin:score"}],
                    scorer_timeout_s=0.5)
    before = project.store_path().stat().st_mtime_ns
    done = subprocess.run([sys.executable, "-m", "runner.cli", "report", str(path)], cwd=path.parent,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"runner: {path}: scorers[0]: scorer 'spinner' did not finish within 0.5 s on item 'i02' (scoring stored "
        "answers); fix the scorer or raise limits.scorer_timeout_s"]
    assert done.stdout == ""
    assert project.store_path().stat().st_mtime_ns == before  # a reader: nothing written


def _scores(project: Project) -> dict[str, list[dict[str, Any]]]:
    with sqlite3.connect(project.store_path()) as conn:
        rows = conn.execute("SELECT j.item_id, s.score_json FROM jobs j JOIN scores s USING (job_id)").fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for item, score in rows:
        out.setdefault(item, []).append(json.loads(score))
    return out


def test_a_regex_that_backtracks_fails_its_job_within_its_limit_and_the_run_goes_on(project: Project,
                                                                                   start: Start) -> None:
    # i03 answers with 10,000 characters on which the issue's pattern ran for 420 s under Python's re
    # (the regex engine decides it at once); i04's answer makes (a|a)* backtrack past its 0.1 s.
    long_prose = "word " * 2000
    plan = FaultPlan(script={'"svc3"': (long_prose, "stop"), '"svc4"': ("a" * 40 + "!", "stop")})
    with ThreadedFaultServer(plan) as server:
        path = _experiment(project, server.url, [
            {"name": "issue", "type": "regex", "pattern": r"^(\w*\W*)*X$"},
            {"name": "nested", "type": "regex", "pattern": "^(a|a)*$", "timeout_s": 0.1}])
        proc = start(path)
        started = time.monotonic()
        err = _finish(proc, 60, "finish")
        elapsed = time.monotonic() - started
    assert proc.returncode == 0, err
    assert elapsed < 30, f"{elapsed:.0f} s: a regex ran without its limit"
    jobs = _jobs(project)
    assert len(jobs) == 48
    failed = {(item, error) for item, status, error in jobs if status == "failed"}
    assert failed == {("i04", "scorer 'nested': the pattern did not finish within 0.1 s on item 'i04' (41 characters); "
                              "simplify the pattern (nested repeats such as (a*)* backtrack) or raise its timeout_s")}
    assert sum(1 for item, _, _ in jobs if item == "i04") == 8
    issue_scores = [s for s in _scores(project)["i03"] if s["detail"] == "no match"]
    assert len(issue_scores) == 16  # both scorers, eight jobs: answered, no match
    assert {(s["outcome"], s["correct"]) for s in issue_scores} == {("answered", False)}


def test_run_gives_the_callers_signal_handlers_back(project: Project, fault_server: ThreadedFaultServer) -> None:
    import runner

    path = project.write(base_experiment(f"{fault_server.url}/v1"))

    def mine(signum: int, frame: Any) -> None:
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGTERM, mine)
    # Whatever SIGINT was: Python's own handler, or ignored when the tests run in a background job of a
    # shell without job control (which starts it with SIGINT ignored).
    interrupt = signal.getsignal(signal.SIGINT)
    try:
        summary = runner.run(path, limit=1)
        assert signal.getsignal(signal.SIGTERM) is mine  # not SIG_DFL, as the loop leaves it
        assert signal.getsignal(signal.SIGINT) is interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (summary.succeeded, summary.interrupted, summary.stop_signal) == (8, False, None)


def test_sigterm_while_the_server_has_not_answered_its_first_request_prints_one_line(project: Project,
                                                                                   start: Start) -> None:
    """The first GET /models is accepted by the kernel and never answered; the signal cancels it. The
    session it was sent on used to be left open, and aiohttp then printed two lines about it."""
    import socket
    import threading

    with socket.create_server(("127.0.0.1", 0)) as silent:
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
        path = _experiment(project, f"http://127.0.0.1:{silent.getsockname()[1]}", [{"type": "binary",
                                                                                     "field": "valid"}])
        proc = start(path)
        _wait_for(lambda: bool(accepted), proc, "the first request")
        returncode, err = _stop(proc, signal.SIGTERM)
        accepted[0].close()
    assert returncode == 143
    assert err == [INTERRUPTED]
