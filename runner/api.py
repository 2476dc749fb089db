"""The application layer: every verb as a Python function. The CLI is argument parsing and
rendering over these; a notebook or another tool calls them directly.

    import runner
    summary = runner.run("experiments/smollm_quant.yaml", limit=1)
    report = runner.report("experiments/smollm_quant.yaml")
    print(runner.render(report, "markdown"))
    for finding in runner.explain("experiments/smollm_quant.yaml"):
        print(finding.text)

Each function validates everything that needs no request before anything runs (a bad file raises
`UserError` and writes nothing). `run` writes the store; `score` re-scores what is stored after a
scorer changed; `report`, `explain` and `results` open the store read-only and never write.

Heavy modules (the backends, the analysis, scipy) are imported inside the functions that need
them, so `runner validate` of a broken file costs little more than importing pydantic.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import UserError

if TYPE_CHECKING:
    from runner.analysis.results import ResultSet
    from runner.backends.base import Backend, Variant, VariantInfo
    from runner.capabilities.context_window import ContextStudy
    from runner.capabilities.probe import ProbeResult
    from runner.config.schema import Experiment
    from runner.diagnosis.findings import Finding
    from runner.execution.events import Subscriber
    from runner.execution.executor import RunSummary
    from runner.plan.planner import Plan
    from runner.reporting.tables import Report
    from runner.scoring.scorers import Scorer
    from runner.store import Store


@dataclass
class Prepared:
    """An experiment checked as far as it can be without a request."""

    experiment: Experiment
    plan: Plan
    backend: Backend
    scorers: list[Scorer]

    @property
    def store_path(self) -> Path:
        return self.experiment.store_path()


def prepare(path: str | Path) -> Prepared:
    """Everything that needs no request: schema, dataset, templates, scorers, backend files."""
    from runner.config.loader import load_experiment

    experiment = load_experiment(path)  # first: a broken file costs no more imports than this

    from runner.backends import create_backend
    from runner.plan.planner import build_plan
    from runner.scoring.scorers import build_scorers, check_scorers

    plan = build_plan(experiment)
    plan.check_templates()
    scorers = build_scorers(list(experiment.scorers), experiment.dataset.label_field)
    check_scorers(scorers, plan.items, experiment.source_path)
    backend = create_backend(experiment)
    backend.check()
    return Prepared(experiment, plan, backend, scorers)


def experiment_hash(experiment: Experiment) -> str:
    from runner.plan.planner import canonical_hash

    return canonical_hash(experiment.model_dump(mode="json"))


# validate and plan


def validate(path: str | Path, *, offline: bool = False) -> Prepared:
    """Check the experiment; unless offline, also reach the backend (loading nothing)."""
    import asyncio

    p = prepare(path)
    if not offline:
        asyncio.run(p.backend.probe())
    return p


@dataclass
class PlanStatus:
    prepared: Prepared
    total: int
    done: int | None  # None: no store yet


def plan_status(path: str | Path, *, limit: int | None = None) -> PlanStatus:
    """The matrix and how much of it is already stored (read-only)."""
    from runner.store import Store

    p = prepare(path)
    total = p.plan.count(limit)
    store = Store.open_readonly(p.store_path)
    if store is None:
        return PlanStatus(p, total, None)
    try:
        done_ids = store.succeeded_ids()
    finally:
        store.close()
    return PlanStatus(p, total, sum(1 for job in p.plan.jobs(limit) if job.job_id in done_ids))


# run


@dataclass
class RunResult:
    """What `run` did: the executor's summary, or for a study experiment the study's results."""

    summary: RunSummary | None = None
    study: ContextStudy | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.summary is not None and self.summary.interrupted


def run(path: str | Path, *, limit: int | None = None, fresh: bool = False, concurrency: int | None = None,
        subscribers: Iterable[Subscriber] = (), events_path: str | Path | None = None) -> RunResult:
    """Run what is not stored yet (all of it with `fresh`), storing each job as it finishes.

    `subscribers` receive the run's typed events (`runner.execution.events`); `events_path` appends
    them to a JSON-lines file as well. Ctrl-C or SIGTERM stops the run: what was stored stays,
    and the result says `interrupted`."""
    import asyncio

    return asyncio.run(run_async(path, limit=limit, fresh=fresh, concurrency=concurrency,
                                 subscribers=subscribers, events_path=events_path))


async def run_async(path: str | Path, *, limit: int | None = None, fresh: bool = False,
                    concurrency: int | None = None, subscribers: Iterable[Subscriber] = (),
                    events_path: str | Path | None = None) -> RunResult:
    from runner.execution.events import Events, JsonLinesLog

    p = prepare(path)
    events = Events(list(subscribers))
    log = JsonLinesLog(Path(events_path)) if events_path is not None else None
    if log is not None:
        events.subscribers.append(log)
    try:
        if p.experiment.study is not None:
            return RunResult(study=await _run_study(p, events))
        return await _run_grid(p, events, limit, fresh, concurrency)
    finally:
        if log is not None:
            log.close()


async def _run_grid(p: Prepared, events: Any, limit: int | None, fresh: bool,
                    concurrency: int | None) -> RunResult:
    import asyncio
    import contextlib
    import signal

    from runner.backends.base import StartContext
    from runner.execution.executor import Executor, RunOptions
    from runner.execution.retry import RetryPolicy
    from runner.store import Store

    settings = p.experiment.backend
    options = RunOptions(concurrency or settings.concurrency, limit, fresh)
    retry = RetryPolicy(settings.max_retries, settings.retry_backoff_s, settings.retry_max_backoff_s)
    task = asyncio.current_task()
    if task is not None:
        # SIGTERM (a CI timeout, `kill`) stops like Ctrl-C: cancel, keep what is stored.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    needed = None if fresh else _variants_with_work(p, limit)
    # Reachability first, before the store exists: an unreachable server must leave nothing behind.
    await p.backend.start(StartContext(needed=needed, notify=events.note))
    try:
        store = Store.open(p.store_path)
    except BaseException:
        await p.backend.close()
        raise
    warnings = _probe_warnings(p, store)
    try:
        for warning in warnings:
            events.note(warning, warning=True)
        executor = Executor(p.plan, store, p.backend, p.scorers, retry, events)
        try:
            summary = await executor.run(options, experiment_hash(p.experiment))
        except asyncio.CancelledError:
            summary = executor.summary(interrupted=True)
        return RunResult(summary=summary, warnings=warnings)
    finally:
        await p.backend.close()
        store.close()


def _variants_with_work(p: Prepared, limit: int | None) -> frozenset[Variant] | None:
    """Variants with a job not yet stored, read from an existing store without creating one."""
    from runner.store import Store

    store = Store.open_readonly(p.store_path)
    if store is None:
        return None
    try:
        done = store.succeeded_ids()
    finally:
        store.close()
    return frozenset(job.cell.variant for job in p.plan.jobs(limit) if job.job_id not in done)


def _probe_warnings(p: Prepared, store: Store) -> list[str]:
    from runner.capabilities.probe import warnings_for

    identity = json.dumps(p.experiment.backend.identity(), sort_keys=True)
    out = []
    for variant in p.plan.variants():
        results = store.latest_probe(identity, variant.identity)
        if results is not None:
            out.extend(warnings_for(p.experiment, results, variant))
    return out


async def _run_study(p: Prepared, events: Any) -> ContextStudy:
    from runner.backends.base import StartContext
    from runner.capabilities.context_window import ContextStudy, check_dataset, find_limit
    from runner.store import Store

    study = p.experiment.study
    assert study is not None
    max_tokens = p.experiment.sampling.max_tokens
    budget = (max_tokens[0] if isinstance(max_tokens, list) else max_tokens) or 0
    await p.backend.start(StartContext(notify=events.note))
    results = []
    try:
        for variant in p.plan.variants():
            async with p.backend.serve(variant):
                result = await find_limit(p.backend, variant, study)
                await check_dataset(p.backend, p.plan, result, variant, budget)
            events.note(f"{result.variant}: limit {result.limit_tokens} tokens after {result.requests} requests")
            results.append(result)
    finally:
        await p.backend.close()
    done = ContextStudy(results, budget)
    store = Store.open(p.store_path)
    try:
        store.save_study(ContextStudy.KIND, experiment_hash(p.experiment), done.to_dict())
    finally:
        store.close()
    return done


# score


@dataclass
class ScoreSummary:
    jobs: int  # stored answers scored
    rescored: int  # of those, scores that were missing or stale and were computed now


def score(path: str | Path, *, limit: int | None = None) -> ScoreSummary:
    """Score every stored answer with the experiment's scorers as they are now, and store the scores
    that were missing or stale (after a scorer or a label changed), like `inspect score`."""
    from runner.analysis.results import load_results

    p = prepare(path)
    store = _open_or_fail(p, path, write=True)
    try:
        results = load_results(p.plan, store, p.scorers, limit)
        if results.fresh:
            store.save_scores(results.fresh)
        return ScoreSummary(results.totals["ok"], len(results.fresh))
    finally:
        store.close()


# the read verbs


def results(path: str | Path, *, limit: int | None = None) -> ResultSet:
    """The one read path: every planned job's record and scores, read once (read-only)."""
    from runner.analysis.results import load_results

    p = prepare(path)
    if p.experiment.study is not None:
        raise UserError("a study has no per-job results", file=path, fix=f"use `runner report {path}`")
    store = _open_or_fail(p, path)
    try:
        return load_results(p.plan, store, p.scorers, limit)
    finally:
        store.close()


