"""The retry policy, in one place: which failures are retried, and how long to wait.

Backends classify (`BackendError.retryable`); this module decides. Waits are exponential with
full jitter (AWS's "full jitter": uniform in [0, min(cap, base * 2**k)]) so that many workers
hitting one overloaded server spread out; a server's Retry-After wins, within the same cap.
Tests set the base and cap to zero, which makes every wait zero.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from runner.backends.base import BackendError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def wait_s(self, retry_number: int, error: BaseException | None) -> float:
        """Seconds to wait before retry number `retry_number` (1 for the first retry)."""
        if isinstance(error, BackendError) and error.retry_after is not None:
            return min(error.retry_after, self.max_backoff_s)
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (retry_number - 1))
        return self.rng.uniform(0, ceiling) if ceiling > 0 else 0.0


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.retryable


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, BaseException], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> tuple[T, int]:
    """Run `fn` until it succeeds or the policy gives up; returns (result, attempts made).

    The last error is re-raised as is when retries run out or the error is not retryable.
    """

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return policy.wait_s(state.attempt_number, error)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(state.attempt_number, error)

    attempts = 0
    retrying = AsyncRetrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(policy.max_retries + 1),
        wait=wait,
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            attempts = attempt.retry_state.attempt_number
            result = await fn()
    return result, attempts
