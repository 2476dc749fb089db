"""The inter-rater ceiling: Cohen's kappa between two human label fields, shown next to the model's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, base_experiment
from runner.analysis.stats import cohen_kappa
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

# Rater 1 and rater 2 on 16 items (8 twice over, enough for a bootstrap interval): they differ on i3, i6,
# i11 and i14.
FIRST = ["yes", "yes", "yes", "no", "no", "no", "yes", "no"] * 2
SECOND = ["yes", "yes", "yes", "yes", "no", "no", "no", "no"] * 2


def _experiment(url: str, **report: Any) -> dict[str, Any]:
    exp = base_experiment(f"{url}/v1")
    exp["prompts"] = {"variants": [{"name": "p", "text": "Judge {{ id }}."}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": "r1"}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 16}
    exp["repeats"] = 1
    exp["scorers"] = [{"type": "binary", "field": "ok", "label_map": {"yes": True, "no": False}}]
    exp["report"] = {"metrics": ["n", "accuracy", "kappa"], **report}
    return exp


def _write(project: Project) -> None:
    project.write_dataset([{"id": f"i{n}", "r1": a, "r2": b} for n, (a, b) in enumerate(zip(FIRST, SECOND,
                                                                                        strict=True))])


def test_kappa_between_the_humans_is_cohens_and_sits_next_to_the_models(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write(project)
    # The model says ok=true for i0-i3, i8-i11 and false for the rest: 12 of 16 right against r1.
    plan = FaultPlan(script={f"Judge i{n}.": (json.dumps({"ok": n % 8 < 4}), "stop") for n in range(16)})
    with ThreadedFaultServer(plan) as server:
        path = project.write(_experiment(server.url, human_agreement={"fields": ["r1", "r2"]}))
        assert main(["run", str(path), "--quiet"]) == 0
        capsys.readouterr()
        assert main(["report", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)["human_agreement"]
    # By hand: 12 of 16 alike; each rater says yes 8 times, so chance agreement is 1/2 and
    # kappa = (12/16 - 1/2) / (1 - 1/2) = 0.5.
    assert cohen_kappa(FIRST, SECOND) == 0.5
    assert (data["kappa"], data["agree"], data["n_items"], data["disagreements"]) == (
        0.5, 12, 16, ["i3", "i6", "i11", "i14"])
    assert data["low"] <= 0.5 <= data["high"] and data["interval"] == "item bootstrap"
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    # The model's kappa against r1: right on i0-i2, i4, i5, i7 and the same eight; tp 6, fn 2, fp 2, tn 6.
    model_kappa = cohen_kappa(FIRST, (["yes"] * 4 + ["no"] * 4) * 2)
    assert (f"rater agreement (the ceiling for the model's kappa): r1 vs r2: Cohen's kappa 0.50 "
            f"[{data['low']:.2f}, {data['high']:.2f}], 12 of 16 items the model answered alike (differ on i3, i6, "
            "i11, i14); the model's "
            f"kappa against r1: model=fake {model_kappa:.2f} [") in out


def test_under_ten_items_neither_kappa_has_an_interval_nor_a_bare_value(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write(project)
    plan = FaultPlan(script={f"Judge i{n}.": (json.dumps({"ok": n % 8 < 4}), "stop") for n in range(16)})
    with ThreadedFaultServer(plan) as server:
        path = project.write(_experiment(server.url, human_agreement={"fields": ["r1", "r2"]}))
        assert main(["run", str(path), "--quiet", "--limit", "8"]) == 0
        capsys.readouterr()
        assert main(["report", str(path), "--limit", "8"]) == 0
    out = capsys.readouterr().out
    # Over the first 8 items both kappas are defined (0.50), but 8 items are too few for a bootstrap interval.
    assert ("rater agreement (the ceiling for the model's kappa): r1 vs r2: Cohen's kappa - (no interval under 10 "
            "items), 6 of 8 items the model answered alike (differ on i3, i6); the model's kappa against r1: "
            "model=fake - (no interval "
            "under 10 items) over 8 items") in out


def test_with_limit_the_ceiling_is_over_the_same_items_as_the_model(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write(project)
    with ThreadedFaultServer(FaultPlan()) as server:
        path = project.write(_experiment(server.url, human_agreement={"fields": ["r1", "r2"]}))
        assert main(["run", str(path), "--quiet", "--limit", "4"]) == 0
        capsys.readouterr()
        assert main(["report", str(path), "--format", "json", "--limit", "4"]) == 0
    data = json.loads(capsys.readouterr().out)["human_agreement"]
    assert (data["n_items"], data["agree"]) == (4, 3)
    # Rater 2 says yes on all 4 of these items: kappa is undefined, as the model's is for one class.
    assert data["kappa"] is None


def test_the_ceiling_is_over_the_items_the_model_answered_not_all_planned(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write(project)
    with ThreadedFaultServer(FaultPlan()) as server:
        path = project.write(_experiment(server.url, human_agreement={"fields": ["r1", "r2"]}))
        assert main(["run", str(path), "--quiet", "--limit", "4"]) == 0
        capsys.readouterr()
        # Without --limit the report plans all 16 items; the model answered 4 of them.
        assert main(["report", str(path), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)["human_agreement"]
    assert (data["n_items"], data["agree"]) == (4, 3)


def test_a_rater_field_missing_from_the_dataset_is_one_line(project: Project,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _write(project)
    path = project.write(_experiment("http://127.0.0.1:9", human_agreement={"fields": ["r1", "r3"]}))
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: report.human_agreement.fields[1]: dataset items ['i0', 'i1', 'i2'] have no field 'r3'; "
        "add that rater's label to every row or name the field that holds it\n")


def test_the_same_field_twice_is_not_an_agreement(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write(project)
    path = project.write(_experiment("http://127.0.0.1:9", human_agreement={"fields": ["r1", "r1"]}))
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == (f"runner: {path}: report.human_agreement.fields: field 'r1' is named twice: a "
                                       "rater agrees with itself; name the two raters' label fields, e.g. "
                                       "[human_label, human_label_2]\n")


def test_one_rater_is_not_an_agreement(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _write(project)
    path = project.write(_experiment("http://127.0.0.1:9", human_agreement={"fields": ["r1"]}))
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == (f"runner: {path}: report.human_agreement.fields: the list has 1 item, at "
                                       "least 2 needed; give at least 2 items\n")


def test_the_semantic_datasets_two_raters_by_hand() -> None:
    rows = [json.loads(line) for line in
            (Path(__file__).resolve().parent.parent / "datasets" / "semantic_thresholds.jsonl").open()]
    first = [r["human_label"] for r in rows]
    second = [r["human_label_2"] for r in rows]
    assert set(second) == set(first) == {"sensible", "not_sensible"}
    # 15 of 16 alike (st14 differs); rater 1 says sensible 8 times, rater 2 7 times, so chance
    # agreement is (8*7 + 8*9) / 16^2 = 0.5 and kappa = (15/16 - 0.5) / 0.5 = 0.875.
    assert [r["id"] for r in rows if r["human_label"] != r["human_label_2"]] == ["st14"]
    assert cohen_kappa(first, second) == 0.875
