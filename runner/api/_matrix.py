"""`runner matrix FILE...`: the analysis's task x model matrix over experiments and investigations.

Read-only like `report`: each experiment's store is opened read-only (a missing store: its cells
are "not run"), whatever has no valid cached score is scored in memory, and nothing is written.
An investigation contributes each of its steps, with the values the steps ran with (picks.json);
steps waiting on a pick not made yet are read as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.api._prepare import prepare
from runner.errors import UserError

if TYPE_CHECKING:
    from runner.analysis.results import ResultSet
    from runner.config.schema import Experiment, Threshold
    from runner.reporting.matrix import Matrix, Source


def matrix(paths: Sequence[str | Path], *, limit: int | None = None, max_jobs: int | None = None) -> Matrix:
    """The matrix of every task named by these files, one column per model, grouped by size class."""
    from runner.api._investigate import is_investigation
    from runner.config.loader import load_experiment
    from runner.reporting.matrix import build_matrix

    if not paths:
        raise UserError("no files given", fix="name experiments or investigations, e.g. experiments/*.yaml")
    sources: list[Source] = []
    # The same file named twice (experiments/*.yaml experiments/x.yaml) is one experiment, not two candidates.
    seen: set[Path] = set()
    for path in paths:
        if Path(path).resolve() in seen:
            continue
        seen.add(Path(path).resolve())
        if is_investigation(path):
            sources.extend(_investigation_sources(path, limit, max_jobs))
        else:
            sources.append(_source(str(path), load_experiment(path), limit, max_jobs))
    return build_matrix(sources)


def _source(label: str, experiment: Experiment, limit: int | None, max_jobs: int | None,
            fallback: Threshold | None = None, read: ResultSet | None = None) -> Source:
    """`read`: the experiment's results if the caller has just read them (the same plan and limit)."""
    from runner.analysis.results import load_results
    from runner.reporting.matrix import Source
    from runner.store import Store

    threshold = experiment.report.threshold or fallback
    if experiment.study is not None or experiment.task is None:
        return Source(label, experiment, None, threshold)
    from runner.backends import create_backend
    from runner.scoring.errors import ScoringUnavailable

    if read is not None:
        results = read
    else:
        p = prepare(experiment, for_reading=True, limit=limit, max_jobs=max_jobs)
        store = Store.open_readonly(p.store_path)  # none yet: every cell is "not run"
        try:
            results = load_results(p.plan, store, p.scorers, limit)
        except ScoringUnavailable as exc:
            # Answers without a valid stored score, and nothing here to score them with: the other files
            # still count.
            return Source(label, experiment, None, threshold, left_out=exc.line())
        finally:
            if store is not None:
                store.close()
    backend = create_backend(experiment)
    local = {m.name: size for m in experiment.models if (size := backend.local_size(m.name)) is not None}
    return Source(label, experiment, results, threshold, local)


def investigation_matrix(path: str | Path, read: dict[str, ResultSet], *, limit: int | None = None,
                         max_jobs: int | None = None) -> Matrix:
    """`matrix([path])` of one investigation, reusing the steps' results already read (step name ->
    results, as `report_investigation` read them with the same picks, limit and max_jobs)."""
    from runner.reporting.matrix import build_matrix

    return build_matrix(_investigation_sources(path, limit, max_jobs, read))


def _investigation_sources(path: str | Path, limit: int | None, max_jobs: int | None,
                           read: dict[str, ResultSet] | None = None) -> list[Source]:
    from runner.api._investigate import _load, _read_picks

    steps = _load(path)
    inv = steps.investigation
    picks = _read_picks(inv.picks_path()) or []
    chosen = {(r.step, r.pick.axis): r.pick.value for r in picks}
    out = []
    for step in steps.steps:
        uses = {axis: chosen[(step.name, axis)] for axis in step.use if (step.name, axis) in chosen}
        complete = len(uses) == len(step.use)
        experiment = steps.overridden(step.name, uses) if uses and complete else steps.written[step.name]
        # The investigation's threshold judges a step whose experiment declares none (its decision does).
        # A step read with every pick made is the experiment `report_investigation` read: reuse its results.
        known = (read or {}).get(step.name) if complete else None
        out.append(_source(f"{path}:{step.name}", experiment, limit, max_jobs, inv.threshold, known))
    return out


def render_matrix(m: Matrix, fmt: str = "table") -> str:
    """The matrix as text: table, markdown, json, or html (a self-contained page with the coloured grid)."""
    from runner.reporting.matrix import render_matrix as render_it

    return render_it(m, fmt)
