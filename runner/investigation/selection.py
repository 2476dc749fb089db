"""What the last step's settings were chosen among, for the decision (`hypotheses.decide`).

A pick takes the best of its candidates on its step's items. Judged on those same items, the chosen
setting looks better than it is (the winner's curse), so "viable" is claimed only on an interval
that covers every candidate at once: Bonferroni over how many settings the picks chose among
(`settings_chosen_among`). "Inadequate" rests on the chosen setting's own 95% interval, which the
choice can only have flattered, provided the pick took its best candidate on the bar's metric: a
tie takes the first declared, a temperature the most accurate that does not flip, and picks go by
accuracy where the bar may be f1 or recall, so every candidate scoring at least as high must be
shown below the bar where it ran too (`better_not_below`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from runner.analysis.results import ResultSet
from runner.config.schema import Threshold
from runner.investigation.pick import stats_by_value
from runner.reporting.judgement import verdicts


@dataclass(frozen=True)
class PickedFrom:
    """How a step got one axis's value: picked over `source`'s results, among `candidates` values."""

    source: str
    candidates: int
    value: Any


class Step(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def picked_from(self) -> Mapping[str, PickedFrom]: ...

    @property
    def results(self) -> ResultSet | None: ...


@dataclass(frozen=True)
class Origin:
    """A pick traced to the step where its candidates ran (`results` None: not in its store)."""

    axis: str
    step: str
    candidates: int
    value: Any
    results: ResultSet | None


def origins(final: Step, steps: Sequence[Step]) -> list[Origin]:
    """Each of `final`'s picks, followed back to where the choice was made: a step that took the axis
    from an earlier pick ran that one value, so its own pick ("only value") chose nothing."""
    by_name = {s.name: s for s in steps}
    out = []
    for axis, pick in final.picked_from.items():
        seen = {final.name}
        while pick.candidates <= 1 and pick.source not in seen:
            step = by_name.get(pick.source)
            if step is None or axis not in step.picked_from:
                break
            seen.add(pick.source)
            pick = step.picked_from[axis]
        source = by_name.get(pick.source)
        out.append(Origin(axis, pick.source, pick.candidates, pick.value, source.results if source else None))
    return out


def settings_chosen_among(final: ResultSet, picks: Sequence[Origin]) -> tuple[int, list[str]]:
    """k, the product of the candidates of each pick made on items `final` is judged on (a pick made
    on other items is no choice among these), and what they were, for the sentence."""
    items = item_ids(final)
    k, parts = 1, []
    for o in picks:
        # A pick whose step's results are gone still counts: its record says how many it chose among.
        if o.candidates <= 1 or (o.results is not None and items.isdisjoint(item_ids(o.results))):
            continue
        k *= o.candidates
        parts.append(f"{o.candidates} {o.axis} values of step {o.step}")
    return k, parts


def better_not_below(picks: Sequence[Origin], threshold: Threshold, alpha: float) -> str | None:
    """Why "inadequate" would claim too much: a candidate scoring at least as high on the bar's metric
    as the one a pick took (or not scored at all), not shown below the bar (95%) in the step where it
    ran; None if there is none."""
    for o in picks:
        if o.candidates <= 1:
            continue
        if o.results is None:
            return f"step {o.step}'s results are not in its store, so its other {o.axis} values cannot be checked"
        stats = stats_by_value(o.results, o.axis)
        key = json.dumps(o.value, sort_keys=True) if isinstance(o.value, list | dict) else o.value  # as keyed there
        taken = stats.get(key)
        floor = float(taken.metric(threshold.metric)) if taken is not None and taken.ok else math.nan
        for value, s in stats.items():
            if value == key:
                continue
            if not s.ok:
                return f"{o.axis} {value} has no answers in step {o.step}, so it cannot be shown below the bar"
            score = float(s.metric(threshold.metric))
            if score < floor:  # a nan on either side is checked, not skipped
                continue
            v = verdicts(threshold, [o.axis], [], {((value,), ()): s}, alpha)[0]
            if v.status != "not viable":
                shown = (f"{v.metric} {v.value:.2f} [{v.low:.2f}, {v.high:.2f}]"
                         if v.value is not None and v.low is not None and v.high is not None else v.status)
                return (f"{o.axis} {value} ({shown} in step {o.step}, not below the picked {o.axis}'s) is not "
                        f"shown below the bar; more items in step {o.step} would tell")
    return None


def item_ids(results: ResultSet) -> set[str]:
    """The items a step's results are over (its plan's, within its item limit)."""
    return {item.id for item in results.plan.item_subset(results.limit_items)}
