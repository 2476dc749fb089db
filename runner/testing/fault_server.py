"""A fake OpenAI-compatible server that injects faults on purpose, for tests and benchmarks.

The runner's retry, timeout and bookkeeping logic can only be trusted if it is exercised against a
server that misbehaves in every way a real local server does (rate limits, crashes, dropped
connections, stalls, garbage bodies). Real servers misbehave at random; this one misbehaves
reproducibly: the fault each request gets is drawn from `random.Random(plan.seed)`, one draw per
chat request in arrival order, so a sequential client sees the same faults on every run.

Answers are a pure function of the request body, so a test can predict them (`request_key`,
`answer_text`) and a resumed run can be checked against a fresh one.

Run it standalone with `python -m runner.testing.fault_server --port 0 --rate-429 0.1`; it prints
`listening on http://127.0.0.1:PORT` and serves until SIGTERM/SIGINT. It only ever binds
127.0.0.1: it has no authentication and exists to be abused.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

LOOPBACK = "127.0.0.1"
FAKE_MODEL_ID = "fake-model"

# Order matters: it is the order of the cumulative intervals a draw falls into, so changing it
# changes which request gets which fault for a given seed.
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "reset", "hang", "malformed", "empty_choices")

# Summing seven floats can land a hair above 1.0 (0.1 * 10 is not exactly 1.0); that is not a
# user mistake worth rejecting.
_RATE_SUM_TOLERANCE = 1e-9

# A fake server should stop promptly: waiting the aiohttp default 60 s for a handler stuck in a
# `hang` fault would stall every test teardown.
_SHUTDOWN_TIMEOUT_S = 0.5

_T = TypeVar("_T")


@dataclass
class FaultPlan:
    """How often each fault happens, plus timing knobs. Rates are probabilities per request."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_reset: float = 0.0
    rate_hang: float = 0.0
    rate_malformed: float = 0.0
    rate_empty_choices: float = 0.0
    hang_s: float = 30.0
    retry_after_s: float = 0
    latency_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def rates(self) -> dict[str, float]:
        """Rate per fault kind, in draw order."""
        return {kind: float(getattr(self, _rate_field(kind))) for kind in FAULT_KINDS}

    def validate(self) -> None:
        """Raise ValueError unless every rate is in [0, 1], they sum to at most 1, and times are >= 0."""
        rates = self.rates()
        for kind, rate in rates.items():
            # `not 0 <= rate` also rejects NaN, which would otherwise silently never fire.
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"FaultPlan.{_rate_field(kind)} must be between 0 and 1, got {rate!r}")
        total = sum(rates.values())
        if total > 1.0 + _RATE_SUM_TOLERANCE:
            raise ValueError(f"FaultPlan rates must sum to at most 1, got {total!r} ({rates})")
        for name in ("hang_s", "retry_after_s", "latency_s"):
            value = float(getattr(self, name))
            if not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"FaultPlan.{name} must be a finite number >= 0, got {value!r}")

    def draw(self, rng: random.Random) -> str | None:
        """Pick the fault for one request (None = answer normally), consuming exactly one draw."""
        x = rng.random()
        edge = 0.0
        for kind, rate in self.rates().items():
            edge += rate
            if x < edge:
                return kind
        return None


def _rate_field(kind: str) -> str:
    return "rate_" + kind


