"""A server that answers 404 on the chat endpoint while /v1/models works (a wrong base_url path, a model
id it does not have): the run stops after the first answers, stores what finished, says what to
check in one line and exits 2. Anything short of "all the same client error" runs on."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from http import HTTPStatus

import pytest
from aiohttp import web

from conftest import Project, base_experiment
from runner.cli import main
from runner.testing.fakes import ThreadedApp
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

CONCURRENCY = 4


def _statuses(project: Project) -> list[str]:
    with sqlite3.connect(project.store_path()) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM jobs")]


def _runs(project: Project) -> list[str]:
    with sqlite3.connect(project.store_path()) as conn:
        return [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY id")]


def _line(count: int, url: str) -> str:
    return (f"runner: $EXP: backend.base_url: the first {count} requests all failed with HTTP 404 Not Found from "
            f"{url}/v1/chat/completions (model 'fake-model' not found (injected)); check backend.base_url and the "
            "model's id (models.0.id: fake-model)")


def test_the_first_8_answers_all_404_stop_the_run_with_one_line(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(FaultPlan(rate_404=1.0)) as server:
        path = project.write(base_experiment(f"{server.url}/v1"))  # 48 jobs
        code = main(["run", str(path), "--quiet"])
        sent, url = server.stats()["requests"], server.url
    assert code == 2
    assert capsys.readouterr().err == _line(8, url).replace("$EXP", str(path)) + "\n"
    # Stopped sending: the 8, and at most what the other workers had in flight when the 8th came back.
    assert 8 <= sent < 8 + CONCURRENCY
    statuses = _statuses(project)
    assert 8 <= len(statuses) <= sent and set(statuses) == {"failed"}
    assert _runs(project) == ["failed"]


def test_a_variant_with_fewer_jobs_stops_once_all_of_them_failed(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(FaultPlan(rate_404=1.0)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp.update(repeats=1, sampling={"temperature": 0.0, "max_tokens": 16})
        path = project.write(exp)  # 1 item x 2 prompts x 1 temperature x 1 repeat
        code = main(["run", str(path), "--limit", "1", "--quiet"])
        url = server.url
    assert code == 2
    assert capsys.readouterr().err == _line(2, url).replace("$EXP", str(path)) + "\n"
    assert _statuses(project) == ["failed", "failed"]


@pytest.mark.parametrize("plan", [
    FaultPlan(rate_404=0.5, seed=1),  # some answers among the 404s
    FaultPlan(rate_404=0.5, rate_500=0.5, seed=1),  # 404s and 500s: not one error
], ids=["404-and-answers", "404-and-500"])
def test_mixed_first_answers_run_on(project: Project, plan: FaultPlan) -> None:
    with ThreadedFaultServer(plan) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["backend"]["max_retries"] = 0
        path = project.write(exp)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        assert server.stats()["requests"] == 48
    assert len(_statuses(project)) == 48 and _runs(project) == ["finished"]


def test_a_retryable_error_every_time_is_no_reason_to_stop(project: Project) -> None:
    # 500s are the server's trouble, not the request's: every job is tried (and stored failed).
    with ThreadedFaultServer(FaultPlan(rate_500=1.0)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["backend"]["max_retries"] = 0
        path = project.write(exp)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    assert _statuses(project) == ["failed"] * 48


def _refusing(status: int, message: str) -> Callable[[], web.Application]:
    """An OpenAI-style server whose model list works and whose chat endpoint answers `status`, always."""
    async def models(_: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def chat(_: web.Request) -> web.Response:
        return web.json_response({"error": {"message": message, "code": status}}, status=status)

    def make() -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/chat/completions", chat)
        return app
    return make


@pytest.mark.parametrize(("status", "said", "key", "fix"), [
    (401, "Incorrect API key provided", "backend.api_key_env",
     "check the API key (backend.api_key_env) and backend.base_url"),
    (400, "Unsupported parameter: 'seed'", "backend.base_url",
     "check backend.base_url, the model's id (models.0.id: fake-model) and the sampling parameters"),
], ids=["401", "400"])
def test_what_to_check_depends_on_the_status(project: Project, capsys: pytest.CaptureFixture[str], status: int,
                                             said: str, key: str, fix: str) -> None:
    with ThreadedApp(_refusing(status, said)) as server:
        path = project.write(base_experiment(f"{server.url}/v1"))
        assert main(["run", str(path), "--quiet"]) == 2
        phrase = HTTPStatus(status).phrase
        assert capsys.readouterr().err == (
            f"runner: {path}: {key}: the first 8 requests all failed with HTTP {status} {phrase} from "
            f"{server.url}/v1/chat/completions ({said}); {fix}\n")
