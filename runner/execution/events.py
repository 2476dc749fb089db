"""What a run tells the world while it goes: typed events, and the subscribers that listen.

The executor owns the run's counts and emits an event for each thing that happens; it knows
nothing of terminals or files. The progress line (`runner.execution.progress`) is one subscriber, the
JSON-lines log of `runner run --events PATH` another, and a Python caller of `runner.run` can pass
its own. A subscriber that raises stops the run: a broken listener is a bug, not data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Literal

from runner.errors import redact


@dataclass(frozen=True)
class RunStarted:
    run_id: int
    planned: int
    resumed: int  # of the planned jobs, already stored by an earlier run
    kind: Literal["run_started"] = "run_started"


@dataclass(frozen=True)
class VariantLoading:
    """A model variant is being prepared (fetched, derived, loaded) before its jobs run."""

    variant: str
    kind: Literal["variant_loading"] = "variant_loading"


@dataclass(frozen=True)
class JobStarted:
    """A job's first request is about to be sent (the progress line's rate starts at the first)."""

    job_id: str
    kind: Literal["job_started"] = "job_started"


@dataclass(frozen=True)
class JobFinished:
    job_id: str
    variant: str
    item_id: str
    repeat: int
    ok: bool
    attempts: int
    latency_s: float | None
    error: str | None = None
    kind: Literal["job_finished"] = "job_finished"


@dataclass(frozen=True)
class JobRetrying:
    job_id: str
    attempt: int  # the attempt that failed; the next one is attempt + 1
    error: str
    kind: Literal["job_retrying"] = "job_retrying"


@dataclass(frozen=True)
class Note:
    """A line for people: a model fetched, a file derived, a warning from a stored probe."""

    message: str
    warning: bool = False
    kind: Literal["note"] = "note"


@dataclass(frozen=True)
class RunFinished:
    run_id: int
    status: Literal["finished", "interrupted", "failed"]
    succeeded: int
    failed: int
    resumed: int
    elapsed_s: float
    kind: Literal["run_finished"] = "run_finished"


Event = RunStarted | VariantLoading | JobStarted | JobFinished | JobRetrying | Note | RunFinished
Subscriber = Callable[[Event], None]


@dataclass
class RunCounts:
    """The run's own counts, kept by the executor and read by the summary and the progress line."""

    planned: int = 0
    resumed: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0  # jobs in flight that have failed at least once
    retries: int = 0  # failed attempts that were retried, over the run
    completion_tokens: int = 0

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed


@dataclass
class Events:
    """Fan-out to subscribers, in the order they were added."""

    subscribers: list[Subscriber] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        for subscriber in self.subscribers:
            subscriber(event)

    def note(self, message: str, *, warning: bool = False) -> None:
        self.emit(Note(message, warning))


class JsonLinesLog:
    """`--events PATH`: one JSON object per event, flushed as it happens, with a wall-clock time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        line = json.dumps({"time": round(time.time(), 3), **asdict(event)}, ensure_ascii=False)
        # Errors quote servers; the HTTP layer redacted them, this is the last guard for the file.
        self._fh.write(redact(line) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
