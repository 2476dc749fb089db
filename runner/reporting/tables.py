"""Pivot per-cell metrics into tables: one row per value of the row axes, with n, in any format.

Cells that differ only on axes the report does not show are pooled (their counts add up), so
`rows: [quantization]` over three prompts gives one row per quantization over all prompts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from runner.analysis.clustered import MIN_BOOTSTRAP_ITEMS
from runner.analysis.columns import METRICS
from runner.analysis.compare import Comparison
from runner.analysis.metrics import CellStats
from runner.analysis.raters import RaterAgreement, rater_agreement
from runner.analysis.results import ResultSet
from runner.diagnosis.diagnose import diagnose, nothing_wrong_line
from runner.diagnosis.findings import Finding
from runner.reporting.effect import AxisEffect, axis_effect
from runner.reporting.judgement import Verdict, best, dangerous, label_of, verdicts
from runner.reporting.prompt_cache import PromptCacheShare, prompt_cache_shares
from runner.reporting.sampling import sampling_note
from runner.scoring.scorers import BinaryClassification, CodeTests, Scorer

DEFAULT_METRICS = ["n", "failed", "items", "accuracy", "f1", "json_valid", "agreement", "tokens_per_s", "answers",
                   "outcomes"]
INTERVAL_METRICS = {"accuracy", "json_valid", "precision", "recall", "flip_rate", "run_mean", "f1", "kappa", "mcc",
                    "balanced_accuracy", "agreement", "similarity", "divergence", "divergence_t0", "identical_share",
                    "distinct_outputs", "pairwise_similarity",
                    "compile_rate", "test_pass_rate", "style_violations"}
DEFAULT_METRICS_NO_SCORER = ["n", "failed", "completion_tokens", "latency_s", "tokens_per_s"]
# A code scorer's table: F1, JSON validity and the class shares say nothing about code.
DEFAULT_METRICS_CODE = ["n", "failed", "items", "accuracy", "compile_rate", "test_pass_rate", "style_violations",
                        "agreement", "tokens_per_s", "outcomes"]


@dataclass
class Record:
    """One row of a table as numbers: its axis values and each metric's raw value (see `raw_value`)."""

    row: dict[str, Any]
    column: dict[str, Any]
    metrics: dict[str, Any]


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[Any]]  # the values as shown in text
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)  # the same rows, as numbers
    metrics: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)


@dataclass
class Report:
    experiment: str
    tables: list[Table]
    totals: dict[str, int]
    findings: list[Finding] = field(default_factory=list)
    no_findings_line: str = ""
    scored: bool = False
    effect: AxisEffect | None = None  # `report.effect`: does the axis explain the score?
    human_agreement: RaterAgreement | None = None
    from_cache: int = 0  # answers taken from the response cache, not sent again
    prompt_cache: list[PromptCacheShare] = field(default_factory=list)  # per variant, where llama.cpp said

    @property
    def verdicts(self) -> list[Verdict]:
        """Every row judged against `report.threshold` (the first scorer's table)."""
        return [v for t in self.tables for v in t.verdicts]