def request_key(body: Mapping[str, Any]) -> str:
    """The sha256 hex digest of the canonical JSON of a request body; answers and stats key on it."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def answer_text(key: str) -> str:
    """The assistant message content the server answers for a request with this key."""
    return json.dumps({
        "valid": int(key[:8], 16) % 2 == 0,
        "confidence": 0.9,
        "failures": [],
        "echo": key[:12],
    })


def format_retry_after(seconds: float) -> str:
    """Retry-After value: whole seconds as an integer (what RFC 9110 allows), anything else as given."""
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _count_words(content: Any) -> int:
    if isinstance(content, str):
        return len(content.split())
    # OpenAI's multi-part content: a list of {"type": "text", "text": ...} parts among images etc.
    if isinstance(content, list):
        return sum(_count_words(part.get("text")) for part in content if isinstance(part, dict))
    return 0


def _completion(body: Mapping[str, Any], key: str, *, empty: bool = False) -> dict[str, Any]:
    prompt_tokens = sum(_count_words(m.get("content")) for m in body["messages"] if isinstance(m, dict))
    text = answer_text(key)
    completion_tokens = 0 if empty else _count_words(text)
    choices: list[dict[str, Any]] = [] if empty else [{
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
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
        self.faults: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.by_key: dict[str, dict[str, int]] = {}

    def received(self, key: str, fault: str | None) -> None:
        self.requests += 1
        self.by_key.setdefault(key, {"requests": 0, "answered": 0})["requests"] += 1
        if fault is not None:
            self.faults[fault] += 1

    def answered_one(self, key: str) -> None:
        self.answered += 1
        self.by_key[key]["answered"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "answered": self.answered,
            "faults": dict(self.faults),
            "by_key": copy.deepcopy(self.by_key),
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
        """Clear the counters and restart the fault sequence from `plan.seed`."""
        self._stats = _Stats()
        self._rng = random.Random(self._plan.seed)

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
        fault = plan.draw(self._rng)
        self._stats.received(key, fault)

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
        if fault == "hang":
            await asyncio.sleep(plan.hang_s)

        if plan.latency_s > 0:
            await asyncio.sleep(plan.latency_s)
        self._stats.answered_one(key)
        return web.json_response(_completion(body, key))

    @staticmethod
    def _reset_connection(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.abort()
        # aiohttp insists on a response object; it is never written because the transport is gone.
        return web.Response(status=500)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": FAKE_MODEL_ID, "object": "model"}]})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"status": "ok"})


class ThreadedFaultServer:
    """A FaultServer on its own event loop in a daemon thread, for synchronous callers.

    Tests that run the CLI in a subprocess need the server alive while the test itself blocks;
    use it as a context manager: `with ThreadedFaultServer(plan) as server: ... server.url ...`.
    """

    _START_TIMEOUT_S = 10.0

    def __init__(self, plan: FaultPlan | None = None, *, port: int = 0) -> None:
        self._server = FaultServer(plan)
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("ThreadedFaultServer is not running")
        return self._url

    def start(self) -> str:
        if self._thread is not None:
            raise RuntimeError("ThreadedFaultServer is already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fault-server", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._url = self._call(self._server.start(port=self._port), timeout=self._START_TIMEOUT_S)
        except BaseException:
            self._shutdown_loop()
            raise
        return self._url

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            self._call(self._server.stop(), timeout=self._START_TIMEOUT_S)
        finally:
            self._url = None
            self._shutdown_loop()

    def stats(self) -> dict[str, Any]:
        return self._call(self._async(lambda: self._server.stats))

    def reset(self) -> None:
        self._call(self._async(self._server.reset))

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan (validated; restarts the fault sequence from `plan.seed`)."""

        def assign() -> None:
            self._server.plan = plan

        self._call(self._async(assign))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @staticmethod
    async def _async(fn: Callable[[], _T]) -> _T:
        # Counters and the RNG are only touched on the server's loop, so they need no lock.
        return fn()

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float = 5.0) -> _T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("ThreadedFaultServer is not running")
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=self._START_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()


def _parse_args(argv: Sequence[str] | None) -> tuple[FaultPlan, int]:
    parser = argparse.ArgumentParser(
        prog="python -m runner.testing.fault_server",
        description=f"Fake OpenAI-compatible server with injected faults (binds {LOOPBACK} only).",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    for f in fields(FaultPlan):
        flag = "--" + f.name.replace("_", "-")
        kind = int if f.name == "seed" else float
        parser.add_argument(flag, dest=f.name, type=kind, default=f.default)
    args = parser.parse_args(argv)
    try:
        plan = FaultPlan(**{f.name: getattr(args, f.name) for f in fields(FaultPlan)})
    except ValueError as exc:
        parser.error(str(exc))
    return plan, int(args.port)


async def _serve(plan: FaultPlan, port: int) -> None:
    server = FaultServer(plan)
    url = await server.start(port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Flushed because the parent usually reads this line through a pipe to learn the port.
    print(f"listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    plan, port = _parse_args(argv)
    asyncio.run(_serve(plan, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
