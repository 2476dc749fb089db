"""`pick: best`: the value of one axis a step's results support, with the rule and numbers that chose it.

- A categorical axis (prompt, system, quantization, model): the winner only where the report's own
  rule names a best row (`runner.reporting.judgement.best_row`: separable from the runner-up by
  McNemar over items, and for a binary scorer better than always answering the majority class);
  otherwise the first declared of the candidates the data cannot tell apart from the top, and the
  reason says so.
- A sampling axis (temperature, ...): the most accurate value among those whose answers do not flip
  across repeats (`CellStats.flips`: items whose stated class changed between repeats), ties broken by
  the lowest value; the reason names any value excluded for flipping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.analysis.results import ResultSet


@dataclass(frozen=True)
class Pick:
    axis: str
    value: Any  # as the axis shows it (a named value's name)
    rule: str  # separable | tied | not better than majority | no flips | fewest flips | only value
    why: str
    evidence: dict[str, Any]  # per candidate: accuracy, items, flips; the test's p where one ran

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


def pick_best(results: ResultSet, axis: str, alpha: float = 0.05) -> Pick:
    """The best value of `axis` over the step's results (the first scorer), by the rules above."""
    raise NotImplementedError
