"""User-facing errors.

A `UserError` is a mistake the user can fix (bad YAML, a missing file, an unreachable server).
The CLI prints it as one line with no traceback and exits 2. The line always names where the
problem is (file and key), what is wrong (with the bad value) and what to do about it.
"""

from __future__ import annotations

import re
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
        return redact(": ".join([*parts, text]))


class ConfigError(UserError):
    """The experiment file (or a file it points to) is invalid."""


class BackendUnavailable(UserError):
    """The backend cannot be reached or cannot serve the experiment at all."""


# Secrets. A server that echoes request headers in an error body (a debug page, a proxy) hands the
# API key back; anything built from server output could then carry it into the store, the events
# log or the terminal. This sits below every stage because all of them write or print such text.

REDACTED = "[redacted]"
# Shorter "keys" (a test's "x") are common words: replacing them everywhere would mangle text.
# The patterns below still catch them where they stand after `Bearer` or `Authorization:`.
_MIN_SECRET_CHARS = 8
_SECRETS: set[str] = set()

# An Authorization (or Proxy-Authorization, X-Api-Key, api_key=) value as a header dump, a JSON or
# repr dict, or JSON inside a JSON string (\"Authorization\": \"Bearer ...\") shows it.
_HEADER_VALUE = re.compile(r"""(?i)(\b(?:proxy-)?authorization\b|\b(?:x-)?api[-_]?key\b)([\\"']*\s*[:=]\s*[\\"']*)"""
                           r"""[^"'\\\r\n&]+""")
_BEARER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]+=*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@/\s]+@")


def register_secret(value: str | None) -> None:
    """Remember a secret this process sends (an API key), so that no stored or printed text carries it."""
    if value and len(value) >= _MIN_SECRET_CHARS:
        _SECRETS.add(value)


def redact_secrets(text: str) -> str:
    """`text` with every registered secret replaced: for answers and raw responses, where a pattern
    could change what the model said but the key's own bytes are never a genuine part of it."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(text: str) -> str:
    """`text` without registered secrets, Authorization/API-key header values, Bearer/Basic tokens or
    URL passwords: for error messages and anything else built from what a server said."""
    text = redact_secrets(text)
    text = _HEADER_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