def build_report(results: ResultSet) -> Report:
    plan, scorers = results.plan, results.scorers
    cfg = plan.experiment.report
    row_axes = cfg.rows if cfg.rows is not None else (plan.varying_axes() or ["model"])
    col_axes = [a for a in cfg.columns if a not in row_axes]
    metrics = cfg.metrics or (DEFAULT_METRICS if scorers else DEFAULT_METRICS_NO_SCORER)

    tables = []
    humans = _human_agreement(results)
    for index, scorer in enumerate(scorers or [None]):
        # Stats per (row key, column key): cells that differ only on axes not shown are pooled.
        stats_by_key: dict[tuple[tuple[Any, ...], tuple[Any, ...]], CellStats] = {}
        for cell in results.cells:
            key = (tuple(_hashable(cell.cell.get(a)) for a in row_axes),
                   tuple(_hashable(cell.cell.get(a)) for a in col_axes))
            stats = results.stats(cell, index if scorer is not None else None)
            stats_by_key[key] = stats_by_key[key].merge(stats) if key in stats_by_key else stats
        title = f"{plan.experiment.name}" + (f" — scorer {scorer.name}" if scorer else "")
        shown = DEFAULT_METRICS_CODE if not cfg.metrics and isinstance(scorer, CodeTests) else metrics
        table = _pivot(title, row_axes, col_axes, shown, stats_by_key, with_interval=scorer is not None)
        if isinstance(scorer, BinaryClassification):
            table.notes.extend(dangerous(scorer, row_axes, col_axes, stats_by_key))
        if index == 0 and scorer is not None:
            table.notes.extend(best(row_axes, col_axes, stats_by_key, scorer, cfg.alpha))
            table.verdicts = verdicts(cfg.threshold, row_axes, col_axes, stats_by_key, cfg.alpha)
            table.notes.extend(v.text for v in table.verdicts)
            if cfg.compare:
                comparisons = results.comparisons(cfg.alpha)
                # Lumped into one line: comparisons where nothing differs at all (no discordant items, the
                # same accuracies); two constant answers are said for what they are.
                same = [c for c in comparisons if c.n_pairs and c.discordant == 0 and c.difference == 0
                        and c.constant_answers is None]
                table.notes.extend(c.sentence() for c in comparisons if c not in same)
                if same:
                    table.notes.append(f"{len(same)} of {len(comparisons)} paired comparisons have no discordant "
                                       "pairs: the same items right and wrong on both sides")
                table.comparisons = comparisons
        if index == 0 and (note := sampling_note(results)):
            table.notes.append(note)
        if index == 0 and humans is not None:
            table.notes.append(humans.sentence() + _model_kappas(scorer, row_axes, col_axes, stats_by_key))
        tables.append(table)
    from runner.reporting.endpoints import endpoint_table  # here: it builds a Table of this module

    if (per_endpoint := endpoint_table(results)) is not None:
        tables.append(per_endpoint)
    findings = diagnose(results, alpha=cfg.alpha)
    effect = (axis_effect(results, cfg.effect.axis, baseline=cfg.effect.baseline)
              if cfg.effect is not None else None)
    totals = results.totals
    return Report(plan.experiment.name, tables, totals, findings,
                  nothing_wrong_line(plan.experiment.name, totals["ok"] > 0),
                  bool(scorers), effect=effect, human_agreement=humans,
                  from_cache=results.from_cache, prompt_cache=prompt_cache_shares(results))


def _human_agreement(results: ResultSet) -> RaterAgreement | None:
    """The two raters' agreement over the items the model answered (the report's items, --limit included,
    that have an answer): a ceiling over items the model was never asked would compare different sets."""
    config = results.plan.experiment.report.human_agreement
    if config is None:
        return None
    items = list({r.job.item.id: r.job.item for c in results.cells for r in c.results
                  if r.record is not None and r.record.status == "ok"}.values())
    first, second = config.fields
    return rater_agreement((first, second), items)


def _model_kappas(scorer: Scorer | None, row_axes: list[str], col_axes: list[str],
                  stats: dict[tuple[tuple[Any, ...], tuple[Any, ...]], CellStats]) -> str:
    """"; the model's: smollm2-135m 0.10 [...] over 16 items": each row's kappa against its label."""
    if not isinstance(scorer, BinaryClassification):
        return ""
    parts = []
    for key, s in stats.items():
        kappa = s.kappa()
        interval = s.bootstrap_interval("kappa")
        shown = "undefined" if math.isnan(kappa) else (
            f"{kappa:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]" if interval and not math.isnan(interval[0])
            else f"- (no interval under {MIN_BOOTSTRAP_ITEMS} items)")
        parts.append(f"{label_of(row_axes, col_axes, key)} {shown} over {s.n_items()} items")
    field = scorer.expected_field()
    return f"; the model's kappa against {field}: " + "; ".join(parts)


