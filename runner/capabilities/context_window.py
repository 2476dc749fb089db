"""Context-window discovery: the real limit, and how the server behaves past it.

Each probe is a prompt with a marker word at its very start, n filler words, and a request to
repeat the marker. Its outcome is one of:

- accepted: read whole (the reported prompt tokens are what was sent);
- refused: an error (llama.cpp: HTTP 400 "exceeds the available context size");
- truncated: accepted, but the server read fewer tokens than were sent (Ollama keeps the last
  num_ctx tokens and says nothing), or, where no counts are reported, the marker is gone.

What was sent is counted by the server's tokenizer where it has one (llama.cpp); otherwise it is
extrapolated from the first two probes, which are far below any limit. The search doubles n until
a probe is not accepted, then bisects between the last accepted and the first failed n, so the
number of requests grows with the logarithm of the limit. Finally the dataset's own prompts are
counted against the limit and the experiment's max_tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Variant
from runner.config.schema import ContextWindowStudy
from runner.execution.retry import RetryPolicy, call_with_retries
from runner.plan.planner import Plan

MARKER = "zanzibar"


@dataclass
class Probe:
    words: int
    status: str  # accepted | refused | truncated
    sent_tokens: int | None
    read_tokens: int | None
    marker_repeated: bool
    error: str | None = None


@dataclass
class ContextResult:
    variant: str
    limit_tokens: int | None  # the largest prompt read whole
    failure: str  # how the server fails past it, in words
    failure_kind: str  # refused | truncated | none
    requests: int
    request_bound: int
    counted_by: str  # the server's tokenizer, or calibration probes of 1 and 2 words
    probes: list[Probe] = field(default_factory=list)
    items_over: list[dict[str, Any]] = field(default_factory=list)
    items_checked: int = 0
    # The tokenizer check: does the server count the experiment's prompts as a reference tokenizer does
    # (`tokenizer_parity`; a ProbeResult as stored)? None in studies stored before it was made.
    tokenizer: dict[str, Any] | None = None
    # Every checked prompt's size, for the HTML report's plot against the limit (empty in studies stored
    # before it was kept: those show only the prompts over the limit).
    prompt_tokens: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _messages(study: ContextWindowStudy, words: int) -> list[dict[str, str]]:
    filler = " ".join([study.filler] * words)
    return [{"role": "user", "content": f"MARKER: {MARKER}.\n{filler}\nRepeat the word after MARKER."}]


class _Search:
    def __init__(self, backend: Backend, variant: Variant, study: ContextWindowStudy) -> None:
        self.backend, self.variant, self.study = backend, variant, study
        self.probes: list[Probe] = []
        self.requests = 0
        self.fit: tuple[float, float] | None = None  # tokens = a + b * words, when there is no tokenizer
        self.tokenizer = True
        s = backend.settings
        self.retry = RetryPolicy(s.max_retries, s.retry_backoff_s, s.retry_max_backoff_s)

    async def calibrate(self) -> None:
        """Without a tokenizer, learn tokens per filler word from prompts of 1 and 2 words: far below
        any limit, so the counts the server reports for them are what was sent."""
        if await self.backend.count_tokens(_messages(self.study, 1)) is not None:
            return
        self.tokenizer = False
        reads = []
        for words in (1, 2):
            self.requests += 1
            try:
                completion = await self.backend.generate(ChatRequest(
                    self.variant.model_id, _messages(self.study, words), {"temperature": 0.0, "max_tokens": 1}))
            except BackendError:
                return
            reads.append(completion.prompt_tokens)
        if reads[0] is not None and reads[1] is not None:
            slope = reads[1] - reads[0]
            self.fit = (reads[0] - slope, slope)

    async def expected_tokens(self, words: int) -> int | None:
        if self.tokenizer:
            return await self.backend.count_tokens(_messages(self.study, words))
        if self.fit is None:
            return None
        a, b = self.fit
        return round(a + b * words)

    async def probe(self, words: int) -> Probe:
        sent = await self.expected_tokens(words)
        self.requests += 1
        request = ChatRequest(self.variant.model_id, _messages(self.study, words),
                              {"temperature": 0.0, "max_tokens": self.study.answer_tokens})
        try:
            # A timeout or a 503 near the limit is not the limit: retry those; only a refusal that a
            # retry cannot change (a 4xx such as llama.cpp's "exceeds the available context") counts.
            completion, _ = await call_with_retries(lambda: self.backend.generate(request), self.retry)
        except BackendError as exc:
            p = Probe(words, "refused", sent, None, False, str(exc)[:200])
            self.probes.append(p)
            return p
        read = completion.prompt_tokens
        repeated = MARKER in completion.text.lower()
        if sent is not None and read is not None:
            # Exact: llama.cpp's tokenizer count equals its reported prompt_tokens (pinned in tests), and the
            # calibrated count is exact for a filler of one token per word.
            status = "accepted" if read >= sent else "truncated"
        else:
            # No counts to compare: only the marker at the start can show that the prompt was read whole.
            status = "accepted" if repeated else "truncated"
        p = Probe(words, status, sent, read, repeated)
        self.probes.append(p)
        return p


async def find_limit(backend: Backend, variant: Variant, study: ContextWindowStudy) -> ContextResult:
    search = _Search(backend, variant, study)
    await search.calibrate()
    words = study.start_words
    last_ok: Probe | None = None
    first_bad: Probe | None = None
    while words <= study.max_words:
        p = await search.probe(words)
        if p.status == "accepted":
            last_ok, words = p, words * 2
        else:
            first_bad = p
            break
    label = variant.label
    counted_by = "the server's tokenizer" if search.tokenizer else "calibration probes of 1 and 2 words"
    if first_bad is None:
        return ContextResult(label, last_ok.read_tokens if last_ok else None,
                             f"no failure up to {study.max_words} filler words", "none", search.requests,
                             search.requests, counted_by, search.probes)
    doublings = search.requests
    low = last_ok.words if last_ok else 0
    high = first_bad.words
    span = max(high - low, 1)
    while high - low > 1:
        mid = (low + high) // 2
        p = await search.probe(mid)
        if p.status == "accepted":
            low, last_ok = mid, p
        else:
            high, first_bad = mid, p
    return ContextResult(
        label, (last_ok.read_tokens or last_ok.sent_tokens) if last_ok else None, _failure_text(first_bad),
        first_bad.status, search.requests, doublings + math.ceil(math.log2(span)), counted_by, search.probes)


def _failure_text(p: Probe) -> str:
    if p.status == "refused":
        return f"refused with an error at {p.sent_tokens or '?'} tokens: {p.error}"
    kept = f"read {p.read_tokens} of {p.sent_tokens} tokens sent" if p.read_tokens and p.sent_tokens else \
        "the marker at the start was no longer repeated"
    return f"accepted but silently truncated at {p.sent_tokens or '?'} tokens: {kept}"


async def check_dataset(backend: Backend, plan: Plan, result: ContextResult, variant: Variant,
                        max_tokens: int) -> None:
    """Which dataset prompts (first cell's rendering) would not fit with max_tokens for the answer."""
    if result.limit_tokens is None:
        return
    cell = next(c for c in plan.cells if c.variant == variant)
    per_word = _tokens_per_word(result)
    for item in plan.items:
        messages = list(plan.render_messages(cell, item))
        counted = await backend.count_tokens(messages)
        tokens = counted if counted is not None else round(
            sum(len(m["content"].split()) for m in messages) * per_word * 1.3)  # prose runs ~1.3 tokens a word
        result.items_checked += 1
        result.prompt_tokens.append(tokens)
        if tokens + max_tokens > result.limit_tokens:
            result.items_over.append({"item": item.id, "prompt_tokens": tokens, "counted": counted is not None})


def _tokens_per_word(result: ContextResult) -> float:
    ok = [p for p in result.probes if p.status == "accepted" and p.read_tokens]
    if len(ok) >= 2 and ok[-1].words != ok[0].words:
        return (ok[-1].read_tokens - ok[0].read_tokens) / (ok[-1].words - ok[0].words)  # type: ignore[operator]
    return 1.0


def render(results: list[ContextResult], max_tokens: int) -> str:
    lines = []
    for r in results:
        lines.append(f"{r.variant}:")
        limit = f"{r.limit_tokens} prompt tokens" if r.limit_tokens is not None else "none found"
        lines.append(f"  limit: {limit} (the largest prompt read whole; counted by {r.counted_by})")
        lines.append(f"  past it: {r.failure}")
        lines.append(f"  requests: {r.requests} (doubling then bisection; bound {r.request_bound}, "
                     f"about log2 of the limit)")
        if r.items_checked:
            if r.items_over:
                shown = ", ".join(f"{i['item']} ({i['prompt_tokens']})" for i in r.items_over[:10])
                lines.append(f"  dataset: {len(r.items_over)} of {r.items_checked} prompts + max_tokens={max_tokens} "
                             f"exceed the limit: {shown}")
            else:
                lines.append(f"  dataset: all {r.items_checked} prompts fit with max_tokens={max_tokens}")
        if r.tokenizer is not None:
            lines.append(f"  tokenizer: {tokenizer_line(r.tokenizer)}")
    return "\n".join(lines) + "\n"


def tokenizer_line(check: dict[str, Any]) -> str:
    """The stored tokenizer check in words: its verdict, then its detail."""
    verdict = {True: "counts alike", False: "counts differently", None: "not measured"}[check.get("honoured")]
    return f"{verdict}: {check.get('detail', '')}"


@dataclass
class ContextStudy:
    """A finished context-window study, as stored (table `studies`, kind `context_window`)."""

    results: list[ContextResult]
    max_tokens: int

    KIND = "context_window"

    def to_dict(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ContextStudy:
        results = [ContextResult(**{**r, "probes": [Probe(**x) for x in r["probes"]]}) for r in data["results"]]
        return cls(results, int(data["max_tokens"]))

    def render(self) -> str:
        return render(self.results, self.max_tokens)
