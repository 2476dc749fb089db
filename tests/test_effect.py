"""`report.effect`: an experiment's report ends in "<axis> does / does not explain the score: <value>
vs <baseline> difference [interval] over N items", by the investigation's rule, against a server with
planted answers: a prompt that is right on 36 of 40 items against one right on 10 explains it; two
prompts with the same answers over 40 items do not; at 2 items nothing is shown, and the sentence
says how many items would decide it. Bad keys are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Project, step_experiment
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

N = 40
ITEMS = [{"id": f"i{n}", "config": {"name": f"svc{n}"}, "valid": n % 2 == 0} for n in range(N)]
RIGHT = {"GOOD": set(range(36)), "BAD": {n for n in range(N) if n % 4 == 0}, "SAME": set(range(36))}


def _plan() -> FaultPlan:
    script = {}
    for prefix, right in RIGHT.items():
        for n in range(N):
            label = ITEMS[n]["valid"]
            script[f'{prefix} {{"name": "svc{n}"}}'] = (json.dumps({"valid": label if n in right else not label}),
                                                         "stop")
    return FaultPlan(script=script)


def _experiment(project: Project, url: str, prompts: list[str], effect: dict[str, Any] | None) -> Path:
    project.write_dataset(ITEMS)
    data = step_experiment(url, "effect", [{"name": p.lower(), "text": p + " {{ config | tojson }}"} for p in prompts],
                           16)
    if effect is not None:
        data["report"] = {"effect": effect}
    path = project.root / "exp.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _run(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, dict[str, Any]]:
    assert main(["run", str(path), "--quiet", "--no-report", *extra]) == 0
    capsys.readouterr()
    assert main(["report", str(path), *extra]) == 0
    text = capsys.readouterr().out
    assert main(["report", str(path), "--format", "json", *extra]) == 0
    return text, json.loads(capsys.readouterr().out)


def test_a_better_prompt_explains_the_score(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _experiment(project, server.url, ["BAD", "GOOD"], {"axis": "prompt", "baseline": "bad"})
        text, data = _run(path, capsys)
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    # 27 items right only with good, 1 only with bad: exact McNemar p = 2 * 29 / 2**28.
    assert last == ("Answer: prompt does explain the score: good vs bad difference +0.65 [+0.47, +0.80] over 40 "
                    "items (McNemar p=2.16e-07, Holm 2.16e-07)")
    effect = data["effect"]
    assert (effect["axis"], effect["baseline"], effect["value"], effect["verdict"], effect["n_items"]) == \
        ("prompt", "bad", "good", "supported", 40)
    assert effect["difference"] == pytest.approx(0.65)
    assert effect["interval"][0] > 0.4


def test_the_baseline_turns_the_difference_round(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _experiment(project, server.url, ["BAD", "GOOD"], {"axis": "prompt", "baseline": "good"})
        _, data = _run(path, capsys)
    assert (data["effect"]["value"], data["effect"]["baseline"]) == ("bad", "good")
    assert data["effect"]["difference"] == pytest.approx(-0.65)
    assert data["effect"]["interval"][1] < -0.4


def test_the_same_answers_over_40_items_do_not_explain_it(project: Project,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _experiment(project, server.url, ["GOOD", "SAME"], {"axis": "prompt"})
        text, data = _run(path, capsys)
    assert text.rstrip("\n").rsplit("\n", 1)[-1] == (
        "Answer: prompt does not explain the score: same vs good difference +0.00 [+0.00, +0.00] over 40 items; "
        "every value's interval lies within +-0.10 of good, the smallest effect that matters")
    assert data["effect"]["verdict"] == "refuted"


def test_at_2_items_it_says_what_would_decide(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _experiment(project, server.url, ["GOOD", "SAME"], {"axis": "prompt"})
        text, data = _run(path, capsys, "--limit", "2")
    assert text.rstrip("\n").rsplit("\n", 1)[-1] == (
        "Answer: prompt does not yet show whether it explains the score at n=2 items: same vs good difference "
        "+0.00 [+0.00, +0.00] over 2 items; neither shown (the interval lies within +-0.10 but over fewer than 35 "
        "items, too few to refute an effect of 0.10 (0 of 2 items differing still allows 0.66)); about 35 items "
        "would decide it")
    assert (data["effect"]["verdict"], data["effect"]["items_to_decide"]) == ("inconclusive", 35)


def test_without_the_key_there_is_no_answer_line(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _experiment(project, server.url, ["BAD", "GOOD"], None)
        text, data = _run(path, capsys, "--limit", "2")
    assert "Answer:" not in text
    assert data["effect"] is None


@pytest.mark.parametrize(("effect", "error"), [
    ({"axis": "temperature"}, "report.effect.axis: 'temperature' does not vary in this experiment: its effect "
                              "cannot be measured; use an axis with more than one value: prompt"),
    ({"axis": "colour"}, "report.effect.axis: 'colour' is not an axis: its effect cannot be measured; use an axis "
                         "with more than one value: prompt"),
    ({"axis": "prompt", "baseline": "best"}, "report.effect.baseline: baseline 'best' is not a value of prompt; "
                                             "use one of: bad, good, or remove the key"),
])
def test_a_wrong_effect_key_is_one_line(project: Project, capsys: pytest.CaptureFixture[str],
                                        effect: dict[str, Any], error: str) -> None:
    path = _experiment(project, "http://127.0.0.1:9", ["BAD", "GOOD"], effect)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == f"runner: {path}: {error}\n"


def test_a_step_whose_effect_axis_an_earlier_pick_replaces_still_runs(project: Project,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        first = _experiment(project, server.url, ["BAD", "GOOD"], None)
        second = yaml.safe_load(first.read_text()) | {"name": "second", "report": {"effect": {"axis": "prompt"}}}
        (project.root / "second.yaml").write_text(yaml.safe_dump(second, sort_keys=False))
        (project.root / "inv.yaml").write_text(yaml.safe_dump({
            "name": "inv", "question": "Viable at 60%?", "threshold": {"metric": "accuracy", "min": 0.6},
            "steps": [{"name": "prompts", "experiment": "exp.yaml", "hypothesis": "H1"},
                      {"name": "second", "experiment": "second.yaml", "use": {"prompt": {"from": "prompts"}}}]}))
        assert main(["run", str(project.root / "inv.yaml"), "--quiet", "--limit", "2"]) == 0
        # Read alone, the step still asks its question (the investigation ran only the picked prompt).
        capsys.readouterr()
        assert main(["report", str(project.root / "second.yaml"), "--limit", "2"]) == 0
    assert capsys.readouterr().out.endswith("Answer: prompt: cannot say whether it explains the score: no item was "
                                            "answered under both bad and another value yet\n")


def test_a_store_with_no_answer_for_this_plan_claims_no_findings(project: Project,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _experiment(project, server.url, ["BAD", "GOOD"], None)
        assert main(["run", str(path), "--quiet", "--no-report", "--limit", "1"]) == 0
    # Other items now: the store holds answers, none of them to this plan's jobs.
    project.write_dataset([{**item, "id": f"new{n}"} | {"config": {"name": f"other{n}"}} for n, item in
                           enumerate(ITEMS[:2])])
    capsys.readouterr()
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Findings (most important first):\n  effect: no findings yet: no job has an answer stored\n" in out


def test_the_html_report_opens_with_the_answer(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(_plan()) as server:
        path = _experiment(project, server.url, ["GOOD", "SAME"], {"axis": "prompt"})
        _run(path, capsys)
    out = project.root / "report.html"
    assert main(["report", str(path), "--format", "html", "--output", str(out)]) == 0
    page = out.read_text()
    assert ("<p class='answer' id='answer'><strong>Answer:</strong> prompt does not explain the score: same vs good "
            "difference +0.00 [+0.00, +0.00] over 40 items; every value&#x27;s interval lies within +-0.10 of good, "
            "the smallest effect that matters</p>") in page
    assert page.index("id='answer'") < page.index("id='tables'")
