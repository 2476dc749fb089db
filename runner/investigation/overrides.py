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

import copy
import os
from pathlib import Path
from typing import Any

from runner.config.sampling import SAMPLING_KEYS, NamedValue
from runner.config.schema import Experiment, ModelConfig, ModelSource, TemplateRef
from runner.plan.planner import declared_axes

CATEGORICAL = ("model", "quantization", "system", "prompt")
AXES = (*CATEGORICAL, *SAMPLING_KEYS)


def axes_of(experiment: Experiment) -> dict[str, list[Any]]:
    """The axes the experiment declares, with their values (named sampling values by their name).

    `quantization` and `system` are left out where the experiment declares none (their one value None):
    there is nothing to pick. Fixed sampling values are no axis."""
    axes, _, _ = declared_axes(experiment)
    return {a: v for a, v in axes.items() if any(x is not None for x in v)}


def can_take(axis: str) -> bool:
    """Whether an experiment can be given this axis by an override (categorical or a sampling key)."""
    return axis in AXES


def definition(source: Experiment, axis: str, value: Any) -> Any:
    """What carries `value` of `axis` from the source into another experiment, paths made absolute:
    {variant, context, include} for a prompt, a system reference (None: no system message), a
    model's mapping, the quantization, or a sampling value (a named one as a one-value named axis)."""
    if axis == "prompt":
        variant = next(v for v in source.prompts.variants if v.name == value)
        directory = source.resolve(source.prompts.directory or Path("."))
        data = _ref_data(variant, directory)
        if isinstance(variant.system, str):
            data["system"] = variant.system
        elif variant.system is not None:
            data["system"] = _ref_data(variant.system, directory)
        others = set(axes_of(source)) - {"prompt"}
        include = [dict(e) for e in source.matrix.include if e.get("prompt") == value and not others & set(e)]
        return {"variant": data, "include": include,
                "context": {k: _absolute(source.resolve(p)) for k, p in source.prompts.context.items()}}
    if axis == "system":
        directory = source.resolve(source.prompts.directory or Path("."))
        ref = next((r for r in source.prompts.system_refs() if (r.name if r else None) == value), None)
        return None if ref is None else _ref_data(ref, directory)
    if axis == "model":
        return _model_data(source, next(m for m in source.models if m.name == value))
    if axis == "quantization":
        return value
    declared = getattr(source.sampling, axis)
    for v in declared if isinstance(declared, list) else [declared]:
        if isinstance(v, NamedValue) and v.name == value:
            return [v.model_dump(mode="json")]
    return value


def apply(raw: dict[str, Any], axis: str, carried: Any) -> dict[str, Any]:
    """A copy of the target experiment's raw mapping with `axis` replaced by `carried` (`definition`)."""
    out = copy.deepcopy(raw)
    prompts = out.setdefault("prompts", {})
    if axis == "prompt":
        variant = dict(carried["variant"])
        if "systems" in prompts:
            # The target tests system prompts as an axis (H6): the axis, not the variant's own system
            # prompt, says what is sent, and the two cannot be combined.
            variant.pop("system", None)
        prompts["variants"] = [variant]
        context = prompts.setdefault("context", {})
        for name, path in carried["context"].items():
            context.setdefault(name, path)
        _keep_entries(out, "prompt", carried["variant"]["name"])
        matrix = out.setdefault("matrix", {})
        includes = matrix.setdefault("include", [])
        includes.extend(e for e in carried["include"] if e not in includes)
    elif axis == "system":
        prompts.pop("system", None)
        prompts.pop("systems", None)
        if carried is not None:
            prompts["systems"] = [carried]
        # The picked system prompt (or its absence) replaces any variant's own: it is what was picked.
        for v in prompts.get("variants") or []:
            if isinstance(v, dict):
                v.pop("system", None)
        _keep_entries(out, "system", None if carried is None else carried["name"])
    elif axis == "model":
        out["models"] = [carried]
        _keep_entries(out, "model", carried["name"])
    elif axis == "quantization":
        for model in out.get("models") or []:
            if isinstance(model, dict) and model.get("quantizations"):
                model["quantizations"] = [carried]
        _keep_entries(out, "quantization", carried)
    else:
        out.setdefault("sampling", {})[axis] = carried
        shown = carried[0]["name"] if isinstance(carried, list) and carried and isinstance(carried[0], dict) \
            and "name" in carried[0] else carried
        _keep_entries(out, axis, shown)
    report = out.get("report")
    if isinstance(report, dict) and isinstance(report.get("effect"), dict) and report["effect"].get("axis") == axis:
        # The axis now holds the one picked value: there is no effect of it left to measure here.
        report.pop("effect")
    return out


def _keep_entries(raw: dict[str, Any], axis: str, kept: Any) -> None:
    """Drop matrix include/exclude entries that match the axis on a value it no longer has."""
    matrix = raw.get("matrix")
    if not isinstance(matrix, dict):
        return
    for part in ("include", "exclude"):
        entries = matrix.get(part)
        if isinstance(entries, list):
            matrix[part] = [e for e in entries if not (isinstance(e, dict) and axis in e and e[axis] != kept)]


def _absolute(path: Path) -> str:
    return os.path.normpath(path.absolute())


def _ref_data(ref: TemplateRef, directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = ref.model_dump(mode="json", exclude_none=True, exclude={"system"})
    if ref.file is not None:
        data["file"] = _absolute(directory / ref.file)
    return data


def _model_data(source: Experiment, model: ModelConfig) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)

    def where(src: ModelSource) -> dict[str, Any]:
        out: dict[str, Any] = src.model_dump(mode="json", exclude_none=True)
        if src.path is not None:
            out["path"] = _absolute(source.resolve(src.path))
        return out

    if model.source is not None:
        data["source"] = where(model.source)
    if model.files:
        data["files"] = {q: where(f) for q, f in model.files.items()}
    if model.tokenizer is not None:
        data["tokenizer"] = _absolute(source.resolve(model.tokenizer))
    return data
