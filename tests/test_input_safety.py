"""Input that is valid but dangerous, and the ways out that stay open (the refusals are in test_bad_input.py).

- paths outside the project are refused unless `allow_outside_paths: true`; the project is the nearest
  folder with pyproject.toml or .git, so experiments/ reading ../datasets keeps working;
- YAML anchors and merge keys still work; a billion laughs stops `validate` and `run` in a real process;
- a UTF-8 BOM is fine in datasets, templates, context files and experiments;
- a context file too big for memory is one line, not a MemoryError traceback;
- every error the schema can produce says what to do (a walk over the JSON Schema, each bad value
  through `runner validate`).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_bad_input import laughs

from conftest import Project, base_experiment
from runner.cli import main
from runner.testing.fault_server import ThreadedFaultServer

CLI = "import sys; from runner.cli import main; sys.exit(main(sys.argv[1:]))"
BOM = b"\xef\xbb\xbf"


def _err_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.rstrip("\n").split("\n")
    assert len(lines) == 1, lines
    return lines[0]


# paths


def test_allow_outside_paths_sends_a_file_from_outside(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    outside = project.root.parent / f"{project.root.name}-shared.j2"
    outside.write_text("SHARED {{ config.name }}")
    exp = base_experiment()
    exp["prompts"]["variants"][0]["file"] = str(outside)
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    assert "is outside the experiment's folder" in _err_line(capsys)

    exp["allow_outside_paths"] = True
    path = project.write(exp)
    assert main(["plan", str(path), "--show", "1"]) == 0
    assert "  user: SHARED svc0\n" in capsys.readouterr().out


def test_the_project_folder_is_the_root_when_there_is_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Like experiments/*.yaml: the experiment in a subfolder reads ../templates and ../data.jsonl."""
    project = Project(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "experiments").mkdir()
    exp = base_experiment()
    exp["prompts"]["directory"] = "../templates"
    exp["dataset"]["path"] = "../data.jsonl"
    path = project.write(exp, name="experiments/exp.yaml")
    assert main(["validate", "--offline", str(path)]) == 0
    capsys.readouterr()

    exp["prompts"]["variants"][0]["file"] = "../../../etc/passwd"
    path = project.write(exp, name="experiments/exp.yaml")
    assert main(["validate", "--offline", str(path)]) == 2
    assert _err_line(capsys) == (
        f"runner: {path}: prompts.variants[0].file: ../../../etc/passwd is outside the project folder ({tmp_path}, "
        "the nearest folder above the experiment with pyproject.toml or .git); move the file under it or set "
        "allow_outside_paths: true")


def test_the_shipped_experiments_read_inside_the_repository() -> None:
    """They use ../datasets and ../prompt_templates: allowed because the repository has a pyproject.toml."""
    repo = Path(__file__).resolve().parent.parent
    for path in sorted((repo / "experiments").glob("*.yaml")):
        assert "allow_outside_paths" not in path.read_text()
        assert main(["validate", "--offline", str(path)]) == 0


