"""A response body is read up to `backend.max_response_bytes` and no further: a larger answer fails
its job at once (asking again gets the same), one just under the cap is an answer like any other."""

from __future__ import annotations

import json
import sqlite3

import pytest
from aiohttp import web

from conftest import Project, base_experiment
from runner.backends.base import BackendError, ChatRequest
from runner.backends.http import HttpClient
from runner.cli import main
from runner.store import Store
from runner.testing.fakes import ThreadedApp
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


LONG = '{"valid": true, "confidence": 0.9, "failures": [], "note": "' + "n" * 5000 + '"}'


def test_the_answer_is_stored_once_and_the_raw_response_reads_back_whole(project: Project) -> None:
    with ThreadedFaultServer(FaultPlan(script={"Validate": (LONG, "stop")})) as server:
        path = project.write(base_experiment(f"{server.url}/v1"))
        assert main(["run", str(path), "--limit", "1", "--quiet", "--no-report"]) == 0
    store = Store.open_readonly(project.store_path())
    assert store is not None
    try:
        rows = store.conn.execute("SELECT job_id, text, response_json FROM jobs").fetchall()
        assert len(rows) == 8 and sum(text == LONG for _, text, _ in rows) == 4  # prompt a says "Validate"
        for job_id, text, raw in rows:
            response = store.response(job_id)
            assert response["choices"][0]["message"]["content"] == text
            assert response["usage"]["completion_tokens"] > 0 and response["model"] == "fake-model"
            if text == LONG:
                assert LONG not in raw and len(raw) < 500  # only the marker where the text stood
                assert json.loads(raw)["choices"][0]["message"]["content"] == {"$ref": "jobs.text"}
    finally:
        store.close()


async def test_an_error_page_over_the_cap_is_still_its_status() -> None:
    # A 500 with a 10 MB error page is the server's trouble (retryable), not an answer too large to keep.
    async def chat(_: web.Request) -> web.Response:
        return web.Response(status=500, text="<html>" + "oops " * 2_000_000 + "</html>")

    def make() -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app

    with ThreadedApp(make) as server:
        client = HttpClient(f"{server.url}/v1", timeout_s=5.0, max_response_bytes=CAP)
        try:
            with pytest.raises(BackendError) as info:
                await client.chat(ChatRequest("m", [{"role": "user", "content": "hi"}], {}))
        finally:
            await client.close()
    error = info.value
    assert (error.status, error.retryable) == (500, True)
    assert str(error) == "HTTP 500: <html>" + "oops " * 58 + "oops"  # the first 300 characters, stripped
