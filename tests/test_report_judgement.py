"""What the report may and may not conclude: fresh scores after a label fix, no made-up agreement,
no verdict over failed requests, and the dangerous error named."""

from __future__ import annotations

import json

import pytest

from conftest import ITEMS, Project, base_experiment
from runner.analysis.metrics import ITEM_COLUMNS, CellStats
from runner.cli import main
from runner.reporting.judgement import best
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


def _cell(per_item: dict[str, list[bool]], label: bool = True) -> CellStats:
    """A cell's stats from each item's right/wrong answers over its repeats (accuracy only)."""
    s = CellStats()
    for item, answers in per_item.items():
        row = s.items.setdefault(item, [0] * len(ITEM_COLUMNS))
        for r, ok in enumerate(answers):
            s.ok += 1
            s.correct += ok
            row[ITEM_COLUMNS.index("ok")] += 1
            row[ITEM_COLUMNS.index("correct")] += ok
            s.correct_by[("c", item, r)] = ok
            s.runs[("c", r)][0] += ok
            s.runs[("c", r)][1] += 1
            s.answers[("c", item)].append(ok == label)
    return s


def test_best_is_not_named_when_the_item_test_points_the_other_way() -> None:
    # A: 30 items 3/3, 30 items 0/3 (0.50). B: 42 items 2/3, 18 items 0/3 (0.47): B wins every discordant
    # item by majority, so A may not be called best for its higher accuracy over answers.
    a = _cell({f"i{k}": [k < 30] * 3 for k in range(60)})
    b = _cell({f"i{k}": [True, True, False] if k < 42 else [False] * 3 for k in range(60)})
    (note,) = best(["prompt"], [], {(("A",), ()): a, (("B",), ()): b}, None)
    assert note.startswith("no single best: prompt=A (accuracy 0.50) vs prompt=B (0.47), McNemar p=")
    assert note.endswith("prompt=A is more accurate over answers, but prompt=B is right on more items by majority")


def test_pooled_rows_cluster_flips_by_item() -> None:
    # The same 10 items under four prompts, each flipping on the same 3 items: 40 units, but 10 items.
    cells = []
    for prompt in range(4):
        s = CellStats()
        for k in range(10):
            s.answers[(f"p{prompt}", f"i{k}")] = [True, k >= 3]
        cells.append(s)
    pooled = cells[0].merge(cells[1]).merge(cells[2]).merge(cells[3])
    alone, together = cells[0].clustered("flip_rate"), pooled.clustered("flip_rate")
    assert alone is not None and together is not None
    assert together.value == alone.value == 0.3
    assert (together.n_items, together.n_jobs) == (10, 40)
    assert together.high - together.low >= (alone.high - alone.low) - 0.02


def test_run_mean_has_no_interval_when_the_runs_differ_in_size() -> None:
    s = _cell({"i1": [True, True], "i2": [True], "i3": [False, True]})
    assert s.clustered("run_mean") is None
