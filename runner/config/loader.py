"""Read an experiment YAML into a validated `Experiment`, turning every mistake into one line.

The message format is `FILE: KEY: problem; fix`, where KEY is the dotted path in the YAML
(`sampling.temperature[2]`). Pydantic's own messages are kept for the problem part but shortened
to one line, and unknown keys list the keys allowed at that place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from runner.backends import backend_settings_model, known_backends
from runner.config.registry import known_scorers, registered_config_model
from runner.config.safe_yaml import MAX_YAML_BYTES, load_yaml
from runner.config.schema import Experiment
from runner.config.text_files import read_text
from runner.errors import ConfigError, UserError


def load_experiment(path: Path | str) -> Experiment:
    path = Path(path)
    raw = _read_yaml(path)
    backend_raw = raw.get("backend") or {}
    if not isinstance(backend_raw, dict):
        raise ConfigError("must be a mapping", file=path, key="backend", fix="write backend: {kind: ...}")
    kind = backend_raw.get("kind", "llamacpp")
    try:
        settings_model = backend_settings_model(str(kind))
    except KeyError:
        raise ConfigError(
            f"unknown backend kind {kind!r}", file=path, key="backend.kind",
            fix=f"use one of: {', '.join(known_backends())}",
        ) from None
    except UserError as exc:  # a plugin that announces this kind is broken: say where it was asked for
        raise _asked_here(exc, path, "backend.kind") from None
    try:
        backend = settings_model.model_validate(backend_raw)
        data = {**raw, "backend": backend, "source_path": path}
        return Experiment.model_validate(data)
    except UserError as exc:  # a broken scorer plugin, found while validating `scorers`
        raise _asked_here(exc, path, "scorers") from None
    except ValidationError as exc:
        model: type[BaseModel] = settings_model if _is_backend_error(exc, settings_model) else Experiment
        prefix = ("backend",) if model is settings_model else ()
        raise _config_error(path, exc, model, prefix) from None


def _asked_here(exc: UserError, path: Path, key: str) -> UserError:
    if exc.file is not None:
        return exc
    return type(exc)(exc.problem, file=path, key=exc.key or key, fix=exc.fix)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("experiment file not found", file=path, fix="check the path")
    text = read_text(path, what="experiment file", limit=MAX_YAML_BYTES,
                     fix="move bulk data into the dataset or a context file")
    raw = load_yaml(text, file=path)
    if raw is None:
        raise ConfigError("the file is empty", file=path,
                          fix="start the file with keys such as name:, models:, prompts:, dataset:")
    if not isinstance(raw, dict):
        raise ConfigError(f"top level is {type(raw).__name__}, not a mapping", file=path,
                          fix="start the file with keys such as name:, models:, prompts:, dataset:")
    return raw


def _is_backend_error(exc: ValidationError, settings_model: type[BaseModel]) -> bool:
    return exc.title == settings_model.__name__


def _config_error(path: Path, exc: ValidationError, model: type[BaseModel],
                  prefix: tuple[str, ...]) -> ConfigError:
    err = _pick_error(exc.errors())
    loc = prefix + tuple(str(x) for x in err["loc"] if not _is_branch_label(x))
    # Pydantic adds the tag of the scorers' discriminated union to the path (scorers.0.binary.field); drop it.
    if len(loc) > 3 and loc[0] == "scorers" and loc[1].isdigit():
        loc = loc[:2] + loc[3:]
    key = _format_loc(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, tuple(str(x) for x in err["loc"][:-1]))
        fix = f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it"
        return ConfigError(f"unknown key {loc[-1]!r}", file=path, key=key, fix=fix)
    if kind == "missing":
        return ConfigError("required key is missing", file=path, key=key, fix="add it")
    msg = err["msg"].removeprefix("Value error, ")
    bad = err.get("input")
    shown = "" if isinstance(bad, dict | list) or bad is None else f" (got {bad!r})"
    return ConfigError(f"{msg}{shown}", file=path, key=key or None, fix=_fix_for(kind))


_SCALAR_BRANCHES = {"int", "float", "str", "bool", "none"}


def _is_branch_label(part: object) -> bool:
    """Pydantic names the member of a `float | list[float]` union in the location; it is no YAML key."""
    return isinstance(part, str) and (part in _SCALAR_BRANCHES or "[" in part)


def _pick_error(errors: list[Any]) -> Any:
    """Of a union's errors, the one for the branch the input looks like (a list for a YAML list)."""
    for err in errors:
        branch = [p for p in err["loc"] if _is_branch_label(p)]
        if branch and err["type"] in {"int_type", "float_type", "list_type", "string_type", "bool_type"}:
            continue  # the other branch's "not a list" / "not a number" says nothing useful
        return err
    return errors[0]


def _fix_for(kind: str) -> str | None:
    fixes = {
        "int_parsing": "write a whole number", "int_type": "write a whole number",
        "float_parsing": "write a number", "float_type": "write a number",
        "bool_parsing": "write true or false", "string_type": "write a string",
        "list_type": "write a list", "dict_type": "write a mapping",
        "model_type": "write a mapping", "union_tag_invalid": "use one of the types named",
        "union_tag_not_found": f"add type: with one of {', '.join(known_scorers())}",
    }
    return fixes.get(kind)


def _format_loc(loc: tuple[str, ...]) -> str:
    out = ""
    for part in loc:
        if part.isdigit():
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _allowed_keys(model: type[BaseModel], loc: tuple[str, ...]) -> list[str]:
    """Walk the model classes along `loc` to list the fields allowed where the bad key was."""
    current: Any = model
    annotation: Any = None
    for part in loc:
        if part.isdigit():
            continue
        fields = getattr(current, "model_fields", None)
        if fields and part in fields:
            annotation = fields[part].annotation
            current = _model_in(annotation)
        else:
            # A discriminated union's tag (scorers.0.binary): the member whose `type` is that tag,
            # or, for the scorers (a union the registry builds), the registered model of that name.
            current = _model_in(annotation, tag=part) or registered_config_model(part)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [name for name, f in fields.items() if not f.exclude]


def _model_in(annotation: Any, tag: str | None = None) -> type[BaseModel] | None:
    """The first BaseModel class inside an annotation such as `list[X] | None` (with `type: tag`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if tag is None:
            return annotation
        field = annotation.model_fields.get("type")
        return annotation if field is not None and tag in getattr(field.annotation, "__args__", ()) else None
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg, tag)
        if found is not None:
            return found
    return None
