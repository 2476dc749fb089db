"""A progress line for long runs: done, failed, retrying, rate and time left.

On a terminal the line redraws in place (at most ten times a second); in logs and CI, where
carriage returns make a mess, it prints a fresh line every few seconds instead.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from runner.execution.events import Event, JobFinished, JobRetrying, Note, RunFinished, RunStarted, VariantLoading


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, enabled: bool = True,
                 log_every_s: float = 5.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.log_every_s = log_every_s
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self.retrying = 0
        self.retries = 0
        self.label = ""
        self.started = time.monotonic()
        self._last_draw = 0.0

    def note(self, message: str) -> None:
        """A line of its own (a model loading, a phase starting), above the progress line; printed
        with --quiet too, which hides only the progress line."""
        if not self.enabled:
            self.stream.write(message + "\n")
            self.stream.flush()
            return
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")
        self.stream.flush()
        self._last_draw = 0.0
        self.draw()

    def set_label(self, label: str) -> None:
        self.label = label
        self.draw(force=True)

    def skip(self, n: int = 1) -> None:
        self.skipped += n

    def finished(self, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.draw()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        finished = self.done + self.failed
        rate = finished / elapsed
        remaining = self.total - self.skipped - finished
        eta = f"{_duration(remaining / rate)} left" if rate > 0 and remaining > 0 else ""
        head = f"[{self.label}] " if self.label else ""
        parts = [f"{head}{finished + self.skipped}/{self.total}", f"done {self.done}", f"failed {self.failed}",
                 f"retrying {self.retrying}"]
        if self.skipped:
            parts.append(f"resumed {self.skipped}")
        parts.append(f"{rate:.1f} jobs/s")
        if eta:
            parts.append(eta)
        return " | ".join(parts)

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
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
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + self.line() + "\n")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()


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

    def __call__(self, event: Event) -> None:
        p = self.progress
        if isinstance(event, RunStarted):
            p.total = event.planned
            p.skip(event.resumed)
        elif isinstance(event, VariantLoading):
            p.set_label(event.variant)
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
