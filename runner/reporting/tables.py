"""Pivot per-cell metrics into tables: one row per value of the row axes, with n, in any format.

Cells that differ only on axes the report does not show are pooled (their counts add up), so
`rows: [quantization]` over three prompts gives one row per quantization over all prompts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from runner.analysis.compare import Comparison
from runner.analysis.metrics import METRICS, CellStats
from runner.analysis.results import ResultSet
from runner.analysis.stats import bootstrap_mean_interval, wilson_interval
from runner.config.schema import Threshold
from runner.diagnosis.diagnose import diagnose, nothing_wrong_line
from runner.diagnosis.findings import Finding
from runner.scoring.scorers import BinaryClassification

DEFAULT_METRICS = ["n", "failed", "accuracy", "f1", "json_valid", "agreement", "tokens_per_s", "answers", "outcomes"]
DEFAULT_METRICS_NO_SCORER = ["n", "failed", "completion_tokens", "latency_s", "tokens_per_s"]


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


@dataclass
class Report:
    experiment: str
    tables: list[Table]
    totals: dict[str, int]
    findings: list[Finding] = field(default_factory=list)
    no_findings_line: str = ""
    scored: bool = False


def build_report(results: ResultSet) -> Report:
    plan, scorers = results.plan, results.scorers
    cfg = plan.experiment.report
    row_axes = cfg.rows if cfg.rows is not None else (plan.varying_axes() or ["model"])
    col_axes = [a for a in cfg.columns if a not in row_axes]
    metrics = cfg.metrics or (DEFAULT_METRICS if scorers else DEFAULT_METRICS_NO_SCORER)

    tables = []
    for index, scorer in enumerate(scorers or [None]):
        # Stats per (row key, column key): cells that differ only on axes not shown are pooled.
        stats_by_key: dict[tuple[tuple[Any, ...], tuple[Any, ...]], CellStats] = {}
        for cell in results.cells:
            key = (tuple(_hashable(cell.cell.get(a)) for a in row_axes),
                   tuple(_hashable(cell.cell.get(a)) for a in col_axes))
            stats = results.stats(cell, index if scorer is not None else None)
            stats_by_key[key] = stats_by_key[key].merge(stats) if key in stats_by_key else stats
        title = f"{plan.experiment.name}" + (f" — scorer {scorer.name}" if scorer else "")
        table = _pivot(title, row_axes, col_axes, metrics, stats_by_key, with_interval=scorer is not None)
        if isinstance(scorer, BinaryClassification):
            table.notes.extend(_dangerous(scorer, row_axes, col_axes, stats_by_key))
        if index == 0 and scorer is not None:
            table.notes.extend(_best(row_axes, col_axes, stats_by_key))
            table.notes.extend(_verdicts(cfg.threshold, row_axes, col_axes, stats_by_key))
            if cfg.compare:
                comparisons = results.comparisons(cfg.alpha)
                same = [c for c in comparisons if c.n_pairs and c.only_value == c.only_baseline == 0]
                table.notes.extend(c.sentence() for c in comparisons if c not in same)
                if same:
                    table.notes.append(f"{len(same)} of {len(comparisons)} paired comparisons have no discordant "
                                       "pairs: the same items right and wrong on both sides")
                table.comparisons = comparisons
        tables.append(table)
    findings = diagnose(results, alpha=cfg.alpha)
    return Report(plan.experiment.name, tables, results.totals, findings, nothing_wrong_line(plan.experiment.name),
                  bool(scorers))


def _dangerous(scorer: BinaryClassification, row_axes: list[str], col_axes: list[str],
               stats: dict[tuple[tuple[Any, ...], tuple[Any, ...]], CellStats]) -> list[str]:
    """The error the experiment declared dangerous, first and in words, per row."""
    kind = scorer.config.dangerous
    positive = scorer.config.positive
    what = (f"{scorer.config.field}={str(positive).lower()} said of an item that is not" if kind == "false_positive"
            else f"{scorer.config.field}={str(positive).lower()} missed")
    parts = []
    for (rk, ck), s in stats.items():
        count = s.fp if kind == "false_positive" else s.fn
        label = ", ".join(f"{a}={_show(v)}" for a, v in zip(row_axes + col_axes, rk + ck, strict=True)) or "all"
        parts.append(f"{label}: {count}")
    return [f"dangerous errors ({kind.replace('_', ' ')}s: {what}): " + "; ".join(parts)]


def _best(row_axes: list[str], col_axes: list[str],
          stats: dict[tuple[tuple[Any, ...], tuple[Any, ...]], CellStats]) -> list[str]:
    """The most accurate row, and for repeated runs the most accurate of the steadiest rows."""
    scored = [(k, s) for k, s in stats.items() if s.ok]
    if len(scored) < 2:
        return []

    def label(key: tuple[tuple[Any, ...], tuple[Any, ...]]) -> str:
        return ", ".join(f"{a}={_show(v)}" for a, v in zip(row_axes + col_axes, key[0] + key[1], strict=True))

    def shown(s: CellStats) -> str:
        low, high = s.accuracy_interval()
        return f"accuracy {s.accuracy():.2f} [{low:.2f}, {high:.2f}], n={s.ok}"

    key, best = max(scored, key=lambda ks: (ks[1].accuracy(), ks[1].agreement()))
    out = [f"best by accuracy: {label(key)} ({shown(best)})"]
    with_flips = [(k, s) for k, s in scored if s.flips()[1]]
    if with_flips:
        fewest = min(s.flips()[0] / s.flips()[1] for _, s in with_flips)
        steady = [(k, s) for k, s in with_flips if s.flips()[0] / s.flips()[1] == fewest]
        k2, s2 = max(steady, key=lambda ks: ks[1].accuracy())
        flipped, items = s2.flips()
        out.append(f"best for a deterministic task (fewest answer flips, {flipped} of {items} items): "
                   f"{label(k2)} ({shown(s2)})")
    return out


def _verdicts(threshold: Threshold | None, row_axes: list[str], col_axes: list[str],
              stats: dict[tuple[tuple[Any, ...], tuple[Any, ...]], CellStats]) -> list[str]:
    """Each row against the experiment's bar, judged by its 95% interval, not by its point value."""
    if threshold is None:
        return []
    out = []
    for (rk, ck), s in stats.items():
        counts = s.rate_counts(threshold.metric)
        label = ", ".join(f"{a}={_show(v)}" for a, v in zip(row_axes + col_axes, rk + ck, strict=True)) or "all"
        if counts is None or counts[1] == 0:
            if threshold.metric == "f1" and s.ok:
                value = s.f1()
                out.append(f"{label}: f1 {value:.2f} (no interval for F1; judge by accuracy or recall)")
            continue
        k, n = counts
        if s.failed:
            out.append(f"{label}: not judged: {s.failed} requests failed (they are left out of {threshold.metric}); "
                       "run again to retry them")
            continue
        low, high = wilson_interval(k, n)
        shown = f"{threshold.metric} {k / n:.2f} [{low:.2f}, {high:.2f}]"
        if low >= threshold.min:
            out.append(f"{label}: viable: {shown} >= {threshold.min:.2f}")
        elif high < threshold.min:
            out.append(f"{label}: not viable: {shown} < {threshold.min:.2f}")
        else:
            out.append(f"{label}: not shown viable at n={n}: {shown} straddles {threshold.min:.2f}")
    return out


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
    for rk in row_keys:
        row: list[Any] = [_show(v) for v in rk]
        for ck in col_keys:
            s = stats.get((rk, ck))
            for m in metrics:
                row.append(_cell_value(s, m, with_interval) if s else "")
            if s is not None:
                records.append(Record(dict(zip(row_axes, rk, strict=True)), dict(zip(col_axes, ck, strict=True)),
                                      {m: raw_value(s, m, with_interval) for m in metrics}))
        rows.append(row)
    return Table(title, headers, rows, records=records, metrics=list(metrics))