def test_the_json_schema_says_the_ranges_and_the_opt_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    sampling = schema["$defs"]["SamplingConfig"]["properties"]
    assert sampling["temperature"]["anyOf"][0] == {"type": "number", "minimum": 0, "maximum": 5}
    assert sampling["top_p"]["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
    assert sampling["top_k"]["anyOf"][0] == {"type": "integer", "minimum": 0}
    assert sampling["seed"]["anyOf"][0] == {"type": "integer", "minimum": 0, "maximum": 4294967294}
    assert sampling["max_tokens"]["anyOf"][0] == {"type": "integer", "minimum": 1}
    opt_in = schema["properties"]["allow_outside_paths"]
    assert (opt_in["type"], opt_in["default"]) == ("boolean", False)


# YAML


def test_anchors_and_merge_keys_still_work(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """A merged key overridden by the mapping's own key is no duplicate; aliases under the limit are fine."""
    exp = {k: v for k, v in base_experiment().items() if k not in ("models", "sampling")}
    text = textwrap.dedent("""\
        models:
          - &small {name: small, id: fake-model}
          - <<: *small
            name: large
        sampling:
          max_tokens: 16
          response_format:
            type: json_schema
            json_schema: {name: v, schema: {type: object, properties: {a: &s {type: string}, b: *s, c: *s}}}
          stop: &stops [END, STOP]
        """) + yaml.safe_dump(exp, sort_keys=False)
    path = project.root / "exp.yaml"
    path.write_text(text)
    assert main(["validate", "--offline", str(path)]) == 0
    assert capsys.readouterr().out == f"ok: {path}: 48 jobs = 4 cells x 6 items x 2 repeats\n"  # 2 models x 2 prompts


def _real_process(args: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("verb", ["validate", "run"])
def test_a_billion_laughs_stops_validate_and_run_in_a_real_process(
        project: Project, fault_server: ThreadedFaultServer, verb: str) -> None:
    exp = {k: v for k, v in base_experiment(f"{fault_server.url}/v1").items() if k != "sampling"}
    path = project.root / "exp.yaml"
    path.write_text("sampling:\n  max_tokens: 16\n  response_format:\n" + laughs("    ") +
                    yaml.safe_dump(exp, sort_keys=False))
    proc = _real_process([verb, str(path)], project.root)
    assert proc.stderr.splitlines() == [
        f"runner: {path}: line 9: YAML aliases expand to more than 1,000,000 nodes; use fewer or smaller aliases, "
        "or write the data out"]
    assert proc.returncode == 2
    assert fault_server.stats()["requests"] == 0
    assert not (project.root / "results").exists()


# templates

EVERYDAY_TEMPLATE = """\
{%- macro show(ex) %}{{ ex.config | tojson }} -> {{ 'valid' if ex.valid else 'invalid' }}{% endmacro -%}
{% set ns = namespace(seen=[]) -%}
Rules:
{% for rule in rules -%}
{{ loop.index }}. {{ rule | upper | replace('MUST', 'must') }}
{% endfor %}
Examples:
{% for ex in examples if ex.valid is not none -%}
{{ show(ex) | indent(2, first=true) }}{{ ns.seen.append(ex.config.name) or '' }}
{% else %}none{% endfor %}
Seen: {{ ns.seen | join(', ') }} ({{ '%d' % 12345678 }}, {{ '{:,}'.format(config.port * 1000) }})
{% set opts = {'port': config.port, 'names': [config.name] * 3} -%}
{% for k, v in opts | dictsort %}{{ k ~ '=' ~ v }}{{ '; ' if not loop.last }}{% endfor %}
{% for i in range(3) %}{{ i }}{% endfor %} {{ '%-6s|' % config.name }} {{ config.name.center(9, '*') }}
Check: {{ config | tojson }}
"""


def test_everyday_templates_render_as_jinja_renders_them(project: Project,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The limits refuse nothing an ordinary prompt does: loops, macros, filters, formatting, literals,
    ~ and `append`; the text is exactly what Jinja's own sandbox renders."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    (project.root / "templates" / "a.j2").write_text(EVERYDAY_TEMPLATE)
    examples = [{"config": {"name": "x", "port": 1}, "valid": True}, {"config": {"name": "y", "port": -1},
                                                                       "valid": False}]
    (project.root / "ex.json").write_text(json.dumps(examples))
    (project.root / "rules.yaml").write_text("- ports MUST be positive\n- names MUST be unique\n")
    exp = base_experiment()
    exp["prompts"]["context"] = {"examples": "ex.json", "rules": "rules.yaml"}
    path = project.write(exp)
    assert main(["plan", str(path), "--show", "1", "--chars", "10000"]) == 0
    out = capsys.readouterr().out
    item = {"id": "i00", "config": {"name": "svc0", "port": 8000}, "valid": True}
    reference = SandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(EVERYDAY_TEMPLATE)
    expected = reference.render({**item, "item": item, "examples": examples,
                                 "rules": ["ports MUST be positive", "names MUST be unique"]}).strip()
    assert "Seen: x, y (12345678, 8,000,000)" in expected and "names=['svc0', 'svc0', 'svc0']" in expected
    assert f"  user: {expected.replace(chr(10), chr(92) + 'n')}\n" in out


# encodings


def test_a_bom_is_read_everywhere(project: Project, fault_server: ThreadedFaultServer,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    rows = project.root / "data.jsonl"
    rows.write_bytes(BOM + rows.read_bytes())
    (project.root / "templates" / "a.j2").write_bytes(BOM + b"Validate: {{ config | tojson }} {{ rules }}")
    (project.root / "ctx.yaml").write_bytes(BOM + b"rules: be strict\n")
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["prompts"]["context"] = {"rules": "ctx.yaml"}
    exp["prompts"]["variants"][0]["text"] = None
    path = project.root / "exp.yaml"
    path.write_bytes(BOM + yaml.safe_dump(exp, sort_keys=False).encode())

    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == f"ok: {path}: 48 jobs = 4 cells x 6 items x 2 repeats\n"
    assert main(["plan", str(path), "--show", "1"]) == 0
    out = capsys.readouterr().out
    assert "item=i00 " in out  # the first id is "i00", not "\ufeffi00" or a refused first line
    assert '  user: Validate: {"name": "svc0", "port": 8000} {\'rules\': \'be strict\'}\n' in out
    assert main(["run", str(path), "--quiet", "--limit", "2"]) == 0
    assert fault_server.stats()["requests"] == 16


# memory


def test_a_context_file_too_big_for_memory_is_one_line(project: Project) -> None:
    """Under an address-space limit, loading a 4 MB JSON of empty lists (~100 MB of objects) fails
    with MemoryError: one line, exit 2, nothing written."""
    (project.root / "ctx.json").write_text("[" + ",".join(["[]"] * 1_300_000) + "]")
    good = project.write()
    exp = base_experiment()
    exp["prompts"]["context"] = {"examples": "ctx.json"}
    path = project.write(exp, name="big.yaml")
    child = textwrap.dedent(f"""\
        import resource, sys
        from runner.cli import main
        assert main(["validate", "--offline", {str(good)!r}]) == 0  # every lazy import done before the limit
        with open("/proc/self/status") as fh:
            vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 40 * 2**20, resource.RLIM_INFINITY))
        sys.exit(main(["validate", "--offline", {str(path)!r}]))
        """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=project.root, capture_output=True, text=True,
                          timeout=60)
    assert proc.stderr.splitlines() == [
        f"runner: {path}: prompts.context.examples: {project.root}/ctx.json is too big to load into memory "
        "(MemoryError); shorten it or split it"]
    assert proc.returncode == 2
    assert not (project.root / "results").exists()


# every error says the fix


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return node


def _branches(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(schema, node)
    subs = [*node.get("anyOf", []), *node.get("oneOf", [])]
    return [node] if not subs else [b for sub in subs for b in _branches(schema, sub)]


def _bad_values(schema: dict[str, Any], node: dict[str, Any]) -> list[Any]:
    """Values of a wrong type for every branch of `node`, and values just outside each range."""
    branches = _branches(schema, node)
    types = {b.get("type") for b in branches}
    out: list[Any] = [[1, 2]] if "string" in types else []
    if types & {"integer", "number"}:
        out += ["abc", float("nan"), 1.5]
    if "boolean" in types:
        out.append("maybe")
    if "array" in types:
        out += ["text", []]
    if "object" in types:
        out.append("text")
    for b in branches:
        if "enum" in b or "const" in b:
            out.append("no-such-value")
        out += [b[k] - 1 for k in ("minimum", "exclusiveMinimum") if k in b]
        out += [b[k] + 1 for k in ("maximum", "exclusiveMaximum") if k in b]
        if b.get("minLength"):
            out.append("")
    return out


def _fields(schema: dict[str, Any], node: dict[str, Any], path: tuple[str, ...],
            seen: frozenset[str] = frozenset()) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every property path of the experiment schema with its schema, through objects and list items."""
    out = []
    for branch in _branches(schema, node):
        name = branch.get("title", "")
        if name in seen:
            continue
        for key, sub in branch.get("properties", {}).items():
            out.append(((*path, key), sub))
            out += _fields(schema, sub, (*path, key), seen | {name})
        items = branch.get("items")
        if isinstance(items, dict):
            out += _fields(schema, items, (*path, "0"), seen | {name})
    return out


def _put(exp: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `path` (list indices as numbers), making the mappings and lists on the way."""
    at: Any = exp
    for part, after in itertools.pairwise(path):
        empty: Any = [] if after.isdigit() else {}
        if isinstance(at, list):
            while len(at) <= int(part):
                at.append(empty)
            if not isinstance(at[int(part)], dict | list):
                at[int(part)] = empty
            at = at[int(part)]
        else:
            if not isinstance(at.get(part), dict | list):
                at[part] = empty
            at = at[part]
    if isinstance(at, list):
        at[:] = [*at[: int(path[-1])], value]
    else:
        at[path[-1]] = value


def test_every_error_the_schema_can_produce_says_what_to_do(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    """Each key of `runner schema` (the openai backend's, as the base experiment uses it), given values of
    the wrong type and just outside its range, through `runner validate`: every refusal is one line with
    a fix, "; " and an instruction. A pydantic error type without a translation has no "; " part."""
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    fields = _fields(schema, {k: v for k, v in schema.items() if k != "$defs"}, ())
    fields += [(("backend", *p), s) for p, s in _fields(schema, schema["$defs"]["backend-openai"], ())]
    assert len(fields) > 100
    without_fix = []
    refused = 0
    for path, node in fields:
        for value in _bad_values(schema, node):
            exp = base_experiment()
            _put(exp, path, value)
            file = project.write(exp)
            code = main(["validate", "--offline", str(file)])
            err = capsys.readouterr().err
            if code == 0:
                continue  # some "bad" values are fine here (a string where text is expected, ...)
            refused += 1
            line = err.rstrip("\n")
            assert code == 2 and "\n" not in line and line.startswith(f"runner: {file}"), (path, value, err)
            if not re.search(r"; [a-z][a-z_]* ", line):
                without_fix.append(line)
    assert refused > 200
    assert without_fix == []
