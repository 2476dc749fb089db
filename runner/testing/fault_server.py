"""A fake OpenAI-compatible server that injects faults on purpose, for tests and benchmarks.

The runner's retry, timeout and bookkeeping logic can only be trusted if it is exercised against a
server that misbehaves in every way a real local server does (rate limits, crashes, dropped
connections, stalls, cut-off and garbage bodies, answers that are not HTTP). Real servers misbehave
at random; this one misbehaves reproducibly: the fault each request gets is drawn from
`random.Random(plan.seed)`, one draw per chat request in arrival order, so a sequential client sees
the same faults on every run.

Answers are a pure function of the request body, so a test can predict them (`request_key`,
`answer_text`) and a resumed run can be checked against a fresh one.

Run it standalone with `python -m runner.testing.fault_server --port 0 --rate-429 0.1`; it prints
`listening on http://127.0.0.1:PORT` and serves until SIGTERM/SIGINT. It only ever binds
127.0.0.1: it has no authentication and exists to be abused.

The code is split in three: `fault_plan` (the plan, the fault draw and the answers), `fault_http`
(`FaultServer`, the aiohttp app) and this module (`ThreadedFaultServer`, the command line), which
also re-exports the public names of the other two.
"""


from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import fields
from types import TracebackType
from typing import Any, Self, TypeVar

from runner.testing.fault_http import FaultServer
from runner.testing.fault_plan import (
    FAKE_MODEL_ID,
    FAULT_KINDS,
    LOOPBACK,
    FaultPlan,
    ScriptRule,
    answer_text,
    format_retry_after,
    request_key,
)

__all__ = [
    "FAKE_MODEL_ID",
    "FAULT_KINDS",
    "LOOPBACK",
    "FaultPlan",
    "FaultServer",
    "ScriptRule",
    "ThreadedFaultServer",
    "answer_text",
    "format_retry_after",
    "main",
    "request_key",
]

_T = TypeVar("_T")


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

    def wait_held(self, count: int = 1, timeout: float = 60.0) -> None:
        """Block until `count` requests have been held (see `FaultPlan.hold_after`); TimeoutError after `timeout`."""
        self._call(self._server.wait_held(count), timeout=timeout)

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
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()  # or the coroutine would run on, unawaited, on the server's loop
            raise

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
    scalars = [f for f in fields(FaultPlan) if f.name not in ("script", "rules", "record_bodies", "model_id")]
    for f in scalars:
        flag = "--" + f.name.replace("_", "-")
        kind = int if f.name in ("seed", "hold_after", "huge_bytes") else float
        parser.add_argument(flag, dest=f.name, type=kind, default=f.default)
    parser.add_argument("--script", type=json.loads, default={},
                        help='scripted answers as JSON: {"prompt substring": ["text", "stop" or "length"]}')
    parser.add_argument("--rules", type=json.loads, default=[],
                        help='scripted answers matched on request parameters too, as JSON: '
                             '[{"params": {"temperature": 0.7}, "prompt": "substring", "answer": ["text", "stop"]}]')
    parser.add_argument("--record-bodies", action="store_true", help="keep every request body in /_stats")
    parser.add_argument("--model-id", default=FAKE_MODEL_ID, help="the model /v1/models lists")
    args = parser.parse_args(argv)
    try:
        rules = [ScriptRule(answer=tuple(r["answer"]), params=r.get("params", {}), prompt=r.get("prompt", ""))
                 for r in args.rules]
        plan = FaultPlan(**{f.name: getattr(args, f.name) for f in scalars}, script=args.script, rules=rules,
                         record_bodies=args.record_bodies, model_id=args.model_id)
    except (ValueError, KeyError, TypeError) as exc:
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
