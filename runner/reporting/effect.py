"""Does one axis explain the score? The rule an experiment's `report.effect` ends its report with and
the investigation's hypotheses table (H1, H2, H4-H6) judges each step by. Pure.

The effect is an accuracy difference between a value of the axis and the baseline (the declared
`baseline`, else the first declared value), paired over items: the report's own comparisons
(`runner.analysis.compare`: per-item accuracies, their bootstrap interval, McNemar on per-item
majority, Holm over all of the experiment's comparisons). The verdict:

- `supported`: a comparison on the axis rejects at the report's alpha (Holm) and its interval
  excludes 0 (the largest such difference is shown);
- `refuted`: every comparison's interval lies within +-SMALLEST_EFFECT, over enough items that this
  can hold at all: where every item agrees the bootstrap interval is [0, 0] whatever n is, so at
  least as many items as make the Wilson upper bound of "0 of n items differ" no more than
  SMALLEST_EFFECT (35 items at 95%; `enough_to_refute`);
- `inconclusive` otherwise, with about how many items would detect the difference shown
  (`Comparison.items_needed`, Connor 1987, 80% power) where the discordant pairs allow an estimate,
  or the items that would refute it where nothing differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from runner.analysis.compare import Comparison
from runner.analysis.results import ResultSet
from runner.analysis.stats import wilson_interval

# The smallest accuracy difference that matters for this question: a prompt or setting that moves
# accuracy by less than 10 points cannot carry a 40% model to a 60% bar on its own.
SMALLEST_EFFECT = 0.10


def enough_to_refute(n_items: int) -> bool:
    """Whether n items can show an effect below SMALLEST_EFFECT at all: the Wilson upper bound (95%) of
    none of them differing is within it."""
    return n_items > 0 and wilson_interval(0, n_items)[1] <= SMALLEST_EFFECT


def items_to_refute() -> int:
    """The fewest items over which "none differ" bounds the effect within SMALLEST_EFFECT (35)."""
    return next(n for n in range(1, 10_000) if enough_to_refute(n))


@dataclass(frozen=True)
class AxisEffect:
    axis: str
    baseline: Any
    verdict: str  # supported | refuted | inconclusive
    comparison: Comparison | None  # the one shown
    n_comparisons: int  # of the whole experiment, which Holm adjusts over
    why: str
    items_to_decide: int | None

    def sentence(self) -> str:
        """One line in the analysis's terms: "<axis> does / does not explain the score: ..."."""
        c = self.comparison
        if c is None:
            return f"{self.axis}: cannot say whether it explains the score: {self.why}"
        numbers = (f"{_show(c.value)} vs {_show(c.baseline)} difference {c.difference:+.2f} "
                   f"[{c.low:+.2f}, {c.high:+.2f}] over {c.unit()}")
        if self.verdict == "supported":
            return f"{self.axis} does explain the score: {numbers} (McNemar p={c.p_value:.3g}, Holm {c.p_holm:.3g})"
        if self.verdict == "refuted":
            return (f"{self.axis} does not explain the score: {numbers}; every value's interval lies within "
                    f"+-{SMALLEST_EFFECT:.2f} of {_show(self.baseline)}, the smallest effect that matters")
        decide = (f"; about {self.items_to_decide} items would decide it" if self.items_to_decide else "")
        return f"{self.axis} does not yet show whether it explains the score at n={c.n_items} items: {numbers}; " \
               f"{self.why}{decide}"

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {"axis": self.axis, "baseline": self.baseline, "verdict": self.verdict,
                "value": None if c is None else c.value, "difference": None if c is None else c.difference,
                "interval": None if c is None else [c.low, c.high], "p": None if c is None else c.p_value,
                "p_holm": None if c is None else c.p_holm, "n_items": 0 if c is None else c.n_items,
                "items_to_decide": self.items_to_decide, "why": self.why, "sentence": self.sentence()}


def axis_effect(results: ResultSet, axis: str, *, baseline: Any = None,
                shown: Literal["most_accurate", "largest"] = "largest") -> AxisEffect:
    """The verdict on `axis` (it must vary in the plan). `shown` picks the comparison a verdict that
    is not `supported` shows: the most accurate value against the baseline (what a hypothesis that
    a setting helps asks), or the largest difference either way (what "does it explain" asks)."""
    values = list(results.plan.axes[axis])
    base = values[0] if baseline is None else baseline
    alpha = results.plan.experiment.report.alpha
    if not results.scorers:
        return AxisEffect(axis, base, "inconclusive", None, 0, "the experiment has no scorer: accuracy is not "
                          "measured", None)
    everything = results.comparisons(alpha, baselines={axis: base})
    comps = [c for c in everything if c.axis == axis and c.n_items]
    if not comps:
        return AxisEffect(axis, base, "inconclusive", None, len(everything), "no item was answered under both "
                          f"{_show(base)} and another value yet", None)
    rejecting = [c for c in comps if c.significant and (c.low > 0 or c.high < 0)]
    if rejecting:
        c = max(rejecting, key=lambda c: abs(c.difference))
        return AxisEffect(axis, base, "supported", c, len(everything),
                          f"the test rejects at alpha={alpha:g} (Holm over the {len(everything)} comparisons) "
                          f"and the interval excludes 0: {c.sentence()}", None)
    if shown == "most_accurate":
        c = max(comps, key=lambda c: c.difference)
    else:  # ties: the first declared
        c = max(comps, key=lambda c: abs(c.difference))
    within = all(x.low >= -SMALLEST_EFFECT and x.high <= SMALLEST_EFFECT for x in comps)
    if within and all(enough_to_refute(x.n_items) for x in comps):
        return AxisEffect(axis, base, "refuted", c, len(everything),
                          f"every interval lies within +-{SMALLEST_EFFECT:.2f}, the smallest effect that matters: "
                          f"{c.sentence()}", None)
    if within:
        least = items_to_refute()
        reason = (f"the interval lies within +-{SMALLEST_EFFECT:.2f} but over fewer than {least} items, too few "
                  f"to refute an effect of {SMALLEST_EFFECT:.2f} (0 of {c.n_items} items differing still allows "
                  f"{wilson_interval(0, c.n_items)[1]:.2f})")
        # Nothing differs, so no discordance to size a test on: the items that would refute it.
        needed = c.items_needed() or (least if c.discordant == 0 else None)
    else:
        reason = f"no rejection at alpha={alpha:g}, interval not within +-{SMALLEST_EFFECT:.2f}"
        needed = c.items_needed()
    return AxisEffect(axis, base, "inconclusive", c, len(everything), f"neither shown ({reason})", needed)


def _show(value: Any) -> str:
    return "-" if value is None else str(value)
