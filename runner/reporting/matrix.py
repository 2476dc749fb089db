"""The analysis's model-selection matrix: task x model (grouped by size class), one verdict per cell.

Each experiment names its task (`task:`); each of its cells (one model variant, prompt, sampling...)
is a candidate for that task's row and that model's column, judged against the experiment's own
`report.threshold` by the report's verdict rule (`runner.reporting.judgement.verdicts`), in the
analysis's symbols: yes (the interval's lower bound clears the bar), no (its upper bound is below),
maybe (it straddles it).

Several candidates for one task and model (quantizations, prompts, several experiments): the one
used is the candidate that can be judged over the most items (then the most answers, then the first
listed), never the one with the best score: picking the best of several noisy cells overstates it
(the winner's curse), while the amount of evidence does not depend on the answers. Every cell says
which candidate it used and how many there were.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from runner.analysis.metrics import CellStats
from runner.analysis.results import ResultSet
from runner.config.schema import TASKS, Experiment, Threshold
from runner.config.size_class import SIZE_CLASSES, parse_params, show_params, size_class
from runner.reporting.judgement import Verdict, label_of, unit, verdicts

SYMBOLS = {"viable": "yes", "not viable": "no", "not shown viable": "maybe"}
NOT_RUN, NOT_JUDGED, NO_BAR, NO_EXPERIMENT = "not run", "not judged", "no bar", "no experiment"
WHY = ("the candidate judged over the most items (then the most answers, then the first listed); never the best "
       "score, which would overstate it")


@dataclass(frozen=True)
class Source:
    """One experiment as the matrix reads it: `results` None when it has no task or is a study."""

    label: str  # how notes name it: the file, or investigation file:step
    experiment: Experiment
    results: ResultSet | None
    threshold: Threshold | None  # the experiment's report.threshold (an investigation step: else the file's)
    # Model name -> parameters, parameters_source, size_label as readable without a run (a local GGUF).
    local_sizes: dict[str, dict[str, Any]] = field(default_factory=dict)
    left_out: str | None = None  # why its results could not be read (its answers need scoring, and cannot be)


@dataclass(frozen=True)
class Candidate:
    source: str
    task: str
    model: str
    cell: str  # the cell's axis values, as the report labels rows
    symbol: str  # yes | maybe | no | not run | not judged | no bar
    metric: str
    value: float | None
    low: float | None
    high: float | None
    threshold: float | None
    n_items: int
    n_jobs: int
    planned_items: int
    text: str  # the verdict's sentence (or why there is none)
    order: int  # position among all candidates, for the last tie-break

    def sort_key(self) -> tuple[int, int, int, int, int]:
        """Answered first, then judged, then the most items, the most answers, the first listed."""
        judged = self.symbol in SYMBOLS.values()
        return (-int(self.n_jobs > 0), -int(judged), -self.n_items, -self.n_jobs, self.order)


@dataclass(frozen=True)
class ModelColumn:
    name: str
    size_class: str
    parameters: int | None
    parameters_source: str | None
    size_label: str | None

    def heading(self) -> str:
        if self.parameters is None:
            return f"{self.name} (size unknown)"
        label = f", label {self.size_label}" if self.size_label else ""
        return f"{self.name} ({show_params(self.parameters)}{label})"


@dataclass
class MatrixCell:
    task: str
    model: str
    symbol: str
    chosen: Candidate | None
    candidates: int
    sources: list[str]

    def short(self) -> str:
        c = self.chosen
        if c is None:
            return NO_EXPERIMENT
        if c.symbol == NOT_RUN:
            return NOT_RUN
        if c.value is None:
            return c.symbol
        of = f"/{c.planned_items}" if c.planned_items > c.n_items else ""
        return f"{c.symbol} {c.value:.2f} [{c.low:.2f}, {c.high:.2f}] n={c.n_items}{of}"


@dataclass
class Matrix:
    tasks: list[str]
    models: list[ModelColumn]
    cells: dict[tuple[str, str], MatrixCell]
    notes: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)


def build_matrix(sources: list[Source]) -> Matrix:
    notes: list[str] = []
    candidates: list[Candidate] = []
    sizes: dict[str, Counter[tuple[int | None, str | None, str | None]]] = {}
    declared: dict[str, int] = {}
    local: dict[str, tuple[int | None, str | None, str | None]] = {}
    listed: list[dict[str, Any]] = []
    for src in sources:
        exp = src.experiment
        listed.append({"source": src.label, "experiment": exp.name, "task": exp.task,
                       "threshold": None if src.threshold is None else
                       {"metric": src.threshold.metric, "min": src.threshold.min},
                       "status": _status(src)})
        for m in exp.models:
            if m.params is not None:
                declared.setdefault(m.name, m.params)
        for name, size in src.local_sizes.items():
            local.setdefault(name, (size.get("parameters"), size.get("parameters_source"), size.get("size_label")))
        if src.left_out is not None:
            notes.append(f"{src.label}: left out: stored answers have no valid score and cannot be scored here: "
                         f"{src.left_out}")
            continue
        if src.results is None:
            why = "a study (no per-item results)" if exp.study is not None else "no task: key"
            notes.append(f"{src.label}: left out: {why}" + ("" if exp.study is not None else
                                                            f"; add task: one of {', '.join(TASKS)}"))
            continue
        if src.threshold is None:
            notes.append(f"{src.label}: no report.threshold, so its cells show the rate without a verdict; add "
                         "report.threshold: {metric: accuracy, min: ...} to judge them")
        for cell in src.results.cells:
            model = cell.cell.variant.model
            for r in cell.results:
                v = r.record.variant if r.record is not None else None
                if v and "size_class" in v:  # stores from before size classes say nothing: not "unknown"
                    params = v.get("parameters") if isinstance(v.get("parameters"), int) else None
                    sizes.setdefault(model, Counter())[(params, v.get("parameters_source"), v.get("size_label"))] += 1
            candidates.append(_candidate(src, cell.cell.values, model, src.results.stats(cell, 0)
                                         if src.results.scorers else None, len(candidates)))
    models = _columns(candidates, sizes, local, declared, notes)
    tasks = list(TASKS)
    cells: dict[tuple[str, str], MatrixCell] = {}
    for task in tasks:
        for col in models:
            mine = [c for c in candidates if c.task == task and c.model == col.name]
            if not mine:
                cells[(task, col.name)] = MatrixCell(task, col.name, NO_EXPERIMENT, None, 0, [])
                continue
            chosen = min(mine, key=Candidate.sort_key)
            cells[(task, col.name)] = MatrixCell(task, col.name, chosen.symbol, chosen, len(mine),
                                                 list(dict.fromkeys(c.source for c in mine)))
    return Matrix(tasks, models, cells, notes, listed)


def _status(src: Source) -> str:
    if src.results is None:
        return "left out"
    totals = src.results.totals
    if totals["ok"] == 0:
        return "not run"
    return "done" if totals["ok"] == totals["planned"] else "partial"


def _candidate(src: Source, values: tuple[tuple[str, Any], ...], model: str, stats: CellStats | None,
               order: int) -> Candidate:
    axes = [a for a, _ in values]
    key = (tuple(v for _, v in values), ())
    shown = [(a, v) for a, v in values if v is not None]  # an axis the experiment does not vary says nothing
    cell = label_of([a for a, _ in shown], [], (tuple(v for _, v in shown), ()))
    task = str(src.experiment.task)
    planned_items = len(src.results.plan.items) if src.results is not None else 0
    if src.results is not None and src.results.limit_items is not None:
        planned_items = min(planned_items, src.results.limit_items)

    def make(symbol: str, text: str, metric: str = "accuracy", value: float | None = None,
             low: float | None = None, high: float | None = None, n_items: int = 0, n_jobs: int = 0) -> Candidate:
        bar = src.threshold.min if src.threshold is not None else None
        return Candidate(src.label, task, model, cell, symbol, metric, value, low, high, bar, n_items, n_jobs,
                         planned_items, text, order)

    if stats is None:
        return make(NOT_JUDGED, f"{cell}: not judged: the experiment has no scorer")
    if stats.ok == 0:
        return make(NOT_RUN, f"{cell}: not run", n_jobs=0)
    if src.threshold is None:
        rate = stats.clustered("accuracy")
        if rate is None or rate.n_jobs == 0:
            return make(NO_BAR, f"{cell}: no report.threshold, and no accuracy to show", n_items=len(stats.items),
                        n_jobs=stats.ok)
        return make(NO_BAR, f"{cell}: accuracy {rate.value:.2f} [{rate.low:.2f}, {rate.high:.2f}] over "
                            f"{unit(rate.n_items, rate.n_jobs)}; no report.threshold to judge it against",
                    "accuracy", rate.value, rate.low, rate.high, rate.n_items, rate.n_jobs)
    verdict: Verdict = verdicts(src.threshold, axes, [], {key: stats})[0]
    if verdict.status not in SYMBOLS:
        return make(NOT_JUDGED, verdict.text, verdict.metric, n_items=verdict.n_items, n_jobs=verdict.n_jobs)
    return make(SYMBOLS[verdict.status], verdict.text, verdict.metric, verdict.value, verdict.low, verdict.high,
                verdict.n_items, verdict.n_jobs)


def _columns(candidates: list[Candidate], sizes: dict[str, Counter[tuple[int | None, str | None, str | None]]],
             local: dict[str, tuple[int | None, str | None, str | None]], declared: dict[str, int],
             notes: list[str]) -> list[ModelColumn]:
    """One column per model name, its size as its stored jobs recorded it, else as its local GGUF says
    (not run yet), else the YAML's params."""
    out = []
    for name in dict.fromkeys(c.model for c in candidates):
        seen = sizes.get(name)
        if seen:
            (params, source, label), _ = seen.most_common(1)[0]
            classes = {size_class(p) for p, _, _ in seen}
            if len(classes) > 1:
                notes.append(f"{name}: its jobs record different size classes ({', '.join(sorted(classes))}); the "
                             "column uses the most common; give the variants different model names")
        elif name in local:
            params, source, label = local[name]
        elif name in declared:
            params, source, label = declared[name], "declared (models[].params)", None
        else:
            params, source, label = None, None, None
        labelled = _label_count(label)
        if params is not None and labelled is not None and abs(params - labelled) > 0.25 * labelled:
            same = "the same class" if size_class(labelled) == size_class(params) else \
                f"class {size_class(labelled)} by the label"
            notes.append(f"{name}: its GGUF's tensors hold {show_params(params)} elements where its size label says "
                         f"{label} ({same}): the count is of every tensor in the file, so an output matrix stored "
                         "apart from a tied embedding counts twice")
        if params is None:
            notes.append(f"{name}: size class unknown: no parameter count recorded or declared; add params: (e.g. "
                         "1.7B) to its models entry")
        out.append(ModelColumn(name, size_class(params), params, source, label))
    order = {c: i for i, c in enumerate(SIZE_CLASSES)}
    return sorted(out, key=lambda m: order.get(m.size_class, len(order)))


