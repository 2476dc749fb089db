"""Read an experiment YAML into a validated `Experiment`, turning every mistake into one line.

The message format is `FILE: KEY: problem; fix`, where KEY is the dotted path in the YAML
(`sampling.temperature[2]`). Pydantic's own messages are kept for the problem part but shortened
to one line, and unknown keys list the keys allowed at that place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, ValidationError

from runner.backends import backend_settings_model, known_backends
from runner.config.registry import known_scorers, registered_config_model
from runner.config.schema import Experiment
from runner.config.yaml_file import read_yaml_mapping
from runner.errors import ConfigError, UserError


def load_experiment(path: Path | str) -> Experiment:
    path = Path(path)
    raw = read_yaml_mapping(path)
    if "steps" in raw and "models" not in raw:
        raise ConfigError("this is an investigation (it has steps:), not an experiment", file=path, key="steps",
                          fix="runner validate, run, report and explain take it; other verbs take one of its "
                              "steps' experiments")
    return experiment_from_mapping(raw, path)


def experiment_from_mapping(raw: dict[str, Any], path: Path) -> Experiment:
    """An experiment from its YAML mapping as read from `path` (or as an investigation changed it):
    paths relative to `path`, errors naming it."""
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


def _is_backend_error(exc: ValidationError, settings_model: type[BaseModel]) -> bool:
    return exc.title == settings_model.__name__


def config_error(path: Path, exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """A pydantic error of `model` (read from `path`) as the one-line error: key, problem, fix."""
    return _config_error(path, exc, model, ())


def _config_error(path: Path, exc: ValidationError, model: type[BaseModel],
                  prefix: tuple[str, ...]) -> ConfigError:
    err = _pick_error(exc.errors())
    loc = prefix + tuple(str(x) for x in err["loc"] if not _is_branch_label(x))
    # Pydantic adds the tag of the scorers' discriminated union to the path (scorers.0.binary.field); drop it.
    if len(loc) > 3 and loc[0] == "scorers" and loc[1].isdigit():
        loc = loc[:2] + loc[3:]
    key = _format_loc(loc)
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, tuple(str(x) for x in err["loc"][:-1]))
        return ConfigError(f"unknown key {loc[-1]!r}", file=path, key=key,
                           fix=f"allowed keys here: {', '.join(allowed)}" if allowed else "remove it")
    name = next((part for part in reversed(loc) if not part.isdigit()), "it")
    problem, fix = _explain(err, name)
    return ConfigError(problem, file=path, key=key or None, fix=fix)


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


# Errors whose message we wrote ourselves (validators in config/): they already end in "; fix".
_OWN_MESSAGES = {"value_error", "sampling_range", "named_value", "not_finite", "bool_as_number"}


def _explain(err: Any, name: str) -> tuple[str, str | None]:
    """The problem (with the bad value) and the fix for one pydantic error, by its type.

    Every type the schema can produce has an entry (tests/test_bad_input.py checks that each message
    has a fix); an unknown type keeps pydantic's message and has none."""
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    bad = err.get("input")
    got = _shown(bad)
    if kind in _OWN_MESSAGES:
        return str(err["msg"]).removeprefix("Value error, "), None
    if kind == "missing":
        return "required key is missing", "add it"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"expected an integer, got {got}", "write a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {got}", "write a number"
    if kind == "finite_number":
        return f"expected a finite number, got {got}", "write a number (JSON has no NaN or infinity)"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {got}", "write true or false"
    if kind == "string_type":
        return f"expected a string, got {got}", "write text, in quotes if YAML would read it as something else"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"expected a list, got {got}", "write a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}", "write a mapping (key: value lines under it)"
    if kind == "path_type":
        return f"expected a file path, got {got}", "write the path as a string"
    if kind == "greater_than_equal":
        return f"{got} is less than the minimum {_bound(ctx['ge'])}", f"set {name} to {_bound(ctx['ge'])} or more"
    if kind == "greater_than":
        return f"{got} is not above the minimum {_bound(ctx['gt'])}", f"set {name} to more than {_bound(ctx['gt'])}"
    if kind == "less_than_equal":
        return f"{got} is more than the maximum {_bound(ctx['le'])}", f"set {name} to {_bound(ctx['le'])} or less"
    if kind == "less_than":
        return f"{got} is not below the maximum {_bound(ctx['lt'])}", f"set {name} to less than {_bound(ctx['lt'])}"
    if kind == "too_short":
        least = f"give at least {_items(ctx['min_length'])}"
        if not ctx["actual_length"]:
            return "the list is empty", least
        return f"the list has {_items(ctx['actual_length'])}, at least {ctx['min_length']} needed", least
    if kind == "too_long":
        return (f"the list has {_items(ctx['actual_length'])}, at most {ctx['max_length']} allowed",
                f"remove {_items(ctx['actual_length'] - ctx['max_length'])}")
    if kind == "string_too_short":
        return f"{got} is shorter than {ctx['min_length']} characters", f"write at least {ctx['min_length']}"
    if kind == "string_too_long":
        return f"{got} is longer than {ctx['max_length']} characters", f"write at most {ctx['max_length']}"
    if kind in ("literal_error", "enum"):
        problem = f"expected one of the values, got {got}" if isinstance(bad, dict | list) else f"unknown value {got}"
        return problem, f"use {ctx['expected']}"
    if kind == "union_tag_invalid":
        return (f"unknown {ctx['discriminator'].strip(chr(39))} {ctx['tag']!r}",
                f"use one of: {ctx['expected_tags'].replace(chr(39), '')}")
    if kind == "union_tag_not_found":
        return (f"no {ctx['discriminator'].strip(chr(39))} key to say which kind this is",
                f"add type: with one of {', '.join(known_scorers())}")
    msg = str(err["msg"])
    return (f"{msg} (got {got})" if bad is not None else msg), None


def _bound(x: Any) -> str:
    """A limit as the schema means it: 0, not 0.0 (pydantic gives float fields' limits as floats)."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _items(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


def _shown(value: Any) -> str:
    """The bad value as the user wrote it, short."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        by_key = {f.alias or n: f for n, f in fields.items()} if fields else {}
        if part in by_key:
            annotation = by_key[part].annotation
            current = _model_in(annotation)
        elif get_origin(annotation) is dict:
            continue  # a key of a mapping whose values are models (use: {prompt: {...}}): still that model
        else:
            # A discriminated union's tag (scorers.0.binary): the member whose `type` is that tag,
            # or, for the scorers (a union the registry builds), the registered model of that name.
            current = _model_in(annotation, tag=part) or registered_config_model(part)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {})
    return [f.alias or name for name, f in fields.items() if not f.exclude]


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