def _cell_value(stats: CellStats, metric: str, with_interval: bool) -> Any:
    value = stats.metric(metric)
    counts = stats.rate_counts(metric) if with_interval else None
    if counts is not None and counts[1] > 0:
        low, high = wilson_interval(*counts)
        return f"{value:.2f} [{low:.2f}, {high:.2f}]"
    if metric == "run_mean" and with_interval and len(stats.run_accuracies()) > 1:
        low, high = bootstrap_mean_interval(stats.run_accuracies())
        return f"{value:.2f} [{low:.2f}, {high:.2f}]"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return round(value, 3) if METRICS[metric].rate else round(value, 1)
    return value


def raw_value(stats: CellStats, metric: str, with_interval: bool) -> Any:
    """A metric as data: a rate with its interval as {value, low, high, n_items, n_jobs}; a share
    breakdown (outcomes, answers) as {name: share}; other numbers as numbers; undefined as None."""
    if metric == "outcomes":
        total = sum(stats.outcomes.values())
        return {k: v / total for k, v in stats.outcomes.most_common()} if total else None
    if metric == "answers":
        total = sum(stats.predictions.values())
        return {_key(k): v / total for k, v in stats.predictions.most_common()} if total else None
    value = stats.metric(metric)
    if isinstance(value, float) and math.isnan(value):
        value = None
    counts = stats.rate_counts(metric) if with_interval else None
    if counts is not None and counts[1] > 0:
        low, high = wilson_interval(*counts)
        return {"value": value, "low": low, "high": high, "n_items": stats.n_items(), "n_jobs": counts[1]}
    if metric == "run_mean" and with_interval and len(stats.run_accuracies()) > 1:
        low, high = bootstrap_mean_interval(stats.run_accuracies())
        return {"value": value, "low": low, "high": high, "n_items": stats.n_items(), "n_jobs": stats.ok}
    return value


def _key(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _hashable(value: Any) -> Any:
    """Axis values as dict keys: stop lists and response_format mappings as their JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def _show(value: Any) -> Any:
    return "-" if value is None else value
