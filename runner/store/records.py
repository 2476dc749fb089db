"""The values that cross the store's boundary: one row written per finished job, one read back.

`JobRow` is what the executor hands to `Store.save_job`; `JobRecord` is what readers get back
(without the raw request and response, which only `runner explain --job` style tools need; the
stored response has the answer's text replaced by a marker, see `runner.store.raw`).
Variant details and timings are typed dictionaries: every backend fills the keys it knows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, TypedDict


class JobStatus(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"


class VariantDetails(TypedDict, total=False):
    """What a backend learned about the model variant that answered (stored with every job)."""

    model_id: str | None
    listed: bool
    file: str
    size_bytes: int | None
    quantization: str | None
    file_type: int | None
    architecture: str | None
    n_ctx_per_slot: int | None
    n_ctx_train: int | None
    slots: int | None
    engine: str
    parameter_size: str | None
    family: str | None
    digest: str | None
    state: str | None
    arch: str | None
    format: str | None
    parameters: int | None  # the model's parameter count (runner.config.size_class), None: unknown
    parameters_source: str | None  # who said it: "GGUF tensor elements", "declared (models[].params)", ...
    parameters_declared: int | None  # the YAML's models[].params, where given
    size_label: str | None  # a GGUF's general.size_label, e.g. "135M"
    size_class: str  # <=1B, 1-3B, 3B+ or unknown
    injected_system: dict[str, Any] | None  # what the chat template adds when no system message is sent
    sampler: dict[str, Any]  # the server's defaults for what a request leaves out (runner.backends.sampler)
    sampler_source: str  # who said so: "llama.cpp /props", "Ollama /api/show"


class Timings(TypedDict, total=False):
    """The server's own timings (llama.cpp's names; Ollama's are converted to them)."""

    prompt_n: int | None
    prompt_ms: float
    prompt_per_token_ms: float
    prompt_per_second: float | None
    predicted_n: int | None
    predicted_ms: float
    predicted_per_token_ms: float
    predicted_per_second: float | None
    cache_n: int
    endpoint: str  # which of `backend.endpoints` answered (or failed) the job, for a pool of endpoints


# Not frozen: a frozen dataclass sets each of its 24 fields through object.__setattr__ (4.4 us a row
# against 0.7 us), and the executor builds one per finished job; nothing changes a row once built.
@dataclass(slots=True)
class JobRow:
    """One finished job, as `Store.save_job` writes it (in one transaction with its scores)."""

    job_id: str
    run_id: int
    cell_key: str
    model: str
    quantization: str | None
    item_id: str
    repeat: int
    status: JobStatus | str
    attempts: int
    error: str | None = None
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    timings: Timings | dict[str, Any] | None = None
    variant: VariantDetails | dict[str, Any] | None = None
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    rendered_prompt: str | None = None  # the prompt as the server's chat template rendered the messages
    rendered_by: str | None = None
    from_cache: bool = False  # answered from the response cache: no request was sent
    # (request_json, response_json, timings_json) as `encode_exchange` made them, or None: encoded on save.
    # The executor encodes once for the store and the response cache both.
    encoded: tuple[str | None, str | None, str | None] | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One stored job as the read path sees it (slots: a report holds one per job, 100,000 at scale)."""

    job_id: str
    status: str
    attempts: int
    error: str | None
    text: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float | None
    timings: dict[str, Any] | None
    variant: dict[str, Any] | None
    rendered_prompt: str | None = None
    rendered_by: str | None = None
    from_cache: bool = False
