"""The experiment file's JSON Schema (draft 2020-12), for editors and other tools: `runner schema`.

With yaml-language-server (VS Code's YAML extension, Neovim, Helix, ...) the schema gives
completion, hover text and checks as you type; point it at the file with a first line such as
`# yaml-language-server: $schema=../experiment.schema.json` after `runner schema > experiment.schema.json`.

Built from the pydantic models, so it cannot drift from what the loader accepts: `Experiment` for the
shared keys and, for `backend`, each registered backend's own settings model, picked by `kind` with
if/then (the loader does the same: `Experiment.backend` alone only knows the fields every backend
shares). What a schema cannot say (exactly one of `path`, `package` or `catalog`; files that must
exist) is still checked by `runner validate`.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from runner.config.schema import BackendSettings, Experiment

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_KIND = str(BackendSettings.model_fields["kind"].default)
_KIND_HELP = "Registered backend name; picks which other keys the backend block has."

# pydantic adds OpenAPI's `discriminator` next to a tagged union's oneOf; it is no JSON Schema keyword,
# and the oneOf's `type` constants already pick the member.
_NOT_JSON_SCHEMA = ("discriminator",)


def experiment_schema() -> dict[str, Any]:
    """The JSON Schema of an experiment file, every registered backend included."""
    from runner.backends import backend_settings_model, known_backends

    kinds = known_backends()
    models: list[tuple[type[BaseModel], Any]] = [(Experiment, "validation")]
    models += [(backend_settings_model(kind), "validation") for kind in kinds]
    refs, top = models_json_schema(models, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = top["$defs"]
    root = defs.pop(_def_name(refs[(Experiment, "validation")]))

    branches = []
    for kind in kinds:
        # A copy per kind: one settings class may be registered under two names.
        settings = copy.deepcopy(defs[_def_name(refs[(backend_settings_model(kind), "validation")])])
        settings["properties"]["kind"] = {"const": kind, "default": kind, "description": _KIND_HELP}
        settings["title"] = f"backend: {kind}"
        name = f"backend-{kind}"
        defs[name] = settings
        condition: dict[str, Any] = {"properties": {"kind": {"const": kind}}}
        if kind != DEFAULT_KIND:
            condition["required"] = ["kind"]  # a block without kind is the default backend's
        branches.append({"if": condition, "then": {"$ref": f"#/$defs/{name}"}})
    root["properties"]["backend"] = {
        "description": "Which server answers, and how requests are sent; the other keys depend on `kind`.",
        "type": "object",
        "properties": {"kind": {
            "enum": kinds, "default": DEFAULT_KIND,
            "description": f"{_KIND_HELP} One of {', '.join(kinds)}; default {DEFAULT_KIND}.",
        }},
        "allOf": branches,
    }

    # Set by the loader, never written in the file (source_path).
    for name, field in Experiment.model_fields.items():
        if field.exclude:
            root["properties"].pop(name, None)
            if name in root.get("required", []):
                root["required"].remove(name)

    root.pop("title", None)
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "title": "runner experiment",
        "description": "An experiment file of runner: models, prompts, dataset, sampling grid and scorers.",
        **root,
    }
    schema["$defs"] = {name: defs[name] for name in sorted(_reachable(schema, defs))}
    _strip(schema)
    return schema


def render_schema() -> str:
    return json.dumps(experiment_schema(), indent=2, ensure_ascii=False) + "\n"


def _def_name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).removeprefix("#/$defs/")


def _subschemas(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas directly inside a schema (not its `default`, `enum` or `const` data)."""
    out: list[Any] = []
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out.extend(value.values())
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out.extend(value)
        elif key in _SCHEMA_VALUES:
            out.append(value)
    return [s for s in out if isinstance(s, dict)]


_SCHEMA_MAPS = ("properties", "patternProperties", "dependentSchemas", "$defs")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")


def _reachable(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    """Names of the $defs that `schema` refers to, directly or through other definitions."""
    seen: set[str] = set()
    todo = [schema]
    while todo:
        node = todo.pop()
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name not in seen:
                seen.add(name)
                todo.append(defs[name])
        todo.extend(s for s in _subschemas({k: v for k, v in node.items() if k != "$defs"}))
    return seen


def _strip(node: dict[str, Any]) -> None:
    for key in _NOT_JSON_SCHEMA:
        node.pop(key, None)
    for sub in _subschemas(node):
        _strip(sub)
