"""Named axis values end to end: what the request carries, what the report and `runner plan` show.

A named axis `[{name: free, value: null}, {name: schema, value: {...}}]` shows its names everywhere
(axes, cell labels, report rows, findings, matrix matching) while each request carries the value; a
null value leaves the key out of the request.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import ITEMS, Project, base_experiment
from runner import build_plan, load_experiment
from runner.cli import main
from runner.testing.fault_plan import request_key
from runner.testing.fault_server import ThreadedFaultServer

SCHEMA = {"type": "json_schema", "json_schema": {
    "name": "verdict", "strict": True,
    "schema": {"type": "object", "properties": {"valid": {"type": "boolean"}}, "required": ["valid"]}}}
NAMED = [{"name": "free", "value": None}, {"name": "schema", "value": SCHEMA}]


def _experiment(base_url: str) -> dict[str, Any]:
    exp = base_experiment(base_url)
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:1]
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 16, "response_format": NAMED}
    exp["repeats"] = 1
    return exp


def test_run_sends_the_value_and_reports_the_name(project: Project, fault_server: ThreadedFaultServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write(_experiment(f"{fault_server.url}/v1"))
    assert main(["run", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out

    # What the server received, body by body: the schema for `schema`, no response_format key at all
    # (not even null) for `free`. The bodies are written out here, not taken from the plan's params.
    plan = build_plan(load_experiment(path))
    expected: dict[str, str] = {}
    for job in plan.jobs():
        body: dict[str, Any] = {"model": "fake-model", "messages": list(job.messages), "max_tokens": 16,
                                "seed": 1, "temperature": 0.0}
        if job.cell.get("response_format") == "schema":
            body["response_format"] = SCHEMA
        expected[request_key(body)] = job.cell.get("response_format")
    received = fault_server.stats()["by_key"]
    assert set(received) == set(expected)
    assert sorted(expected.values()) == ["free"] * len(ITEMS) + ["schema"] * len(ITEMS)

    # The report's rows are labelled by the names; the schema itself appears nowhere in it.
    rows = {line.split()[0] for line in out.splitlines()[3:] if line[:1].isalpha()}
    assert {"free", "schema"} <= rows
    assert "json_schema" not in out and "verdict" not in out
    assert main(["report", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["response_format"] for r in data["tables"][0]["rows"]] == ["free", "schema"]
    assert "response_format schema vs free" in data["tables"][0]["comparisons"][0]["sentence"]
    assert main(["explain", str(path)]) == 0
    assert "json_schema" not in capsys.readouterr().out


PLAN_ALL = """\
experiment: t
axes:
  model: "fake"
  quantization: -
  system: -
  prompt: "a"
  response_format: "free", "schema"
matrix: 2 cells x 2 items x 1 repeats = 4 jobs
store: $ROOT/results/exp/results.sqlite (none yet): 4 to run

job 548e2965fa1532e001377e516fdc1bc0 [model=fake, prompt=a, response_format=free] item=i00 repeat=0
  params: {"max_tokens": 16, "seed": 1, "temperature": 0.0}
  user: Validate: {"name": "svc0", "port": 8000}

job 359b1e68b1b48b66bb392bd6230757d1 [model=fake, prompt=a, response_format=free] item=i01 repeat=0
  params: {"max_tokens": 16, "seed": 1, "temperature": 0.0}
  user: Validate: {"name": "svc1", "port": 8001}

job 8b13dcf79e4500c427dc9a2fc8ab1957 [model=fake, prompt=a, response_format=schema] item=i00 repeat=0
  params: {"max_tokens": 64, "response_format": $SCHEMA, "seed": 1, "temperature": 0.0}
  user: Validate: {"name": "svc0", "port": 8000}

job d8496afd4df435d48ccda6ad122716c2 [model=fake, prompt=a, response_format=schema] item=i01 repeat=0
  params: {"max_tokens": 64, "response_format": $SCHEMA, "seed": 1, "temperature": 0.0}
  user: Validate: {"name": "svc1", "port": 8001}
"""


def test_plan_all_shows_every_job_as_sent_after_include(project: Project,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    project.write_dataset(ITEMS[:2])
    exp = _experiment("http://127.0.0.1:9/v1")  # plan never contacts the server; a fixed url pins the ids
    del exp["prompts"]["system"]
    exp["matrix"] = {"include": [{"response_format": "schema", "max_tokens": 64}]}
    path = project.write(exp)
    assert main(["plan", str(path), "--all"]) == 0
    # $SCHEMA: the schema in full, as the request carries it (one long line, kept out of this file's width)
    expected = PLAN_ALL.replace("$ROOT", str(project.root)).replace("$SCHEMA", json.dumps(SCHEMA))
    assert capsys.readouterr().out == expected


def test_plan_show_says_how_many_jobs_it_left_out(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write(_experiment("http://127.0.0.1:9/v1"))
    assert main(["plan", str(path), "--show", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("\njob ") == 1
    assert out.endswith(f"\n1 of {2 * len(ITEMS)} jobs shown; --show N or --all for more\n")
    assert main(["plan", str(path), "--show", "0", "--limit", "1"]) == 0
    assert capsys.readouterr().out.endswith("\n0 of 2 jobs shown; --show N or --all for more\n")


def test_plan_show_and_all_exclude_each_other(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write(_experiment("http://127.0.0.1:9/v1"))
    with pytest.raises(SystemExit) as info:
        main(["plan", str(path), "--show", "2", "--all"])
    assert info.value.code == 2
    assert "argument --all: not allowed with argument --show" in capsys.readouterr().err