def report(path: str | Path, *, limit: int | None = None) -> Report | ContextStudy:
    """Tables with intervals, comparisons, verdicts and findings (a study: its stored results)."""
    from runner.reporting.tables import build_report

    p = prepare(path)
    if p.experiment.study is not None:
        return _stored_study(p, path)
    return build_report(results(path, limit=limit))


def explain(path: str | Path, *, limit: int | None = None) -> list[Finding]:
    """Findings: why the scores are what they are, most important first."""
    from runner.diagnosis.diagnose import diagnose

    return diagnose(results(path, limit=limit))


def _open_or_fail(p: Prepared, path: str | Path, *, write: bool = False) -> Store:
    from runner.store import Store

    store = Store.open_existing(p.store_path) if write else Store.open_readonly(p.store_path)
    if store is None:
        raise UserError("no results yet", file=path, fix=f"run `runner run {path}` first")
    return store


def _stored_study(p: Prepared, path: str | Path) -> ContextStudy:
    from runner.capabilities.context_window import ContextStudy

    store = _open_or_fail(p, path)
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


# probe


@dataclass
class VariantProbe:
    variant: str
    backend: str
    details: dict[str, Any]
    results: list[ProbeResult]
    warnings: list[str]


def probe(path: str | Path) -> list[VariantProbe]:
    """Measure what the server honours for each variant (seed, JSON schema, token counts, context);
    the results are stored, and later runs warn when the experiment relies on what was not."""
    import asyncio

    return asyncio.run(probe_async(path))


