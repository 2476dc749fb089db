"""How many jobs an experiment asks for, counted from its axes before anything is expanded.

`build_plan` makes every cell and reads every dataset row; for a matrix of 10^12 jobs that is a hang
and gigabytes before the first line of output. This module only counts: cells are the product of
the axes' lengths (model variants x systems x prompts x each sampling axis), less what
matrix.exclude removes, plus what matrix.include adds; items are the dataset's non-blank lines, not
parsed; jobs are cells x items x repeats. An exclude entry removes the combinations it matches, a
product over the axes too; entries that overlap are counted once by inclusion-exclusion, merging
entries as it goes, so the work grows with the distinct values the entries name, never with the
matrix. A plan above `limits.max_jobs` (or `--max-jobs`) is refused here, in milliseconds and in
constant memory, before anything is planned or rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.config.schema import Experiment
from runner.config.text_files import MAX_DOCUMENT_BYTES
from runner.errors import ConfigError
from runner.plan.dataset import _lines as dataset_lines
from runner.plan.matrix import check_entry, matches, new_combo
from runner.plan.planner import canonical_json, declared_axes

Constraint = dict[str, Any]  # axis -> the value a combination must equal on it


@dataclass(frozen=True)
class PlanSize:
    cells: int
    items: int
    repeats: int

    @property
    def jobs(self) -> int:
        return self.cells * self.items * self.repeats


def plan_size(experiment: Experiment, limit_items: int | None = None) -> PlanSize | None:
    """The plan's size, or None when the dataset cannot be read (`build_plan` then says why).

    Raises the ConfigError `build_plan` would for a matrix entry that names an unknown axis or value,
    or an include that cannot be added as a new combination."""
    items = count_rows(experiment.resolve(experiment.dataset.path))
    if items is None:
        return None
    if limit_items is not None:
        items = min(items, limit_items)
    return PlanSize(count_cells(experiment), items, experiment.repeats)


def check_size(experiment: Experiment, limit_items: int | None, max_jobs: int) -> None:
    """Refuse a plan with more than `max_jobs` jobs: a ConfigError naming its size and how to shrink it."""
    size = plan_size(experiment, limit_items)
    if size is None or size.jobs <= max_jobs:
        return
    raise ConfigError(
        f"the plan has {size.jobs:,} jobs ({_n(size.cells, 'cell')} x {_n(size.items, 'item')} x "
        f"{_n(size.repeats, 'repeat')}), more than max_jobs {max_jobs:,}",
        file=experiment.source_path,
        fix="narrow the grid, use --limit N, or raise limits.max_jobs (or pass --max-jobs N)")


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def count_rows(path: Path) -> int | None:
    """The lines `load_items` reads as rows (not blank; split at \\n, \\r\\n or \\r as text mode does),
    counted without decoding JSON; None if the file cannot be opened or is no regular file (a FIFO would
    block, /dev/zero never end). Read as `load_items` reads it, a row at most MAX_DOCUMENT_BYTES at a time:
    at a longer one, which `load_items` refuses, counting stops (a file without newlines is not loaded)."""
    if not path.is_file():
        return None
    try:
        with path.open("rb") as fh:
            rows = 0
            for part in dataset_lines(fh):
                if len(part) > MAX_DOCUMENT_BYTES:
                    return rows + 1
                # Blank by str.strip(), as load_items tests it (a non-breaking space is blank).
                if part.strip() and part.decode("utf-8", "replace").strip():
                    rows += 1
            return rows
    except OSError:
        return None


def count_cells(experiment: Experiment) -> int:
    """The cells `build_plan` would make: the grid less matrix.exclude, plus what matrix.include adds."""
    axes, _, fixed = declared_axes(experiment)
    cfg = experiment.source_path
    named = experiment.sampling.named()
    excludes: list[Constraint] = []
    for i, entry in enumerate(experiment.matrix.exclude):
        check_entry(entry, axes, named, allow_overrides=False, cfg=cfg, key=f"matrix.exclude[{i}]")
        excludes.append(entry)
    count = _grid_counter(experiment, axes)
    cells = _surviving({}, excludes, count)
    added: list[Constraint] = []
    for i, entry in enumerate(experiment.matrix.include):
        key = f"matrix.include[{i}]"
        check_entry(entry, axes, named, allow_overrides=True, cfg=cfg, key=key)
        axis_part = {k: v for k, v in entry.items() if k in axes}
        if _surviving(axis_part, excludes, count) or any(matches(c, axis_part) for c in added):
            continue  # it extends the combinations it matches: no new cell
        overrides = {k: v for k, v in entry.items() if k not in axes}
        added.append(new_combo(experiment, axes, axis_part, fixed, overrides, key)[0])
    return cells + len(added)


def _grid_counter(experiment: Experiment, axes: dict[str, list[Any]]) -> Callable[[Constraint], int]:
    """count(constraint): how many combinations of the full grid match it, as a product over the axes.
    Models and quantizations are one joint axis, since each model has its own quantizations."""
    variants = [(m.name, q) for m in experiment.models for q in m.quant_values()]
    others = [a for a in axes if a not in ("model", "quantization")]

    def count(constraint: Constraint) -> int:
        n = sum(1 for model, quant in variants
                if ("model" not in constraint or model == constraint["model"])
                and ("quantization" not in constraint or quant == constraint["quantization"]))
        for axis in others:
            if n == 0:
                return 0
            values = axes[axis]
            n *= sum(1 for v in values if v == constraint[axis]) if axis in constraint else len(values)
        return n

    return count


def _surviving(base: Constraint, excludes: list[Constraint], count: Callable[[Constraint], int]) -> int:
    """Combinations matching `base` that no exclude entry matches, by inclusion-exclusion.

    The indicator of what survives is kept as a sum of coefficient x indicator(constraint). Each
    entry E turns f into f - f x [E], and f x [E] is each term's constraint merged with E. Terms
    with the same merged constraint add up (most cancel), and a term matching nothing is dropped
    with all its merges, so the terms stay few: at most one per consistent choice among the values
    the entries name."""
    terms: dict[str, tuple[Constraint, int]] = {_key(base): (base, 1)}
    for entry in excludes:
        for constraint, coefficient in list(terms.values()):
            merged = _merge(constraint, entry)
            if merged is None or count(merged) == 0:
                continue
            key = _key(merged)
            total = terms.get(key, (merged, 0))[1] - coefficient
            if total:
                terms[key] = (merged, total)
            else:
                terms.pop(key, None)
    return sum(coefficient * count(constraint) for constraint, coefficient in terms.values())


def _merge(a: Constraint, b: Constraint) -> Constraint | None:
    """Both constraints at once; None when they ask different values of one axis (nothing matches both)."""
    out = dict(a)
    for axis, value in b.items():
        if axis not in out:
            out[axis] = value
        elif out[axis] != value:
            return None
    return out


def _key(constraint: Constraint) -> str:
    # Numbers by value, so that 1 and 1.0 (equal, and so the same constraint) share a key.
    def canonical(v: Any) -> Any:
        return float(v) if isinstance(v, int | float) else v
    return canonical_json(sorted(((axis, canonical(v)) for axis, v in constraint.items()), key=lambda t: t[0]))
