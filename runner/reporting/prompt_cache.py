"""How much of each variant's prompts llama.cpp took from its KV cache instead of evaluating them.

llama.cpp reports, per request, the prompt tokens it evaluated (`timings.prompt_n`); the rest of the
prompt (`prompt_tokens`) came from the slot's cache (`cache_prompt`, and the executor's job order:
runner.execution.ordering). The share is over the jobs this run sent that say both numbers: answers
from the response cache were not evaluated now, and servers that do not report `prompt_n` (OpenAI's,
Ollama's) are left out rather than counted as misses. A figure of the engine's work, over jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.analysis.results import ResultSet


@dataclass(frozen=True)
class PromptCacheShare:
    variant: str
    jobs: int  # jobs that reported both numbers
    prompt_tokens: int
    evaluated: int  # of them, evaluated now; the rest came from the KV cache

    @property
    def hit_share(self) -> float:
        return 1 - self.evaluated / self.prompt_tokens if self.prompt_tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "jobs": self.jobs, "prompt_tokens": self.prompt_tokens,
                "evaluated": self.evaluated, "hit_share": self.hit_share}


def prompt_cache_shares(results: ResultSet) -> list[PromptCacheShare]:
    """One entry per variant (in plan order) with a job that reported `prompt_n`; empty where none did."""
    sums: dict[str, list[int]] = {}
    for cell in results.cells:
        for result in cell.results:
            record = result.record
            if record is None or record.status != "ok" or record.from_cache or not record.prompt_tokens:
                continue
            evaluated = (record.timings or {}).get("prompt_n")
            if not isinstance(evaluated, int) or isinstance(evaluated, bool):
                continue
            entry = sums.setdefault(cell.cell.variant.label, [0, 0, 0])
            entry[0] += 1
            entry[1] += record.prompt_tokens
            entry[2] += min(evaluated, record.prompt_tokens)
    return [PromptCacheShare(label, jobs, prompt, evaluated) for label, (jobs, prompt, evaluated) in sums.items()]


def prompt_cache_line(shares: list[PromptCacheShare]) -> str | None:
    """The report's line: "prompt cache (...): smollm2 0.97 of 9,440 prompt tokens (16 jobs)"; None if none said."""
    if not shares:
        return None
    parts = [f"{s.variant} {s.hit_share:.2f} of {s.prompt_tokens:,} prompt tokens ({s.jobs} jobs)" for s in shares]
    return ("prompt cache (share of prompt tokens taken from the KV cache, not evaluated; llama.cpp "
            "timings.prompt_n): " + ", ".join(parts))
