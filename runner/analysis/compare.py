"""Paired comparisons between cells that differ on one axis, on the same items and repeats.

For every varying axis, cells are grouped by their values on all other axes; within a group each
value is compared with the axis's first value (the baseline: the first prompt, the first
temperature, the first quantization).

One accuracy per cell, on the stated unit: an item's accuracy is the share of its repeats that
were right, and a cell's accuracy is the mean over the items answered in both cells. With the same
repeats for every item that is correct answers / answers, the report table's accuracy; the
sentence says the unit ("over 12 items, 3 repeats each"). The difference and its paired bootstrap
interval are computed on those per-item accuracies (items resampled, their repeats kept together),
so they match the two accuracies shown.

McNemar's exact test needs one right/wrong per item: an item counts as right in a cell when most
of its repeats were (a tie leaves it out), because repeats of one item are not independent trials.
Holm's correction runs over all comparisons of the experiment. The sentence then says whether the
difference is significant or noise at this n, and how many items would detect it where there are
enough discordant pairs to estimate that (at least 5), or that both cells give a constant answer,
which more items will not change.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from runner.analysis.metrics import hashable
from runner.analysis.stats import bootstrap_mean_interval, holm_adjust, mcnemar_exact, mcnemar_sample_size

Outcomes = dict[tuple[str, int], bool]  # (item id, repeat) -> correct

# Connor's approximation from fewer discordant pairs than this is a guess, not an estimate.
MIN_DISCORDANT = 5
# A constant answer: one class in at least 90% of the items that state one, and at least 5 of them.
CONSTANT_SHARE = 0.9
MIN_FOR_CONSTANT = 5


@dataclass(frozen=True)
class CellOutcomes:
    values: dict[str, Any]  # axis -> value
    outcomes: Outcomes
    # (item id, repeat) -> the class the answer stated (None: none), where known: finds constant answers.
    answers: Mapping[tuple[str, int], Any] = field(default_factory=dict)

    def constant(self) -> tuple[Any, int, int] | None:
        """`constant_answer` of the items' predictions, worked out once: a cell faces one comparison per
        other value of each axis."""
        if "_constant" not in self.__dict__:  # a cache, not a field (as Cell.key): frozen, equality ignores it
            object.__setattr__(self, "_constant", constant_answer(item_predictions(self.answers).values()))
        found: tuple[Any, int, int] | None = self.__dict__["_constant"]
        return found


@dataclass
class Comparison:
    axis: str
    baseline: Any
    value: Any
    context: dict[str, Any]  # the other varying axes, held fixed
    n_pairs: int  # items right or wrong by most of their repeats in both cells: McNemar's pairs
    baseline_correct: int  # of those, right under the baseline
    value_correct: int
    only_baseline: int  # pairs right under the baseline only
    only_value: int  # pairs right under the value only
    difference: float  # value_accuracy - baseline_accuracy
    low: float
    high: float
    p_value: float
    p_holm: float = 1.0
    alpha: float = 0.05
    n_items: int = 0  # items answered in both cells: the unit of the accuracies and of the interval
    baseline_accuracy: float = math.nan  # mean over those items of each item's share of right repeats
    value_accuracy: float = math.nan
    repeats: tuple[int, int] = (1, 1)  # fewest and most answers an item has in either cell
    constant_answers: tuple[Any, Any] | None = None  # (baseline's, value's) when both cells give one

    @property
    def significant(self) -> bool:
        return self.p_holm < self.alpha

    @property
    def discordant(self) -> int:
        return self.only_value + self.only_baseline

    @property
    def estimable(self) -> bool:
        """Enough discordant pairs to estimate the items a difference would need (MIN_DISCORDANT)."""
        return self.discordant >= MIN_DISCORDANT

    def items_needed(self) -> int | None:
        """Items needed for 80% power at alpha, from the observed discordant rates (Connor 1987);
        None with fewer than MIN_DISCORDANT discordant pairs (see `estimable`), and where the normal
        approximation does not hold (it would ask for fewer than were tested)."""
        if self.n_pairs == 0 or not self.estimable:
            return None
        needed = mcnemar_sample_size(self.only_value / self.n_pairs, self.only_baseline / self.n_pairs,
                                     alpha=self.alpha)
        return needed if needed is not None and needed > self.n_pairs else None

    def unit(self) -> str:
        """What the accuracies are over: "12 items, 3 repeats each"."""
        fewest, most = self.repeats
        if most <= 1:
            return f"{self.n_items} items"
        each = f"{most}" if fewest == most else f"{fewest}-{most}"
        return f"{self.n_items} items, {each} repeats each"

    def sentence(self) -> str:
        ctx = ", ".join(f"{k}={_show(v)}" for k, v in self.context.items())
        head = f"{self.axis} {_show(self.value)} vs {_show(self.baseline)}" + (f" ({ctx})" if ctx else "")
        if self.n_items == 0:
            return f"{head}: no paired results yet"
        majority_rule = " on per-item majority" if self.repeats[1] > 1 else ""
        ties = self.n_items - self.n_pairs
        left_out = f", {ties} tied {'item' if ties == 1 else 'items'} left out" if ties else ""
        body = (f"accuracy {self.value_accuracy:.2f} vs {self.baseline_accuracy:.2f} over {self.unit()}; "
                f"difference {self.difference:+.2f} [{self.low:+.2f}, {self.high:+.2f}]; McNemar{majority_rule} "
                f"p={self.p_value:.3g} (Holm {self.p_holm:.3g}, {self.only_value} vs {self.only_baseline} "
                f"discordant{left_out})")
        if self.significant:
            return f"{head}: {body}: significant at alpha={self.alpha:g}"
        return f"{head}: {body}: {self._noise()}"

    def _noise(self) -> str:
        if self.constant_answers is not None:  # first: it is the reason, whatever the pattern
            return f"{BOTH_CONSTANT}: {MORE_ITEMS_WONT_HELP}"
        if self.only_value == self.only_baseline == 0:
            return "no discordant pairs: the two give the same right/wrong pattern"
        if not self.estimable:
            return f"noise at this n; {TOO_FEW_DISCORDANT}"
        needed = self.items_needed()
        more = f"; about {needed} items would be needed to detect it (Connor 1987, 80% power)" if needed else ""
        return f"noise at this n{more}"


BOTH_CONSTANT = "both cells give a constant answer"
MORE_ITEMS_WONT_HELP = "more items will not separate them"
TOO_FEW_DISCORDANT = "too few discordant pairs to estimate the items needed"


def item_predictions(answers: Mapping[tuple[str, int], Any]) -> dict[str, Any]:
    """Per item, the class most of its repeats stated (None where none stated one)."""
    # Plain dicts, not a Counter per item (100,000 answers made 20,000 Counters, a second of a report);
    # `max` keeps the first of equal counts in insertion order, as Counter.most_common(1) does.
    stated: dict[str, dict[Any, int]] = {}
    for (item, _), answer in answers.items():
        counts = stated.setdefault(item, {})  # an item that stated no class is there too, as None
        if answer is not None:
            key = hashable(answer)
            counts[key] = counts.get(key, 0) + 1
    return {item: (max(c.items(), key=itemgetter(1))[0] if c else None) for item, c in stated.items()}


def constant_answer(predictions: Iterable[Any]) -> tuple[Any, int, int] | None:
    """(class, items giving it, items stating a class) when one class is at least CONSTANT_SHARE of
    the items that state one (None: stated none), from at least MIN_FOR_CONSTANT of them; else None."""
    counts = Counter(hashable(p) for p in predictions if p is not None)
    stated = sum(counts.values())
    if stated < MIN_FOR_CONSTANT:
        return None
    top, top_count = counts.most_common(1)[0]
    return (top, top_count, stated) if top_count / stated >= CONSTANT_SHARE else None


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
                                    base, cell, alpha))
    for comparison, adjusted in zip(out, holm_adjust([c.p_value for c in out]), strict=True):
        comparison.p_holm = adjusted
    return out


def majority(votes: list[bool]) -> bool | None:
    """Right if most repeats were right, wrong if most were wrong, None for a tie (left out of tests)."""
    right = sum(votes)
    return None if right * 2 == len(votes) else right * 2 > len(votes)


def _per_item(outcomes: Outcomes) -> dict[str, list[bool]]:
    votes: dict[str, list[bool]] = defaultdict(list)
    for (item, _), ok in outcomes.items():
        votes[item].append(ok)
    return votes


def _compare(axis: str, baseline: Any, value: Any, context: dict[str, Any], base: CellOutcomes,
             cell: CellOutcomes, alpha: float) -> Comparison:
    a, b = _per_item(base.outcomes), _per_item(cell.outcomes)
    keys = sorted(set(a) & set(b))
    # Accuracy per item (its share of right repeats): the unit of the accuracies and the interval.
    share_a = [sum(a[k]) / len(a[k]) for k in keys]
    share_b = [sum(b[k]) / len(b[k]) for k in keys]
    if keys:
        acc_a, acc_b = sum(share_a) / len(keys), sum(share_b) / len(keys)
        # Resampling items with their repeats kept together is the bootstrap of the per-item differences.
        low, high = bootstrap_mean_interval([y - x for x, y in zip(share_a, share_b, strict=True)])
    else:
        acc_a = acc_b = low = high = math.nan
    counts = [len(v[k]) for v in (a, b) for k in keys] or [1]
    # McNemar: one right/wrong per item, by most of its repeats; a tie leaves the item out.
    decided = [(ma, mb) for ma, mb in ((majority(a[k]), majority(b[k])) for k in keys)
               if ma is not None and mb is not None]
    only_a = sum(1 for p, q in decided if p and not q)
    only_b = sum(1 for p, q in decided if q and not p)
    return Comparison(axis, baseline, value, context, len(decided), sum(p for p, _ in decided),
                      sum(q for _, q in decided), only_a, only_b, acc_b - acc_a, low, high,
                      mcnemar_exact(only_a, only_b), alpha=alpha, n_items=len(keys), baseline_accuracy=acc_a,
                      value_accuracy=acc_b, repeats=(min(counts), max(counts)),
                      constant_answers=_both_constant(base, cell))


def _both_constant(base: CellOutcomes, cell: CellOutcomes) -> tuple[Any, Any] | None:
    if not base.answers or not cell.answers:
        return None
    first, second = base.constant(), cell.constant()
    # The same constant in both cells: they differ only by chance in which items get it, and more items
    # change nothing. Two different constants do differ, and enough items would show it.
    if first is None or second is None or first[0] != second[0]:
        return None
    return (first[0], second[0])


def _show(value: Any) -> str:
    return "-" if value is None else str(value)
