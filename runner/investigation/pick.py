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

import json
from dataclasses import dataclass, field
from typing import Any

from runner.analysis.metrics import CellStats
from runner.analysis.results import ResultSet
from runner.investigation.overrides import CATEGORICAL
from runner.reporting.judgement import Key, best_row, item_majorities, paired_items, unit


@dataclass(frozen=True)
class Pick:
    axis: str
    value: Any  # as the axis shows it (a named value's name)
    rule: str  # separable | tie | not distinguishable | contradicted | majority | only value | no answers |
    #            no flips | fewest flips | flips not measured
    why: str
    evidence: dict[str, Any] = field(default_factory=dict)  # per candidate numbers; the test's p where one ran

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "value": self.value, "rule": self.rule, "why": self.why,
                "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pick:
        return cls(str(data["axis"]), data["value"], str(data["rule"]), str(data["why"]), dict(data["evidence"]))


def pick_best(results: ResultSet, axis: str, alpha: float = 0.05) -> Pick:
    """The best value of `axis` over the step's results (the first scorer), by the rules above."""
    declared = list(results.plan.axes.get(axis, []))
    stats = stats_by_value(results, axis)
    rows = [_row(v, stats[v]) for v in declared if v in stats]
    evidence: dict[str, Any] = {"candidates": rows}
    answered = [v for v in declared if v in stats and stats[v].ok]
    if not answered:
        return Pick(axis, declared[0], "no answers",
                    f"no answers to judge by: the first declared, {_show(declared[0])}, is used", evidence)
    if len(declared) == 1:
        return Pick(axis, declared[0], "only value", f"{_show(declared[0])} is the only {axis} the step ran", evidence)
    if axis in CATEGORICAL:
        return _categorical(results, axis, declared, stats, alpha, evidence)
    return _sampling(axis, declared, stats, evidence)


def stats_by_value(results: ResultSet, axis: str) -> dict[Any, CellStats]:
    """The first scorer's statistics per value of the axis, pooled over the step's other axes."""
    out: dict[Any, CellStats] = {}
    for cell in results.cells:
        value = cell.cell.get(axis)
        value = json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value
        stats = results.stats(cell, 0)
        out[value] = out[value].merge(stats) if value in out else stats
    return out


def _row(value: Any, s: CellStats) -> dict[str, Any]:
    flipped, repeated = s.flips()
    majorities = item_majorities(s)
    return {"value": value, "accuracy": s.accuracy() if s.ok else None, "answers": s.ok, "items": len(s.items),
            "items_right": sum(majorities.values()), "flipped_items": flipped, "repeated_items": repeated,
            "failed": s.failed}


def _categorical(results: ResultSet, axis: str, declared: list[Any], stats: dict[Any, CellStats], alpha: float,
                 evidence: dict[str, Any]) -> Pick:
    keyed: dict[Key, CellStats] = {((v,), ()): stats[v] for v in declared if v in stats}
    scorer = results.scorers[0] if results.scorers else None
    found = best_row([axis], [], keyed, scorer, alpha)
    evidence.update(rule_text=found.text, p=found.p, discordant=[found.only_top, found.only_runner_up])
    assert found.top is not None and found.runner_up is not None  # two or more rows answered
    top, second = found.top[0][0], found.runner_up[0][0]
    s1, s2 = stats[top], stats[second]
    counts = f"{_right(s1)} vs {_right(s2)} of {len(s1.items)} items right"
    if found.winner is not None:
        return Pick(axis, top, "separable",
                    f"{_show(top)} beats {_show(second)}: {counts}, McNemar p={found.p:.2g}", evidence)
    # The candidates the data cannot tell from the top row: the first declared of them is used.
    tied = [top]
    for v in declared:
        s = stats.get(v)
        if v == top or s is None or not s.ok:
            continue
        if v == second or s.accuracy() == s1.accuracy() or paired_items(s1, s)[0] >= alpha:
            tied.append(v)
    tied.sort(key=declared.index)
    if found.rule == "tie":
        names = ", ".join(_show(k[0][0]) for k in found.tied)
        reason = f"{names} tie at {_right(s1)} of {len(s1.items)} items right"
    elif found.rule == "majority":
        reason = (f"the most accurate, {_show(top)} ({_right(s1)} of {len(s1.items)} items right), does not beat "
                  "always answering the majority class")
    elif found.rule == "contradicted":
        reason = (f"{_show(top)} is more accurate over answers, {_show(second)} right on more items: {counts}, "
                  f"McNemar p={found.p:.2g}")
    else:
        reason = f"{_show(top)} vs {_show(second)}: {counts}, McNemar p={found.p:.2g}"
    evidence["tied"] = tied
    return Pick(axis, tied[0], found.rule,
                f"no {axis} is separable from the runner-up ({reason}): the first declared of the tied candidates "
                f"({', '.join(_show(v) for v in tied)}), {_show(tied[0])}, is used", evidence)


def _sampling(axis: str, declared: list[Any], stats: dict[Any, CellStats], evidence: dict[str, Any]) -> Pick:
    answered = [v for v in declared if v in stats and stats[v].ok]
    order = sorted(answered, key=lambda v: (_number(v), declared.index(v)))  # lowest value first

    def acc(v: Any) -> float:
        return stats[v].accuracy()

    def flips(v: Any) -> tuple[int, int]:
        return stats[v].flips()

    def shown(v: Any) -> str:
        s = stats[v]
        flipped, repeated = flips(v)
        return (f"{_show(v)}: accuracy {acc(v):.2f} over {unit(len(s.items), s.ok)}, "
                f"{flipped} of {repeated} items flipped")

    if all(flips(v)[1] == 0 for v in answered):
        chosen = max(order, key=acc)  # max keeps the first (the lowest value) of equal accuracies
        return Pick(axis, chosen, "flips not measured",
                    f"the most accurate ({shown(chosen)}); flips are not measured with one answer per item"
                    + _ties(chosen, order, acc), evidence)
    steady = [v for v in order if flips(v)[0] == 0]
    flipping = [v for v in order if flips(v)[0] > 0]
    excluded = "; excluded for flipping answers across repeats: " + ", ".join(
        f"{_show(v)} ({flips(v)[0]} of {flips(v)[1]} items)" for v in flipping) if flipping else ""
    if steady:
        chosen = max(steady, key=acc)
        return Pick(axis, chosen, "no flips",
                    f"the most accurate of the values that do not flip answers ({shown(chosen)})"
                    + _ties(chosen, steady, acc) + excluded, evidence)
    fewest = min(flips(v)[0] / flips(v)[1] for v in order)
    least = [v for v in order if flips(v)[0] / flips(v)[1] == fewest]
    chosen = max(least, key=acc)
    return Pick(axis, chosen, "fewest flips",
                f"every value flips answers across repeats; the most accurate of those that flip least "
                f"({shown(chosen)})" + _ties(chosen, least, acc), evidence)


def _ties(chosen: Any, pool: list[Any], acc: Any) -> str:
    same = [v for v in pool if v != chosen and acc(v) == acc(chosen)]
    return f"; tied with {', '.join(_show(v) for v in same)}: the lowest is used" if same else ""


def _right(s: CellStats) -> int:
    return sum(item_majorities(s).values())


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("inf")


def _show(value: Any) -> str:
    return "-" if value is None else str(value)
