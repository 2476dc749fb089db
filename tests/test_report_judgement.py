"""What the report may and may not conclude: fresh scores after a label fix, no made-up agreement,
no verdict over failed requests, and the dangerous error named."""

from __future__ import annotations

import json

import pytest

from conftest import ITEMS, Project, base_experiment
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer


def _report(path: str, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["report", path, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_a_fixed_label_is_scored_again(project: Project, fault_server: ThreadedFaultServer,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["sampling"] = {"temperature": 0.0, "max_tokens": 8}
    exp["repeats"] = 1
    exp["report"] = {"rows": ["prompt"], "metrics": ["n", "accuracy"]}
    path = str(project.write(exp))
    assert main(["run", path, "--quiet", "--no-report"]) == 0
    before = [r["accuracy"]["value"] for r in _report(path, capsys)["tables"][0]["rows"]]
    # Every label flipped: the prompts (and so the jobs) are the same, every score must flip.
    project.write_dataset([{**row, "valid": not row["valid"]} for row in ITEMS])
    after = [r["accuracy"]["value"] for r in _report(path, capsys)["tables"][0]["rows"]]
    assert after == [pytest.approx(1 - b) for b in before]


def test_agreement_needs_repeats(project: Project, fault_server: ThreadedFaultServer,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["repeats"] = 1
    exp["report"] = {"rows": ["prompt"], "metrics": ["n", "agreement", "flip_rate"]}
    path = str(project.write(exp))
    assert main(["run", path, "--quiet", "--no-report"]) == 0
    rows = _report(path, capsys)["tables"][0]["rows"]
    assert {r["agreement"]["value"] for r in rows} == {None}  # nothing was repeated, so nothing agreed: null


def test_no_verdict_over_failed_requests_and_the_dangerous_error_is_named(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(FaultPlan(rate_empty_choices=0.3, seed=3)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["report"] = {"rows": ["prompt"], "threshold": {"metric": "accuracy", "min": 0.6}}
        path = str(project.write(exp))
        assert main(["run", path, "--quiet", "--no-report"]) == 0
    notes = _report(path, capsys)["tables"][0]["notes"]
    judged = [n for n in notes if n.startswith("prompt=")]
    assert judged and all("not judged: " in n and "requests failed" in n for n in judged), judged
    assert any(n.startswith("dangerous errors (false positives: valid=true said of an item that is not): ")
               for n in notes)


def test_agreement_over_answers_without_a_class_compares_their_text(
        project: Project, fault_server: ThreadedFaultServer, capsys: pytest.CaptureFixture[str]) -> None:
    # The fault server answers JSON without a "verdict" key: no answer states a class, and the repeats'
    # texts differ (each repeat's request has its own seed). They must not read as perfectly consistent.
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["scorers"] = [{"type": "json_field", "field": "verdict"}]
    exp["report"] = {"rows": ["prompt"], "metrics": ["n", "agreement", "flip_rate", "outcomes"]}
    path = str(project.write(exp))
    assert main(["run", path, "--quiet", "--no-report"]) == 0
    rows = _report(path, capsys)["tables"][0]["rows"]
    for row in rows:
        assert row["outcomes"] == {"wrong_shape": 1.0}
        assert row["agreement"]["value"] == 0.5  # two repeats, two different texts, for every item
        assert row["flip_rate"]["value"] == 1.0


def test_best_is_not_named_when_the_rows_are_not_separable(
        project: Project, fault_server: ThreadedFaultServer, capsys: pytest.CaptureFixture[str]) -> None:
    # The fault server's answers are a coin flip per request: no row is separable from the next.
    exp = base_experiment(f"{fault_server.url}/v1")
    path = str(project.write(exp))
    assert main(["run", path, "--quiet", "--no-report"]) == 0
    notes = _report(path, capsys)["tables"][0]["notes"]
    assert not any(n.startswith("best by accuracy") for n in notes)
    (verdict,) = [n for n in notes if n.startswith(("no single best", "no best row"))]
    assert verdict.startswith(("no single best: prompt=", "no best row: the most accurate, prompt="))


def test_a_comparison_of_two_constant_answers_says_so_in_the_report(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # Both prompts answer valid=true to everything: the comparison is of two constant answers, which
    # more items will not separate; it must not be framed as an effect too small to detect.
    plan = FaultPlan(script={"Validate": ('{"valid": true}', "stop"), "B {": ('{"valid": true}', "stop")})
    with ThreadedFaultServer(plan) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["sampling"] = {"temperature": 0.5, "seed": 1, "max_tokens": 16}
        path = str(project.write(exp))
        assert main(["run", path, "--quiet", "--no-report"]) == 0
    notes = _report(path, capsys)["tables"][0]["notes"]
    (cmp,) = [n for n in notes if n.startswith("prompt b vs a")]
    assert cmp.endswith(": both cells give a constant answer: more items will not separate them")
    assert not any("would be needed" in n for n in notes)


def test_kappa_is_undefined_not_one_when_the_stated_answers_use_one_class(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # One item answered (true, rightly), five in prose: accuracy 1/6, and the answers that state a class
    # use one class. Kappa and MCC over them say nothing: "-" / null, not the 1.00 of two agreeing constants.
    script = {'"svc0"': ('{"valid": true}', "stop")} | {f'"svc{n}"': ("I am not sure.", "stop") for n in range(1, 6)}
    with ThreadedFaultServer(FaultPlan(script=script)) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["prompts"] = {"variants": [{"name": "p", "text": "Validate: {{ config | tojson }}"}]}
        exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 16}
        exp["repeats"] = 1
        exp["report"] = {"metrics": ["n", "accuracy", "kappa", "mcc"]}
        path = str(project.write(exp))
        assert main(["run", path, "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[4].split()[1:4] == ["6", "0.17", "[0.03,"] and out[4].split()[-2:] == ["-", "-"]
    row = _report(path, capsys)["tables"][0]["rows"][0]
    assert row["kappa"]["value"] is None and row["mcc"]["value"] is None
