"""`runner matrix`: task x model by size class, each cell a verdict against its experiment's threshold.

Two models behind the fault-injection server with scripted answers (so the verdicts are known):
model a (declared 135M) answers every config of the first experiment right, model b (declared 1.7B)
every one wrong; a second experiment on the same task asks model a about 8 other configs and gets
half right. A third experiment (semantic analysis) has not run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ITEMS, Project, step_experiment
from runner.cli import main
from runner.testing.browser import Chromium, find_chromium
from runner.testing.fault_server import FaultPlan, ScriptRule, ThreadedFaultServer

OTHER = [{"id": f"t{n}", "config": {"name": f"t{n}", "port": 9000 + n}, "valid": n % 2 == 0} for n in range(8)]


def _answer(valid: bool) -> tuple[str, str]:
    return (json.dumps({"valid": valid}), "stop")


def _rules() -> list[ScriptRule]:
    rules = []
    for item in ITEMS:  # a is right on all six, b wrong on all six
        name = f'"name": "{item["config"]["name"]}"'
        rules.append(ScriptRule(_answer(item["valid"]), {"model": "model-a"}, name))
        rules.append(ScriptRule(_answer(not item["valid"]), {"model": "model-b"}, name))
    for n, item in enumerate(OTHER):  # a is right on the first four of eight: 4 of 8
        rules.append(ScriptRule(_answer(item["valid"] if n < 4 else not item["valid"]), {"model": "model-a"},
                                f'"name": "{item["config"]["name"]}"'))
    return rules


def _experiment(url: str, name: str, task: str, models: list[dict[str, Any]], dataset: str,
                threshold: float | None = 0.6) -> dict[str, Any]:
    exp = step_experiment(url, name, [{"name": "ask", "text": "Validate: {{ config | tojson }}"}], max_tokens=16)
    exp.update(task=task, models=models, dataset={"path": dataset, "label_field": "valid"})
    if threshold is not None:
        exp["report"] = {"threshold": {"metric": "accuracy", "min": threshold}}
    return exp


A = {"name": "a", "id": "model-a", "params": "135M"}
B = {"name": "b", "id": "model-b", "params": "1.7B"}


@pytest.fixture
def files(project: Project) -> tuple[Project, list[Path]]:
    project.write_dataset(OTHER, "other.jsonl")
    with ThreadedFaultServer(FaultPlan(rules=_rules())) as server:
        first = project.write(_experiment(server.url, "both", "config_validation", [A, B], "data.jsonl"),
                              name="both.yaml")
        second = project.write(_experiment(server.url, "more", "config_validation", [A], "other.jsonl"),
                               name="more.yaml")
        third = project.write(_experiment(server.url, "sem", "semantic_analysis", [B], "data.jsonl"),
                              name="sem.yaml")
        for path in (first, second):
            assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    return project, [first, second, third]


def test_the_json_shape_and_the_verdicts(files: tuple[Project, list[Path]],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _, paths = files
    capsys.readouterr()
    assert main(["matrix", *map(str, paths), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["tasks", "size_classes", "models", "cells", "experiments", "notes"]
    assert data["tasks"] == ["config_validation", "code_generation", "semantic_analysis", "summarization",
                             "simple_qa"]
    assert data["size_classes"] == ["<=1B", "1-3B"]
    assert data["models"] == [
        {"name": "a", "size_class": "<=1B", "parameters": 135_000_000,
         "parameters_source": "declared (models[].params)", "size_label": None},
        {"name": "b", "size_class": "1-3B", "parameters": 1_700_000_000,
         "parameters_source": "declared (models[].params)", "size_label": None},
    ]
    cells = {(c["task"], c["model"]): c for c in data["cells"]}
    assert len(cells) == 10 and all(list(c) == CELL_KEYS for c in data["cells"])
    # a: 6 of 6 in the first experiment (yes) and 4 of 8 in the second (maybe): the second has more items,
    # so it is the one used, though its score is the worse.
    a = cells[("config_validation", "a")]
    assert (a["verdict"], a["value"], a["n_items"], a["n_jobs"], a["threshold"]) == ("maybe", 0.5, 8, 8, 0.6)
    assert (a["source"], a["cell"], a["candidates"]) == (str(paths[1]), "model=a, prompt=ask", 2)
    assert a["sources"] == [str(paths[0]), str(paths[1])] and a["chosen_by"].startswith("the candidate judged over")
    assert a["low"] == pytest.approx(0.2152, abs=1e-4) and a["high"] == pytest.approx(0.7848, abs=1e-4)
    b = cells[("config_validation", "b")]
    assert (b["verdict"], b["value"], b["n_items"], b["candidates"], b["chosen_by"]) == ("no", 0.0, 6, 1, None)
    assert b["high"] == pytest.approx(0.3903, abs=1e-4)
    assert cells[("semantic_analysis", "b")]["verdict"] == "not run"
    assert cells[("semantic_analysis", "a")]["verdict"] == "no experiment"
    assert cells[("simple_qa", "a")] == {**dict.fromkeys(CELL_KEYS), "task": "simple_qa", "model": "a",
                                         "verdict": "no experiment", "n_items": 0, "n_jobs": 0, "planned_items": 0,
                                         "candidates": 0, "sources": []}
    assert [e["status"] for e in data["experiments"]] == ["done", "done", "not run"]


CELL_KEYS = ["task", "model", "verdict", "metric", "value", "low", "high", "threshold", "n_items", "n_jobs",
             "planned_items", "source", "cell", "candidates", "sources", "chosen_by", "text"]


def test_the_table_groups_models_by_size_class(files: tuple[Project, list[Path]],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, paths = files
    capsys.readouterr()
    assert main(["matrix", *map(str, paths)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:10] == [
        "size class         <=1B                         1-3B",
        "task               a (135M)                     b (1.7B)",
        "-----------------  ---------------------------  ------------------------",
        "config_validation  maybe 0.50 [0.22, 0.78] n=8  no 0.00 [0.00, 0.39] n=6",
        "code_generation    no experiment                no experiment",
        "semantic_analysis  no experiment                not run",
        "summarization      no experiment                no experiment",
        "simple_qa          no experiment                no experiment",
    ]
    assert lines[11] == (
        f"config_validation x a: maybe (bar 0.60): {paths[1]} [model=a, prompt=ask]: not shown viable at n=8 items: "
        "accuracy 0.50 [0.22, 0.78] straddles 0.60; 4 of 8 right cannot separate 50% from 60%; about 158 items would "
        "(exact binomial test, 80% power, alpha=0.05); chosen of 2 candidates in 2 experiments: the candidate judged "
        "over the most items (then the most answers, then the first listed); never the best score, which would "
        "overstate it")
    assert lines[12] == (f"config_validation x b: no (bar 0.60): {paths[0]} [model=b, prompt=ask]: not viable: "
                         "accuracy 0.00 [0.00, 0.39] < 0.60 over 6 items")


def test_a_file_named_twice_is_one_candidate_and_a_folder_is_refused(
        files: tuple[Project, list[Path]], capsys: pytest.CaptureFixture[str]) -> None:
    project, paths = files
    capsys.readouterr()
    # As the shell gives it: experiments/*.yaml experiments/both.yaml.
    assert main(["matrix", str(paths[0]), str(project.root / "." / paths[0].name), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    b = next(c for c in data["cells"] if (c["task"], c["model"]) == ("config_validation", "b"))
    assert (b["candidates"], b["sources"]) == (1, [str(paths[0])])
    assert len(data["experiments"]) == 1
    assert main(["matrix", str(project.root)]) == 2
    assert capsys.readouterr().err == (f"runner: {project.root}: a folder, not an experiment file; name the files in "
                                       f"it, e.g. {project.root}/*.yaml\n")


def test_an_experiment_without_a_threshold_shows_its_rate_unjudged(project: Project,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(FaultPlan(rules=_rules())) as server:
        path = project.write(_experiment(server.url, "bare", "config_validation", [A], "data.jsonl", None))
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["matrix", str(path), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "| config_validation | no bar 1.00 [0.61, 1.00] n=6 |" in out
    assert (f"- {path}: no report.threshold, so its cells show the rate without a verdict; add report.threshold: "
            "{metric: accuracy, min: ...} to judge them") in out


def _investigation(project: Project) -> Path:
    """Two steps on config_validation, run: GOOD answers every item right, BAD none; the final step runs
    on the prompt the first one picked."""
    script = {f'{prefix} {{"name": "{item["config"]["name"]}",': _answer(item["valid"] == (prefix == "GOOD"))
              for item in ITEMS for prefix in ("GOOD", "BAD")}
    with ThreadedFaultServer(FaultPlan(script=script)) as server:
        prompts = step_experiment(server.url, "prompts", [{"name": "good", "text": "GOOD {{ config | tojson }}"},
                                                          {"name": "bad", "text": "BAD {{ config | tojson }}"}], 16)
        final = step_experiment(server.url, "final", [{"name": "own", "text": "OWN {{ config | tojson }}"}], 32,
                                repeats=2)
        project.write({**prompts, "task": "config_validation"}, name="prompts.yaml")
        project.write({**final, "task": "config_validation"}, name="final.yaml")
        inv = project.write({"name": "inv", "question": "Viable at 60%?", "threshold": {"metric": "accuracy",
                                                                                         "min": 0.6},
                             "steps": [{"name": "prompts", "experiment": "prompts.yaml", "hypothesis": "H1"},
                                       {"name": "final", "experiment": "final.yaml",
                                        "use": {"prompt": {"from": "prompts", "pick": "best"}}}]}, name="inv.yaml")
        assert main(["run", str(inv), "--quiet", "--no-report"]) == 0
    return inv


def test_an_investigation_contributes_its_steps_as_they_ran(project: Project,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    inv = _investigation(project)
    capsys.readouterr()
    assert main(["matrix", str(inv), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    cell = next(c for c in data["cells"] if c["task"] == "config_validation")
    # Three candidates judged over 6 items each (the steps' experiments declare no threshold: the
    # investigation's judges them); the final step's has the most answers (6 items x 2 repeats).
    assert (cell["verdict"], cell["value"], cell["n_items"], cell["n_jobs"], cell["threshold"]) == ("yes", 1.0, 6, 12,
                                                                                                   0.6)
    assert (cell["source"], cell["cell"], cell["candidates"]) == (f"{inv}:final", "model=fake, prompt=good", 3)
    assert [e["source"] for e in data["experiments"]] == [f"{inv}:prompts", f"{inv}:final"]


def test_the_size_is_the_stored_one_and_a_store_from_before_size_classes_falls_back(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    with ThreadedFaultServer(FaultPlan(rules=_rules())) as server:
        path = project.write(_experiment(server.url, "one", "config_validation", [A], "data.jsonl"))
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0

    def models() -> list[dict[str, Any]]:
        capsys.readouterr()
        assert main(["matrix", str(path), "--format", "json"]) == 0
        return list(json.loads(capsys.readouterr().out)["models"])

    with sqlite3.connect(project.store_path()) as conn:
        stored = {json.loads(v)["size_class"] for (v,) in conn.execute("SELECT variant_json FROM jobs")}
        assert stored == {"<=1B"}  # recorded with every job: the declared 135M
        # What a server reported wins over the declaration: here, as if it had said 7B.
        conn.execute("""UPDATE jobs SET variant_json = json_set(variant_json, '$.parameters', 7000000000,
                        '$.parameters_source', 'a server', '$.size_class', '3B+')""")
    assert models()[0] | {"name": None} == {"name": None, "size_class": "3B+", "parameters": 7_000_000_000,
                                            "parameters_source": "a server", "size_label": None}
    with sqlite3.connect(project.store_path()) as conn:  # a store written before size classes existed
        conn.execute("UPDATE jobs SET variant_json = json_remove(variant_json, '$.parameters', '$.parameters_source', "
                     "'$.size_class', '$.parameters_declared')")
    assert models()[0]["parameters_source"] == "declared (models[].params)"


# The coloured grid (`--format html`, and an investigation's page), in a real headless Chromium with the
# network off (runner/testing/browser.py); skipped without one (scripts/install_chromium.sh installs it).

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium on PATH: scripts/install_chromium.sh installs it (as root)")
# Per grid cell: task, model, its verdict class, and its text: verdict, rate [interval], n.
GRID = ("[...document.querySelectorAll('table.matrix td.m-cell')].map(td => [td.dataset.task, td.dataset.model, "
        "[...td.classList].filter(c => c !== 'm-cell').join(' '), td.querySelector('.m-verdict').textContent, "
        "td.querySelector('.m-rate')?.textContent ?? null, td.querySelector('.m-n')?.textContent ?? null])")


def _expected_grid(data: dict[str, Any]) -> list[list[str | None]]:
    """What the JSON says each cell is, in the grid's order (task rows, model columns)."""
    cells = {(c["task"], c["model"]): c for c in data["cells"]}
    out: list[list[str | None]] = []
    for task in data["tasks"]:
        for m in data["models"]:
            c = cells[(task, m["name"])]
            rate = None if c["value"] is None else f"{c['value']:.2f} [{c['low']:.2f}, {c['high']:.2f}]"
            n = None if c["value"] is None else f"n={c['n_items']}"
            out.append([task, m["name"], "m-" + c["verdict"].replace(" ", "-"), c["verdict"], rate, n])
    return out


