"""What a report may conclude: verdicts against the experiment's bar, the best row, dangerous errors.

Every claim is made on the item as the unit (repeats of an item are not independent) and only
where the interval supports it:

- a verdict is "viable" when the whole interval is at or above `report.threshold.min`, "not
  viable" when it is wholly below, and otherwise "not shown viable at n=...", with the number of
  items that would decide it at the observed rate (exact binomial power, 80%);
- "best" is named only when the top row is separable from the runner-up (McNemar over the items
  both answered, each item counted right when most of its answers were), and for a binary scorer
  only when it beats always answering the majority class; ties are never broken by order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from runner.analysis.clustered import BOOTSTRAP_RESAMPLES, MIN_BOOTSTRAP_ITEMS, items_to_decide
from runner.analysis.compare import majority
from runner.analysis.metrics import ITEM_COLUMNS, CellStats
from runner.analysis.stats import binomial_greater, mcnemar_exact
from runner.config.schema import Threshold
from runner.scoring.scorers import BinaryClassification, Scorer

Key = tuple[tuple[Any, ...], tuple[Any, ...]]
# A bootstrap bound from fewer draws beyond it than this is the sample's extreme, not a quantile.
MIN_TAIL_DRAWS = 5
_TP, _FP, _FN, _UP = (ITEM_COLUMNS.index(c) for c in ("tp", "fp", "fn", "unanswered_pos"))


@dataclass(frozen=True)
class Verdict:
    row: str
    metric: str
    status: str  # viable | not viable | not shown viable | not judged
    value: float | None
    low: float | None
    high: float | None
    threshold: float
    n_items: int
    n_jobs: int
    items_needed: int | None
    text: str

    @property
    def met(self) -> bool:
        return self.status == "viable"


def label_of(row_axes: list[str], col_axes: list[str], key: Key) -> str:
    parts = [f"{a}={'-' if v is None else v}" for a, v in zip(row_axes + col_axes, key[0] + key[1], strict=True)]
    return ", ".join(parts) or "all"


def unit(n_items: int, n_jobs: int) -> str:
    """n stated as items, with the repeats per item where there are any."""
    if n_items and n_jobs > n_items:
        per = n_jobs / n_items
        return f"{n_items} items x {per:.0f} repeats" if per.is_integer() else f"{n_items} items ({n_jobs} answers)"
    return f"{n_items} items"


def verdicts(threshold: Threshold | None, row_axes: list[str], col_axes: list[str],
             stats: dict[Key, CellStats], alpha: float = 0.05, confidence: float = 0.95) -> list[Verdict]:
    """Each row against the experiment's bar, judged by its interval over items, not its point value
    (at `confidence`: wider where the row was chosen among several on the same items)."""
    if threshold is None:
        return []
    out = []
    metric, bar = threshold.metric, threshold.min
    for key, s in stats.items():
        label = label_of(row_axes, col_axes, key)

        def not_judged(why: str, s: CellStats = s, label: str = label) -> Verdict:
            return Verdict(label, metric, "not judged", None, None, None, bar, len(s.items), s.ok, None,
                           f"{label}: not judged: {why}")

        rate = s.clustered(metric, confidence)
        if s.failed:
            out.append(not_judged(f"{s.failed} requests failed (they are left out of {metric}); run again to retry "
                                  "them"))
            continue
        if s.ok == 0:
            # A row with nothing to judge is never passed over: --fail-on-verdict must not pass on it.
            out.append(not_judged(f"no answers yet ({s.planned} jobs not run); run the experiment"))
            continue
        if rate is not None:
            if rate.n_jobs == 0:
                out.append(not_judged(f"no answer counts toward {metric} (for precision: none said the positive "
                                      "class)" if metric == "precision" else f"no answer counts toward {metric}"))
                continue
            value, low, high, n_items, n_jobs = rate.value, rate.low, rate.high, rate.n_items, rate.n_jobs
            n_eff: float | None = rate.n_eff
        else:
            if (1 - confidence) / 2 * BOOTSTRAP_RESAMPLES < MIN_TAIL_DRAWS:
                # The percentile bound would be one of the last few draws: not the confidence it is called.
                out.append(not_judged(f"a {confidence * 100:.6g}% bootstrap interval would rest on fewer than "
                                      f"{MIN_TAIL_DRAWS} of its {BOOTSTRAP_RESAMPLES:,} resamples in each tail"))
                continue
            interval = s.bootstrap_interval(metric, confidence)
            value = float(s.metric(metric))
            if interval is None or math.isnan(value) or math.isnan(interval[0]):
                out.append(not_judged(f"{metric} has no interval here (fewer than {MIN_BOOTSTRAP_ITEMS} items, "
                                      "too few for a bootstrap interval to be trusted, or no answer it is "
                                      "defined over); run more items"))
                continue
            (low, high), n_items, n_jobs = interval, len(s.items), s.ok
            n_eff = None  # not a proportion: no binomial figure for the items that would decide it
        shown = f"{metric} {value:.2f} [{low:.2f}, {high:.2f}]"
        over = f"over {unit(n_items, n_jobs)}"
        needed = None
        if low >= bar:
            status, text = "viable", f"{label}: viable: {shown} >= {bar:.2f} {over}"
        elif high < bar:
            status, text = "not viable", f"{label}: not viable: {shown} < {bar:.2f} {over}"
        else:
            status = "not shown viable"
            trials = items_to_decide(value, bar, alpha=alpha) if n_eff else None
            if trials is not None and n_eff:
                # The test's n is in independent trials; with repeats an item is worth n_eff / n_items of one.
                needed = max(n_items + 1, math.ceil(trials * n_items / n_eff))
            what = (f"{round(value * n_jobs)} of {n_jobs} right" if metric == "accuracy" and n_jobs == n_items
                    else f"{metric} {value:.2f}")
            if n_eff is None:
                decide = f"more items would narrow it ({metric} is not a proportion: no exact figure)"
            elif needed:
                decide = f"about {needed} items would (exact binomial test, 80% power, alpha={alpha:g})"
            else:
                decide = "at this rate no feasible number of items would (more than 10,000)"
            text = (f"{label}: not shown viable at n={unit(n_items, n_jobs)}: {shown} straddles {bar:.2f}; "
                    f"{what} cannot separate {value:.0%} from {bar:.0%}; {decide}")
        out.append(Verdict(label, metric, status, value, low, high, bar, n_items, n_jobs, needed, text))
    return out


def item_majorities(s: CellStats) -> dict[str, bool]:
    """Each item right or wrong by the majority of its answers (items whose answers tie are left out)."""
    votes: dict[str, list[bool]] = defaultdict(list)
    for (_, item, _), ok in s.correct_by.items():
        votes[item].append(ok)
    decided = {item: majority(v) for item, v in votes.items()}
    return {item: ok for item, ok in decided.items() if ok is not None}


def paired_items(s1: CellStats, s2: CellStats) -> tuple[float, int, int, int]:
    """McNemar's exact p of two rows over the items both answered (each right when most of its answers
    were), with the discordant counts (right only in the first, only in the second) and the items."""
    m1, m2 = item_majorities(s1), item_majorities(s2)
    common = set(m1) & set(m2)
    only1 = sum(1 for i in common if m1[i] and not m2[i])
    only2 = sum(1 for i in common if m2[i] and not m1[i])
    return mcnemar_exact(only1, only2), only1, only2, len(common)


def _beats_majority(s: CellStats, scorer: Scorer | None, alpha: float) -> bool | None:
    """Does the row beat always answering the majority class, over items? None: no classes to ask."""
    if not isinstance(scorer, BinaryClassification):
        return None
    items = item_majorities(s)
    labels = [int(r[_TP] + r[_FN] + r[_UP] > 0) for item, r in s.items.items() if item in items]
    if not items or not labels:
        return False
    share = max(sum(labels), len(labels) - sum(labels)) / len(labels)
    if share >= 1:
        return sum(items.values()) == len(items)
    return binomial_greater(sum(items.values()), len(items), share) < alpha


@dataclass(frozen=True)
class BestRow:
    """What the best-row rule concluded, as data: `winner` is set only when the top row is separable.

    `rule`: "separable", "tie" (equal accuracy), "not distinguishable" (McNemar p >= alpha),
    "contradicted" (more accurate over answers, fewer items right by majority), "majority" (the top
    row does not beat always answering the majority class), or "too few rows"."""

    rule: str
    winner: Key | None
    top: Key | None
    runner_up: Key | None
    tied: list[Key]  # equal accuracy with the top (rule "tie")
    p: float | None  # McNemar's exact p, top vs runner-up, where it ran
    only_top: int  # discordant items: right (by majority) in the top row only
    only_runner_up: int
    common: int  # items both rows answered
    text: str


def best_row(row_axes: list[str], col_axes: list[str], stats: dict[Key, CellStats], scorer: Scorer | None,
             alpha: float = 0.05) -> BestRow:
    """The most accurate row, named (`winner`) only if the data separate it from the runner-up."""
    scored = [(k, s) for k, s in stats.items() if s.ok]
    if len(scored) < 2:
        return BestRow("too few rows", None, scored[0][0] if scored else None, None, [], None, 0, 0, 0, "")
    ranked = sorted(scored, key=lambda ks: -ks[1].accuracy())
    (k1, s1), (k2, s2) = ranked[0], ranked[1]
    a, b = label_of(row_axes, col_axes, k1), label_of(row_axes, col_axes, k2)
    if s1.accuracy() == s2.accuracy():
        tied = [k for k, s in ranked if s.accuracy() == s1.accuracy()]
        labels = ", ".join(label_of(row_axes, col_axes, k) for k in tied)
        return BestRow("tie", None, k1, k2, tied, None, 0, 0, 0,
                       f"no single best: {labels} tie at accuracy {s1.accuracy():.2f}")
    beats = _beats_majority(s1, scorer, alpha)
    if beats is False:
        return BestRow("majority", None, k1, k2, [], None, 0, 0, 0,
                       f"no best row: the most accurate, {a} (accuracy {s1.accuracy():.2f}), does not beat always "
                       "answering the majority class over items")
    p, only1, only2, n_common = paired_items(s1, s2)
    head = (f"{a} (accuracy {s1.accuracy():.2f}) vs {b} ({s2.accuracy():.2f}), McNemar p={p:.2g} over "
            f"{n_common} items ({only1} vs {only2} discordant)")
    if p >= alpha:
        return BestRow("not distinguishable", None, k1, k2, [], p, only1, only2, n_common,
                       f"no single best: {head}: not distinguishable at alpha={alpha:g}")
    if only1 < only2:
        # Ranked by accuracy over answers, but the test over items goes the other way: no claim either way.
        return BestRow("contradicted", None, k1, k2, [], p, only1, only2, n_common,
                       f"no single best: {head}: {a} is more accurate over answers, but {b} is right on more "
                       "items by majority")
    return BestRow("separable", k1, k1, k2, [], p, only1, only2, n_common,
                   f"best by accuracy: {head}: separable at alpha={alpha:g}")


def best(row_axes: list[str], col_axes: list[str], stats: dict[Key, CellStats], scorer: Scorer | None,
         alpha: float = 0.05) -> list[str]:
    """The report's line on the best row (none with fewer than two rows answered)."""
    found = best_row(row_axes, col_axes, stats, scorer, alpha)
    return [found.text] if found.text else []


def dangerous(scorer: BinaryClassification, row_axes: list[str], col_axes: list[str],
              stats: dict[Key, CellStats]) -> list[str]:
    """The error the experiment declared dangerous, first and in words, per row, counted in items."""
    kind = scorer.config.dangerous
    positive = scorer.config.positive
    what = (f"{scorer.config.field}={str(positive).lower()} said of an item that is not" if kind == "false_positive"
            else f"{scorer.config.field}={str(positive).lower()} missed")
    column = _FP if kind == "false_positive" else _FN
    parts = []
    for key, s in stats.items():
        if not s.ok:
            parts.append(f"{label_of(row_axes, col_axes, key)}: not run")
            continue
        answers = s.fp if kind == "false_positive" else s.fn
        items = sum(1 for r in s.items.values() if r[column])
        noun = "item" if items == 1 else "items"
        shown = f"{items} {noun}" if answers == items else f"{items} {noun} ({answers} answers)"
        parts.append(f"{label_of(row_axes, col_axes, key)}: {shown}")
    return [f"dangerous errors ({kind.replace('_', ' ')}s: {what}): " + "; ".join(parts)]
