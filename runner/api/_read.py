"""The read verbs: results, report and explain open the store read-only and never write; render."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

from runner.api._prepare import Prepared, open_store, prepare
from runner.errors import UserError

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

    from runner.analysis.results import ResultSet
    from runner.capabilities.context_window import ContextStudy
    from runner.diagnosis.findings import Finding
    from runner.execution.events import Subscriber
    from runner.reporting.tables import Report


# the read verbs


def results(path: str | Path, *, limit: int | None = None, max_jobs: int | None = None) -> ResultSet:
    """The one read path: every planned job's record and scores, read once (read-only).

    `max_jobs`, here and in the other verbs, overrides the file's limits.max_jobs."""
    return _results(prepare(path, for_reading=True, limit=limit, max_jobs=max_jobs), path, limit)


def _results(p: Prepared, path: str | Path, limit: int | None) -> ResultSet:
    from runner.analysis.results import load_results

    if p.experiment.study is not None:
        raise UserError("a study has no per-job results", file=path, fix=f"use `runner report {path}`")
    store = open_store(p, path)
    try:
        return load_results(p.plan, store, p.scorers, limit)
    finally:
        store.close()


def report(path: str | Path | Prepared, *, limit: int | None = None,
           max_jobs: int | None = None) -> Report | ContextStudy:
    """Tables with intervals, comparisons, verdicts and findings (a study: its stored results).

    `path` may be the experiment a run has just prepared (`RunSummary.prepared`): its plan has every
    prompt rendered already, so the report after a run does not load, plan and render it again."""
    from runner.reporting.tables import build_report

    if isinstance(path, Prepared):
        p, path = path, path.experiment.source_path
    else:
        p = prepare(path, for_reading=True, limit=limit, max_jobs=max_jobs)
    if p.experiment.study is not None:
        return _stored_study(p, path)
    return build_report(_results(p, path, limit))


def report_html(path: str | Path, *, limit: int | None = None, max_jobs: int | None = None) -> str:
    """The report as one self-contained HTML page: tables, findings, plots and every answer (a study: its
    probes plotted against the limit). Read-only, over the same read path as `report`."""
    from runner.analysis.results import load_results
    from runner.reporting.html.experiment import experiment_page, study_page
    from runner.reporting.html.responses import prompt_jobs
    from runner.reporting.tables import build_report

    p = prepare(path, for_reading=True, limit=limit, max_jobs=max_jobs)
    if p.experiment.study is not None:
        return study_page(p.experiment.name, _stored_study(p, path))
    store = open_store(p, path)
    try:
        results = load_results(p.plan, store, p.scorers, limit)
        prompts = store.rendered_prompts(prompt_jobs(results))
    finally:
        store.close()
    return experiment_page(build_report(results), results, prompts)


def html_server(path: str | Path, *, port: int = 0, limit: int | None = None,
                max_jobs: int | None = None) -> ThreadingHTTPServer:
    """`runner view`: a server on 127.0.0.1 (not started; `serve_forever` it) answering GET / with the HTML
    report, rendered again on each load. Rendered once here first, so a bad file or a missing store is
    a UserError before anything listens."""
    from runner.api._investigate import investigation_html, is_investigation
    from runner.reporting.html.serve import page_server

    def render() -> str:
        if is_investigation(path):
            return investigation_html(path, limit=limit, max_jobs=max_jobs)[0]
        return report_html(path, limit=limit, max_jobs=max_jobs)

    render()
    return page_server(render, port)


def explain(path: str | Path, *, limit: int | None = None, max_jobs: int | None = None) -> list[Finding]:
    """Findings: why the scores are what they are, most important first."""
    from runner.diagnosis.diagnose import diagnose

    return diagnose(results(path, limit=limit, max_jobs=max_jobs))


