"""Blocking calls off the event loop, in daemon threads, each with a time limit.

Scorers are the user's code (a `python` scorer, a regex, a sandbox started per answer): any of them
can run for ever. On the event loop one would freeze the run and make it deaf to SIGTERM; in the
loop's default executor (`asyncio.to_thread`) it would hang the exit instead, because that executor
is joined when the loop closes and its threads again when the interpreter exits. Daemon threads
are never joined: a call that passes its limit is abandoned (the job fails, the run goes on) and
its thread ends with the process.

Python cannot kill a thread, so an abandoned call keeps its CPU. They are counted, and when
`max_stuck` are still running the next call raises `TooManyStuck`: the run stops with one line
instead of piling up spinning threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

MAX_STUCK = 4


class CallTimedOut(Exception):
    """The call did not finish within the limit; it is abandoned and still running."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"did not finish within {limit_s:g} s")
        self.limit_s = limit_s


class TooManyStuck(Exception):
    """`max_stuck` abandoned calls are still running: no more are started."""

    def __init__(self, stuck: int) -> None:
        super().__init__(f"{stuck} calls are still running after their time limit")
        self.stuck = stuck


@dataclass
class _Call:
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    abandoned: bool = field(default=False)  # the caller stopped waiting while fn still ran
    finished: bool = field(default=False)  # fn returned (both flags under OffLoop._lock)


class OffLoop:
    """A small pool of daemon threads: `await pool.call(fn, limit_s)` runs `fn()` in one of them."""

    def __init__(self, max_stuck: int = MAX_STUCK) -> None:
        self.max_stuck = max_stuck
        self._work: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting for work, or about to: each takes one call without a new thread
        self._stuck = 0  # abandoned calls that have not returned yet

    @property
    def stuck(self) -> int:
        with self._lock:
            return self._stuck

    async def call(self, fn: Callable[[], T], limit_s: float | None) -> T:
        """fn() in a daemon thread; CallTimedOut after `limit_s` (None: no limit; the thread is left
        running), TooManyStuck instead of starting it when `max_stuck` calls are already stuck."""
        loop = asyncio.get_running_loop()
        job = _Call(fn, loop, loop.create_future())
        with self._lock:
            if self._stuck >= self.max_stuck:
                raise TooManyStuck(self._stuck)
            start = self._idle == 0
            if not start:
                self._idle -= 1
        if start:
            threading.Thread(target=self._worker, name="runner-off-loop", daemon=True).start()
        self._work.put(job)
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when it arrives
            # in the same loop pass as a cancel, swallowing the cancel, so a stopped run waited for
            # ever on a queue. On a timeout or a cancel the future is cancelled and the worker's late
            # result dropped (`_deliver` checks).
            async with asyncio.timeout(limit_s):
                result: T = await job.future
            return result
        except TimeoutError:
            self._abandon(job)
            raise CallTimedOut(limit_s or 0.0) from None
        except asyncio.CancelledError:
            self._abandon(job)
            raise

    def _abandon(self, job: _Call) -> None:
        with self._lock:
            if not job.finished:
                job.abandoned = True
                self._stuck += 1

    def _worker(self) -> None:
        while True:
            job = self._work.get()
            try:
                outcome: tuple[bool, Any] = (True, job.fn())
            except BaseException as exc:  # delivered to the awaiting job, which decides what it means
                outcome = (False, exc)
            with self._lock:
                job.finished = True
                if job.abandoned:
                    self._stuck -= 1  # it came back after all: no longer stuck
                self._idle += 1
            # RuntimeError: the loop is closed, the run ended while this call was abandoned.
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_deliver, job.future, outcome)


def _deliver(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return  # timed out or cancelled meanwhile
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
