"""`runner probe`: what the server honours, measured per model variant, not assumed.

- seed: two requests with the same seed at temperature 0.9 give the same text (and a third seed
  gives a different one, which shows the temperature is applied at all);
- JSON schema: a schema-constrained request returns JSON of that shape;
- prompt tokens: the reported prompt tokens of a long prompt equal the server's own tokenizer's
  count (where it has one), or at least grow with the prompt;
- requested context: a prompt filling 3/4 of the requested context (n_ctx, num_ctx) is read whole;
- tokenizer: the server counts the tokens of a few of the experiment's own prompts as a reference
  tokenizer does (`tokenizer_parity`).

Results are stored; `runner run` warns before running when the experiment relies on something
the server was measured to ignore.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Variant, injected_system_prompt
from runner.config.schema import Experiment

SCHEMA = {"type": "object", "properties": {"valid": {"type": "boolean"}}, "required": ["valid"],
          "additionalProperties": False}


class ProbeStatus(enum.StrEnum):
    HONOURED = "yes"
    IGNORED = "NO"
    NOT_MEASURABLE = "n/a"  # this server cannot be asked, or cannot tell


@dataclass
class ProbeResult:
    capability: str
    honoured: bool | None  # None: cannot be measured on this server (stored as is: see `status`)
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)  # numbers the warnings quote (tokenizer)

    @property
    def status(self) -> ProbeStatus:
        return {True: ProbeStatus.HONOURED, False: ProbeStatus.IGNORED, None: ProbeStatus.NOT_MEASURABLE}[self.honoured]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.measured:
            del data["measured"]  # stored as before for the capabilities that measure no numbers
        return data

    def line(self) -> str:
        return f"{self.capability:<18} {self.status:<4} {self.detail}"


def _ask(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


async def probe_variant(backend: Backend, variant: Variant) -> list[ProbeResult]:
    return [await _seed(backend, variant), await _schema(backend, variant), *await _tokens(backend, variant),
            await _system_prompt(backend)]


async def _system_prompt(backend: Backend) -> ProbeResult:
    """Hypothesis 6: does the server add a system prompt of its own when a request has none?"""
    if await backend.render_prompt(_ask("Is this config valid?")) is None:
        return ProbeResult("system_prompt", None, "the server cannot show the rendered prompt")
    injected = await injected_system_prompt(backend)
    if injected is None:
        return ProbeResult("system_prompt", True, "nothing is added when a request has no system message")
    size = f" ({injected.tokens} tokens)" if injected.tokens else ""
    return ProbeResult("system_prompt", False, f"with no system message the template adds {injected.text!r}{size}; "
                       "send an explicit or empty system message to avoid it")


async def _text(backend: Backend, variant: Variant, messages: list[dict[str, str]], **params: Any) -> str:
    completion = await backend.generate(ChatRequest(variant.model_id, messages, params))
    return completion.text


async def _seed(backend: Backend, variant: Variant) -> ProbeResult:
    messages = _ask("Write one sentence about a lighthouse.")
    params = {"temperature": 0.9, "max_tokens": 24}
    try:
        first = await _text(backend, variant, messages, seed=7, **params)
        again = await _text(backend, variant, messages, seed=7, **params)
        other = await _text(backend, variant, messages, seed=8, **params)
    except BackendError as exc:
        return ProbeResult("seed", None, f"request failed: {exc}")
    if first != again:
        return ProbeResult("seed", False, "the same seed gave different texts: repeats are not reproducible")
    if other == first:
        return ProbeResult("seed", True, "same seed, same text; another seed gave the same text too "
                           "(temperature may be ignored)")
    return ProbeResult("seed", True, "same seed, same text; another seed, another text")


async def _schema(backend: Backend, variant: Variant) -> ProbeResult:
    fmt = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": SCHEMA}}
    try:
        completion = await backend.generate(ChatRequest(
            variant.model_id, _ask("Is port 70000 a valid TCP port? Answer in JSON."),
            {"temperature": 0.0, "max_tokens": 48, "response_format": fmt}))
    except BackendError as exc:
        return ProbeResult("json_schema", False, f"refused: {exc}")
    try:
        data = json.loads(completion.text)
    except json.JSONDecodeError:
        return ProbeResult("json_schema", False, f"answer is not JSON: {completion.text[:60]!r}")
    ok = isinstance(data, dict) and set(data) == {"valid"} and isinstance(data["valid"], bool)
    return ProbeResult("json_schema", ok, "schema-shaped JSON" if ok else f"JSON of another shape: {data!r:.60}")


async def _tokens(backend: Backend, variant: Variant) -> list[ProbeResult]:
    short = _ask("Reply with OK. " + "tree " * 100)
    long = _ask("Reply with OK. " + "tree " * 200)
    try:
        reported_short = (await backend.generate(ChatRequest(variant.model_id, short, {"max_tokens": 2}))).prompt_tokens
        reported = (await backend.generate(ChatRequest(variant.model_id, long, {"max_tokens": 2}))).prompt_tokens
    except BackendError as exc:
        return [ProbeResult("prompt_tokens", None, f"request failed: {exc}")]
    counted = await backend.count_tokens(long)
    if reported is None:
        result = ProbeResult("prompt_tokens", False, "the server reports no prompt token count")
    elif counted is not None:
        result = ProbeResult("prompt_tokens", reported == counted,
                             f"reported {reported}, the server's tokenizer counts {counted}")
    else:
        grows = reported_short is not None and reported > reported_short
        result = ProbeResult("prompt_tokens", None,
                             f"reported {reported} ({'grows' if grows else 'does NOT grow'} with the prompt); "
                             "no tokenizer endpoint to check it against")
    results = [result]
    results.append(await _context(backend, variant, reported, reported_short))
    return results


async def _context(backend: Backend, variant: Variant, reported_200: int | None,
                   reported_100: int | None) -> ProbeResult:
    requested = backend.requested_context()
    if requested is None:
        return ProbeResult("requested_context", None, "this backend cannot request a context size")
    if not reported_200 or not reported_100 or reported_200 <= reported_100:
        return ProbeResult("requested_context", None, "no usable prompt token counts to size the test prompt")
    per_word = (reported_200 - reported_100) / 100
    overhead = reported_100 - 100 * per_word
    words = int((0.75 * requested - overhead) / per_word)
    expected = int(overhead + words * per_word)
    try:
        completion = await backend.generate(ChatRequest(variant.model_id, _ask("Reply with OK. " + "tree " * words),
                                                        {"max_tokens": 2}))
    except BackendError as exc:
        return ProbeResult("requested_context", False, f"a {expected}-token prompt (75% of {requested}) was refused: "
                           f"{exc}")
    got = completion.prompt_tokens or 0
    ok = got >= 0.98 * expected
    return ProbeResult("requested_context", ok, f"asked for {requested}; a {expected}-token prompt was read as {got}"
                       + ("" if ok else ": the server kept less than it was sent (silent truncation)"))


def warnings_for(experiment: Experiment, results: list[dict[str, Any]], variant: Variant) -> list[str]:
    """What the experiment relies on that the stored probe says the server ignores."""
    by_name = {r["capability"]: r for r in results}
    label = variant.label
    out = []
    sampling = experiment.sampling
    if sampling.seed is not None and by_name.get("seed", {}).get("honoured") is False:
        out.append(f"{label}: the experiment sets a seed but the server was measured to ignore it; repeats at "
                   "temperature > 0 will not be reproducible")
    if sampling.response_format is not None and by_name.get("json_schema", {}).get("honoured") is False:
        out.append(f"{label}: the experiment sets response_format but the server did not return schema-shaped "
                   "JSON when probed")
    if by_name.get("requested_context", {}).get("honoured") is False:
        out.append(f"{label}: the server did not read a prompt within the requested context whole: "
                   f"{by_name['requested_context']['detail']}")
    sends_none = any(ref is None or ref.sends_nothing for ref in experiment.prompts.system_refs()) and \
        not all(v.system is not None for v in experiment.prompts.variants)
    if sends_none and by_name.get("system_prompt", {}).get("honoured") is False:
        out.append(f"{label}: some cells send no system message, and the server was measured to add its own: "
                   f"{by_name['system_prompt']['detail']}")
    tokenizer = by_name.get("tokenizer", {})
    if tokenizer.get("honoured") is False and tokenizer.get("measured"):
        m = tokenizer["measured"]
        out.append(f"{label}: the server's tokenizer counts {m['differ']} of {m['prompts']} sample prompts "
                   f"differently from the reference (mean {m['mean']:+.1f}, max {m['max']:+d} tokens): scores may "
                   "suffer from a broken or different tokenizer")
    return out
