"""User-facing errors.

A `UserError` is a mistake the user can fix (bad YAML, a missing file, an unreachable server).
The CLI prints it as one line with no traceback and exits 2. The line always names where the
problem is (file and key), what is wrong (with the bad value) and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error in the user's input, reported as one line: `FILE: KEY: problem; fix`."""

    def __init__(self, problem: str, *, file: Path | str | None = None, key: str | None = None,
                 fix: str | None = None) -> None:
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.key = key
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        text = self.problem if not self.fix else f"{self.problem}; {self.fix}"
        # Newlines would break the one-line promise (pydantic and YAML messages carry them).
        text = " ".join(text.split())
        return ": ".join([*parts, text])


class ConfigError(UserError):
    """The experiment file (or a file it points to) is invalid."""


class BackendUnavailable(UserError):
    """The backend cannot be reached or cannot serve the experiment at all."""
