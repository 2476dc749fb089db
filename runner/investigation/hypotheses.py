"""The investigation's conclusions: the hypotheses table (H1-H6) and the decision. Pure.

Each step with a `hypothesis` tests the axis its experiment varies (H1 prompt, H2 a sampling key,
H4 model, H5 quantization, H6 system prompt). Its effect is the accuracy difference between the
most accurate value and the first declared one (the baseline), paired over items: the report's own
comparison (`runner.analysis.compare`: per-item accuracies, their bootstrap interval, McNemar on
per-item majority, Holm over all of the step's comparisons). The verdict:

- `supported`: a comparison on the axis rejects at the report's alpha (Holm) and its interval
  excludes 0 (the largest such difference is shown);
- `refuted`: every comparison's interval lies within +-SMALLEST_EFFECT;
- `inconclusive` otherwise, with about how many items would detect the difference shown
  (`Comparison.items_needed`, Connor 1987, 80% power) where the discordant pairs allow an estimate.

H3 (context) is a `context_window` study step: supported when an answered job of another step sent
a prompt of at least CONTEXT_SHARE of the smallest discovered limit (a server that truncates
silently reports at most the limit, so a truncated prompt counts there too; the store records no
per-job truncation flag), refuted when the largest prompt is below it, inconclusive without a limit.

The decision judges the last step that is not a study against the investigation's threshold by the
report's verdict rule (`runner.reporting.judgement.verdicts`): its single row, or its best row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.analysis.results import ResultSet
from runner.capabilities.context_window import ContextStudy
from runner.config.schema import Threshold

# The smallest accuracy difference that matters for this question: a prompt or setting that moves
# accuracy by less than 10 points cannot carry a 40% model to a 60% bar on its own.
SMALLEST_EFFECT = 0.10
# A prompt this close to the context limit is at risk of being cut (H3).
CONTEXT_SHARE = 0.9

NAMES = {"H1": "prompt", "H2": "sampling", "H3": "context window", "H4": "general vs code model",
         "H5": "quantization", "H6": "system prompt"}


@dataclass(frozen=True)
class Hypothesis:
    """One row of the hypotheses table."""

    id: str
    name: str
    step: str | None
    tested: str
    effect: float | None
    interval: tuple[float, float] | None
    p: float | None  # Holm-adjusted McNemar p of the comparison shown
    n_items: int
    verdict: str  # supported | refuted | inconclusive | not tested
    items_to_decide: int | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Decision:
    verdict: str  # viable | inadequate | not decidable
    sentence: str
    step: str | None
    n_items: int
    interval: tuple[float, float] | None
    metric: str
    min: float

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class StepEvidence:
    """What a step left to conclude from: its results (a matrix) or its study, and the values it took."""

    name: str
    hypothesis: str | None
    uses: dict[str, Any]
    results: ResultSet | None = None
    study: ContextStudy | None = None


def hypotheses(steps: list[StepEvidence]) -> list[Hypothesis]:
    """H1..H6 in order: one row per step that tests it, `not tested` where none does."""
    raise NotImplementedError


def decide(threshold: Threshold, steps: list[StepEvidence]) -> Decision:
    """The investigation's answer from the last step that is not a study."""
    raise NotImplementedError
