"""HttpClient against the real fault server: every transport fault is a BackendError, rightly retryable.

Nothing else may leave the client (no aiohttp, socket or JSON error): the executor retries only
`BackendError.retryable` and files any other exception as an internal error of that one job.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from conftest import Project, base_experiment
from runner.backends import Backend, create_backend, wire
from runner.backends.base import BackendError, ChatRequest
from runner.backends.http import HttpClient, MalformedBody, _parse_completion, failure_name
from runner.config.loader import load_experiment
from runner.errors import BackendUnavailable
from runner.execution.retry import RetryPolicy, call_with_retries
from runner.plan.planner import build_plan
from runner.testing.fault_server import FAKE_MODEL_ID, FaultPlan, ThreadedFaultServer

REQUEST = ChatRequest(FAKE_MODEL_ID, [{"role": "user", "content": "Is this config valid?"}], {"seed": 1})


@pytest.fixture
async def client(fault_server: ThreadedFaultServer) -> AsyncIterator[HttpClient]:
    c = HttpClient(f"{fault_server.url}/v1", timeout_s=2.0)
    yield c
    await c.close()


async def failure(call: Any) -> BackendError:
    """The BackendError an awaitable raises; anything else it raises fails the test."""
    with pytest.raises(BackendError) as info:
        await call
    return info.value


def aiohttp_only(client: HttpClient) -> HttpClient:
    """The client as it talks to an https server (or follows a redirect): through aiohttp's session."""
    client._wire = None
    return client


# (fault, retryable, what the message starts with, the transport error behind it: the lean client's
# for plain http, aiohttp's for the rest)
FAULTS = [
    ("rate_429", True, "HTTP 429", None),
    ("rate_500", True, "HTTP 500", None),
    ("rate_503", True, "HTTP 503", None),
    ("rate_reset", True, "connection error", (wire.ServerDisconnected, aiohttp.ClientConnectionError)),
    ("rate_malformed", True, "malformed response body", (json.JSONDecodeError, json.JSONDecodeError)),
    ("rate_truncated", True, "truncated response body", (wire.TruncatedBody, aiohttp.ClientPayloadError)),
    ("rate_garbage", True, "garbled response", (wire.GarbledResponse, aiohttp.ClientResponseError)),
    ("rate_empty_choices", False, "response had no choices", None),
    ("rate_echo_headers", True, "HTTP 500", None),
    ("rate_404", False, "HTTP 404", None),
    # 8 MiB against the default cap of 4 MiB.
    ("rate_huge", False, "response body larger than 4 MiB (backend.max_response_bytes)", None),
    ("rate_null_content", True, "response has no answer: message.content is null", None),
]


@pytest.mark.parametrize("transport", ["wire", "aiohttp"])
@pytest.mark.parametrize(("rate", "retryable", "message", "causes"), FAULTS, ids=[f[0][5:] for f in FAULTS])
async def test_each_fault_is_a_classified_backend_error(fault_server: ThreadedFaultServer, client: HttpClient,
                                                        rate: str, retryable: bool, message: str,
                                                        causes: tuple[type[BaseException], type[BaseException]] | None,
                                                        transport: str) -> None:
    if transport == "aiohttp":
        aiohttp_only(client)
    fault_server.set_plan(FaultPlan(**{rate: 1.0}))
    error = await failure(client.chat(REQUEST))
    assert error.retryable is retryable
    assert str(error).startswith(message), str(error)
    assert "\n" not in str(error)  # one line, as stored with the job and shown in reports
    if causes is not None:
        cause = causes[0] if transport == "wire" else causes[1]
        assert isinstance(error.__cause__, cause), repr(error.__cause__)
    assert fault_server.stats()["requests"] == 1
    assert client._session is None if transport == "wire" else client._session is not None  # which one sent it


async def test_429_and_503_carry_retry_after(fault_server: ThreadedFaultServer, client: HttpClient) -> None:
    for rate in ("rate_429", "rate_503"):
        fault_server.set_plan(FaultPlan(**{rate: 1.0}, retry_after_s=3))
        error = await failure(client.chat(REQUEST))
        assert (error.status, error.retry_after) == (int(rate[5:]), 3.0)


