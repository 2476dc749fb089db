"""A 200 whose message has no content (null or no key) is a server fault: retried, counted as a
retry, and stored as failed with the reason once retries run out; never a successful empty answer.
An answer given another way (tool calls, a refusal, reasoning only) is the model's: stored as "" ."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from conftest import Project, base_experiment
from runner.backends.base import BackendError, ChatRequest
from runner.backends.http import HttpClient
from runner.cli import main
from runner.testing.fakes import FakeOllama, ThreadedApp
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

NULL = "response has no answer: message.content is null"


def _jobs(project: Project) -> list[tuple[str, int, str | None, str | None]]:
    with sqlite3.connect(project.store_path()) as conn:
        return conn.execute("SELECT status, attempts, error, text FROM jobs ORDER BY job_id").fetchall()


def test_null_content_every_time_is_retried_then_stored_as_failed(project: Project) -> None:
    events = project.root / "events.jsonl"
    with ThreadedFaultServer(FaultPlan(rate_null_content=1.0)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["backend"]["max_retries"] = 2
        path = project.write(exp)
        assert main(["run", str(path), "--limit", "1", "--quiet", "--no-report", "--events", str(events)]) == 0
        assert server.stats()["faults"]["null_content"] == 24  # 8 jobs x 3 attempts
    assert _jobs(project) == [("failed", 3, NULL, None)] * 8
    kinds = [json.loads(line)["kind"] for line in events.read_text().splitlines()]
    assert kinds.count("job_retrying") == 16  # counted as retries, like any other server fault


def test_null_content_now_and_then_costs_a_retry_not_an_answer(project: Project) -> None:
    with ThreadedFaultServer(FaultPlan(rate_null_content=0.4, seed=3)) as server:
        exp = base_experiment(f"{server.url}/v1")
        # Which job draws which fault depends on arrival order; with 10 retries a job runs out of them
        # with probability 0.4**11 (4e-5), not 0.4**4 (2.6%, so 19% for the run's 8 jobs).
        exp["backend"]["max_retries"] = 10
        path = project.write(exp)
        assert main(["run", str(path), "--limit", "1", "--quiet", "--no-report"]) == 0
        nulls = server.stats()["faults"]["null_content"]
    rows = _jobs(project)
    assert nulls > 0 and sum(attempts - 1 for _, attempts, _, _ in rows) == nulls
    assert all(status == "ok" and text for status, _, _, text in rows), rows


def _message(**fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", **fields}, "finish_reason": "length"}]}


@pytest.fixture
def answering() -> Iterator[Any]:
    """A server on loopback that answers every chat request with the JSON it is given."""
    holder: dict[str, Any] = {}

    async def chat(_: web.Request) -> web.Response:
        return web.json_response(holder["data"])

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app

    with ThreadedApp(make_app) as server:
        def serve(data: dict[str, Any]) -> str:
            holder["data"] = data
            return f"{server.url}/v1"
        yield serve


REQUEST = ChatRequest("m", [{"role": "user", "content": "Is this config valid?"}], {})


@pytest.mark.parametrize(("data", "text"), [
    (_message(content=None, tool_calls=[{"type": "function", "function": {"name": "f", "arguments": "{}"}}]), ""),
    (_message(content=None, refusal="I cannot help with that."), ""),
    (_message(content=None, reasoning_content="Let me think about the port..."), ""),
    (_message(reasoning="Let me think about the port..."), ""),
    ({"choices": [{"index": 0, "text": "yes", "finish_reason": "stop"}]}, "yes"),
    (_message(content=""), ""),  # an empty answer the server did send: the model's
], ids=["tool-calls", "refusal", "reasoning-content", "reasoning", "completion-text", "empty-string"])
async def test_an_answer_given_another_way_is_the_models(answering: Any, data: dict[str, Any], text: str) -> None:
    client = HttpClient(answering(data), timeout_s=2.0)
    try:
        completion = await client.chat(REQUEST)
    finally:
        await client.close()
    assert completion.text == text


@pytest.mark.parametrize(("data", "message"), [
    (_message(content=None), NULL),
    (_message(), "response has no answer: message.content is missing"),
    (_message(content=None, tool_calls=[], reasoning_content=""), NULL),  # empty: nothing said either way
])
async def test_no_content_and_nothing_else_is_a_retryable_fault(answering: Any, data: dict[str, Any],
                                                                message: str) -> None:
    client = HttpClient(answering(data), timeout_s=2.0)
    try:
        with pytest.raises(BackendError) as info:
            await client.chat(REQUEST)
    finally:
        await client.close()
    assert (str(info.value), info.value.retryable) == (message, True)


class _NoContentOllama(FakeOllama):
    """Ollama's /api/chat with the message's content left out (its shape otherwise as recorded)."""

    async def _chat(self, request: web.Request) -> web.Response:
        answer = json.loads((await super()._chat(request)).text or "{}")
        del answer["message"]["content"]
        return web.json_response(answer)


def test_ollama_without_content_is_the_same_fault(project: Project) -> None:
    fake = _NoContentOllama()
    with ThreadedApp(fake.app) as server:
        exp = base_experiment()
        exp["backend"] = {"kind": "ollama", "base_url": server.url, "max_retries": 1, "retry_backoff_s": 0}
        exp["models"] = [{"name": "smol", "id": "smollm2:135m-instruct-q4_K_M"}]
        path = project.write(exp)
        assert main(["run", str(path), "--limit", "1", "--quiet", "--no-report"]) == 0
    assert len(fake.requests) == 16
    assert _jobs(project) == [("failed", 2, "response has no answer: message.content is missing", None)] * 8