def _pivot(title: str, row_axes: list[str], col_axes: list[str], metrics: list[str],
           stats: dict[tuple[tuple[Any, ...], tuple[Any, ...]], CellStats], with_interval: bool) -> Table:
    row_keys = list(dict.fromkeys(rk for rk, _ in stats))
    col_keys = list(dict.fromkeys(ck for _, ck in stats))
    headers = list(row_axes)
    for ck in col_keys:
        suffix = " ".join(f"{a}={v}" for a, v in zip(col_axes, ck, strict=True))
        for m in metrics:
            headers.append(f"{m} [{suffix}]" if suffix else m)
    rows = []
    records = []
    unsure: list[str] = []  # metrics shown "-" for want of an interval (fewer than MIN_BOOTSTRAP_ITEMS items)
    for rk in row_keys:
        row: list[Any] = [_show(v) for v in rk]
        for ck in col_keys:
            s = stats.get((rk, ck))
            for m in metrics:
                row.append(_cell_value(s, m, with_interval) if s else "")
                if s is not None and with_interval and has_interval(m) and _interval(s, m) is None \
                        and isinstance(v := s.metric(m), float) and not math.isnan(v) and m not in unsure:
                    unsure.append(m)
            if s is not None:
                records.append(Record(dict(zip(row_axes, rk, strict=True)), dict(zip(col_axes, ck, strict=True)),
                                      {m: raw_value(s, m, with_interval) for m in metrics}))
        rows.append(row)
    notes = [f"{', '.join(unsure)}: \"-\" where a row has fewer than {MIN_BOOTSTRAP_ITEMS} items: a bootstrap "
             "interval over so few is far narrower than the uncertainty (items at 0.5 and 0.6 give exactly "
             "[0.50, 0.60]), so neither a value nor an interval is shown, nor judged against a threshold; run "
             "more items"] if unsure else []
    return Table(title, headers, rows, notes=notes, records=records, metrics=list(metrics))


def _cell_value(stats: CellStats, metric: str, with_interval: bool) -> Any:
    if metric == "items":
        return unit_short(len(stats.items), stats.ok) if with_interval else len(stats.items)
    value = stats.metric(metric)
    interval = _interval(stats, metric) if with_interval else None
    if interval is not None:
        return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"
    if with_interval and has_interval(metric):
        return "-"  # no value without its interval (a bootstrap metric over too few items: see the note)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return round(value, 3) if METRICS[metric].rate else round(value, 1)
    return value


def unit_short(n_items: int, n_jobs: int) -> str:
    """The items column: "20" asked once each, "20 x 3" with three repeats each."""
    if n_items and n_jobs > n_items:
        per = n_jobs / n_items
        return f"{n_items} x {per:.0f}" if per.is_integer() else f"{n_items} ({n_jobs})"
    return str(n_items)


def _interval(stats: CellStats, metric: str) -> tuple[float, float] | None:
    """The metric's 95% interval over items: clustered for rates, bootstrapped otherwise; None if none."""
    rate = stats.clustered(metric)
    if rate is not None:
        return (rate.low, rate.high) if rate.n_jobs else None
    interval = stats.bootstrap_interval(metric)
    if interval is None or math.isnan(interval[0]) or math.isnan(float(stats.metric(metric))):
        return None
    return interval


def has_interval(metric: str) -> bool:
    """Metrics reported with a 95% interval over items (when a scorer scored them)."""
    return metric in INTERVAL_METRICS


def raw_value(stats: CellStats, metric: str, with_interval: bool) -> Any:
    """A metric as data: a rate with its interval as {value, low, high, n_items, n_jobs}; a share
    breakdown (outcomes, answers) as {name: share}; other numbers as numbers; undefined as None."""
    if metric == "outcomes":
        total = sum(stats.outcomes.values())
        return {k: v / total for k, v in stats.outcomes.most_common()} if total else None
    if metric == "answers":
        total = sum(stats.predictions.values())
        return {_key(k): v / total for k, v in stats.predictions.most_common()} if total else None
    if metric == "items":
        return {"n_items": len(stats.items), "n_jobs": stats.ok}
    value = stats.metric(metric)
    if isinstance(value, float) and math.isnan(value):
        value = None
    if not (with_interval and has_interval(metric)):
        return value
    # Every metric that can have an interval is the same object in every row, bounds null where
    # undefined, so JSON readers and CSV columns need no special cases.
    interval = _interval(stats, metric)
    rate = stats.clustered(metric)
    return {"value": value, "low": interval[0] if interval else None, "high": interval[1] if interval else None,
            "n_items": rate.n_items if rate is not None else len(stats.items),
            "n_jobs": rate.n_jobs if rate is not None else stats.ok,
            "interval": (rate.method if rate is not None else "item bootstrap") if interval else None}


def _key(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _hashable(value: Any) -> Any:
    """Axis values as dict keys: stop lists and response_format mappings as their JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def _show(value: Any) -> Any:
    return "-" if value is None else value