async def test_a_hang_past_the_timeout_is_a_retryable_timeout(fault_server: ThreadedFaultServer) -> None:
    fault_server.set_plan(FaultPlan(rate_hang=1.0, hang_s=5.0))
    client = HttpClient(f"{fault_server.url}/v1", timeout_s=0.2)
    try:
        error = await failure(client.chat(REQUEST))
    finally:
        await client.close()
    assert error.retryable and str(error) == "timed out after 0.2 s"
    assert isinstance(error.__cause__, TimeoutError)  # asyncio.TimeoutError is TimeoutError


async def test_a_malformed_body_is_its_own_kind(fault_server: ThreadedFaultServer, client: HttpClient) -> None:
    fault_server.set_plan(FaultPlan(rate_malformed=1.0))
    error = await failure(client.chat(REQUEST))
    assert isinstance(error, MalformedBody) and error.status is None


@pytest.mark.parametrize(("call", "status"), [
    (lambda c: c.post_json("/chat/completions", {"messages": []}), 400),   # no model: the server refuses
    (lambda c: c.post_json("/no/such/route", {}), 404),
    (lambda c: c.get_json("/chat/completions"), 405),
])
async def test_4xx_other_than_429_are_final(client: HttpClient, call: Any, status: int) -> None:
    error = await failure(call(client))
    assert not error.retryable and error.status == status
    assert str(error).startswith(f"HTTP {status}") and failure_name(error) == f"HTTP {status}"


async def test_a_closed_port_is_a_retryable_connection_error() -> None:
    with ThreadedFaultServer(FaultPlan()) as server:
        url = server.url
    client = HttpClient(f"{url}/v1", timeout_s=2.0)
    try:
        for call in (client.chat(REQUEST), client.get_json("/models")):
            error = await failure(call)
            assert error.retryable and str(error).startswith("connection error: ConnectionRefusedError: ")
            assert isinstance(error.__cause__, ConnectionRefusedError)
            assert failure_name(error) == "ConnectionRefusedError"
    finally:
        await client.close()


@pytest.mark.parametrize("base_url", ["not-a-url", "http://127.0.0.1:99999/v1", "ftp://127.0.0.1/v1"])
async def test_a_url_that_cannot_work_is_final(base_url: str) -> None:
    client = HttpClient(base_url, timeout_s=2.0)
    try:
        error = await failure(client.chat(REQUEST))
    finally:
        await client.close()
    assert not error.retryable and str(error).startswith("request error")


