"""A progress line for long runs: done, failed, retrying, rate and time left.

On a terminal the line redraws in place (at most ten times a second); in logs and CI, where
carriage returns make a mess, it prints a fresh line every few seconds instead.

The rate is measured from the moment the first job was sent (`job_started`; without that call,
from the first job's end), so loading a model before it does not count; the time left is shown
only once ETA_MIN_JOBS jobs and ETA_MIN_S seconds are behind it, since the first few answers of a
run (a batch finishing together) say little about the rest. Slow rates read in jobs per minute.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from runner.errors import redact
from runner.execution.events import (
    Event,
    JobFinished,
    JobRetrying,
    JobStarted,
    Note,
    RunFinished,
    RunStarted,
    VariantLoading,
)

ETA_MIN_JOBS = 5
ETA_MIN_S = 10.0
PER_MINUTE_BELOW = 0.05  # jobs/s: "0.03 jobs/s" reads worse than "1.8 jobs/min"


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True,
                 log_every_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.clock = clock
        self.stream = stream or sys.stderr
        self.enabled = enabled
        # A subscriber starts inactive and draws once the run has started (a study's notes come
        # without any run: no "0/0" line among them).
        self.active = True
        self.tty = self.stream.isatty()
        self.log_every_s = log_every_s
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self.retrying = 0
        self.retries = 0
        self.label = ""
        self.started = clock()
        self._last_draw = float("-inf")
        # Where the rate is measured from, and how many finished jobs that start already includes.
        self._origin: float | None = None
        self._finished_at_origin = 0

    def restart(self, total: int) -> None:
        """Count a new run of `total` jobs from zero, as a fresh Progress would."""
        self.active = True
        self.total = total
        self.done = self.failed = self.skipped = self.retrying = self.retries = 0
        self.label = ""
        self.started = self.clock()
        self._last_draw = float("-inf")
        self._origin = None
        self._finished_at_origin = 0

    def note(self, message: str) -> None:
        """A line of its own (a model loading, a phase starting), above the progress line; printed
        with --quiet too, which hides only the progress line."""
        message = redact(message)  # notes may quote a server (a warning, a backend's message)
        if not self.enabled:
            self.stream.write(message + "\n")
            self.stream.flush()
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")
        self.stream.flush()
        self._last_draw = float("-inf")
        self.draw()

    def set_label(self, label: str) -> None:
        self.label = label
        self.draw(force=True)

    def skip(self, n: int = 1) -> None:
        self.skipped += n

    def job_started(self) -> None:
        """A job's request is about to be sent: the first call starts the rate's clock."""
        if self._origin is None:
            self._origin = self.clock()

    def finished(self, ok: bool) -> None:
        if self._origin is None:  # nobody called job_started: measure from this first end
            self._origin = self.clock()
            self._finished_at_origin = 1
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.draw()

    def _measured(self) -> tuple[int, float]:
        """(jobs finished since the rate's start, seconds since it)."""
        if self._origin is None:
            return 0, 0.0
        return self.done + self.failed - self._finished_at_origin, self.clock() - self._origin

    def rate(self) -> float | None:
        """Jobs per second since the rate's start, or None before there is anything to measure."""
        jobs, seconds = self._measured()
        return jobs / seconds if jobs > 0 and seconds > 0 else None

    def eta_s(self) -> float | None:
        """Seconds left, once enough jobs and time are behind the estimate; else None."""
        jobs, seconds = self._measured()
        rate = self.rate()
        remaining = self.total - self.skipped - self.done - self.failed
        if rate is None or remaining <= 0 or jobs < ETA_MIN_JOBS or seconds < ETA_MIN_S:
            return None
        return remaining / rate

    def line(self) -> str:
        finished = self.done + self.failed
        head = f"[{self.label}] " if self.label else ""
        parts = [f"{head}{finished + self.skipped}/{self.total}", f"done {self.done}", f"failed {self.failed}",
                 f"retrying {self.retrying}"]
        if self.skipped:
            parts.append(f"resumed {self.skipped}")
        rate = self.rate()
        if rate is not None:
            parts.append(_rate(rate))
        eta = self.eta_s()
        if eta is not None:
            parts.append(f"{_duration(eta)} left")
        return " | ".join(parts)

    def draw(self, force: bool = False) -> None:
        if not self.enabled or not self.active:
            return
        now = self.clock()
        interval = 0.1 if self.tty else self.log_every_s
        if not force and now - self._last_draw < interval:
            return
        self._last_draw = now
        if self.tty:
            self.stream.write("\r\033[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled or not self.active:
            return
        if self.tty:
            self.stream.write("\r\033[K" + self.line() + "\n")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()


def _rate(jobs_per_s: float) -> str:
    if jobs_per_s < PER_MINUTE_BELOW:
        return f"{jobs_per_s * 60:.1f} jobs/min"
    return f"{jobs_per_s:.2f} jobs/s" if jobs_per_s < 1 else f"{jobs_per_s:.1f} jobs/s"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class ProgressSubscriber:
    """The progress line as a subscriber of the executor's events (`runner.execution.events`)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        progress.active = False

    def __call__(self, event: Event) -> None:
        p = self.progress
        if isinstance(event, RunStarted):
            # One subscriber may see several runs (an investigation's steps): each counts afresh.
            p.restart(event.planned)
            p.skip(event.resumed)
        elif isinstance(event, VariantLoading):
            p.set_label(event.variant)
        elif isinstance(event, JobStarted):
            p.job_started()  # the rate is measured from the first request, not from model loading
        elif isinstance(event, JobRetrying):
            p.retries += 1
            if event.attempt == 1:
                p.retrying += 1
        elif isinstance(event, JobFinished):
            if event.attempts > 1:
                p.retrying -= 1
            p.finished(ok=event.ok)
        elif isinstance(event, Note):
            p.note(("warning: " if event.warning else "") + event.message)
        elif isinstance(event, RunFinished):
            p.close()
