"""`runner export`: one record per job, for a notebook, a spreadsheet or another tool.

Each record carries the cell's axis values, the request as sent, the prompt as the server rendered
it (`rendered_prompt`, with `rendered_by`: who rendered it, or null where the server could not
say), the answer's text, finish reason, tokens, latency, every scorer's outcome and verdict, and the
model's size class and parameter count as recorded with the job (null in stores from before them).
Jobs not run yet are left out; failed jobs are included with their error.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from runner.analysis.results import ResultSet
from runner.store import Store

EXPORT_FORMATS = ("jsonl", "csv")


def export_records(results: ResultSet, store: Store) -> Iterator[dict[str, Any]]:
    for cell in results.cells:
        stored = [r for r in cell.results if r.record is not None]
        extras = store.job_requests(r.job.job_id for r in stored)
        for index, r in enumerate(cell.results):
            rec = r.record
            if rec is None:
                continue
            request, rendered, by = extras.get(r.job.job_id, (None, None, None))
            scores = {}
            for scorer, column in zip(results.scorers, cell.scores, strict=True):
                score = column[index]
                if score is not None:
                    scores[scorer.name] = {"outcome": str(score.outcome), "correct": score.correct,
                                           "prediction": score.prediction, "expected": score.expected}
                    if score.extras and "similarity" in score.extras:  # a similarity scorer's measure
                        scores[scorer.name]["similarity"] = score.extras["similarity"]
            first = next(iter(scores.values()), None)
            yield {
                "job_id": r.job.job_id, "item_id": r.job.item.id, "repeat": r.job.repeat,
                "cell": {axis: value for axis, value in cell.cell.values}, "status": rec.status,
                "request": request, "rendered_prompt": rendered, "rendered_by": by,
                "text": rec.text, "finish_reason": rec.finish_reason, "prompt_tokens": rec.prompt_tokens,
                "completion_tokens": rec.completion_tokens, "latency_s": rec.latency_s,
                "outcome": first["outcome"] if first else ("failed" if rec.status != "ok" else None),
                "scores": scores, "error": rec.error,
                # The model's size as the backend recorded it with the job (runner.config.size_class), to group by.
                "size_class": (rec.variant or {}).get("size_class"),
                "parameters": (rec.variant or {}).get("parameters"),
            }


def render_export(records: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    """The records as JSON lines, or as CSV (axes and scores flattened into columns), chunk by chunk."""
    if fmt == "jsonl":
        for record in records:
            yield json.dumps(record, ensure_ascii=False, default=str) + "\n"
        return
    header: list[str] | None = None
    for record in records:
        flat = _flat(record)
        if header is None:
            header = list(flat)
            yield _csv_line(header)
        yield _csv_line([flat.get(k, "") for k in header])


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"job_id": record["job_id"], "item_id": record["item_id"], "repeat": record["repeat"]}
    out.update({axis: _cell(v) for axis, v in record["cell"].items()})
    for key in ("status", "finish_reason", "prompt_tokens", "completion_tokens", "latency_s", "outcome", "size_class",
                "parameters"):
        out[key] = record[key]
    for name, score in record["scores"].items():
        out[f"{name}.correct"] = score["correct"]
        out[f"{name}.prediction"] = _cell(score["prediction"])
        if "similarity" in score:
            out[f"{name}.similarity"] = score["similarity"]
    out.update(rendered_by=record["rendered_by"], rendered_prompt=record["rendered_prompt"], text=record["text"],
               request=json.dumps(record["request"], ensure_ascii=False), error=record["error"])
    return out


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, list | dict) else value


def _csv_line(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(["" if v is None else v for v in values])
    return buf.getvalue()
