"""The executor with a fake backend object: unexpected errors fail a job or stop the run, never hang it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from conftest import Project, base_experiment
from runner.backends.base import Backend, ChatRequest, Completion
from runner.config.loader import load_experiment
from runner.config.scorer_configs import BinaryScorer
from runner.execution.executor import Executor, RunOptions
from runner.execution.retry import RetryPolicy
from runner.plan.dataset import Item
from runner.plan.planner import build_plan
from runner.scoring.errors import ScorerError
from runner.scoring.scorers import Score, Scorer, build_scorers
from runner.store.database import Store


class OddBackend(Backend):
    """Answers every other request with something the client code chokes on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0  # per instance: what a test sees does not depend on the tests run before it

    async def generate(self, request: ChatRequest) -> Completion:
        self.calls += 1
        if self.calls % 2:
            raise AttributeError("'list' object has no attribute 'get'")
        return Completion('{"valid": true}', "stop", 5, 3, {}, {})


class SteadyBackend(Backend):
    async def generate(self, request: ChatRequest) -> Completion:
        return Completion('{"valid": true}', "stop", 5, 3, {}, {})


def test_each_odd_backend_counts_its_own_calls(project: Project) -> None:
    exp = load_experiment(project.write(base_experiment()))
    request = cast(ChatRequest, None)  # generate() never looks at it
    first, second = OddBackend(exp.backend, exp), OddBackend(exp.backend, exp)
    with pytest.raises(AttributeError):
        asyncio.run(first.generate(request))
    with pytest.raises(AttributeError):
        asyncio.run(second.generate(request))  # its own first call, whatever `first` did before
    assert asyncio.run(first.generate(request)).text == '{"valid": true}'


def _executor(path: Path, store: Store, backend: Backend) -> Executor:
    exp = load_experiment(path)
    return Executor(build_plan(exp), store, backend, build_scorers(list(exp.scorers), "valid"),
                    RetryPolicy(0, 0, 0))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_unexpected_error_is_a_bug_that_stops_the_run_not_a_failed_job(project: Project, concurrency: int) -> None:
    # A bug is not data: an AttributeError from the backend code stops the run; it is not stored as
    # a failed job. What finished before it stays stored, and the run is marked failed.
    path = project.write(base_experiment())
    exp = load_experiment(path)
    store = Store.open(exp.store_path())
    backend = OddBackend(exp.backend, exp)
    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(asyncio.wait_for(_executor(path, store, backend).run(RunOptions(concurrency), "h"), timeout=30))
    assert info.group_contains(AttributeError, match="'list' object has no attribute 'get'")
    rows = store.conn.execute("SELECT status FROM jobs").fetchall()
    assert len(rows) < 48
    assert {s for (s,) in rows} <= {"ok"}
    assert store.conn.execute("SELECT status FROM runs").fetchone()[0] == "failed"


class RefusingScorer(Scorer):
    """A scorer that cannot score every other answer, and says so with its own error type."""

    def __init__(self) -> None:
        super().__init__(BinaryScorer(type="binary", field="valid"), "valid")
        self.seen = 0

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        self.seen += 1
        if self.seen % 2:
            raise ScorerError("the answer's code could not be run: sandbox unavailable")
        return Score("answered", True, True, True, True)


def test_a_scorer_error_fails_only_that_job_and_the_run_goes_on(project: Project) -> None:
    path = project.write(base_experiment())
    exp = load_experiment(path)
    store = Store.open(exp.store_path())

    class Steady(Backend):
        async def generate(self, request: ChatRequest) -> Completion:
            return Completion('{"valid": true}', "stop", 5, 3, {}, {})

    executor = Executor(build_plan(exp), store, Steady(exp.backend, exp), [RefusingScorer()], RetryPolicy(0, 0, 0))
    summary = asyncio.run(asyncio.wait_for(executor.run(RunOptions(1), "h"), timeout=30))
    rows = store.conn.execute("SELECT status, error FROM jobs").fetchall()
    assert (summary.succeeded, summary.failed, len(rows)) == (24, 24, 48)
    assert {e for s, e in rows if s == "failed"} == {"the answer's code could not be run: sandbox unavailable"}


def test_a_store_that_cannot_write_stops_the_run_instead_of_hanging(project: Project) -> None:
    path = project.write(base_experiment())
    exp = load_experiment(path)
    store = Store.open(exp.store_path())

    def broken(*_: Any, **__: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    store.save_jobs = broken  # type: ignore[method-assign]
    # Answers that all score: the first save is the first error (with OddBackend's bugs alongside, which
    # error stops the run first would depend on how long scoring takes in its thread). The first commit
    # of a batch is made by a worker (in the run's task group) or, for a batch still open when the
    # last job ends, by the run itself.
    backend = SteadyBackend(exp.backend, exp)
    with pytest.raises((ExceptionGroup, sqlite3.OperationalError)) as info:
        asyncio.run(asyncio.wait_for(_executor(path, store, backend).run(RunOptions(4), "h"), timeout=30))
    error = info.value
    assert isinstance(error, sqlite3.OperationalError) or error.group_contains(sqlite3.OperationalError)
    status = store.conn.execute("SELECT status FROM runs").fetchone()[0]
    assert status == "failed"


def test_the_cli_reports_a_bug_in_one_line_and_shows_the_traceback_under_debug(
        project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import runner.backends
    from runner.backends import register_backend
    from runner.backends.settings import OpenAISettings
    from runner.cli import main

    class BuggyBackend(Backend):
        async def generate(self, request: ChatRequest) -> Completion:
            raise AttributeError("'list' object has no attribute 'get'")

    monkeypatch.setattr(runner.backends, "_REGISTRY", dict(runner.backends._REGISTRY))  # undone after the test
    register_backend("buggy-test", OpenAISettings, BuggyBackend)
    exp = base_experiment()
    exp["backend"] = {**exp["backend"], "kind": "buggy-test"}
    path = str(project.write(exp))
    assert main(["run", path, "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("runner: internal error: AttributeError: 'list' object has no attribute 'get'; this is a bug, "
                       "not your input; finished jobs are stored; run again with --debug for the traceback")
    with pytest.raises(ExceptionGroup) as info:
        main(["--debug", "run", path, "--quiet"])
    assert info.group_contains(AttributeError)