def _label_count(label: str | None) -> int | None:
    try:
        return parse_params(label) if label else None
    except ValueError:
        return None  # labels such as "8x7B" are not one count


# rendering


def render_matrix(matrix: Matrix, fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(matrix_json(matrix), indent=2) + "\n"
    if fmt == "markdown":
        return _markdown(matrix)
    if fmt == "html":
        from runner.reporting.html.matrix import matrix_page  # the page machinery only when asked for

        return matrix_page(matrix)
    return _table(matrix)


def matrix_json(matrix: Matrix) -> dict[str, Any]:
    return {
        "tasks": matrix.tasks,
        "size_classes": [c for c in SIZE_CLASSES if any(m.size_class == c for m in matrix.models)],
        "models": [{"name": m.name, "size_class": m.size_class, "parameters": m.parameters,
                    "parameters_source": m.parameters_source, "size_label": m.size_label} for m in matrix.models],
        "cells": [_cell_json(c) for c in matrix.cells.values()],
        "experiments": matrix.sources,
        "notes": matrix.notes,
    }


def _cell_json(cell: MatrixCell) -> dict[str, Any]:
    c = cell.chosen
    return {"task": cell.task, "model": cell.model, "verdict": cell.symbol,
            "metric": c.metric if c else None, "value": c.value if c else None, "low": c.low if c else None,
            "high": c.high if c else None, "threshold": c.threshold if c else None,
            "n_items": c.n_items if c else 0, "n_jobs": c.n_jobs if c else 0,
            "planned_items": c.planned_items if c else 0,
            "source": c.source if c else None, "cell": c.cell if c else None, "candidates": cell.candidates,
            "sources": cell.sources, "chosen_by": WHY if cell.candidates > 1 else None,
            "text": c.text if c else None}


def explain_lines(matrix: Matrix) -> list[str]:
    out = []
    for cell in matrix.cells.values():
        c = cell.chosen
        if c is None or c.symbol == NOT_RUN:
            continue  # the grid says so; nothing to explain
        where = f"{c.source} [{c.cell}]"
        picked = (f"; chosen of {cell.candidates} candidates in {len(cell.sources)} experiment"
                  f"{'s' if len(cell.sources) != 1 else ''}: {WHY}") if cell.candidates > 1 else ""
        bar = f" (bar {c.threshold:.2f})" if c.threshold is not None and c.symbol in SYMBOLS.values() else ""
        out.append(f"{cell.task} x {cell.model}: {cell.symbol}{bar}: {where}: {c.text.split(': ', 1)[-1]}{picked}")
    return out


def _grid(matrix: Matrix) -> tuple[list[str], list[str], list[list[str]]]:
    groups = [m.size_class for m in matrix.models]
    headers = ["task"] + [m.heading() for m in matrix.models]
    rows = [[task] + [matrix.cells[(task, m.name)].short() for m in matrix.models] for task in matrix.tasks]
    return groups, headers, rows


def _table(matrix: Matrix) -> str:
    groups, headers, rows = _grid(matrix)
    # The class heads its group once: columns are sorted by class, so a group is a run of equal classes.
    top = ["size class", *(g if i == 0 or groups[i - 1] != g else "" for i, g in enumerate(groups))]
    widths = [max(len(r[i]) for r in [top, headers, *rows]) for i in range(len(headers))]

    def fmt_row(row: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()

    out = ["model-selection matrix: task x model by size class; yes / maybe / no against each experiment's "
           "report.threshold (95% interval, n in items)", "", fmt_row(top), fmt_row(headers),
           fmt_row(["-" * w for w in widths]), *(fmt_row(r) for r in rows), ""]
    out += explain_lines(matrix)
    out += matrix.notes
    return "\n".join(out).rstrip() + "\n"


def _markdown(matrix: Matrix) -> str:
    groups, headers, rows = _grid(matrix)
    heads = ["task"] + [f"{h} · {g}" for h, g in zip(headers[1:], groups, strict=True)]
    out = ["## Model-selection matrix", "",
           "yes / maybe / no against each experiment's `report.threshold` (95% interval, n in items)", "",
           "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += ["", *(f"- {line}" for line in explain_lines(matrix) + matrix.notes)]
    return "\n".join(out).rstrip() + "\n"
