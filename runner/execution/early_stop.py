"""Stop a run whose first answers all fail alike with a client error.

A base_url whose path is wrong, or a model id the server does not have, gets every request the same
404 while /v1/models answers fine, so the run starts; without this it sends every job, stores
thousands of identical failures and exits 0. A client error (4xx but 408 and 429) is the request's
fault, and when the first FIRST_ANSWERS answers of a model variant (all of them, if it has fewer)
fail with the same status, the rest would too: the run stops with one line naming what to check.
One success or one other failure among them, and the run goes on as before.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from runner.backends.base import BackendError, Variant
from runner.config.schema import Experiment
from runner.errors import UserError

FIRST_ANSWERS = 8
# Timeouts and rate limits are the server's state, not the request's fault.
_NOT_THE_REQUEST = frozenset({408, 429})


class FirstAnswers:
    """The outcomes of a variant's first answers, and whether they all failed with one client error."""

    def __init__(self, n: int = FIRST_ANSWERS) -> None:
        self.n = n
        self.outcomes: list[BackendError | None] = []  # None: answered, or failed some other way
        self.verdict: BackendError | None = None  # set once they all failed alike: the run stops

    def add(self, error: BaseException | None) -> BackendError | None:
        """Record a finished job (its error, None if it succeeded); the shared error once the first n
        answers are all that same client error, else None."""
        if len(self.outcomes) >= self.n:
            return None
        self.outcomes.append(error if isinstance(error, BackendError) else None)
        if len(self.outcomes) == self.n:
            self.verdict = self.common()
        return self.verdict

    def common(self) -> BackendError | None:
        """The client error every recorded answer failed with, or None."""
        first = self.outcomes[0] if self.outcomes else None
        if first is None or first.status is None or not 400 <= first.status < 500 or first.status in _NOT_THE_REQUEST:
            return None
        same = all(e is not None and e.status == first.status and not e.retryable for e in self.outcomes)
        return first if same else None


def stop_error(experiment: Experiment, variant: Variant, error: BackendError, count: int) -> UserError:
    """The one line for a run stopped by `FirstAnswers`: what failed, where, and what to check."""
    status = error.status or 0
    try:
        phrase = f" {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = ""
    source = f" from {error.url}" if error.url else ""
    said = _server_message(str(error))
    problem = f"the first {count} requests all failed with HTTP {status}{phrase}{source}{said}"
    index = next((i for i, m in enumerate(experiment.models) if m.name == variant.model), 0)
    model = f"the model's id (models.{index}.id: {variant.model_id})"
    key = "backend.base_url"
    if status in (401, 403):
        if hasattr(experiment.backend, "api_key_env"):
            key = "backend.api_key_env"
        fix = f"check the API key ({key}) and backend.base_url"
    elif status in (404, 405):
        fix = f"check backend.base_url and {model}"
    else:
        fix = f"check backend.base_url, {model} and the sampling parameters"
    return UserError(problem, file=experiment.source_path, key=key, fix=fix)


def _server_message(text: str) -> str:
    """What the server said, briefly: the error envelope's message where it sent one."""
    body = text.partition(": ")[2].strip()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        inner = data.get("error", data.get("message", data.get("detail")))
        if isinstance(inner, dict):
            inner = inner.get("message")
        if isinstance(inner, str):
            body = inner
    body = " ".join(body.split())
    if not body:
        return ""
    return f" ({body[:157] + '...' if len(body) > 160 else body})"