def _stored_study(p: Prepared, path: str | Path) -> ContextStudy:
    from runner.capabilities.context_window import ContextStudy
    from runner.store import Store

    # Runners before the studies table wrote only a side file and no store: a missing store is no error.
    store = Store.open_readonly(p.store_path)
    data = None
    if store is not None:
        try:
            data = store.latest_study(ContextStudy.KIND)
        finally:
            store.close()
    legacy = p.store_path.parent / "context_window.json"
    source: Path | str = p.store_path
    if data is None and legacy.is_file():
        # Written by runners before the studies table; read as it is, never rewritten by a read verb.
        source = legacy
        try:
            data = json.loads(legacy.read_text())
        except ValueError:
            data = None
    if data is None:
        raise UserError("no results yet", file=path, fix=f"run `runner run {path}` first")
    try:
        return ContextStudy.from_dict(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"stored study results are unreadable ({type(exc).__name__})", file=source,
                        fix=f"run `runner run {path}` again") from None


async def report_async(path: str | Path, *, limit: int | None = None) -> Report | ContextStudy:
    import asyncio

    return await asyncio.to_thread(report, path, limit=limit)


async def explain_async(path: str | Path, *, limit: int | None = None) -> list[Finding]:
    import asyncio

    return await asyncio.to_thread(explain, path, limit=limit)


# rendering, for the CLI and for callers who want the CLI's text


def render(report: Report | ContextStudy, fmt: str = "table") -> str:
    """A report as text: table, markdown, csv or json (a study renders as its text summary)."""
    from runner.reporting.render import render as render_report

    # A study exists only where its module is loaded: a report's render does not import it (and the
    # backends' retry code it brings) just to be told it is not one.
    studies = sys.modules.get("runner.capabilities.context_window")
    if studies is not None and isinstance(report, studies.ContextStudy):
        return cast("ContextStudy", report).render()
    return render_report(cast("Report", report), fmt)


def render_findings(experiment: str, findings: list[Finding], fmt: str = "text") -> str:
    """`runner explain`'s text: the findings of the named experiment, as text, markdown or json."""
    from runner.reporting.render import render_findings as render_them

    return render_them(experiment, findings, fmt)


def progress_line(*, enabled: bool = True) -> Subscriber:
    """The CLI's progress line (stderr) as an event subscriber; notes and warnings print even when
    the line itself is disabled."""
    from runner.execution.progress import Progress, ProgressSubscriber

    return ProgressSubscriber(Progress(0, enabled=enabled))


def junit(report: Report) -> str:
    """JUnit XML, one test case per row judged against `report.threshold`."""
    from runner.reporting.junit import junit_xml

    return junit_xml(report)


def verdict_exit_code(report: Report | ContextStudy, path: str | Path) -> int:
    """For `--fail-on-verdict`: 0 when every judged row is shown to meet `report.threshold`, 3 when any
    is not (or nothing could be judged yet); a file without a threshold is a user error."""
    from runner.reporting.tables import Report

    if not isinstance(report, Report):
        raise UserError("a study has no verdicts", file=path, fix="drop --fail-on-verdict for this file")
    verdicts = report.verdicts
    if not verdicts:
        return VERDICT_NOT_MET
    return 0 if all(v.met for v in verdicts) else VERDICT_NOT_MET


VERDICT_NOT_MET = 3


def export(path: str | Path, *, fmt: str = "jsonl", limit: int | None = None,
           max_jobs: int | None = None) -> Iterator[str]:
    """`runner export`: one record per stored job (JSON lines or CSV), read-only, chunk by chunk."""
    from runner.analysis.results import load_results
    from runner.reporting.export import export_records, render_export

    p = prepare(path, for_reading=True, limit=limit, max_jobs=max_jobs)
    if p.experiment.study is not None:
        raise UserError("a study has no per-job records to export", file=path, fix=f"use `runner report {path}`")
    store = open_store(p, path)
    try:
        results = load_results(p.plan, store, p.scorers, limit)
        yield from render_export(export_records(results, store), fmt)
    finally:
        store.close()
