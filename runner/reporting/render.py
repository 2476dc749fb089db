"""A report as text (terminal table or Markdown) or as data (JSON, CSV).

JSON and CSV carry numbers, not the formatted text of the tables: each rate as {value, low,
high, n_items, n_jobs} (CSV: one column each for the value and its bounds), comparisons with
their p-values and intervals as fields, and undefined values as null (never a bare NaN, which is
not JSON).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

from runner.diagnosis.diagnose import nothing_wrong_line
from runner.diagnosis.findings import Finding
from runner.reporting.prompt_cache import prompt_cache_line
from runner.reporting.tables import Record, Report, Table

FORMATS = ("table", "markdown", "csv", "json")


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return dump_json(report_data(report))
    if fmt == "csv":
        return _csv(report)
    style = "github" if fmt == "markdown" else "simple"
    parts = []
    for t in report.tables:
        heading = f"## {t.title}" if fmt == "markdown" else t.title
        parts.append(heading + "\n\n" + tabulate(t.rows, headers=t.headers, tablefmt=style))
        parts.extend(_lines(t.notes, fmt))
    if report.scored:
        parts.append(_findings_text(report.findings, report.no_findings_line, fmt))
    totals = report.totals
    parts.append(f"jobs: {totals['planned']} planned, {totals['ok']} succeeded, {totals['failed']} failed, "
                 f"{totals['missing']} not run"
                 + (f"; {report.from_cache} answers from the response cache (not sent again; --no-cache sends "
                    "them)" if report.from_cache else ""))
    if (cache_line := prompt_cache_line(report.prompt_cache)) is not None:
        parts.append(cache_line)
    if report.effect is not None:  # last: it is the answer to the question the experiment asks
        sentence = report.effect.sentence()
        parts.append(f"## Answer\n\n{sentence}" if fmt == "markdown" else f"Answer: {sentence}")
    return "\n\n".join(parts) + "\n"


def report_data(report: Report) -> dict[str, Any]:
    return {
        "experiment": report.experiment, "totals": report.totals, "from_cache": report.from_cache,
        "tables": [_table_data(t) for t in report.tables],
        "findings": [f.to_dict() for f in report.findings],
        "effect": report.effect.to_dict() if report.effect is not None else None,
        **({"human_agreement": report.human_agreement.to_dict()} if report.human_agreement else {}),
        **({"prompt_cache": [s.to_dict() for s in report.prompt_cache]} if report.prompt_cache else {}),
    }


def _table_data(t: Table) -> dict[str, Any]:
    return {
        "title": t.title, "metrics": t.metrics,
        "rows": [{**r.row, **r.column, **r.metrics} if not r.column else
                 {**r.row, "column": r.column, **r.metrics} for r in t.records],
        "notes": t.notes,
        "verdicts": [dataclasses.asdict(v) for v in t.verdicts],
        "comparisons": [{**dataclasses.asdict(c), "significant": c.significant, "sentence": c.sentence()}
                        for c in t.comparisons],
    }


def dump_json(data: Any) -> str:
    """JSON with NaN and infinities as null: strict parsers refuse a bare NaN."""
    return json.dumps(_finite(data), indent=2, default=str, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _csv(report: Report) -> str:
    """One line per table row; a rate gets its value and its bounds in three columns."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    for t in report.tables:
        axes = list(t.records[0].row) + list(t.records[0].column) if t.records else []
        header = ["table", *axes]
        for m in t.metrics:
            header.extend([m, f"{m}_low", f"{m}_high"] if _is_interval(t.records, m) else [m])
        writer.writerow(header)
        for r in t.records:
            line: list[Any] = [t.title, *(_cell(v) for v in (*r.row.values(), *r.column.values()))]
            for m in t.metrics:
                value = r.metrics[m]
                if _is_interval(t.records, m):
                    bounds = value if isinstance(value, dict) else {}
                    line.extend(_cell(bounds.get(k)) for k in ("value", "low", "high"))
                elif isinstance(value, dict):
                    line.append("; ".join(f"{k} {v:.3f}" for k, v in value.items()))
                else:
                    line.append(_cell(value))
            writer.writerow(line)
    return buf.getvalue()


def _is_interval(records: list[Record], metric: str) -> bool:
    return bool(records) and all(isinstance(r.metrics[metric], dict) and "low" in r.metrics[metric] for r in records)


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def _finding_lines(findings: list[Finding], fmt: str, indent: str = "") -> str:
    if fmt == "markdown":
        return "\n".join(f"{i}. {f.text}" + (f" *({f.hypothesis})*" if f.hypothesis else "")
                         for i, f in enumerate(findings, 1))
    return "\n".join(f"{indent}{i}. {f.text}" + (f" [{f.hypothesis}]" if f.hypothesis else "")
                     for i, f in enumerate(findings, 1))


def _findings_text(findings: list[Finding], none_line: str, fmt: str) -> str:
    if fmt == "markdown":
        return "## Findings\n\n" + (_finding_lines(findings, fmt) if findings else none_line)
    body = _finding_lines(findings, fmt, "  ") if findings else f"  {none_line}"
    return "Findings (most important first):\n" + body


def render_findings(experiment: str, findings: list[Finding], fmt: str) -> str:
    """`runner explain`: the findings alone, as text, Markdown or JSON."""
    if fmt == "json":
        return dump_json({"experiment": experiment, "findings": [f.to_dict() for f in findings]})
    if not findings:
        return nothing_wrong_line(experiment) + "\n"
    return _finding_lines(findings, fmt) + "\n"


def _lines(notes: Iterable[str], fmt: str) -> list[str]:
    prefix = "- " if fmt == "markdown" else "  "
    notes = list(notes)
    return ["\n".join(prefix + n for n in notes)] if notes else []
