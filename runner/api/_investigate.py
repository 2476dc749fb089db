"""The investigation verbs: validate, run and report a file of steps (see `runner.investigation`).

A step runs its (overridden) experiment exactly as `runner run` does, in that experiment's own store,
so it resumes and can be run alone. After each step, the picks later steps take from it are computed
over its results and written, with their evidence, to `results/<investigation stem>/picks.json`
(atomically). `report` reads the stores read-only and the picks as recorded (the values the later
steps ran with), and writes nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.api._files import write_atomically
from runner.api._prepare import Prepared, prepare
from runner.errors import ConfigError, UserError

if TYPE_CHECKING:
    from runner.api._run import RunSummary
    from runner.capabilities.context_window import ContextStudy
    from runner.config.schema import Experiment
    from runner.execution.events import Subscriber
    from runner.investigation.load import StepExperiments
    from runner.investigation.report import InvestigationReport, PickRecord
    from runner.reporting.tables import Report


def is_investigation(path: str | Path) -> bool:
    """Whether the file is an investigation (a YAML mapping with `steps:`) rather than an experiment."""
    from runner.investigation.peek import is_investigation as check

    return check(path)


@dataclass
class StepRun:
    """One step as `run_investigation` ran it: what it took, what it did, and the picks made from it."""

    step: str
    experiment: Path
    uses: dict[str, Any]
    summary: RunSummary
    report: Report | ContextStudy | None
    picks: list[PickRecord] = field(default_factory=list)


def validate_investigation(path: str | Path, *, offline: bool = False,
                           max_jobs: int | None = None) -> list[tuple[str, Prepared]]:
    """Check the file and every step's experiment: a step that uses earlier picks once per candidate
    value of each axis it takes (the other axes at their first candidate). Nothing runs; unless
    `offline`, each step's backend is reached once (loading nothing)."""
    import asyncio

    steps = _load(path)
    out = _prepare_all(steps, None, max_jobs)
    if not offline:
        for _, p in out:
            asyncio.run(p.backend.probe())
    return out


def _load(path: str | Path) -> StepExperiments:
    from runner.investigation.load import load_investigation

    return load_investigation(path)


def _prepare_all(steps: StepExperiments, limit: int | None, max_jobs: int | None) -> list[tuple[str, Prepared]]:
    """Each step prepared as written (with the first candidates of its used axes); every other candidate
    checked too, so a value an earlier step may pick cannot break a later step halfway through."""
    out = []
    for step in steps.steps:
        if not step.use:
            out.append((step.name, prepare(steps.written[step.name], limit=limit, max_jobs=max_jobs)))
            continue
        candidates = {axis: steps.candidates(step.name, axis) for axis in step.use}
        first = {axis: values[0] for axis, values in candidates.items()}
        out.append((step.name, _prepare_step(steps, step.name, first, limit, max_jobs)))
        for axis, values in candidates.items():
            for value in values[1:]:
                _prepare_step(steps, step.name, {**first, axis: value}, limit, max_jobs)
    return out


def _prepare_step(steps: StepExperiments, name: str, values: dict[str, Any], limit: int | None,
                  max_jobs: int | None) -> Prepared:
    experiment = steps.overridden(name, values)
    try:
        return prepare(experiment, limit=limit, max_jobs=max_jobs)
    except UserError as exc:
        given = ", ".join(f"{a}={v} from step {steps.investigation.step(name).use[a].from_!r}"
                          for a, v in values.items())
        raise type(exc)(f"with {given}: {exc.problem}", file=exc.file, key=exc.key, fix=exc.fix) from None


def run_investigation(path: str | Path, *, limit: int | None = None, fresh: bool = False,
                      concurrency: int | None = None, subscribers: Iterable[Subscriber] = (),
                      events_path: str | Path | None = None, max_jobs: int | None = None,
                      on_step_start: Callable[[int, str, Path, dict[str, Any]], None] | None = None,
                      on_step: Callable[[StepRun], None] | None = None, cache: bool = True) -> list[StepRun]:
    """Run the steps in order; after each, compute and record the picks later steps take from it.

    Everything is checked first (`validate_investigation`, offline), so bad input runs nothing.
    `on_step_start(index, name, experiment, uses)` and `on_step(step_run)` are called around each step
    (the CLI prints there). Stops after an interrupted step (its summary says so)."""
    from runner.api._run import _own_loop, _run_prepared
    from runner.investigation.pick import pick_best
    from runner.investigation.report import PickRecord

    subscribers = list(subscribers)
    steps = _load(path)
    _prepare_all(steps, limit, max_jobs)  # every step and candidate, before the first request
    inv = steps.investigation
    chosen: dict[tuple[str, str], PickRecord] = {}
    done: list[StepRun] = []
    for index, step in enumerate(steps.steps):
        uses = {axis: chosen[(step.name, axis)].pick.value for axis in step.use}
        if on_step_start is not None:
            on_step_start(index, step.name, step.experiment, uses)
        p = _prepare_step(steps, step.name, uses, limit, max_jobs) if uses else \
            prepare(steps.written[step.name], limit=limit, max_jobs=max_jobs)
        summary = _own_loop(functools.partial(_run_prepared, p, limit=limit, fresh=fresh, concurrency=concurrency,
                                              subscribers=subscribers, events_path=events_path, cache=cache))
        if summary.interrupted:
            done.append(StepRun(step.name, step.experiment, uses, summary, None))
            if on_step is not None:
                on_step(done[-1])
            return done
        report: Report | ContextStudy | None = summary.study
        made: list[PickRecord] = []
        if summary.study is None:
            results = _results(p, limit)
            from runner.reporting.tables import build_report

            report = build_report(results)
            picked: dict[str, Any] = {}
            for later in steps.steps[index + 1:]:
                for axis, use in later.use.items():
                    if use.from_ != step.name:
                        continue
                    if axis not in picked:
                        picked[axis] = pick_best(results, axis, p.experiment.report.alpha)
                    record = PickRecord(later.name, step.name, picked[axis])
                    chosen[(later.name, axis)] = record
                    made.append(record)
        _write_picks(inv.picks_path(), inv.name, limit, list(chosen.values()))
        done.append(StepRun(step.name, step.experiment, uses, summary, report, made))
        if on_step is not None:
            on_step(done[-1])
    return done


