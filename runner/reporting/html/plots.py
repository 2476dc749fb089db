"""Which plots an experiment gets, chosen by its axes and scorers, each with its numbers beside it.

- per varying categorical axis (prompt, quantization, model, system...): the threshold's metric (else
  accuracy) per value, with its interval, the threshold as a line;
- per varying numeric axis (temperature, top_p, max_tokens...): accuracy, agreement and flip rate as
  lines with interval bands;
- outcome shares per cell as stacked bars;
- the confusion matrix per cell for a binary scorer.

An axis's plot pools the cells that share its value over the other axes, as a report row does
(the item stays the unit: a pooled item is one cluster). Intervals are the report's own
(`runner.reporting.tables.raw_value`).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from runner.analysis.metrics import CellStats
from runner.analysis.results import CellResults, ResultSet
from runner.config.schema import Threshold
from runner.reporting.html import svg
from runner.reporting.tables import raw_value
from runner.scoring.base import OUTCOMES
from runner.scoring.scorers import BinaryClassification

NUMERIC_LINES = ("accuracy", "agreement", "flip_rate")
# Axes whose values are numbers but not a scale: a seed is a name for a random stream.
NOT_A_SCALE = {"seed"}


@dataclass(frozen=True)
class Plot:
    kind: str  # rate | lines | outcomes | confusion
    title: str
    svg: str
    numbers: list[list[str]]  # a small table beside it: header row first

    def html(self) -> str:
        if not self.numbers:  # the chart shows its numbers itself (a grid of counts)
            return (f"<figure class='plot-{self.kind}'><figcaption>{escape(self.title)}</figcaption>"
                    f"<div class='chart'>{self.svg}</div></figure>")
        head, *rows = self.numbers
        table = ("<table class='numbers'><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head)
                 + "</tr></thead><tbody>"
                 + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                 + "</tbody></table>")
        return (f"<figure class='plot-{self.kind}'><figcaption>{escape(self.title)}</figcaption>"
                f"<div class='chart'>{self.svg}{table}</div></figure>")


def cell_label(results: ResultSet, cell: CellResults) -> str:
    axes = results.plan.varying_axes() or ["model"]
    return ", ".join(f"{a}={_show(cell.cell.get(a))}" for a in axes)


def is_numeric(axis: str, values: list[Any]) -> bool:
    return axis not in NOT_A_SCALE and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def plots(results: ResultSet, bar: Threshold | None = None) -> list[Plot]:
    """Every plot of an experiment's results (none before a scorer has scored something). `bar`: the
    threshold to draw (an investigation's), else the experiment's own `report.threshold`."""
    if not results.scorers or not any(r.record is not None for c in results.cells for r in c.results):
        return []
    out = []
    bar = bar if bar is not None else results.plan.experiment.report.threshold
    metric = bar.metric if bar is not None else "accuracy"
    threshold = bar.min if bar is not None else None
    axes = results.plan.varying_axes() or ["model"]
    for axis in axes:
        values = list(results.plan.axes.get(axis, [cell.cell.get(axis) for cell in results.cells[:1]]))
        pooled = _pooled(results, axis, values)
        if is_numeric(axis, values) and len(values) > 1:
            out.append(_lines(axis, values, pooled))
        else:
            out.append(_rates(axis, values, pooled, metric, threshold))
    out.append(_outcomes(results))
    scorer = results.scorers[0]
    if isinstance(scorer, BinaryClassification):
        out.extend(_confusion(results, c, scorer) for c in results.cells)
    return out


def _pooled(results: ResultSet, axis: str, values: list[Any]) -> list[CellStats]:
    out = []
    for v in values:
        merged: CellStats | None = None
        for c in results.cells:
            if c.cell.get(axis) == v:
                s = results.stats(c, 0)
                merged = s if merged is None else merged.merge(s)
        out.append(merged if merged is not None else CellStats())
    return out


def _interval(stats: CellStats, metric: str) -> svg.Interval:
    raw = raw_value(stats, metric, True)
    if not isinstance(raw, dict):
        return svg.Interval(raw if isinstance(raw, float) else None, None, None, len(stats.items))
    return svg.Interval(raw["value"], raw["low"], raw["high"], int(raw["n_items"]))


def _rates(axis: str, values: list[Any], pooled: list[CellStats], metric: str, threshold: float | None) -> Plot:
    names = [_show(v) for v in values]
    ivs = [_interval(s, metric) for s in pooled]
    title = f"{metric} per {axis} (95% interval over items" + (f"; threshold {threshold:g})" if threshold is not None
                                                              else ")")
    chart = svg.rate_points(title, metric, names, ivs, threshold)
    return Plot("rate", title, chart, [[axis, metric, "95% interval", "items"]]
                + [[n, svg._fmt(iv.value), f"[{svg._fmt(iv.low)}, {svg._fmt(iv.high)}]", str(iv.n_items)]
                   for n, iv in zip(names, ivs, strict=True)])


def _lines(axis: str, values: list[Any], pooled: list[CellStats]) -> Plot:
    order = sorted(range(len(values)), key=lambda i: float(values[i]))
    xs = [float(values[i]) for i in order]
    series = {m: [_interval(pooled[i], m) for i in order] for m in NUMERIC_LINES}
    title = f"accuracy, agreement and flip rate against {axis} (bands: 95% intervals over items)"
    chart = svg.rate_lines(title, axis, xs, series)
    rows = [[f"{x:g}", *(f"{svg._fmt(s[k].value)} [{svg._fmt(s[k].low)}, {svg._fmt(s[k].high)}]"
                         for s in series.values())] for k, x in enumerate(xs)]
    return Plot("lines", title, chart, [[axis, *NUMERIC_LINES], *rows])


def _outcomes(results: ResultSet) -> Plot:
    rows = [(cell_label(results, c), dict(results.stats(c, 0).outcomes)) for c in results.cells]
    order = [str(o) for o in OUTCOMES]
    title = "what the answers were, per cell (share of answers; failed: no answer after retries)"
    present = [o for o in order if any(counts.get(o) for _, counts in rows)]
    numbers = [["cell", *present]] + [[name, *(str(counts.get(o, 0)) for o in present)] for name, counts in rows]
    return Plot("outcomes", title, svg.stacked_bars(title, rows, order), numbers)


def _confusion(results: ResultSet, cell: CellResults, scorer: BinaryClassification) -> Plot:
    s = results.stats(cell, 0)
    positive = svg._clip(_show_class(scorer.config.positive), 10)
    rows = [f"label {positive}", "label other"]
    cols = [f"said {positive}", "said other", "no class"]
    counts = [[s.tp, s.fn, s.unanswered_pos], [s.fp, s.tn, s.unanswered_neg]]
    title = f"confusion matrix: {cell_label(results, cell)}"
    chart = svg.count_grid(title, rows, cols, counts, {(0, 0), (1, 1)})
    return Plot("confusion", title, chart, [])


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


def _show_class(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
