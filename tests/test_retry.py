"""The retry policy: what is retried, how long it waits, and the HTTP client's classification."""

from __future__ import annotations

import random

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from runner.backends.base import BackendError, ChatRequest
from runner.backends.http import HttpClient
from runner.execution.retry import RetryPolicy, call_with_retries


def test_retry_after_is_honoured_within_the_cap() -> None:
    policy = RetryPolicy(max_retries=3, backoff_s=1.0, max_backoff_s=10.0)
    assert policy.wait_s(1, BackendError("429", retryable=True, retry_after=7.0)) == 7.0
    assert policy.wait_s(1, BackendError("429", retryable=True, retry_after=60.0)) == 10.0


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=5.0, rng=random.Random(3))
    error = BackendError("503", retryable=True)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        waits = [policy.wait_s(retry, error) for _ in range(200)]
        assert min(waits) >= 0 and max(waits) <= ceiling
        assert max(waits) > 0.8 * ceiling  # really spread up to the ceiling, not a constant


def test_zero_backoff_means_no_wait() -> None:
    assert RetryPolicy(backoff_s=0, max_backoff_s=0).wait_s(5, BackendError("x", retryable=True)) == 0.0


async def _serve(statuses: list[int], headers: dict[str, str] | None = None) -> tuple[TestServer, list[int]]:
    seen: list[int] = []

    async def chat(request: web.Request) -> web.Response:
        status = statuses[min(len(seen), len(statuses) - 1)]
        seen.append(status)
        if status != 200:
            return web.json_response({"error": "nope"}, status=status, headers=headers)
        return web.json_response({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 1}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server, seen


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_4xx_are_never_retried(status: int) -> None:
    server, seen = await _serve([status, 200])
    client = HttpClient(str(server.make_url("/v1")), timeout_s=2)
    try:
        with pytest.raises(BackendError) as info:
            await call_with_retries(lambda: client.chat(ChatRequest("m", [], {})), RetryPolicy(3, 0, 0))
    finally:
        await client.close()
        await server.close()
    assert seen == [status]
    assert not info.value.retryable and str(info.value).startswith(f"HTTP {status}")


@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_429_and_5xx_are_retried_until_success(status: int) -> None:
    server, _ = await _serve([status, status, 200], headers={"Retry-After": "2"})
    client = HttpClient(str(server.make_url("/v1")), timeout_s=2)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    try:
        completion, attempts = await call_with_retries(
            lambda: client.chat(ChatRequest("m", [], {})), RetryPolicy(3, 0.5, 30), sleep=record)
    finally:
        await client.close()
        await server.close()
    assert completion.text == "ok" and attempts == 3
    assert waits == [2.0, 2.0]  # the server's Retry-After, not the policy's backoff


async def test_retries_give_up_after_max_retries() -> None:
    server, seen = await _serve([503])
    client = HttpClient(str(server.make_url("/v1")), timeout_s=2)
    try:
        with pytest.raises(BackendError, match="HTTP 503"):
            await call_with_retries(lambda: client.chat(ChatRequest("m", [], {})), RetryPolicy(2, 0, 0))
    finally:
        await client.close()
        await server.close()
    assert len(seen) == 3
