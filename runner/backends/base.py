"""The one interface every backend implements, and the values that cross it.

A backend turns a `ChatRequest` into a `Completion` or raises `BackendError`, which says whether a
retry could help; the executor owns the retry policy (`runner.execution.retry`), backends only classify.
`serve(variant)` brackets the jobs of one model variant: the embedded backend loads the model
there; HTTP backends only look the model up.
"""

from __future__ import annotations

import abc
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.plan.variant import Variant as Variant  # re-exported: backends name it with the rest

if TYPE_CHECKING:
    from runner.config.schema import BackendSettings, Experiment


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    params: dict[str, Any]
    # Which of the executor's workers sends it: the embedded engine pins each worker to a slot of its own
    # (llama.cpp's id_slot), so the slot holding a prompt's cache is the one its next repeat goes to.
    # Other backends ignore it.
    worker: int | None = None


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    request: dict[str, Any]
    response: dict[str, Any]
    # The server's own timings where it reports them (llama.cpp: prompt/predicted per second).
    timings: dict[str, Any] | None = None


class BackendError(Exception):
    """A failed request. `retryable` is the backend's judgement; `retry_after` the server's wish.

    The message may quote the server: whoever builds it from server output redacts it first
    (`runner.errors.redact`), since it is stored with the job and printed."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.url = url  # the request's URL, where the answer came from (for "check backend.base_url")
        # Which of `backend.endpoints` the request last went to (a pool's), stored with a failed job.
        self.endpoint: str | None = None


@dataclass
class VariantInfo:
    """What the backend learned about a variant while serving it; stored with every job."""

    details: dict[str, Any] = field(default_factory=dict)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class StartContext:
    """What a backend is told when it starts."""

    # The variants that still have work (a resumed run): a backend may skip preparing the others.
    # None means all of them.
    needed: frozenset[Variant] | None = None
    # Lines for people while the backend prepares (a model fetched, a file derived, a model loaded).
    notify: Callable[[str], None] = _to_stderr


class Backend(abc.ABC):
    # True where each variant is served on a machine of its own (a Ray cluster): the run serves them all at once.
    parallel_variants = False
    # True where `share_prompt_cache` can copy one slot's prompt cache into the others: the executor then
    # runs a variant's first job alone and shares its cache before sending the rest side by side.
    shares_prompt_cache = False

    def __init__(self, settings: BackendSettings, experiment: Experiment) -> None:
        self.settings = settings
        self.experiment = experiment
        self.context = StartContext()

    def workers(self, concurrency: int) -> int:
        """Requests the executor keeps in flight for `concurrency` per server: a pool of endpoints has more,
        the embedded engine no more than its slots."""
        return concurrency

    def check(self) -> None:
        """Validate everything that needs no server (files, keys) before any job; raise UserError."""

    async def start(self, context: StartContext | None = None) -> None:
        """Open connections; raise BackendUnavailable if the server cannot be reached.

        Subclasses that override this call `super().start(context)` first (it keeps the context)."""
        self.context = context or StartContext()

    async def close(self) -> None:
        """Release connections and servers; safe to call twice. By default: the HTTP client, if any."""
        client = getattr(self, "client", None)
        if client is not None:
            await client.close()

    async def probe(self) -> None:
        """For `runner validate`: the cheap part of start() (reach the server, but load nothing)."""
        try:
            await self.start()
        finally:
            await self.close()

    @asynccontextmanager
    async def serve(self, variant: Variant) -> AsyncIterator[VariantInfo]:
        yield VariantInfo()

    @abc.abstractmethod
    async def generate(self, request: ChatRequest) -> Completion: ...

    async def count_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """Prompt tokens of these messages as the served model counts them, where the server can say."""
        return None

    async def share_prompt_cache(self) -> int:
        """Copy the prompt cache of the slot that served the last request into the slots that served
        nothing yet, so that what prompts share (a system prompt, rules) is evaluated once, not once per
        slot; how many slots were filled (0: this backend cannot)."""
        return 0

    async def count_rendered(self, text: str) -> int | None:
        """Tokens of a prompt already rendered by `render_prompt`, where the server can count."""
        tokens = await self.tokenize(text)
        return None if tokens is None else len(tokens)

    async def render_prompt(self, messages: list[dict[str, str]]) -> str | None:
        """The prompt text as the served model's chat template renders these messages, where the server
        can say (llama.cpp: /apply-template); None where it cannot."""
        return None

    # Who renders prompts for `render_prompt`, as stored with each job (`rendered_by`).
    rendered_by = ""

    def render_offline(self, variant: Variant, messages: list[dict[str, str]]) -> tuple[str, str] | None:
        """(prompt, who rendered it) without a server, from the model's own chat template where this
        backend can read it (the embedded backend: from the GGUF file), for `runner plan`; else None."""
        return None

    async def apply_template(self, messages: list[dict[str, str]]) -> str | None:
        """The prompt text the server builds from these messages with the model's chat template, where it can say
        (the same as `render_prompt`, under the name the tokenizer check uses)."""
        return await self.render_prompt(messages)

    async def tokenize(self, text: str) -> list[int] | None:
        """The served model's token ids of `text` (special tokens in it parsed, none added), if the server says."""
        return None

    def requested_context(self) -> int | None:
        """The context per request this experiment asks the server for, if it can be asked."""
        return None

    def local_size(self, model: str) -> dict[str, Any] | None:
        """The model's `parameters`, `parameters_source` and `size_label` where they can be read without a
        server or a download (the embedded backend: its GGUF's header), for `runner matrix` before a run."""
        return None


@dataclass(frozen=True)
class InjectedSystem:
    """What the chat template adds when a request has no system message."""

    text: str  # the inserted system prompt
    tokens: int | None  # its length in the model's tokens, where the server can count


async def injected_system_prompt(backend: Backend) -> InjectedSystem | None:
    """Render one question with no system message and with an empty one: whatever the first has that
    the second has not is what the template inserts on its own (SmolLM2: "You are a helpful AI
    assistant named SmolLM, trained by Hugging Face"). None when nothing is added or nobody can say."""
    import difflib

    question = [{"role": "user", "content": "Is this config valid?"}]
    without = await backend.render_prompt(question)
    empty = await backend.render_prompt([{"role": "system", "content": ""}, *question])
    if without is None or empty is None or without == empty:
        return None
    matcher = difflib.SequenceMatcher(a=empty, b=without, autojunk=False)
    added = "".join(without[j1:j2] for tag, _, _, j1, j2 in matcher.get_opcodes() if tag in ("insert", "replace"))
    added = added.strip()
    if not added:
        return None
    tokens_without, tokens_empty = await backend.count_rendered(without), await backend.count_rendered(empty)
    tokens = tokens_without - tokens_empty if tokens_without is not None and tokens_empty is not None else None
    return InjectedSystem(added, tokens)
