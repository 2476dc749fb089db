"""The one read path: everything a read verb needs, read from the store once.

`load_results` walks the plan (which says which jobs belong to the experiment as it is written
now; old jobs of an edited YAML are ignored), fetches the stored record of every job and its
cached scores in a few chunked queries, and scores in memory whatever has no valid cached score.
It never writes: the scores it had to compute are kept in `fresh`, for `runner score` (and only
it) to store. The report's tables, the paired comparisons and the diagnosis all read this one
`ResultSet`; per-cell statistics and the comparisons are computed once and cached on it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from runner.analysis.compare import CellOutcomes, Comparison, paired_comparisons
from runner.analysis.metrics import CellStats, JobResult, hashable, scores_for
from runner.errors import UserError
from runner.plan.planner import Cell, Plan
from runner.scoring.scorers import Score, Scorer
from runner.scoring.time_limit import ScorerTimedOut
from runner.store import Store


@dataclass
class CellResults:
    cell: Cell
    results: list[JobResult]
    scores: list[list[Score | None]]  # per scorer, aligned with `results`
    # item id -> its answer (repeat 0) in the cell that differs from this one only in being at temperature
    # 0, where the experiment sweeps temperature and has 0 in the sweep: for divergence_t0.
    t0_texts: dict[str, str] | None = None
    _stats: dict[int, CellStats] = field(default_factory=dict, repr=False)

    def stats(self, scorer_index: int | None, scorers: list[Scorer]) -> CellStats:
        """The cell's statistics under one scorer (None: no scorer, only counts and timings)."""
        key = -1 if scorer_index is None else scorer_index
        if key not in self._stats:
            stats = CellStats()
            scorer = None if scorer_index is None else scorers[scorer_index]
            scores = self.scores[scorer_index] if scorer_index is not None else [None] * len(self.results)
            stats.add_all(self.results, scores, scorer, self.t0_texts or {})
            self._stats[key] = stats
        return self._stats[key]


@dataclass
class ResultSet:
    plan: Plan
    scorers: list[Scorer]
    cells: list[CellResults]
    limit_items: int | None
    fresh: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _comparisons: dict[tuple[float, tuple[tuple[str, Any], ...]], list[Comparison]] = field(default_factory=dict,
                                                                                               repr=False)

    @property
    def totals(self) -> dict[str, int]:
        totals = {"planned": 0, "ok": 0, "failed": 0, "missing": 0}
        for c in self.cells:
            totals["planned"] += len(c.results)
            for r in c.results:
                status = "missing" if r.record is None else r.record.status
                totals[status if status in ("ok", "failed") else "missing"] += 1
        return totals

    @property
    def from_cache(self) -> int:
        """Stored answers that came from the response cache shared across experiments (no request sent)."""
        return sum(1 for c in self.cells for r in c.results if r.record is not None and r.record.from_cache)

    def stats(self, cell: CellResults, scorer_index: int | None) -> CellStats:
        return cell.stats(scorer_index, self.scorers)

    def comparisons(self, alpha: float, baselines: dict[str, Any] | None = None) -> list[Comparison]:
        """Paired comparisons under the first scorer, between cells differing on one axis, each value against
        its axis's baseline: the first declared value, or the one `baselines` names for the axis."""
        key = (alpha, tuple(sorted((a, hashable(v)) for a, v in (baselines or {}).items())))
        if key not in self._comparisons:
            if not self.scorers:
                self._comparisons[key] = []
            else:
                outcomes = [CellOutcomes(dict(c.cell.values), {(i, r): ok for (_, i, r), ok
                                                               in self.stats(c, 0).correct_by.items()},
                                         _stated_classes(c)) for c in self.cells]
                axes = dict(self.plan.axes)
                for axis, base in (baselines or {}).items():  # the baseline first: it is what the others face
                    axes[axis] = [base, *(v for v in axes[axis] if hashable(v) != hashable(base))]
                self._comparisons[key] = paired_comparisons(outcomes, axes, alpha=alpha)
        return self._comparisons[key]


def _stated_classes(cell: CellResults) -> dict[tuple[str, int], Any]:
    """(item, repeat) -> the class the first scorer read from the answer (None: it stated none)."""
    return {(r.job.item.id, r.job.repeat): hashable(score.prediction) if score is not None else None
            for r, score in zip(cell.results, cell.scores[0], strict=True) if r.record is not None}


def load_results(plan: Plan, store: Store | None, scorers: list[Scorer],
                 limit_items: int | None = None) -> ResultSet:
    # Every job's record and cached scores in one query each (most of the store: one scan, not the
    # ids looked up cell by cell), then cut into cells.
    groups = [(cell, list(jobs)) for cell, jobs in itertools.groupby(plan.jobs(limit_items), key=lambda j: j.cell)]
    records = {r.job_id: r for r in store.jobs([j.job_id for _, batch in groups for j in batch])} if store else {}
    by_cell = [(cell, [JobResult(j, records.get(j.job_id)) for j in batch]) for cell, batch in groups]
    del records, groups
    ok_ids = [r.job.job_id for _, results in by_cell for r in results
              if r.record is not None and r.record.status == "ok"]
    cached = store.scores_for(ok_ids) if store and scorers else {}
    del ok_ids
    fresh: list[tuple[str, str, dict[str, Any]]] = []
    # Per scorer, each item's expected value in normal form: asked by every repeat in every cell.
    expected: list[dict[str, Any]] = [{} for _ in scorers]
    limit = plan.experiment.limits.scorer_timeout_s
    try:
        cells = [CellResults(cell, results, [scores_for(results, scorer, cached, fresh, memo, limit)
                                             for scorer, memo in zip(scorers, expected, strict=True)])
                 for cell, results in by_cell]
    except ScorerTimedOut as exc:  # a stored answer re-scored (a scorer changed): no reader may hang on it
        index = next(i for i, s in enumerate(scorers) if s is exc.scorer)
        raise UserError(f"{exc} (scoring stored answers)", file=plan.experiment.source_path,
                        key=f"scorers[{index}]", fix="fix the scorer or raise limits.scorer_timeout_s") from None
    del cached
    _link_temperature_zero(plan, cells)
    return ResultSet(plan, scorers, cells, limit_items, fresh)


def _link_temperature_zero(plan: Plan, cells: list[CellResults]) -> None:
    """Give every cell of a temperature sweep that has temperature 0 the answers of its temperature-0
    twin (the cell equal to it on every other axis), for the divergence from the greedy answer."""
    if len(plan.axes.get("temperature", [])) < 2:
        return

    def others(c: CellResults) -> str:
        return json.dumps([[k, v] for k, v in c.cell.values if k != "temperature"], default=str)

    greedy: dict[str, dict[str, str]] = {}
    for c in cells:
        if c.cell.params.get("temperature") == 0:
            greedy[others(c)] = {r.job.item.id: (r.record.text or "").strip() for r in c.results
                                 if r.job.repeat == 0 and r.record is not None and r.record.status == "ok"}
    for c in cells:
        c.t0_texts = greedy.get(others(c))
