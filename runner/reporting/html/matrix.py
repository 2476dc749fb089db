"""The model-selection matrix as a coloured grid (`runner matrix FILE... --format html`, and a section of
an investigation's page): task rows, model columns under their size class, one cell per task x model
coloured by its verdict, with its interval and n in the cell and its source beside them (the whole
sentence on hover), the legend, and the lines the text table prints under it.

Every cell is drawn from `matrix_json` (the dict `--format json` prints), so the grid cannot say
something the JSON does not. Plain HTML and CSS: nothing needs a script.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from runner.reporting.html.page import page
from runner.reporting.matrix import NO_BAR, NO_EXPERIMENT, NOT_JUDGED, NOT_RUN, Matrix, explain_lines, matrix_json

MEANING = {
    "yes": "the interval's lower bound clears the bar",
    "maybe": "the interval straddles the bar",
    "no": "the interval's upper bound is below the bar",
    NOT_RUN: "an experiment is declared, nothing stored yet",
    NO_EXPERIMENT: "no experiment measures this task on this model",
    NO_BAR: "the rate, with no report.threshold to judge it against",
    NOT_JUDGED: "no verdict: no scorer or no rate",
}


def verdict_class(verdict: str) -> str:
    return "m-" + verdict.replace(" ", "-")


def matrix_page(matrix: Matrix) -> str:
    """The grid on a page of its own, self-contained like the report, with the experiments it read."""
    return page("model-selection matrix", "<h1 id='matrix'>model-selection matrix</h1>"
                + matrix_section(matrix, level=None) + _experiments(matrix_json(matrix)))


def matrix_section(matrix: Matrix, level: int | None, anchor: str = "matrix") -> str:
    """The grid, its legend and the lines under it; under a heading at `level` (None: no heading)."""
    data = matrix_json(matrix)
    head = "" if level is None else f"<h{level} id='{escape(anchor)}'>model-selection matrix</h{level}>"
    head += ("<p class='muted'>task x model by size class; yes / maybe / no against each experiment's "
             "report.threshold (95% interval, n in items); hover a cell for its whole verdict</p>")
    if not data["models"]:
        return head + "<p>no experiment here names a task: nothing to put in the grid.</p>" + _notes(matrix)
    return head + _grid(matrix, data) + _legend(data) + _notes(matrix)


def _grid(matrix: Matrix, data: dict[str, Any]) -> str:
    models = data["models"]
    groups: list[tuple[str, int]] = []
    for m in models:  # columns come sorted by class: a group is a run of equal classes
        if groups and groups[-1][0] == m["size_class"]:
            groups[-1] = (groups[-1][0], groups[-1][1] + 1)
        else:
            groups.append((m["size_class"], 1))
    top = "<tr><th>size class</th>" + "".join(f"<th class='m-class' colspan='{n}'>{escape(c)}</th>"
                                                for c, n in groups) + "</tr>"
    headings = {m.name: m.heading() for m in matrix.models}
    names = "<tr><th>task</th>" + "".join(f"<th data-model='{escape(m['name'])}'>{escape(headings[m['name']])}</th>"
                                          for m in models) + "</tr>"
    cells = {(c["task"], c["model"]): c for c in data["cells"]}
    rows = []
    for task in data["tasks"]:
        tds = "".join(_cell(cells[(task, m["name"])]) for m in models)
        rows.append(f"<tr><th scope='row'>{escape(task)}</th>{tds}</tr>")
    return (f"<div class='scroll'><table class='matrix'><thead>{top}{names}</thead><tbody>{''.join(rows)}"
            "</tbody></table></div>")


def _cell(c: dict[str, Any]) -> str:
    verdict = c["verdict"]
    parts = [f"<span class='m-verdict'>{escape(verdict)}</span>"]
    if c["value"] is not None:
        parts.append(f" <span class='m-rate'>{c['value']:.2f} [{c['low']:.2f}, {c['high']:.2f}]</span>")
        of = f"/{c['planned_items']}" if c["planned_items"] > c["n_items"] else ""
        parts.append(f" <span class='m-n'>n={c['n_items']}{of}</span>")
    hover = []
    if c["source"] is not None:
        shown = f"{Path(c['source']).name} [{c['cell']}]"
        if c["candidates"] > 1:
            shown += f"; chosen of {c['candidates']} candidates"
        parts.append(f"<span class='m-source'>{escape(shown)}</span>")
        hover.append(f"{c['source']} [{c['cell']}]")
    if c["text"]:
        hover.append(c["text"])
    if c["chosen_by"]:
        hover.append(f"chosen of {c['candidates']} candidates: {c['chosen_by']}")
    if c["threshold"] is not None:
        hover.append(f"bar {c['threshold']:.2f}")
    title = f" title='{escape(chr(10).join(hover))}'" if hover else ""
    return (f"<td class='m-cell {verdict_class(verdict)}' data-task='{escape(c['task'])}' "
            f"data-model='{escape(c['model'])}' data-verdict='{escape(verdict)}'{title}>{''.join(parts)}</td>")


def _legend(data: dict[str, Any]) -> str:
    present = {c["verdict"] for c in data["cells"]}
    keys = [v for v in MEANING if v in present]
    return "<p class='m-legend'>" + "".join(
        f"<span class='{verdict_class(v)}'><b>{escape(v)}</b>: {escape(MEANING[v])}</span>" for v in keys) + "</p>"


def _notes(matrix: Matrix) -> str:
    lines = explain_lines(matrix) + matrix.notes
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f"<ul class='notes m-lines'>{items}</ul>" if items else ""


def _experiments(data: dict[str, Any]) -> str:
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
            e["source"], e["experiment"], e["task"] or "-",
            "-" if e["threshold"] is None else f"{e['threshold']['metric']} >= {e['threshold']['min']:g}",
            e["status"])) + "</tr>" for e in data["experiments"])
    return ("<h2 id='experiments'>experiments read</h2><table class='m-experiments'><thead><tr><th>file</th>"
            f"<th>experiment</th><th>task</th><th>threshold</th><th>status</th></tr></thead><tbody>{rows}</tbody>"
            "</table>")
