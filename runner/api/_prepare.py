"""Checking an experiment before anything runs: prepare, validate, plan status, the JSON Schema."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import UserError

if TYPE_CHECKING:
    from runner.backends.base import Backend
    from runner.config.schema import Experiment
    from runner.plan.planner import Plan
    from runner.scoring.scorers import Scorer
    from runner.store import Store


@dataclass
class Prepared:
    """An experiment checked as far as it can be without a request."""

    experiment: Experiment
    plan: Plan
    scorers: list[Scorer]
    backend_or_none: Backend | None = None

    @property
    def backend(self) -> Backend:
        if self.backend_or_none is None:
            raise RuntimeError("prepared for reading only: no backend")  # a bug in the caller, not input
        return self.backend_or_none

    @property
    def store_path(self) -> Path:
        return self.experiment.store_path()


def prepare(path: str | Path | Experiment, *, for_reading: bool = False, limit: int | None = None,
            max_jobs: int | None = None) -> Prepared:
    """Everything that needs no request: schema, dataset, templates, scorers, backend files.

    First of all, the plan's size is counted from its axes and refused above `max_jobs` (default:
    the file's limits.max_jobs), with `limit` dataset items if given, before anything is expanded.
    `path` may be an experiment already loaded (an investigation's step, its axes overridden).
    `for_reading` (the read verbs) skips what only a run needs: rendering every template up front
    (the plan renders each job's messages anyway), creating and checking the backend, and checking
    the scorers' tools (a compiler, a sandbox), which are checked when an answer must be scored."""
    from runner.config.loader import load_experiment

    # First: a broken file costs no more imports than this.
    experiment = load_experiment(path) if isinstance(path, str | Path) else path

    from runner.plan.planner import build_plan
    from runner.plan.size import check_size
    from runner.scoring.scorers import build_scorers, check_scorers

    check_size(experiment, limit, experiment.limits.max_jobs if max_jobs is None else max_jobs)
    if experiment.report.metrics:
        # The metrics registry imports the statistics (numpy): only a file that names metrics pays for it.
        from runner.analysis.columns import check_report_metrics

        check_report_metrics(experiment.report.metrics, experiment.source_path)
    plan = build_plan(experiment)
    if not for_reading:
        plan.check_templates(limit)  # with --limit, only the items that will run
    scorers = build_scorers(list(experiment.scorers), experiment.dataset.label_field)
    # Reading needs no compiler or sandbox unless an answer must be scored in memory (Scorer.ensure_tools).
    check_scorers(scorers, plan.items, experiment.source_path, tools=not for_reading)
    if experiment.report.human_agreement is not None:
        from runner.analysis.raters import check_rater_fields

        check_rater_fields(experiment.report.human_agreement.fields, plan.items, experiment.source_path)
    if for_reading:
        return Prepared(experiment, plan, scorers)
    from runner.backends import create_backend

    backend = create_backend(experiment)
    backend.check()
    return Prepared(experiment, plan, scorers, backend)


def experiment_name(path: str | Path) -> str:
    """The experiment's name, from its file alone (checked, but nothing planned)."""
    from runner.config.loader import load_experiment

    return load_experiment(path).name


def experiment_hash(experiment: Experiment) -> str:
    from runner.plan.planner import canonical_hash

    return canonical_hash(experiment.model_dump(mode="json"))


# validate and plan


def validate(path: str | Path, *, offline: bool = False, max_jobs: int | None = None) -> Prepared:
    """Check the experiment; unless offline, also reach the backend (loading nothing)."""
    import asyncio

    p = prepare(path, max_jobs=max_jobs)
    if not offline:
        asyncio.run(p.backend.probe())
    return p


@dataclass
class PlanStatus:
    prepared: Prepared
    total: int
    done: int | None  # None: no store yet


def plan_status(path: str | Path, *, limit: int | None = None, max_jobs: int | None = None) -> PlanStatus:
    """The matrix and how much of it is already stored (read-only)."""
    from runner.store import Store

    p = prepare(path, limit=limit, max_jobs=max_jobs)
    total = p.plan.count(limit)
    store = Store.open_readonly(p.store_path)
    if store is None:
        return PlanStatus(p, total, None)
    try:
        done_ids = store.succeeded_ids()
    finally:
        store.close()
    return PlanStatus(p, total, p.plan.stored(done_ids, limit).count)



def open_store(p: Prepared, path: str | Path, *, write: bool = False) -> Store:
    from runner.store import Store

    store = Store.open_existing(p.store_path) if write else Store.open_readonly(p.store_path)
    if store is None:
        raise UserError("no results yet", file=path, fix=f"run `runner run {path}` first")
    return store


def schema() -> str:
    """The experiment file's JSON Schema (draft 2020-12), for editors (yaml-language-server)."""
    from runner.config.json_schema import render_schema

    return render_schema()
