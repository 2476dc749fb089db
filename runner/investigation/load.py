"""Reading an investigation file and checking it against its steps' experiments, in one-line errors.

Checks, in order: the schema (unknown keys with the allowed ones, a missing key); step names unique;
each `use.<axis>.from` names an earlier step that runs a matrix (not a study); the axis is one the
source step's experiment declares and one the target's can take (`overrides.AXES`); then every step's
experiment is loaded and planned, with the candidate values of each axis it takes from an earlier
step, each candidate on its own (the others at their first).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from runner.config.loader import config_error, experiment_from_mapping, load_experiment
from runner.config.schema import Experiment
from runner.config.yaml_file import read_yaml_mapping
from runner.errors import ConfigError, UserError
from runner.investigation.overrides import AXES, apply, axes_of, can_take, definition
from runner.investigation.schema import Investigation, Step


def load_investigation(path: Path | str) -> StepExperiments:
    """The file, schema-checked and cross-checked (names, `from`, axes), with each step's experiment
    loaded as written."""
    path = Path(path)
    raw = read_yaml_mapping(path, what="investigation file")
    try:
        investigation = Investigation.model_validate({**raw, "source_path": path})
    except ValidationError as exc:
        raise config_error(path, exc, Investigation) from None
    _check_names(investigation)
    return StepExperiments(investigation)


def _check_names(inv: Investigation) -> None:
    seen: dict[str, int] = {}
    for i, step in enumerate(inv.steps):
        if step.name in seen:
            raise ConfigError(f"duplicate step name {step.name!r} (steps[{seen[step.name]}] has it)",
                              file=inv.source_path, key=f"steps[{i}].name", fix="give each step a unique name")
        seen[step.name] = i
    for i, step in enumerate(inv.steps):
        earlier = [s.name for s in inv.steps[:i]]
        for axis, use in step.use.items():
            key = f"steps[{i}].use.{axis}"
            if not can_take(axis):
                raise ConfigError(f"unknown axis {axis!r}", file=inv.source_path, key=key,
                                  fix=f"use one of: {', '.join(AXES)}")
            where = inv.index(use.from_)
            if where is None or where >= i:
                problem = (f"unknown step {use.from_!r}" if where is None else
                           f"step {use.from_!r} is not before {step.name!r}" if where > i else
                           f"step {step.name!r} cannot use its own pick")
                fix = (f"name an earlier step: {', '.join(earlier)}" if earlier
                       else "the first step has no earlier step to use; remove use")
                raise ConfigError(problem, file=inv.source_path, key=f"{key}.from", fix=fix)


class StepExperiments:
    """The steps' experiments as written (raw YAML and validated), and the axis candidates and value
    definitions that flow along `use`."""

    def __init__(self, investigation: Investigation) -> None:
        self.investigation = inv = investigation
        self.paths: dict[str, Path] = {}
        self.raw: dict[str, dict[str, Any]] = {}
        self.written: dict[str, Experiment] = {}
        for i, step in enumerate(inv.steps):
            path = Path(os.path.normpath(inv.resolve(step.experiment)))
            if not path.is_file():
                raise ConfigError(f"experiment file {step.experiment} not found", file=inv.source_path,
                                  key=f"steps[{i}].experiment", fix="give its path relative to the investigation file")
            self.paths[step.name] = path
            self.written[step.name] = load_experiment(path)
            self.raw[step.name] = read_yaml_mapping(path)
        for i, step in enumerate(inv.steps):
            for axis, use in step.use.items():
                self._check_source(i, step, axis, use.from_)

    def _check_source(self, i: int, step: Step, axis: str, source: str) -> None:
        inv = self.investigation
        key = f"steps[{i}].use.{axis}"
        experiment = self.written[source]
        shown = inv.step(source).experiment
        if experiment.study is not None:
            raise ConfigError(f"step {source!r} is a study ({experiment.study.kind}, {shown}): it picks nothing",
                              file=inv.source_path, key=f"{key}.from",
                              fix=f"take {axis} from a step that runs a matrix")
        if not experiment.scorers:
            raise ConfigError(f"step {source!r} has no scorer ({shown}): best is judged by accuracy",
                              file=inv.source_path, key=f"{key}.from", fix=f"add a scorer to {shown}")
        if not self.candidates(source, axis):
            declared = ", ".join(axes_of(experiment))
            raise ConfigError(f"{axis!r} is not an axis of step {source!r} ({shown} declares {declared})",
                              file=inv.source_path, key=key,
                              fix=f"take {axis} from a step whose experiment varies it, or remove it")

    @property
    def steps(self) -> list[Step]:
        return list(self.investigation.steps)

    def origin(self, step: str, axis: str) -> str:
        """The step whose experiment declares the values `axis` takes at `step` (following `use`)."""
        use = self.investigation.step(step).use.get(axis)
        return step if use is None else self.origin(use.from_, axis)

    def candidates(self, step: str, axis: str) -> list[Any]:
        """The values `axis` can take at `step`: its own declared values, or those of the step it uses."""
        return list(axes_of(self.written[self.origin(step, axis)]).get(axis, []))

    def overridden(self, step: str, values: dict[str, Any]) -> Experiment:
        """The step's experiment with each used axis set to `values[axis]` (see `overrides.apply`).
        A value that makes the experiment invalid is that experiment's one-line error, saying which
        value of which step it came with."""
        raw = self.raw[step]
        for axis, value in values.items():
            raw = apply(raw, axis, definition(self.written[self.origin(step, axis)], axis, value))
        try:
            return experiment_from_mapping(raw, self.paths[step])
        except UserError as exc:
            given = ", ".join(f"{a}={v} from step {self.investigation.step(step).use[a].from_!r}"
                              for a, v in values.items())
            raise type(exc)(f"with {given}: {exc.problem}", file=exc.file, key=exc.key, fix=exc.fix) from None
