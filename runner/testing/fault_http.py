"""The fault-injecting server itself: an aiohttp app run on the caller's event loop.

See `runner.testing.fault_server` for what it is for; the plan and the answers live in `fault_plan`,
the threaded wrapper and the command line in `fault_server`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from runner.testing.fault_plan import (
    FAULT_KINDS,
    LOOPBACK,
    FaultPlan,
    answer_text,
    format_retry_after,
    request_key,
)

# A fake server should stop promptly: waiting the aiohttp default 60 s for a handler stuck in a
# `hang` fault would stall every test teardown.
_SHUTDOWN_TIMEOUT_S = 0.5


def _count_words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    # OpenAI's multi-part content: a list of {"type": "text", "text": ...} parts among images etc.
    if isinstance(content, list):
        return sum(_count_words(part.get("text")) for part in content if isinstance(part, dict))
    return 0


def _completion(body: Mapping[str, Any], key: str, *, empty: bool = False,
                scripted: tuple[str, str] | None = None) -> dict[str, Any]:
    prompt_tokens = sum(_count_words(m.get("content")) for m in body["messages"] if isinstance(m, dict))
    text, finish_reason = scripted if scripted is not None else (answer_text(key), "stop")
    completion_tokens = 0 if empty else _count_words(text)
    choices: list[dict[str, Any]] = [] if empty else [{
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": finish_reason,
    }]
    return {
        "id": "chatcmpl-fake-" + key[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error(status: int, message: str, err_type: str,
           headers: Mapping[str, str] | None = None) -> web.Response:
    # The OpenAI error envelope, so clients exercise the same parsing path as against real servers.
    payload = {"error": {"message": message, "type": err_type, "code": status}}
    return web.json_response(payload, status=status, headers=headers)


class _Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.answered = 0
        self.held = 0
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.by_key: dict[str, dict[str, int]] = {}
        self.bodies: list[dict[str, Any]] = []  # with FaultPlan.record_bodies

    def received(self, key: str, fault: str | None) -> None:
        self.requests += 1
        self.by_key.setdefault(key, {"requests": 0, "answered": 0})["requests"] += 1
        if fault is not None:
            self.faults[fault] += 1

    def held_one(self) -> None:
        self.held += 1

    def answered_one(self, key: str) -> None:
        self.answered += 1
        self.by_key[key]["answered"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "held": self.held,
            "faults": dict(self.faults),
            "by_key": copy.deepcopy(self.by_key),
            "bodies": copy.deepcopy(self.bodies),
        }


class FaultServer:
    """The fault-injecting server, run on the caller's event loop.

    Assigning `plan` validates it and reseeds the fault sequence from `plan.seed`; mutating fields
    of the current plan in place takes effect on the next request without reseeding.
    """

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self._plan = plan if plan is not None else FaultPlan()
        self._plan.validate()
        self._rng = random.Random(self._plan.seed)
        self._stats = _Stats()
        # Held requests wait for this event; reset() and stop() set it and start a fresh one.
        self._release = asyncio.Event()
        self._held_changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        plan.validate()
        self._plan = plan
        self._rng = random.Random(plan.seed)

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot (a copy) of the counters, shaped like GET /_stats."""
        return self._stats.as_dict()

    def reset(self) -> None:
        """Clear the counters, restart the fault sequence from `plan.seed` and drop held requests."""
        self._stats = _Stats()
        self._rng = random.Random(self._plan.seed)
        self._release_held()

    async def wait_held(self, count: int = 1) -> None:
        """Return once `count` requests have been held (see `FaultPlan.hold_after`) since the last reset."""
        async with self._held_changed:
            await self._held_changed.wait_for(lambda: self._stats.held >= count)

    def _release_held(self) -> None:
        self._release.set()
        self._release = asyncio.Event()

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/_stats", self._get_stats)
        app.router.add_post("/_reset", self._post_reset)
        return app

    async def start(self, host: str = LOOPBACK, port: int = 0) -> str:
        """Serve on host:port (port 0 picks a free one) and return the base URL."""
        if host != LOOPBACK:
            raise ValueError(f"FaultServer only binds {LOOPBACK} (it is unauthenticated), got host={host!r}")
        if self._runner is not None:
            raise RuntimeError("FaultServer is already started")
        # handler_cancellation: a client that gives up on a hanging request closes its connection;
        # cancelling the handler then keeps the sleep from running on and being counted as answered.
        runner = web.AppRunner(self.make_app(), access_log=None, handler_cancellation=True,
                               shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        self._release_held()  # or the shutdown would wait for held handlers
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self.url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        # Malformed client requests are the client's bug, not an injected fault: they get a 400,
        # take no draw (so they do not shift the fault sequence) and are not counted.
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "request body is not valid JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", "invalid_request_error")
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
            return _error(400, "request body needs 'model' (string) and 'messages' (list)",
                          "invalid_request_error")

        plan = self._plan
        key = request_key(body)
        if plan.hold_after is not None and self._stats.requests >= plan.hold_after:
            return await self._hold(request, key)
        fault = plan.draw(self._rng)
        self._stats.received(key, fault)
        if plan.record_bodies:
            self._stats.bodies.append(body)

        if fault in ("429", "503"):
            status = int(fault)
            message = "rate limited (injected)" if status == 429 else "overloaded (injected)"
            err_type = "rate_limit_error" if status == 429 else "server_error"
            headers = {"Retry-After": format_retry_after(plan.retry_after_s)}
            return _error(status, message, err_type, headers)
        if fault == "500":
            return _error(500, "internal error (injected)", "server_error")
        if fault == "reset":
            return self._reset_connection(request)
        if fault == "malformed":
            # A body cut off mid-object, like a server dying mid-write: a prefix of a JSON object
            # that stops before its closing brace is never valid JSON.
            full = json.dumps(_completion(body, key))
            return web.Response(status=200, text=full[: len(full) // 2], content_type="application/json")
        if fault == "empty_choices":
            return web.json_response(_completion(body, key, empty=True))
        if fault == "truncated":
            # The headers promise the whole body, half of it arrives, then the connection closes: a
            # server dying mid-write, which the client sees as an incomplete payload, not as bad JSON.
            payload = json.dumps(_completion(body, key)).encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                    "\r\n").encode()
            return self._write_raw(request, head + payload[: len(payload) // 2])
        if fault == "garbage":
            # Not HTTP at all: another protocol on the port, or a proxy that mangled the answer.
            return self._write_raw(request, b"\x00\xffnot an HTTP response\r\n\r\n")
        if fault == "echo_headers":
            # What a debug error page does: the request's headers, the API key among them, and a
            # complaint that quotes the key bare, as "invalid API key: ..." answers do.
            headers = dict(request.headers)
            token = headers.get("Authorization", "").removeprefix("Bearer ")
            return _error(500, f"invalid API key {token}; request headers: {json.dumps(headers)}", "server_error")
        if fault == "404":
            return _error(404, f"model {body['model']!r} not found (injected)", "invalid_request_error")
        if fault == "null_content":
            completion = _completion(body, key)
            completion["choices"][0]["message"]["content"] = None
            return web.json_response(completion)
        if fault == "huge":
            return await self._huge(request, body, key, plan.huge_bytes)
        if fault == "hang":
            await asyncio.sleep(plan.hang_s)

        if plan.latency_s > 0:
            await asyncio.sleep(plan.latency_s)
        self._stats.answered_one(key)
        return web.json_response(_completion(body, key, scripted=plan.scripted(body)))

    async def _hold(self, request: web.Request, key: str) -> web.StreamResponse:
        release = self._release
        self._stats.received(key, None)
        self._stats.held_one()
        async with self._held_changed:
            self._held_changed.notify_all()
        await release.wait()
        return self._reset_connection(request)

    @staticmethod
    async def _huge(request: web.Request, body: Mapping[str, Any], key: str, size: int) -> web.StreamResponse:
        """A valid chat completion of about `size` bytes, chunked: a client learns its size only by reading."""
        completion = _completion(body, key)
        completion["choices"][0]["message"]["content"] = "\0"
        head, tail = json.dumps(completion).encode().split(b"\\u0000")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        filler = max(0, size - len(head) - len(tail))
        chunk = b"x" * 65536
        try:
            await resp.write(head)
            for start in range(0, filler, len(chunk)):
                await resp.write(chunk[: filler - start])
            await resp.write(tail)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading (its cap) and closed the connection: as intended
        return resp

    @staticmethod
    def _reset_connection(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # aiohttp insists on a response object; it is never written because the transport is gone.
        return web.Response(status=500)

    @staticmethod
    def _write_raw(request: web.Request, data: bytes) -> web.StreamResponse:
        """Bytes of our choosing on the socket, then close it (after they are flushed)."""
        transport = request.transport
        if transport is not None:
            transport.write(data)
            transport.close()
        # As in _reset_connection: never written, the transport is closing.
        return web.Response(status=500)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self._plan.model_id, "object": "model"}]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"status": "ok"})
