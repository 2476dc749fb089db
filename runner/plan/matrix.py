"""The matrix: every combination of the axes, with GitHub Actions' exclude/include rules applied.

Moved out of the planner (which makes cells and jobs of these combinations) so each stays small;
`plan.size` counts with the same rules without expanding anything.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from runner.config.schema import SAMPLING_KEYS, Experiment
from runner.errors import ConfigError

# The axes every experiment has, whether or not they vary; the sampling keys given as lists follow.
FIXED_AXES = ("model", "quantization", "system", "prompt")

Combo = dict[str, Any]


def expand(experiment: Experiment, axes: dict[str, list[Any]], sampling_axes: dict[str, list[Any]],
            fixed: dict[str, Any]) -> list[tuple[Combo, dict[str, Any]]]:
    """The matrix with GitHub Actions' exclude/include rules applied. A combo holds each axis's value
    as shown (a named value's name), which is what exclude and include match; its params are what
    the request carries."""
    cfg = experiment.source_path
    named = experiment.sampling.named()
    sampling_names = list(sampling_axes)
    excludes = []
    for i, entry in enumerate(experiment.matrix.exclude):
        check_entry(entry, axes, named, allow_overrides=False, cfg=cfg, key=f"matrix.exclude[{i}]")
        excludes.append(entry)
    # Excluded combinations are dropped as they are made: memory follows the cells kept, not the grid.
    combos: list[tuple[Combo, dict[str, Any]]] = []
    for model in experiment.models:
        for quant in model.quant_values():
            for system in axes["system"]:
                for prompt in axes["prompt"]:
                    for values in itertools.product(*sampling_axes.values()):
                        sampling = dict(zip(sampling_names, values, strict=True))
                        combo = {"model": model.name, "quantization": quant, "system": system,
                                 "prompt": prompt, **sampling}
                        if not any(matches(combo, entry) for entry in excludes):
                            combos.append((combo, _request_params(fixed, sampling, named)))

    for i, entry in enumerate(experiment.matrix.include):
        key = f"matrix.include[{i}]"
        check_entry(entry, axes, named, allow_overrides=True, cfg=cfg, key=key)
        axis_part = {k: v for k, v in entry.items() if k in axes}
        overrides = {k: v for k, v in entry.items() if k not in axes}
        matched = [(c, p) for c, p in combos if matches(c, axis_part)]
        for _, params in matched:
            params.update(overrides)
        if not matched:
            combos.append(new_combo(experiment, axes, axis_part, fixed, overrides, key))
    return combos


def matches(combo: Combo, entry: dict[str, Any]) -> bool:
    """Whether a matrix entry (its axis keys) matches a combination, by equality as GitHub Actions does."""
    return all(combo.get(k) == v for k, v in entry.items())


def check_entry(entry: dict[str, Any], axes: dict[str, list[Any]], named: dict[str, dict[str, Any]], *,
                allow_overrides: bool, cfg: Path, key: str) -> None:
    """A matrix.exclude or matrix.include entry names known axes (and, for include, sampling keys to
    override) and named values by their names; a ConfigError at `key` otherwise."""
    _check_keys(entry, axes, allow_overrides=allow_overrides, cfg=cfg, key=key)
    _check_names(entry, named, cfg=cfg, key=key)


def _request_params(fixed: dict[str, Any], sampling: dict[str, Any],
                    named: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Fixed values and the sampling axes' values, with named values replaced by what they carry;
    a named null is left out. Unnamed values go in as they are, so their job hashes never change."""
    params = dict(fixed)
    for axis, value in sampling.items():
        if axis in named:
            value = named[axis][value]
            if value is None:
                continue
        params[axis] = value
    return params


def _check_names(entry: dict[str, Any], named: dict[str, dict[str, Any]], *, cfg: Path, key: str) -> None:
    """A matrix entry matches an axis of named values by name; an include override is sent as given."""
    for k, v in entry.items():
        if k in named:
            if not isinstance(v, str):
                raise ConfigError(f"sampling.{k} has named values: match one by its name", file=cfg,
                                  key=f"{key}.{k}", fix=f"use one of: {', '.join(named[k])}")
            if v not in named[k]:
                raise ConfigError(f"no sampling.{k} value is named {v!r}", file=cfg, key=f"{key}.{k}",
                                  fix=f"use one of: {', '.join(named[k])}")
        elif isinstance(v, dict) and set(v) == {"name", "value"} and k in SAMPLING_KEYS:
            raise ConfigError("an include override is sent as given, so it cannot carry a name", file=cfg,
                              key=f"{key}.{k}", fix=f"give the value alone, or add it to sampling.{k} as a "
                              "named value and match its name")


def _check_keys(entry: dict[str, Any], axes: dict[str, list[Any]], *, allow_overrides: bool,
                cfg: Path, key: str) -> None:
    if not entry:
        raise ConfigError("empty entry", file=cfg, key=key, fix="name at least one axis value")
    for k in entry:
        if k in axes or (allow_overrides and k in SAMPLING_KEYS):
            continue
        allowed = list(axes) + ([k for k in SAMPLING_KEYS if k not in axes] if allow_overrides else [])
        raise ConfigError(f"unknown key {k!r}", file=cfg, key=f"{key}.{k}",
                          fix=f"use one of: {', '.join(allowed)}")


def new_combo(experiment: Experiment, axes: dict[str, list[Any]], axis_part: dict[str, Any],
              fixed: dict[str, Any], overrides: dict[str, Any], key: str) -> tuple[Combo, dict[str, Any]]:
    cfg = experiment.source_path
    missing = [a for a in axes if a not in axis_part and len(axes[a]) > 1]
    if missing:
        raise ConfigError("matches no combination and does not name every axis", file=cfg, key=key,
                          fix=f"add values for {', '.join(missing)} to add it as a new combination")
    combo = {a: axis_part.get(a, axes[a][0]) for a in axes}
    for a in FIXED_AXES:
        if combo[a] not in axes[a]:
            raise ConfigError(f"{a} {combo[a]!r} is not declared", file=cfg, key=f"{key}.{a}",
                              fix=f"use one of: {', '.join(map(str, axes[a]))}")
    model = next(m for m in experiment.models if m.name == combo["model"])
    if combo["quantization"] not in model.quant_values():
        raise ConfigError(f"model {model.name} has no quantization {combo['quantization']!r}", file=cfg,
                          key=f"{key}.quantization", fix=f"use one of: {model.quant_values()}")
    sampling = {a: combo[a] for a in axes if a not in FIXED_AXES}
    params = {**_request_params(fixed, sampling, experiment.sampling.named()), **overrides}
    return combo, params
