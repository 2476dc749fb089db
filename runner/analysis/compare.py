"""Paired comparisons between cells that differ on one axis, on the same items and repeats.

For every varying axis, cells are grouped by their values on all other axes; within a group each
value is compared with the axis's first value (the baseline: the first prompt, the first
temperature, the first quantization). Pairs are items: with repeats, an item counts as right in a
cell when most of its repeats were (a tie leaves the item out), because repeats of one item are
not independent trials.

Per comparison: McNemar's exact test on the discordant pairs, a paired bootstrap interval on the
difference in accuracy, and Holm's correction over all comparisons of the experiment, then a
sentence that says whether the difference is significant or noise at this n.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from runner.analysis.metrics import hashable
from runner.analysis.stats import holm_adjust, mcnemar_exact, mcnemar_sample_size, paired_bootstrap_difference

Outcomes = dict[tuple[str, int], bool]  # (item id, repeat) -> correct


@dataclass(frozen=True)
class CellOutcomes:
    values: dict[str, Any]  # axis -> value
    outcomes: Outcomes


@dataclass
class Comparison:
    axis: str
    baseline: Any
    value: Any
    context: dict[str, Any]  # the other varying axes, held fixed
    n_pairs: int
    baseline_correct: int
    value_correct: int
    only_baseline: int  # pairs right under the baseline only
    only_value: int  # pairs right under the value only
    difference: float
    low: float
    high: float
    p_value: float
    p_holm: float = 1.0
    alpha: float = 0.05

    @property
    def significant(self) -> bool:
        return self.p_holm < self.alpha

    def items_needed(self) -> int | None:
        """Items needed for 80% power at alpha, from the observed discordant rates (Connor 1987);
        None where the normal approximation does not hold (it would ask for fewer than were tested)."""
        if self.n_pairs == 0:
            return None
        needed = mcnemar_sample_size(self.only_value / self.n_pairs, self.only_baseline / self.n_pairs,
                                     alpha=self.alpha)
        return needed if needed is not None and needed > self.n_pairs else None

    def sentence(self) -> str:
        ctx = ", ".join(f"{k}={_show(v)}" for k, v in self.context.items())
        head = f"{self.axis} {_show(self.value)} vs {_show(self.baseline)}" + (f" ({ctx})" if ctx else "")
        if self.n_pairs == 0:
            return f"{head}: no paired results yet"
        acc_b, acc_v = self.baseline_correct / self.n_pairs, self.value_correct / self.n_pairs
        body = (f"accuracy {acc_v:.2f} vs {acc_b:.2f}, difference {self.difference:+.2f} "
                f"[{self.low:+.2f}, {self.high:+.2f}] over {self.n_pairs} items; McNemar p={self.p_value:.3g} "
                f"(Holm {self.p_holm:.3g}, {self.only_value} vs {self.only_baseline} discordant)")
        if self.significant:
            return f"{head}: {body}: significant at alpha={self.alpha:g}"
        return f"{head}: {body}: {self._noise()}"

    def _noise(self) -> str:
        if self.only_value == self.only_baseline == 0:
            return "no discordant pairs: the two give the same right/wrong pattern"
        needed = self.items_needed()
        more = f"; about {needed} items would be needed to detect it (Connor 1987, 80% power)" if needed else ""
        return f"noise at this n{more}"


def paired_comparisons(cells: list[CellOutcomes], axes: dict[str, list[Any]], *,
                       alpha: float = 0.05) -> list[Comparison]:
    varying = [a for a, vals in axes.items() if len(vals) > 1]
    out: list[Comparison] = []
    for axis in varying:
        others = [a for a in varying if a != axis]
        groups: dict[tuple[Any, ...], dict[Any, CellOutcomes]] = defaultdict(dict)
        for cell in cells:
            groups[tuple(hashable(cell.values.get(a)) for a in others)][hashable(cell.values.get(axis))] = cell
        for group in groups.values():
            baseline_value = next((v for v in axes[axis] if hashable(v) in group), None)
            if baseline_value is None:
                continue
            base = group[hashable(baseline_value)]
            for value in axes[axis]:
                if hashable(value) == hashable(baseline_value) or hashable(value) not in group:
                    continue
                cell = group[hashable(value)]
                out.append(_compare(axis, baseline_value, value, {a: base.values.get(a) for a in others},
                                    base.outcomes, cell.outcomes, alpha))
    for comparison, adjusted in zip(out, holm_adjust([c.p_value for c in out]), strict=True):
        comparison.p_holm = adjusted
    return out


def majority(votes: list[bool]) -> bool | None:
    """Right if most repeats were right, wrong if most were wrong, None for a tie (left out of tests)."""
    right = sum(votes)
    return None if right * 2 == len(votes) else right * 2 > len(votes)


def _per_item(outcomes: Outcomes) -> dict[str, bool]:
    votes: dict[str, list[bool]] = defaultdict(list)
    for (item, _), ok in outcomes.items():
        votes[item].append(ok)
    decided = {item: majority(v) for item, v in votes.items()}
    return {item: ok for item, ok in decided.items() if ok is not None}


def _compare(axis: str, baseline: Any, value: Any, context: dict[str, Any], outcomes_a: Outcomes,
             outcomes_b: Outcomes, alpha: float) -> Comparison:
    a, b = _per_item(outcomes_a), _per_item(outcomes_b)
    keys = sorted(set(a) & set(b))
    xa = [a[k] for k in keys]
    xb = [b[k] for k in keys]
    only_a = sum(1 for p, q in zip(xa, xb, strict=True) if p and not q)
    only_b = sum(1 for p, q in zip(xa, xb, strict=True) if q and not p)
    if keys:
        diff, low, high = paired_bootstrap_difference(xa, xb)
    else:
        diff = low = high = float("nan")
    return Comparison(axis, baseline, value, context, len(keys), sum(xa), sum(xb), only_a, only_b, diff, low, high,
                      mcnemar_exact(only_a, only_b), alpha=alpha)




def _show(value: Any) -> str:
    return "-" if value is None else str(value)
