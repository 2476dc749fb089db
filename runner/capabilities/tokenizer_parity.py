"""Tokenizer parity: does the server split the experiment's own prompts as a reference tokenizer does?

A GGUF converted with a broken or foreign vocabulary still answers, only worse; a score cannot
show why. So `runner probe` takes a few of the experiment's prompts (the first items of each
variant's first cell, rendered as the plan renders them), has the server tokenize them, tokenizes
the same text with the reference (`reference_tokenizer`), and counts the prompts whose token counts
differ. Like is compared with like: the text both sides tokenize is the chat-template-rendered
prompt the server builds from the messages (what the model actually receives, special tokens and
all) where the server can render it, else the messages' contents one by one; the line says which.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from runner.backends.base import Backend, Variant
from runner.capabilities.probe import ProbeResult
from runner.capabilities.reference_tokenizer import Reference, ReferenceFailed
from runner.plan.planner import Plan

CAPABILITY = "tokenizer"
SAMPLES = 5
RENDERED = "chat-template-rendered prompts"
CONTENTS = "message contents (the server renders no chat template)"


def sample_prompts(plan: Plan, variant: Variant, n: int = SAMPLES) -> list[tuple[dict[str, str], ...]]:
    """The messages of the variant's first cell for the first `n` dataset items."""
    cell = next(c for c in plan.cells if c.variant == variant)
    return [plan.render_messages(cell, item) for item in plan.items[:n]]


async def probe_tokenizer(backend: Backend, samples: list[tuple[dict[str, str], ...]],
                          reference: Reference | str) -> ProbeResult:
    """`reference` is the tokenizer to compare with, or the reason there is none."""
    texts, what = await _texts(backend, samples)
    server: list[list[int]] = []
    for group in texts:
        for text in group:
            ids = await backend.tokenize(text)
            if ids is None:
                return ProbeResult(CAPABILITY, None, "the server cannot tokenize text (no /tokenize endpoint)")
            server.append(ids)
    if isinstance(reference, str):
        return ProbeResult(CAPABILITY, None, reference)
    try:
        flat = await asyncio.to_thread(reference.encode_all, [t for group in texts for t in group])
    except ReferenceFailed as exc:
        return ProbeResult(CAPABILITY, None, str(exc))
    return compare(_per_prompt(server, texts), _per_prompt(flat, texts), what=what,
                   reference_name=reference.describe)


async def _texts(backend: Backend, samples: list[tuple[dict[str, str], ...]]) -> tuple[list[list[str]], str]:
    """Per sample, the texts both sides tokenize, and what they are."""
    rendered = [await backend.apply_template(list(messages)) for messages in samples]
    if all(r is not None for r in rendered):
        return [[r] for r in rendered if r is not None], RENDERED
    return [[m["content"] for m in messages] for messages in samples], CONTENTS


def _per_prompt(ids: list[list[int]], texts: list[list[str]]) -> list[list[int]]:
    """The flat per-text token lists joined back into one list per sample prompt."""
    out, at = [], 0
    for group in texts:
        out.append([t for part in ids[at:at + len(group)] for t in part])
        at += len(group)
    return out


@dataclass(frozen=True)
class Parity:
    prompts: int
    differ: int
    mean: float  # server minus reference, over the prompts that differ (0 when none do)
    max: int  # the difference of largest size, with its sign

    def to_dict(self) -> dict[str, int | float]:
        return {"prompts": self.prompts, "differ": self.differ, "mean": round(self.mean, 2), "max": self.max}


def parity(server: list[int], reference: list[int]) -> Parity:
    diffs = [s - r for s, r in zip(server, reference, strict=True) if s != r]
    mean = sum(diffs) / len(diffs) if diffs else 0.0
    return Parity(len(server), len(diffs), mean, max(diffs, key=abs) if diffs else 0)


def compare(server: list[list[int]], reference: list[list[int]], *, what: str, reference_name: str) -> ProbeResult:
    """The verdict on token counts per prompt; identical ids are noted, but the count is the verdict."""
    found = parity([len(ids) for ids in server], [len(ids) for ids in reference])
    where = f": {what}, reference {reference_name}"
    if found.differ:
        return ProbeResult(CAPABILITY, False,
                           f"{found.differ} of {found.prompts} sample prompts counted differently (server minus "
                           f"reference: mean {found.mean:+.1f}, max {found.max:+d} tokens){where}",
                           measured=found.to_dict())
    other_ids = sum(s != r for s, r in zip(server, reference, strict=True))
    ids = "the same ids" if not other_ids else f"other ids in {other_ids}"
    total = sum(len(s) for s in server)
    return ProbeResult(CAPABILITY, True, f"{found.prompts} of {found.prompts} sample prompts counted alike "
                       f"({total} tokens, {ids}){where}", measured=found.to_dict())
