"""Investigations through the CLI, against the fault server with planted answers: the truly better
prompt is picked and is all the next step sends; indistinguishable prompts are a tie that takes the
first declared, said so; a temperature that flips answers across repeats is not picked; bad files are
one pinned line, exit 2, nothing written; the JSON report's shape is pinned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Project, step_experiment
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ScriptRule, ThreadedFaultServer

ITEMS = [{"id": f"i{n}", "config": {"name": f"svc{n}", "port": 8000 + n}, "valid": n % 2 == 0} for n in range(8)]


def _answer(n: int, right: bool) -> tuple[str, str]:
    label = ITEMS[n]["valid"]
    return json.dumps({"valid": label if right else not label}), "stop"


def _script(prefix: str, right: set[int]) -> dict[str, tuple[str, str]]:
    """The prompt starting with `prefix` answers item n right when n is in `right`, else wrong."""
    return {f'{prefix} {{"name": "svc{n}",': _answer(n, n in right) for n in range(len(ITEMS))}


def _write(project: Project, name: str, data: dict[str, Any]) -> Path:
    path = project.root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


INVESTIGATION = {
    "name": "planted",
    "question": "Is the model viable at 60%?",
    "threshold": {"metric": "accuracy", "min": 0.6},
    "steps": [
        {"name": "prompts", "experiment": "prompts.yaml", "hypothesis": "H1"},
        {"name": "sweep", "experiment": "sweep.yaml", "hypothesis": "H2", "use": {"prompt": {"from": "prompts"}}},
        {"name": "final", "experiment": "final.yaml",
         "use": {"prompt": {"from": "prompts", "pick": "best"}, "temperature": {"from": "sweep", "pick": "best"}}},
    ],
}


def _project(project: Project, url: str, variants: list[dict[str, Any]]) -> Path:
    project.write_dataset(ITEMS)
    _write(project, "prompts.yaml", step_experiment(url, "prompts", variants, 16))
    _write(project, "sweep.yaml", step_experiment(url, "sweep", [{"name": "own", "text": "OWN {{ config | tojson }}"}],
                                              24, temperature=[0.0, 0.7], repeats=3))
    _write(project, "final.yaml", step_experiment(url, "final", [{"name": "own", "text": "OWN {{ config | tojson }}"}],
                                              32, temperature=0.5, repeats=2))
    return _write(project, "inv.yaml", INVESTIGATION)


def _prompts(body: dict[str, Any]) -> set[str]:
    return {m["content"].split(" ", 1)[0] for m in body["messages"]}


def _planted_plan() -> FaultPlan:
    # GOOD is right on every item, BAD on none; OWN (the sweep's own prompt) would be right everywhere.
    # At temperature 0.0 GOOD is wrong on items 6 and 7 (accuracy 0.75, steady); at 0.7 it is right
    # everywhere except item 0 on the third repeat (seed 3): more accurate (0.96), but it flips.
    rules = [ScriptRule(_answer(n, False), {"temperature": 0.0, "max_tokens": 24}, f'GOOD {{"name": "svc{n}",')
             for n in (6, 7)]
    rules.append(ScriptRule(_answer(0, False), {"temperature": 0.7, "seed": 3}, 'GOOD {"name": "svc0",'))
    script = _script("GOOD", set(range(8))) | _script("BAD", set()) | _script("OWN", set(range(8)))
    return FaultPlan(script=script, rules=rules, record_bodies=True)


def test_the_better_prompt_is_picked_and_the_next_steps_send_only_it_and_a_flipping_temperature_is_not_picked(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_planted_plan()) as server:
        path = _project(project, server.url, [{"name": "bad", "text": "BAD {{ config | tojson }}"},
                                              {"name": "good", "text": "GOOD {{ config | tojson }}"}])
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        bodies = server.stats()["bodies"]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "pick: sweep.prompt = good (good beats bad: 8 vs 0 of 8 items right, McNemar p=0.0078)",
        "pick: final.prompt = good (good beats bad: 8 vs 0 of 8 items right, McNemar p=0.0078)",
        "pick: final.temperature = 0.0 (the most accurate of the values that do not flip answers (0.0: accuracy "
        "0.75 over 8 items x 3 repeats, 0 of 8 items flipped); excluded for flipping answers across repeats: "
        "0.7 (1 of 8 items))",
    ]
    by_step = {tokens: [b for b in bodies if b["max_tokens"] == tokens] for tokens in (16, 24, 32)}
    assert set().union(*map(_prompts, by_step[16])) == {"BAD", "GOOD"}
    assert len(by_step[24]) == 8 * 2 * 3 and set().union(*map(_prompts, by_step[24])) == {"GOOD"}
    assert len(by_step[32]) == 8 * 2 and set().union(*map(_prompts, by_step[32])) == {"GOOD"}
    assert {b["temperature"] for b in by_step[32]} == {0.0}
    recorded = json.loads((project.root / "results" / "inv" / "picks.json").read_text())
    assert [(p["step"], p["axis"], p["value"], p["rule"]) for p in recorded["picks"]] == [
        ("sweep", "prompt", "good", "separable"), ("final", "prompt", "good", "separable"),
        ("final", "temperature", 0.0, "no flips")]


def test_a_second_run_resumes_every_step_and_sends_nothing(project: Project) -> None:
    with ThreadedFaultServer(_planted_plan()) as server:
        path = _project(project, server.url, [{"name": "bad", "text": "BAD {{ config | tojson }}"},
                                              {"name": "good", "text": "GOOD {{ config | tojson }}"}])
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        sent = server.stats()["requests"]
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        assert server.stats()["requests"] == sent
    # Each step's store is its experiment's own: the step can be run alone.
    assert (project.root / "results" / "sweep" / "results.sqlite").is_file()


def test_indistinguishable_prompts_are_a_tie_and_the_first_declared_is_used(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # "first" is right on 7 of 8 items, "second" on all 8: more accurate, and better than always answering
    # the majority class, but not separable from "first" (1 discordant item, McNemar p=1). The pick must
    # be the first declared, the less accurate one, and say why.
    script = _script("FIRST", set(range(7))) | _script("SECOND", set(range(8))) | _script("OWN", set(range(8)))
    with ThreadedFaultServer(FaultPlan(script=script, record_bodies=True)) as server:
        path = _project(project, server.url, [{"name": "first", "text": "FIRST {{ config | tojson }}"},
                                              {"name": "second", "text": "SECOND {{ config | tojson }}"}])
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        bodies = server.stats()["bodies"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("pick: sweep.prompt = first (no prompt is separable from the runner-up (second vs first: 8 vs "
                        "7 of 8 items right, McNemar p=1): the first declared of the tied candidates (first, second), "
                        "first, is used)")
    assert set().union(*(_prompts(b) for b in bodies if b["max_tokens"] == 24)) == {"FIRST"}


def test_report_json_shape(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_planted_plan()) as server:
        path = _project(project, server.url, [{"name": "bad", "text": "BAD {{ config | tojson }}"},
                                              {"name": "good", "text": "GOOD {{ config | tojson }}"}])
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["report", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["name", "question", "threshold", "steps", "picks", "hypotheses", "decision", "findings"]
    assert all(list(f) == ["step", "hypothesis", "kind", "subject", "text", "weight"] for f in data["findings"])
    assert (data["name"], data["question"], data["threshold"]) == (
        "planted", "Is the model viable at 60%?", {"metric": "accuracy", "min": 0.6})
    assert [(s["name"], s["experiment"], s["hypothesis"], s["uses"], s["status"], s["totals"])
            for s in data["steps"]] == [
        ("prompts", "prompts.yaml", "H1", {}, "done", {"planned": 16, "ok": 16, "failed": 0, "missing": 0}),
        ("sweep", "sweep.yaml", "H2", {"prompt": "good"}, "done", {"planned": 48, "ok": 48, "failed": 0, "missing": 0}),
        ("final", "final.yaml", None, {"prompt": "good", "temperature": 0.0}, "done",
         {"planned": 16, "ok": 16, "failed": 0, "missing": 0})]
    assert all(list(s) == ["name", "experiment", "hypothesis", "uses", "status", "totals", "report"]
               for s in data["steps"])
    # Each step's report is that experiment's own JSON report, as run (with the picked values).
    sweep = data["steps"][1]["report"]
    assert [(r["temperature"], r["accuracy"]["value"]) for r in sweep["tables"][0]["rows"]] == [
        (0.0, 0.75), (0.7, pytest.approx(23 / 24))]
    assert [list(p) for p in data["picks"]] == [["step", "axis", "value", "from", "rule", "why", "evidence"]] * 3
    assert [(p["step"], p["axis"], p["value"], p["from"]) for p in data["picks"]] == [
        ("sweep", "prompt", "good", "prompts"), ("final", "prompt", "good", "prompts"),
        ("final", "temperature", 0.0, "sweep")]
    candidates = data["picks"][2]["evidence"]["candidates"]
    assert [(c["value"], c["items_right"], c["flipped_items"]) for c in candidates] == [(0.0, 6, 0), (0.7, 8, 1)]
    # The hypotheses table (H1-H6 always) and the decision from the last step.
    assert [list(h) for h in data["hypotheses"]] == [["id", "name", "step", "tested", "effect", "interval", "p",
                                                      "n_items", "verdict", "items_to_decide", "why"]] * 6
    assert [(h["id"], h["name"], h["step"], h["verdict"]) for h in data["hypotheses"]] == [
        ("H1", "prompt", "prompts", "supported"), ("H2", "sampling", "sweep", "inconclusive"),
        ("H3", "context window", None, "not tested"), ("H4", "general vs code model", None, "not tested"),
        ("H5", "quantization", None, "not tested"), ("H6", "system prompt", None, "not tested")]
    h1, h2 = data["hypotheses"][:2]
    assert (h1["effect"], h1["interval"], h1["n_items"], h1["items_to_decide"]) == (1.0, [1.0, 1.0], 8, None)
    assert h1["p"] == pytest.approx(2 * 0.5 ** 8)
    # 0.7 vs 0.0: item 0 right 2 of 3 vs 3 of 3, items 6 and 7 right 3 of 3 vs 0 of 3; 2 discordant by majority.
    assert (h2["effect"], h2["n_items"]) == (pytest.approx(23 / 24 - 0.75), 8)
    assert list(data["decision"]) == ["verdict", "sentence", "step", "n_items", "interval", "metric", "min",
                                      "confidence"]
    # The final step's prompt and temperature were picked among 2 x 2 on these 8 items: its 95% interval
    # [0.68, 1.00] would clear the bar, the 98.75% one that allows for the choice does not.
    assert {k: v for k, v in data["decision"].items() if k != "interval"} == {
        "verdict": "not decidable", "step": "final", "n_items": 8, "metric": "accuracy", "min": 0.6,
        "confidence": 0.9875,
        "sentence": "not decidable at n=8 items: accuracy 1.00 [0.56, 1.00] straddles 0.60 over 8 items x 2 repeats "
                    "(step final; a 98.8% interval, Bonferroni over the 4 settings it was chosen among on these items: "
                    "2 prompt values of step prompts x 2 temperature values of step sweep); about 9 items would "
                    "decide it (exact binomial test, 80% power)"}
    assert data["decision"]["interval"] == [pytest.approx(0.56, abs=0.005), 1.0]


def test_a_final_step_of_several_rows_is_judged_on_an_interval_that_allows_for_choosing_its_best(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # No picks: the final step itself has two rows (two temperatures), the most accurate judged.
    with ThreadedFaultServer(_planted_plan()) as server:
        path = _project(project, server.url, [{"name": "bad", "text": "BAD {{ config | tojson }}"}])
        own = [{"name": "own", "text": "OWN {{ config | tojson }}"}]
        _write(project, "final.yaml", step_experiment(server.url, "final", own, 32, temperature=[0.0, 0.5], repeats=2))
        _write(project, "inv.yaml", {**INVESTIGATION, "steps": [
            *INVESTIGATION["steps"][:2], {"name": "final", "experiment": "final.yaml"}]})
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["report", str(path), "--format", "json"]) == 0
    decision = json.loads(capsys.readouterr().out)["decision"]
    # OWN is right on all 8 items at both: 1.00 [0.68, 1.00] at 95%, [0.61, 1.00] at 97.5%.
    assert (decision["verdict"], decision["confidence"]) == ("viable", 0.975)
    assert decision["interval"] == [pytest.approx(0.614, abs=0.005), 1.0]
    assert "; a 97.5% interval, Bonferroni over the 2 settings it was chosen among on these items: 2 rows of the " \
           "step): use " in decision["sentence"]


def test_report_before_any_run_says_to_run_first(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = _project(project, "http://127.0.0.1:9", [{"name": "a", "text": "A {{ config | tojson }}"}])
    assert main(["report", str(path)]) == 2
    assert capsys.readouterr().err == f"runner: {path}: no results yet; run `runner run {path}` first\n"


def test_validate_checks_every_step_with_every_candidate(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # Prompt b reads a field only the prompts step's dataset has: the prompts step is valid, and so is the
    # sweep with its first candidate (a); the sweep with b, which the prompts step may pick, is not.
    path = _project(project, "http://127.0.0.1:9", [{"name": "a", "text": "A {{ config | tojson }}"},
                                                    {"name": "b", "text": "B {{ config | tojson }} {{ note }}"}])
    project.write_dataset([{**row, "note": "n"} for row in ITEMS], "noted.jsonl")
    prompts = yaml.safe_load((project.root / "prompts.yaml").read_text())
    prompts["dataset"]["path"] = "noted.jsonl"
    _write(project, "prompts.yaml", prompts)
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {project.root / 'sweep.yaml'}: prompts.variants[0]: with prompt=b from step 'prompts': template "
        "inline uses an undefined variable for item 'i0': 'note' is undefined; use a dataset field, `item`, or a "
        "name from prompts.context\n")
    prompts["prompts"]["variants"][1]["text"] = "B {{ config | tojson }}"
    _write(project, "prompts.yaml", prompts)
    assert main(["validate", str(path), "--offline"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"ok: {path}: 3 steps",
        f"  prompts: {project.root / 'prompts.yaml'}: 16 jobs = 2 cells x 8 items x 1 repeats",
        f"  sweep: {project.root / 'sweep.yaml'}: 48 jobs = 2 cells x 8 items x 3 repeats",
        f"  final: {project.root / 'final.yaml'}: 16 jobs = 1 cells x 8 items x 2 repeats",
    ]
    assert not (project.root / "results").exists()


def _steps(*edits: tuple[int, str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(INVESTIGATION))
    for index, key, value in edits:
        if value is None:
            del data["steps"][index][key]
        else:
            data["steps"][index][key] = value
    return data


BAD_FILES = {
    "unknown key in a step": (
        _steps((0, "hypotesis", "H1")),
        "steps[0].hypotesis: unknown key 'hypotesis'; allowed keys here: name, experiment, hypothesis, use"),
    "unknown key in a use": (
        _steps((1, "use", {"prompt": {"from": "prompts", "pik": "best"}})),
        "steps[1].use.prompt.pik: unknown key 'pik'; allowed keys here: from, pick"),
    "from a later step": (
        _steps((1, "use", {"prompt": {"from": "final"}})),
        "steps[1].use.prompt.from: step 'final' is not before 'sweep'; name an earlier step: prompts"),
    "from an unknown step": (
        _steps((1, "use", {"prompt": {"from": "prompt"}})),
        "steps[1].use.prompt.from: unknown step 'prompt'; name an earlier step: prompts"),
    "axis not in the source's experiment": (
        _steps((1, "use", {"temperature": {"from": "prompts"}})),
        "steps[1].use.temperature: 'temperature' is not an axis of step 'prompts' (prompts.yaml declares model, "
        "prompt); take temperature from a step whose experiment varies it, or remove it"),
    "unknown axis": (
        _steps((1, "use", {"temprature": {"from": "prompts"}})),
        "steps[1].use.temprature: unknown axis 'temprature'; use one of: model, quantization, system, prompt, "
        "temperature, top_p, top_k, seed, max_tokens, stop, response_format"),
    "unknown hypothesis": (
        _steps((0, "hypothesis", "H7")),
        "steps[0].hypothesis: unknown value 'H7'; use 'H1', 'H2', 'H3', 'H4', 'H5' or 'H6'"),
    "a missing experiment file": (
        _steps((0, "experiment", "nope.yaml")),
        "steps[0].experiment: experiment file nope.yaml not found; give its path relative to the investigation file"),
    "duplicate step names": (
        _steps((2, "name", "sweep")),
        "steps[2].name: duplicate step name 'sweep' (steps[1] has it); give each step a unique name"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_investigation_files_are_one_line_and_exit_2(project: Project, capsys: pytest.CaptureFixture[str],
                                                         case: str) -> None:
    data, line = BAD_FILES[case]
    _project(project, "http://127.0.0.1:9", [{"name": "a", "text": "A {{ config | tojson }}"}])
    path = _write(project, "inv.yaml", data)
    for verb in (["validate", "--offline"], ["run"], ["report"]):
        assert main([verb[0], str(path), *verb[1:]]) == 2
        assert capsys.readouterr().err == f"runner: {path}: {line}\n"
    assert not (project.root / "results").exists()


def test_an_experiment_verb_on_an_investigation_says_which_verbs_take_it(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = _project(project, "http://127.0.0.1:9", [{"name": "a", "text": "A {{ config | tojson }}"}])
    assert main(["plan", str(path)]) == 2
    assert capsys.readouterr().err == (f"runner: {path}: steps: this is an investigation (it has steps:), not an "
                                       "experiment; runner validate, run, report and explain take it; other verbs take "
                                       "one of its steps' experiments\n")


def test_the_shipped_investigation_is_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    assert main(["validate", str(root / "investigations" / "smollm2.yaml"), "--offline"]) == 0


def test_a_picked_prompt_with_its_own_system_prompt_meets_a_system_axis(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # H6 tests system prompts as an axis: the picked prompt's own system prompt gives way to it there,
    # and to the picked system prompt in the step after (the two cannot be combined).
    with ThreadedFaultServer(FaultPlan(record_bodies=True)) as server:
        project.write_dataset(ITEMS)
        own = {"name": "good", "text": "GOOD {{ config | tojson }}", "system": "OWNSYS"}
        _write(project, "prompts.yaml", step_experiment(server.url, "prompts", [own], 16))
        systems = step_experiment(server.url, "systems", [{"name": "x", "text": "X {{ config | tojson }}"}], 24)
        systems["prompts"]["systems"] = [{"name": "none"}, {"name": "terse", "text": "TERSE"}]
        _write(project, "systems.yaml", systems)
        final = step_experiment(server.url, "final", [{"name": "own", "text": "OWN {{ config }}"}], 32)
        _write(project, "final.yaml", final)
        path = _write(project, "inv.yaml", {
            "name": "sys", "question": "q?", "threshold": {"metric": "accuracy", "min": 0.6},
            "steps": [{"name": "prompts", "experiment": "prompts.yaml"},
                      {"name": "system", "experiment": "systems.yaml", "hypothesis": "H6",
                       "use": {"prompt": {"from": "prompts", "pick": "best"}}},
                      {"name": "final", "experiment": "final.yaml",
                       "use": {"prompt": {"from": "prompts", "pick": "best"},
                               "system": {"from": "system", "pick": "best"}}}]})
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
        bodies = server.stats()["bodies"]
    capsys.readouterr()

    def systems_sent(tokens: int) -> set[str | None]:
        sent = set()
        for b in (b for b in bodies if b["max_tokens"] == tokens):
            system = [m["content"] for m in b["messages"] if m["role"] == "system"]
            sent.add(system[0] if system else None)
        return sent

    assert systems_sent(16) == {"OWNSYS"}
    assert systems_sent(24) == {None, "TERSE"}
    assert systems_sent(32) == {None}  # tied systems: the first declared, `none`, is what was picked


def test_explain_ties_each_steps_findings_to_a_hypothesis(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # The bad prompt's answers are all cut off at max_tokens: a finding on the prompts step, tagged as
    # prompt engineering, so H1; the text report lists it under the findings by step too.
    cut = {f'BAD {{"name": "svc{n}",': ('{"valid": tr', "length") for n in range(len(ITEMS))}
    with ThreadedFaultServer(FaultPlan(script={**cut, **_script("GOOD", set(range(8)))})) as server:
        path = _project(project, server.url, [{"name": "bad", "text": "BAD {{ config | tojson }}"},
                                              {"name": "good", "text": "GOOD {{ config | tojson }}"}])
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["explain", str(path), "--format", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)["findings"]
    truncated = [f for f in findings if f["kind"] == "truncated"]
    assert [(f["step"], f["hypothesis"], f["subject"]) for f in truncated] == [("prompts", "H1", "prompt=bad")]
    assert truncated[0]["text"].startswith("prompt=bad: 8 of 8 answers cut off at max_tokens=16")
    assert main(["report", str(path)]) == 0
    assert f"  [prompts, H1] {truncated[0]['text']}" in capsys.readouterr().out.splitlines()


def _junit(path: Path) -> Any:
    import xml.etree.ElementTree as ET

    return ET.parse(path).getroot().find("testsuite")


def test_junit_has_the_decision_as_the_case_that_fails_and_a_case_per_hypothesis(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # The final step is judged on items of its own (held out from the picks): no selection to allow for.
    plan = _planted_plan()
    plan.script.update({f'GOOD {{"name": "svc{n}",': (json.dumps({"valid": n % 2 == 0}), "stop") for n in range(8, 16)})
    with ThreadedFaultServer(plan) as server:
        path = _project(project, server.url, [{"name": "bad", "text": "BAD {{ config | tojson }}"},
                                              {"name": "good", "text": "GOOD {{ config | tojson }}"}])
        project.write_dataset([{"id": f"h{n}", "config": {"name": f"svc{n}", "port": 8000 + n}, "valid": n % 2 == 0}
                               for n in range(8, 16)], "held_out.jsonl")
        final = yaml.safe_load((project.root / "final.yaml").read_text())
        final["dataset"]["path"] = "held_out.jsonl"
        _write(project, "final.yaml", final)
        out = project.root / "ci" / "junit.xml"
        assert main(["run", str(path), "--quiet", "--no-report", "--junit", str(out), "--fail-on-verdict"]) == 0
    suite = _junit(out)
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "planted", "7", "0", "5")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "decision: accuracy >= 0.6", "H1 prompt", "H2 sampling", "H3 context window", "H4 general vs code model",
        "H5 quantization", "H6 system prompt"]
    assert cases[0].findtext("system-out", "").startswith("viable: accuracy 1.00 [0.68, 1.00] >= 0.60")
    assert cases[1].findtext("system-out", "").startswith("supported: ")
    assert [c.find("skipped").get("message") for c in cases[2:]] == ["inconclusive"] + ["not tested"] * 4
    # The same file from `runner report`.
    capsys.readouterr()
    again = project.root / "again.xml"
    assert main(["report", str(path), "--junit", str(again)]) == 0
    assert again.read_text() == out.read_text()


def test_junit_fails_the_decision_when_the_model_is_inadequate(project: Project) -> None:
    with ThreadedFaultServer(_planted_plan()) as server:
        path = _project(project, server.url, [{"name": "bad", "text": "BAD {{ config | tojson }}"}])
        out = project.root / "junit.xml"
        assert main(["run", str(path), "--quiet", "--no-report", "--junit", str(out), "--fail-on-verdict"]) == 3
    suite = _junit(out)
    assert (suite.get("tests"), suite.get("failures")) == ("7", "1")
    failure = suite.find("testcase").find("failure")
    assert failure.get("message") == "inadequate"
    assert failure.text.startswith("inadequate: accuracy 0.00")
