"""The investigation verbs: validate, run and report a file of steps (see `runner.investigation`).

A step runs its (overridden) experiment exactly as `runner run` does, in that experiment's own store,
so it resumes and can be run alone. After each step, the picks later steps take from it are computed
over its results and written, with their evidence, to `results/<investigation stem>/picks.json`
(atomically). `report` reads the stores read-only and the picks as recorded (the values the later
steps ran with), and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.api._prepare import Prepared
    from runner.api._run import RunSummary
    from runner.execution.events import Subscriber
    from runner.investigation.pick import Pick


@dataclass
class StepRun:
    step: str
    summary: RunSummary
    picks: list[tuple[str, str, Pick]]  # (consuming step, axis, pick)


def validate_investigation(path: str | Path, *, offline: bool = False,
                           max_jobs: int | None = None) -> list[tuple[str, Prepared]]:
    """Check the file and every step's experiment (each candidate of a used axis); nothing runs."""
    raise NotImplementedError


def run_investigation(path: str | Path, *, limit: int | None = None, fresh: bool = False,
                      concurrency: int | None = None, subscribers: Iterable[Subscriber] = (),
                      max_jobs: int | None = None,
                      on_step: Callable[[str, Any, StepRun], None] | None = None) -> list[StepRun]:
    """Run the steps in order; after each, compute and record the picks later steps use from it.
    `on_step(name, report, step_run)` is called after each step (the CLI prints there). Stops at an
    interrupted step (its summary says so)."""
    raise NotImplementedError


def report_investigation(path: str | Path, *, limit: int | None = None,
                         max_jobs: int | None = None) -> dict[str, Any]:
    """{"name", "question", "steps": [{name, experiment, hypothesis, uses, totals, report}],
    "picks": [{step, axis, value, from, why}]}, read-only."""
    raise NotImplementedError
