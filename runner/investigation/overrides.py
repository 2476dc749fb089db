"""Replacing an axis of a step's experiment with a value picked earlier: pure, on the raw YAML.

The override is made on the target experiment's mapping as read, which is then validated and planned
like any experiment (so a bad combination is the same one-line error, naming the target file):

- `prompt`: the source experiment's variant definition, its template file resolved from the source's
  `prompts.directory` and written relative to the target's, replaces the target's `prompts.variants`;
  the context files it may need (the source's `prompts.context`) are added where the target lacks
  them, and the source's `matrix.include` entries for that prompt alone (e.g. more `max_tokens`) come
  with it; the target's own include/exclude entries for other prompts are dropped.
- `system`: the source's system reference likewise replaces `prompts.system`/`systems`.
- a sampling key (`temperature`, `top_p`, ...): the target's key becomes the one picked value.
- `quantization`: each of the target's models keeps only the picked quantization.
- `model`: the source's model definition (paths resolved) replaces the target's models.
"""

from __future__ import annotations

from typing import Any

from runner.config.schema import Experiment

CATEGORICAL = ("model", "quantization", "system", "prompt")


def axes_of(experiment: Experiment) -> dict[str, list[Any]]:
    """The experiment's declared axes with their values (named sampling values by their name)."""
    raise NotImplementedError


def can_take(axis: str) -> bool:
    """Whether an experiment can be given this axis by an override (categorical or a sampling key)."""
    raise NotImplementedError


def definition(source: Experiment, axis: str, value: Any) -> Any:
    """What carries `value` of `axis` from the source into another experiment, paths resolved to
    absolute: a variant's mapping, a system reference, a model's mapping, or the value itself
    (a named sampling value's sent value)."""
    raise NotImplementedError


def apply(raw: dict[str, Any], target: Experiment, axis: str, carried: Any, source: Experiment) -> dict[str, Any]:
    """A copy of the target's raw mapping with `axis` replaced by `carried` (from `definition`)."""
    raise NotImplementedError