def _results(p: Prepared, limit: int | None) -> Any:
    from runner.analysis.results import load_results
    from runner.store import Store

    store = Store.open_readonly(p.store_path)
    try:
        return load_results(p.plan, store, p.scorers, limit)
    finally:
        if store is not None:
            store.close()


def _write_picks(target: Path, name: str, limit: int | None, picks: list[PickRecord]) -> None:
    """picks.json, written then renamed: a reader never sees half of it."""
    data = {"investigation": name, "limit": limit, "picks": [p.to_dict() for p in picks]}
    write_atomically(target, json.dumps(data, indent=2, default=str) + "\n")


def _read_picks(path: Path) -> list[PickRecord] | None:
    from runner.investigation.report import PickRecord

    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [PickRecord.from_dict(d) for d in data["picks"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the recorded picks are unreadable ({type(exc).__name__})", file=path,
                          fix="run the investigation again to write them") from None


def report_investigation(path: str | Path, *, limit: int | None = None,
                         max_jobs: int | None = None) -> InvestigationReport:
    """Each step's report over its store (read-only), with the values it took as recorded in
    picks.json, and the picks; a step not run yet is listed as such. Ends in the hypotheses table
    and the decision (`runner.investigation.hypotheses`)."""
    from runner.api._read import _stored_study
    from runner.investigation.report import InvestigationReport, StepReport
    from runner.reporting.tables import build_report
    from runner.store import Store

    steps = _load(path)
    inv = steps.investigation
    picks = _read_picks(inv.picks_path())
    if picks is None:
        raise UserError("no results yet", file=path, fix=f"run `runner run {path}` first")
    chosen = {(r.step, r.pick.axis): r for r in picks}
    out = InvestigationReport(inv.name, inv.question, inv.threshold, picks=picks)
    for step in steps.steps:
        uses = {axis: chosen[(step.name, axis)].pick.value if (step.name, axis) in chosen else None
                for axis in step.use}
        entry = StepReport(step.name, step.experiment, step.hypothesis, uses, "waiting")
        out.steps.append(entry)
        if any(v is None and (step.name, a) not in chosen for a, v in uses.items()):
            continue
        experiment: Experiment = steps.overridden(step.name, uses) if uses else steps.written[step.name]
        p = prepare(experiment, for_reading=True, limit=limit, max_jobs=max_jobs)
        if experiment.study is not None:
            try:
                entry.report, entry.status = _stored_study(p, steps.paths[step.name]), "done"
            except UserError:
                entry.status = "not run"
            continue
        store = Store.open_readonly(p.store_path)
        if store is None:
            entry.status = "not run"
            continue
        store.close()
        entry.results = results = _results(p, limit)
        entry.store_path = p.store_path
        report = build_report(results)
        entry.report = report
        entry.status = "done" if report.totals["ok"] == report.totals["planned"] else "partial"
    return out.conclude()


def investigation_html(path: str | Path, *, limit: int | None = None,
                       max_jobs: int | None = None) -> tuple[str, InvestigationReport]:
    """The investigation's report as one self-contained HTML page (and the report, for its decision):
    read-only, as `report_investigation`, plus each step's rendered prompts for the response browser."""
    from runner.investigation.html import investigation_page
    from runner.reporting.html.responses import Prompt, prompt_jobs
    from runner.store import Store

    rep = report_investigation(path, limit=limit, max_jobs=max_jobs)
    prompts: dict[str, dict[str, Prompt]] = {}
    for step in rep.steps:
        if step.results is None or step.store_path is None:
            continue
        store = Store.open_readonly(step.store_path)
        if store is None:
            continue
        try:
            prompts[step.name] = store.rendered_prompts(prompt_jobs(step.results))
        finally:
            store.close()
    # The steps' matrix as `runner matrix FILE` builds it, over the results just read.
    from runner.api._matrix import investigation_matrix

    read = {s.name: s.results for s in rep.steps if s.results is not None}
    return investigation_page(rep, prompts, investigation_matrix(path, read, limit=limit, max_jobs=max_jobs)), rep


def render_investigation(report: InvestigationReport, fmt: str = "table", *, conclusion_only: bool = False) -> str:
    """The whole report, or (`conclusion_only`) just its hypotheses table and decision."""
    from runner.investigation.report import render_conclusion
    from runner.investigation.report import render_investigation as render_it

    return render_conclusion(report, fmt) if conclusion_only else render_it(report, fmt)


def decision_exit_code(report: InvestigationReport) -> int:
    """For `--fail-on-verdict` on an investigation: 0 when the decision is viable, else 3."""
    from runner.api._read import VERDICT_NOT_MET

    return 0 if report.decision is not None and report.decision.verdict == "viable" else VERDICT_NOT_MET


def investigation_junit(report: InvestigationReport) -> str:
    """JUnit XML: the decision as the case that passes (viable) or fails, a case per hypothesis."""
    from runner.investigation.junit import investigation_junit_xml

    return investigation_junit_xml(report)


def render_investigation_findings(report: InvestigationReport, fmt: str = "text") -> str:
    """Every step's findings tied to the hypotheses (what `runner explain` prints for an investigation)."""
    from runner.investigation.report import render_findings

    return render_findings(report, fmt)
