"""`runner schema`: a draft 2020-12 JSON Schema of the experiment file that every shipped experiment meets.

`jsonschema` is not a dependency, so a small validator for the keywords the schema uses checks the
files; it refuses any keyword it does not implement, so it cannot pass a schema it does not understand.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import base_experiment
from runner.backends import known_backends
from runner.cli import main
from runner.config.json_schema import DIALECT, experiment_schema, render_schema
from runner.config.schema import Experiment

EXPERIMENTS = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*.yaml"))

# Every keyword of draft 2020-12 (core, applicator, unevaluated, validation, meta-data, format, content).
DRAFT_2020_12 = {
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$comment", "$defs",
    "prefixItems", "items", "contains", "additionalProperties", "properties", "patternProperties",
    "dependentSchemas", "propertyNames", "if", "then", "else", "allOf", "anyOf", "oneOf", "not",
    "unevaluatedItems", "unevaluatedProperties",
    "type", "const", "enum", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "maxContains", "minContains",
    "maxProperties", "minProperties", "required", "dependentRequired",
    "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
    "format", "contentEncoding", "contentMediaType", "contentSchema",
}
ANNOTATIONS = {"$schema", "$defs", "title", "description", "default", "examples", "format"}


class Invalid(Exception):
    pass


class Validator:
    """Enough of draft 2020-12 for this schema: local $ref, applicators, and the validation keywords."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root

    def check(self, value: Any, schema: dict[str, Any] | bool, at: str = "") -> None:
        if schema is True:
            return
        if schema is False:
            raise Invalid(f"{at or '/'}: not allowed")
        for key, arg in schema.items():
            if key in ANNOTATIONS:
                continue
            method = getattr(self, "k_" + key.lstrip("$"), None)
            if method is None:
                raise AssertionError(f"the test validator does not implement {key!r}")
            if key in ("then", "else"):
                continue  # applied by `if`
            method(value, arg, schema, at)

    def is_valid(self, value: Any, schema: dict[str, Any] | bool, at: str = "") -> bool:
        try:
            self.check(value, schema, at)
        except Invalid:
            return False
        return True

    def k_ref(self, value: Any, ref: str, _s: Any, at: str) -> None:
        assert ref.startswith("#/"), ref
        target: Any = self.root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        self.check(value, target, at)

    def k_type(self, value: Any, kind: str | list[str], _s: Any, at: str) -> None:
        kinds = [kind] if isinstance(kind, str) else kind
        if not any(_is_type(value, k) for k in kinds):
            raise Invalid(f"{at}: {value!r} is not of type {kind}")

    def k_properties(self, value: Any, props: dict[str, Any], _s: Any, at: str) -> None:
        if isinstance(value, dict):
            for name, sub in props.items():
                if name in value:
                    self.check(value[name], sub, f"{at}/{name}")

    def k_additionalProperties(self, value: Any, extra: Any, schema: dict[str, Any], at: str) -> None:
        if isinstance(value, dict):
            for name in value:
                if name not in schema.get("properties", {}):
                    self.check(value[name], extra, f"{at}/{name}")

    def k_required(self, value: Any, names: list[str], _s: Any, at: str) -> None:
        if isinstance(value, dict):
            missing = [n for n in names if n not in value]
            if missing:
                raise Invalid(f"{at}: missing {missing}")

    def k_items(self, value: Any, sub: Any, _s: Any, at: str) -> None:
        if isinstance(value, list):
            for i, element in enumerate(value):
                self.check(element, sub, f"{at}/{i}")

    def k_anyOf(self, value: Any, subs: list[Any], _s: Any, at: str) -> None:
        if not any(self.is_valid(value, sub, at) for sub in subs):
            raise Invalid(f"{at}: {value!r} matches none of anyOf")

    def k_oneOf(self, value: Any, subs: list[Any], _s: Any, at: str) -> None:
        matches = sum(self.is_valid(value, sub, at) for sub in subs)
        if matches != 1:
            raise Invalid(f"{at}: {value!r} matches {matches} of oneOf")

    def k_allOf(self, value: Any, subs: list[Any], _s: Any, at: str) -> None:
        for sub in subs:
            self.check(value, sub, at)

    def k_not(self, value: Any, sub: Any, _s: Any, at: str) -> None:
        if self.is_valid(value, sub, at):
            raise Invalid(f"{at}: matches not")

    def k_if(self, value: Any, sub: Any, schema: dict[str, Any], at: str) -> None:
        branch = "then" if self.is_valid(value, sub, at) else "else"
        if branch in schema:
            self.check(value, schema[branch], at)

    k_then = k_else = k_if  # never called: `check` skips them

    def k_enum(self, value: Any, options: list[Any], _s: Any, at: str) -> None:
        if not any(_equal(value, o) for o in options):
            raise Invalid(f"{at}: {value!r} not in {options}")

    def k_const(self, value: Any, const: Any, _s: Any, at: str) -> None:
        if not _equal(value, const):
            raise Invalid(f"{at}: {value!r} is not {const!r}")

    def _bound(self, value: Any, ok: bool, what: str, at: str) -> None:
        if _is_type(value, "number") and not ok:
            raise Invalid(f"{at}: {value!r} is not {what}")

    def k_minimum(self, value: Any, bound: float, _s: Any, at: str) -> None:
        self._bound(value, _is_type(value, "number") and value >= bound, f">= {bound}", at)

    def k_maximum(self, value: Any, bound: float, _s: Any, at: str) -> None:
        self._bound(value, _is_type(value, "number") and value <= bound, f"<= {bound}", at)

    def k_exclusiveMinimum(self, value: Any, bound: float, _s: Any, at: str) -> None:
        self._bound(value, _is_type(value, "number") and value > bound, f"> {bound}", at)

    def k_exclusiveMaximum(self, value: Any, bound: float, _s: Any, at: str) -> None:
        self._bound(value, _is_type(value, "number") and value < bound, f"< {bound}", at)

    def k_minItems(self, value: Any, n: int, _s: Any, at: str) -> None:
        if isinstance(value, list) and len(value) < n:
            raise Invalid(f"{at}: fewer than {n} items")

    def k_maxItems(self, value: Any, n: int, _s: Any, at: str) -> None:
        if isinstance(value, list) and len(value) > n:
            raise Invalid(f"{at}: more than {n} items")

    def k_minLength(self, value: Any, n: int, _s: Any, at: str) -> None:
        if isinstance(value, str) and len(value) < n:
            raise Invalid(f"{at}: shorter than {n}")

    def k_pattern(self, value: Any, pattern: str, _s: Any, at: str) -> None:
        if isinstance(value, str) and not re.search(pattern, value):
            raise Invalid(f"{at}: {value!r} does not match {pattern}")


