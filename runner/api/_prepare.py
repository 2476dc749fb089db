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