@pytest.mark.parametrize("body", [b"", b"\xff\xfe not utf-8", b"[1, 2", b"<html>hello</html>"])
async def test_get_json_turns_a_non_json_body_into_malformed_body(body: bytes) -> None:
    async def page(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/page", page)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = HttpClient(str(server.make_url("")), timeout_s=2.0)
    try:
        error = await failure(client.get_json("/page"))
    finally:
        await client.close()
        await server.close()
    assert isinstance(error, MalformedBody) and error.retryable


class _FailingSession:
    """Stands in for the aiohttp session where a real socket cannot be made to fail this way."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def request(self, *_: Any, **__: Any) -> Any:
        raise self.exc

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(("exc", "retryable"), [
    (ConnectionResetError(104, "Connection reset by peer"), True),   # an OSError aiohttp did not wrap
    (BrokenPipeError(32, "Broken pipe"), True),
    (OSError(113, "No route to host"), True),
    (TimeoutError(), True),
    (aiohttp.ServerDisconnectedError(), True),
    (aiohttp.ClientOSError(111, "Connection refused"), True),
    (aiohttp.ServerTimeoutError("read timed out"), True),
    (aiohttp.ClientPayloadError("Response payload is not completed"), True),
    (aiohttp.ClientConnectionError("connection lost"), True),
    (aiohttp.InvalidURL("http://[::1"), False),
])
async def test_every_transport_error_is_mapped(exc: BaseException, retryable: bool) -> None:
    client = aiohttp_only(HttpClient("http://127.0.0.1:9/v1", timeout_s=2.0))
    client._session = _FailingSession(exc)  # type: ignore[assignment]
    for call in (client.chat(REQUEST), client.get_json("/models")):
        error = await failure(call)
        assert error.retryable is retryable and error.__cause__ is exc
        assert "\n" not in str(error)


@pytest.mark.parametrize("data", [{"choices": ["just text"]}, {"choices": [{"message": "hi"}]}, [1, 2],
                                  {"choices": {"0": {}}}])
def test_json_of_the_wrong_shape_is_a_final_backend_error(data: Any) -> None:
    with pytest.raises(BackendError) as info:
        _parse_completion({}, data)
    assert not info.value.retryable


async def test_retries_follow_the_classification(fault_server: ThreadedFaultServer, client: HttpClient) -> None:
    # Retryable transport faults are sent again (1 + 2 retries); a final error is sent once.
    policy = RetryPolicy(max_retries=2, backoff_s=0, max_backoff_s=0)
    for rate in ("rate_truncated", "rate_garbage", "rate_reset"):
        fault_server.set_plan(FaultPlan(**{rate: 1.0}))
        fault_server.reset()
        await failure(call_with_retries(lambda: client.chat(REQUEST), policy))
        assert fault_server.stats()["requests"] == 3, rate
    fault_server.set_plan(FaultPlan(rate_empty_choices=1.0))
    fault_server.reset()
    await failure(call_with_retries(lambda: client.chat(REQUEST), policy))
    assert fault_server.stats()["requests"] == 1


async def test_after_a_transient_fault_the_retry_gets_the_answer(fault_server: ThreadedFaultServer,
                                                                 client: HttpClient) -> None:
    # Seed 1 draws 0.13 then 0.85: a truncated body first, then the answer.
    fault_server.set_plan(FaultPlan(rate_truncated=0.5, seed=1))
    completion, attempts = await call_with_retries(lambda: client.chat(REQUEST),
                                                   RetryPolicy(max_retries=5, backoff_s=0, max_backoff_s=0))
    assert attempts == 2 and json.loads(completion.text)["confidence"] == 0.9
    stats = fault_server.stats()
    assert stats["faults"]["truncated"] == 1 and stats["answered"] == 1


# The callers that tell failures apart: what answers without /api/v0 is an older LM Studio; what does
# not answer at all stops the run.


def _lmstudio(project: Project, base_url: str) -> Backend:
    exp = base_experiment(f"{base_url}/v1")
    exp["backend"]["kind"] = "lmstudio"
    return create_backend(load_experiment(str(project.write(exp))))


async def test_lmstudio_without_api_v0_falls_back_to_v1_models(fault_server: ThreadedFaultServer,
                                                                project: Project) -> None:
    backend = _lmstudio(project, fault_server.url)  # the fault server has /v1/models, no /api/v0 (404)
    await backend.start()
    try:
        [variant] = build_plan(backend.experiment).variants()
        async with backend.serve(variant) as info:
            assert info.details == {"model_id": FAKE_MODEL_ID, "listed": True, "n_ctx_per_slot": None,
                                    "n_ctx_train": None, "size_bytes": None, "quantization": None}
    finally:
        await backend.close()


async def test_lmstudio_that_stops_answering_is_backend_unavailable(project: Project) -> None:
    with ThreadedFaultServer(FaultPlan()) as server:
        backend = _lmstudio(project, server.url)
        await backend.start()
        server.stop()  # gone between start() and serve()
        try:
            [variant] = build_plan(backend.experiment).variants()
            with pytest.raises(BackendUnavailable, match=r"stopped answering .* \(ConnectionRefusedError\)"):
                async with backend.serve(variant):
                    pytest.fail("serve() yielded for a server that is gone")
        finally:
            await backend.close()


async def test_first_contact_names_what_went_wrong(fault_server: ThreadedFaultServer, tmp_path: Path) -> None:
    client = HttpClient(f"{fault_server.url}/v1", timeout_s=2.0)
    with pytest.raises(BackendUnavailable, match=r"cannot reach the fake \(HTTP 404\)"):
        await client.first_contact("/nothing-here", what="the fake", config_file=tmp_path / "x.yaml",
                                   fix="start it", fix_not_json="point at the API")
    assert client._session is None  # closed on failure