def _is_type(value: Any, kind: str) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return {
        "object": isinstance(value, dict), "array": isinstance(value, list), "string": isinstance(value, str),
        "boolean": isinstance(value, bool), "null": value is None, "number": number,
        "integer": number and (isinstance(value, int) or (math.isfinite(value) and value.is_integer())),
    }[kind]


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _walk(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every (location, subschema) of a schema, following its schema-valued keywords only."""
    out = [(path, schema)] if isinstance(schema, dict) else []
    if not isinstance(schema, dict):
        return out
    for key, value in schema.items():
        if key in ("properties", "$defs", "patternProperties", "dependentSchemas"):
            for name, sub in value.items():
                out += _walk(sub, f"{path}/{key}/{name}")
        elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
            for i, sub in enumerate(value):
                out += _walk(sub, f"{path}/{key}/{i}")
        elif key in ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"):
            out += _walk(value, f"{path}/{key}")
    return out


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return experiment_schema()


def test_cli_prints_the_schema_as_json(capsys: pytest.CaptureFixture[str], schema: dict[str, Any]) -> None:
    assert main(["schema"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == schema
    assert out == render_schema()


def test_it_is_a_draft_2020_12_schema(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == DIALECT == "https://json-schema.org/draft/2020-12/schema"
    assert "definitions" not in schema  # draft 7's name; 2020-12 has $defs
    for where, sub in _walk(schema):
        unknown = set(sub) - DRAFT_2020_12
        assert not unknown, f"{where}: not draft 2020-12 keywords: {unknown}"
        ref = sub.get("$ref")
        if ref is not None:
            assert ref.startswith("#/$defs/") and ref.removeprefix("#/$defs/") in schema["$defs"], (where, ref)
        assert sub.get("type", "object") in {"object", "array", "string", "number", "integer", "boolean", "null"}


def test_it_lists_the_top_level_keys_of_experiment(schema: dict[str, Any]) -> None:
    yaml_keys = {name for name, field in Experiment.model_fields.items() if not field.exclude}
    assert set(schema["properties"]) == yaml_keys
    assert "source_path" not in schema["properties"]  # set by the loader, never written
    assert set(schema["required"]) == {"name", "models", "prompts", "dataset"}
    assert schema["additionalProperties"] is False


def test_every_backend_has_its_settings(schema: dict[str, Any]) -> None:
    backend = schema["properties"]["backend"]
    assert backend["properties"]["kind"]["enum"] == known_backends()
    for kind in known_backends():
        settings = schema["$defs"][f"backend-{kind}"]
        assert settings["properties"]["kind"]["const"] == kind
        assert settings["additionalProperties"] is False
    assert "n_ctx" in schema["$defs"]["backend-llamacpp"]["properties"]
    assert "base_url" in schema["$defs"]["backend-openai"]["required"]
    assert "num_ctx" in schema["$defs"]["backend-ollama"]["properties"]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_file_validates(path: Path, schema: dict[str, Any]) -> None:
    Validator(schema).check(yaml.safe_load(path.read_text()), schema)


def test_the_test_experiment_validates(schema: dict[str, Any]) -> None:
    Validator(schema).check(base_experiment(), schema)


def test_named_axis_values_validate(schema: dict[str, Any]) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "v", "schema": {"type": "object"}}}
    sampling = {"response_format": [{"name": "free", "value": None}, {"name": "schema", "value": fmt}],
                "stop": [{"name": "none", "value": None}, {"name": "newline", "value": ["\n"]}],
                "temperature": [{"name": "greedy", "value": 0.0}, {"name": "warm", "value": 0.7}]}
    Validator(schema).check(_with({"sampling": sampling}), schema)
    assert not Validator(schema).is_valid(
        _with({"sampling": {"temperature": [{"name": "greedy", "value": 0.0, "extra": 1}]}}), schema)


def _with(changes: dict[str, Any], *, drop: str | None = None) -> dict[str, Any]:
    doc = {**base_experiment(), **changes}
    if drop is not None:
        doc.pop(drop)
    return doc


@pytest.mark.parametrize(("doc", "why"), [
    (_with({"temprature": 0.5}), "unknown top-level key"),
    (_with({}, drop="dataset"), "required key missing"),
    (_with({"backend": {"kind": "openai"}}), "openai needs base_url"),
    (_with({"backend": {"n_ctx": 2048, "base_url": "http://x/v1"}}), "the default llamacpp has no base_url"),
    (_with({"backend": {"kind": "llamacpp", "num_ctx": 2048}}), "num_ctx is ollama's"),
    (_with({"backend": {"kind": "vllm", "base_url": "http://x/v1"}}), "unknown backend kind"),
    (_with({"backend": {"kind": "openai", "base_url": "http://x/v1", "concurrency": 0}}), "concurrency >= 1"),
    (_with({"sampling": {"temperature": "hot"}}), "temperature is a number"),
    (_with({"scorers": [{"type": "fuzzy"}]}), "unknown scorer type"),
    (_with({"scorers": [{"type": "binary"}]}), "binary needs field"),
    (_with({"scorers": [{"type": "regex", "pattern": "x", "field": "y"}]}), "regex has no field"),
    (_with({"repeat_seeds": "random"}), "repeat_seeds is offset or same"),
    (_with({"scorers": [{"type": "similarity", "method": "bleu"}]}), "similarity methods are listed"),
    (_with({"report": {"human_agreement": {"fields": ["a", "b", "c"]}}}), "two raters"),
])
def test_wrong_files_do_not_validate(doc: dict[str, Any], why: str, schema: dict[str, Any]) -> None:
    assert not Validator(schema).is_valid(doc, schema), why


@pytest.mark.parametrize("backend", [
    {},
    {"n_ctx": 2048, "parallel": 2},
    {"kind": "ollama", "num_ctx": 8192},
    {"kind": "lmstudio"},
    {"kind": "openai", "base_url": "http://127.0.0.1:1234/v1", "api_key_env": "KEY"},
])
def test_each_backends_own_keys_validate(backend: dict[str, Any], schema: dict[str, Any]) -> None:
    Validator(schema).check(_with({"backend": backend}), schema)