async def probe_async(path: str | Path) -> list[VariantProbe]:
    from runner.capabilities.probe import probe_variant, warnings_for
    from runner.store import Store

    p = prepare(path)
    await p.backend.start()
    identity = json.dumps(p.experiment.backend.identity(), sort_keys=True)
    out = []
    try:
        store = Store.open(p.store_path)
        try:
            for variant in p.plan.variants():
                info: VariantInfo
                async with p.backend.serve(variant) as info:
                    found = await probe_variant(p.backend, variant)
                stored = [r.to_dict() for r in found]
                store.save_probe(identity, variant.identity, stored)
                out.append(VariantProbe(variant.label, p.experiment.backend.kind, dict(info.details), found,
                                        warnings_for(p.experiment, stored, variant)))
        finally:
            store.close()
    finally:
        await p.backend.close()
    return out


async def report_async(path: str | Path, *, limit: int | None = None) -> Report | ContextStudy:
    import asyncio

    return await asyncio.to_thread(report, path, limit=limit)


async def explain_async(path: str | Path, *, limit: int | None = None) -> list[Finding]:
    import asyncio

    return await asyncio.to_thread(explain, path, limit=limit)


async def score_async(path: str | Path, *, limit: int | None = None) -> ScoreSummary:
    import asyncio

    return await asyncio.to_thread(score, path, limit=limit)


def schema() -> str:
    """The experiment file's JSON Schema (draft 2020-12), for editors (yaml-language-server)."""
    from runner.config.json_schema import render_schema

    return render_schema()


# rendering, for the CLI and for callers who want the CLI's text


def render(report: Report | ContextStudy, fmt: str = "table") -> str:
    """A report as text: table, markdown, csv or json (a study renders as its text summary)."""
    from runner.capabilities.context_window import ContextStudy
    from runner.reporting.render import render as render_report

    if isinstance(report, ContextStudy):
        return report.render()
    return render_report(report, fmt)


def render_findings(experiment: str, findings: list[Finding], fmt: str = "text") -> str:
    """`runner explain`'s text: the findings of the named experiment, as text, markdown or json."""
    from runner.reporting.render import render_findings as render_them

    return render_them(experiment, findings, fmt)


def progress_line(*, enabled: bool = True) -> Subscriber:
    """The CLI's progress line (stderr) as an event subscriber; notes and warnings print even when
    the line itself is disabled."""
    from runner.execution.progress import Progress, ProgressSubscriber

    return ProgressSubscriber(Progress(0, enabled=enabled))