def _json(paths: list[Path], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["matrix", *map(str, paths), "--format", "json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if find_chromium() is None:
        pytest.skip("no chromium on PATH: scripts/install_chromium.sh installs it (as root)")
    with Chromium() as b:
        yield b


@needs_chromium
def test_the_html_grid_has_one_cell_per_task_and_model_as_the_json_says(
        files: tuple[Project, list[Path]], tmp_path: Path, browser: Chromium,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, paths = files
    data = _json(paths, capsys)
    out = tmp_path / "matrix.html"
    assert main(["matrix", *map(str, paths), "--format", "html", "--output", str(out)]) == 0
    assert capsys.readouterr().err == f"wrote {out}\n"
    expected = _expected_grid(data)
    assert len(expected) == 5 * 2
    assert [c[2] for c in expected].count("m-no-experiment") == 7  # the grid has every kind it can here
    assert {c[3] for c in expected} == {"maybe", "no", "not run", "no experiment"}
    for scripts in (True, False):  # the same grid with JavaScript off
        page = browser.load(out, scripts=scripts)
        assert page.errors == [] and page.outside_requests == []
        assert page.evaluate(GRID) == expected
        assert page.evaluate("document.querySelectorAll('table.matrix td.m-cell').length") == 10
    # Size classes head their columns; the source beside each judged cell, its whole verdict on hover.
    assert page.evaluate("[...document.querySelectorAll('th.m-class')].map(t => t.textContent + ':' + t.colSpan)"
                         ) == ["<=1B:1", "1-3B:1"]
    a = "document.querySelector(\"td[data-task='config_validation'][data-model='a']\")"
    assert page.evaluate(f"{a}.querySelector('.m-source').textContent") == (
        "more.yaml [model=a, prompt=ask]; chosen of 2 candidates")
    title = page.evaluate(f"{a}.title")
    cell = next(c for c in data["cells"] if (c["task"], c["model"]) == ("config_validation", "a"))
    assert title.splitlines() == [f"{paths[1]} [model=a, prompt=ask]", cell["text"],
                                  f"chosen of 2 candidates: {cell['chosen_by']}", "bar 0.60"]
    # The cells are coloured (each verdict its own background) and the lines under the grid are the table's.
    colours = page.evaluate("[...new Set([...document.querySelectorAll('td.m-cell')].map(td => td.className + '=' "
                            "+ getComputedStyle(td).backgroundColor))]")
    assert len({c.split("=")[1] for c in colours}) == len(colours) == 4
    capsys.readouterr()
    assert main(["matrix", *map(str, paths)]) == 0
    table = capsys.readouterr().out.splitlines()
    under = table[table.index("") + 1:]
    under = under[under.index("") + 1:]
    assert page.evaluate("[...document.querySelectorAll('ul.m-lines li')].map(l => l.textContent)") == under
    assert page.evaluate("[...document.querySelectorAll('table.m-experiments tbody tr')].map(r => "
                         "r.cells[0].textContent + ' ' + r.cells[4].textContent)") == [
        f"{e['source']} {e['status']}" for e in data["experiments"]]
    assert page.screenshot(Path("/tmp/html-shots/test_matrix.png"), full_page=True) > 5_000


@needs_chromium
def test_an_investigation_page_draws_its_steps_matrix_as_the_grid(
        project: Project, tmp_path: Path, browser: Chromium, capsys: pytest.CaptureFixture[str]) -> None:
    inv = _investigation(project)
    data = _json([inv], capsys)
    out = tmp_path / "inv.html"
    assert main(["report", str(inv), "--format", "html", "--output", str(out)]) == 0
    page = browser.load(out)
    assert page.errors == [] and page.outside_requests == []
    assert page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")[4] == \
        "model-selection matrix"
    expected = _expected_grid(data)
    assert expected[0] == ["config_validation", "fake", "m-yes", "yes", "1.00 [0.61, 1.00]", "n=6"]
    assert page.evaluate(GRID) == expected
    assert page.evaluate("document.querySelector('td.m-cell.m-yes .m-source').textContent") == (
        "inv.yaml:final [model=fake, prompt=good]; chosen of 3 candidates")


def test_html_of_a_missing_file_is_the_usual_error_and_writes_nothing(project: Project,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    missing, out = project.root / "nope.yaml", project.root / "matrix.html"
    assert main(["matrix", str(missing), "--format", "html", "--output", str(out)]) == 2
    assert capsys.readouterr().err == f"runner: {missing}: experiment file not found; check the path\n"
    assert not out.exists()
