"""The report's columns: every metric registered in one place, computed from a cell's `CellStats`.

`register_metric(name, compute, rate=...)` adds a column; its name is then allowed in
`report.metrics` (checked when an experiment is prepared).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.analysis.metrics import CellStats, _mean, _ratio
from runner.analysis.stats import summarize_runs
from runner.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """A report column: how to compute it from a cell's stats, and whether it is a rate in [0, 1]."""

    name: str
    compute: Callable[[CellStats], Any]
    rate: bool = False


METRICS: dict[str, Metric] = {}


def register_metric(name: str, compute: Callable[[CellStats], Any], *, rate: bool = False) -> None:
    """Add a report column; its name is then allowed in `report.metrics`."""
    METRICS[name] = Metric(name, compute, rate)


def _run_summary(s: CellStats, field_name: str) -> float:
    return float(getattr(summarize_runs(s.run_accuracies()), field_name))


for _name, _compute, _rate in (
    ("n", lambda s: s.ok, False),
    ("items", lambda s: len(s.items), False),
    ("failed", lambda s: s.failed, False),
    ("accuracy", CellStats.accuracy, True),
    ("precision", CellStats.precision, True),
    ("recall", CellStats.recall, True),
    ("f1", CellStats.f1, True),
    ("false_positives", lambda s: s.fp, False),
    ("false_negatives", lambda s: s.fn, False),
    ("json_valid", CellStats.json_valid_rate, True),
    ("agreement", CellStats.agreement, True),
    ("run_mean", lambda s: _run_summary(s, "mean"), True),
    ("run_std", lambda s: _run_summary(s, "std"), True),
    ("run_worst", lambda s: _run_summary(s, "worst"), True),
    ("run_best", lambda s: _run_summary(s, "best"), True),
    ("tokens_per_s", lambda s: _mean(s.tokens_per_s), False),
    ("latency_s", lambda s: _mean(s.latency_s), False),
    ("completion_tokens", lambda s: _mean([float(t) for t in s.completion_tokens]), False),
    ("file_size_mb", lambda s: _mean([b / 1e6 for b in sorted(s.file_sizes)]), False),
    ("flip_rate", lambda s: _ratio(*s.flips()), True),
    ("entropy", CellStats.entropy, True),
    ("kappa", CellStats.kappa, True),
    ("mcc", CellStats.mcc, True),
    ("balanced_accuracy", CellStats.balanced_accuracy, True),
    ("compile_rate", CellStats.compile_rate, True),
    ("test_pass_rate", CellStats.test_pass_rate, True),
    ("style_violations", CellStats.style_violations, False),
    ("outcomes", CellStats.outcome_shares, False),
    ("answers", CellStats.answer_shares, False),
    ("similarity", lambda s: s.text_measure("similarity"), True),
    ("divergence", lambda s: s.text_measure("divergence"), True),
    ("divergence_t0", lambda s: s.text_measure("divergence_t0"), True),
    ("identical_share", lambda s: s.text_measure("identical_share"), True),
    ("distinct_outputs", lambda s: s.text_measure("distinct_outputs"), False),
    ("pairwise_similarity", lambda s: s.text_measure("pairwise_similarity"), True),
):
    register_metric(_name, _compute, rate=_rate)


def check_report_metrics(metrics: list[str] | None, file: Path) -> None:
    """`report.metrics` names registered metrics only (checked when an experiment is prepared)."""
    for name in metrics or []:
        if name not in METRICS:
            raise ConfigError(f"unknown metric {name!r}", file=file, key="report.metrics",
                              fix=f"use one of: {', '.join(METRICS)}")
