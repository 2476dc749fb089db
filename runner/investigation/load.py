"""Reading an investigation file and checking it against its steps' experiments, in one-line errors.

Checks, in order: the schema (unknown keys with the allowed ones, a missing key); step names unique;
each `use.<axis>.from` names an earlier step that runs a matrix (not a study); the axis is one the
source step's experiment declares and one the target's can take (`overrides.AXES`); then every step's
experiment is loaded and planned, with the candidate values of each axis it takes from an earlier
step, each candidate on its own (the others at their first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.config.schema import Experiment
from runner.investigation.schema import Investigation


def is_investigation(path: Path | str) -> bool:
    """A YAML file is an investigation when its top level is a mapping with `steps:`."""
    raise NotImplementedError


def load_investigation(path: Path | str) -> Investigation:
    """The file, schema-checked and cross-checked (names, `from`, axes); each step's experiment loaded."""
    raise NotImplementedError


class StepExperiments:
    """The steps' experiments as written (raw YAML and validated), and the axis candidates and value
    definitions that flow along `use`."""

    def __init__(self, investigation: Investigation) -> None:
        raise NotImplementedError

    def experiment(self, step: str) -> Experiment:
        raise NotImplementedError

    def candidates(self, step: str, axis: str) -> list[Any]:
        """The values `axis` can take at `step`: its own declared values, or those of the step it uses."""
        raise NotImplementedError

    def overridden(self, step: str, values: dict[str, Any]) -> Experiment:
        """The step's experiment with each used axis set to `values[axis]` (see `overrides.apply`)."""
        raise NotImplementedError
