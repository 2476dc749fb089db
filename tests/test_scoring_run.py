"""Scoring through `runner run` against the fault server, read back through the report and explain.

The fault server's `script` gives each item the answer of our choosing (a substring of the prompt
picks it), so these tests see what a user sees: numeric labels under a regex scorer, a cut-off
repetition loop that happens to end on the right digit, and labels no text scorer can compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import runner
from conftest import Project, base_experiment
from runner.cli import main
from runner.reporting.tables import Report
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

# Four arithmetic items with numeric labels, the way a Q&A dataset writes them.
ROWS = [{"id": "q1", "question": "3 + 4", "answer": 7}, {"id": "q2", "question": "2 + 3", "answer": 5},
        {"id": "q3", "question": "6 + 6", "answer": 12.0}, {"id": "q4", "question": "1 + 1", "answer": 2}]


def _experiment(server: ThreadedFaultServer, **scorer: Any) -> dict[str, Any]:
    exp = base_experiment(f"{server.url}/v1")
    exp["prompts"] = {"variants": [{"name": "qa", "text": "[{{ id }}] What is {{ question }}?"}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": "answer"}
    exp["sampling"] = {"temperature": 0.0, "max_tokens": 16}
    exp["repeats"] = 1
    exp["scorers"] = [{"type": "regex", "pattern": r"answer is (\d+)", **scorer}]
    return exp


def _run(project: Project, server: ThreadedFaultServer, script: dict[str, tuple[str, str]],
         rows: list[dict[str, Any]] = ROWS, **scorer: Any) -> Path:
    server.set_plan(FaultPlan(script=script))
    project.write_dataset(rows)
    path = project.write(_experiment(server, **scorer))
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    return path


def _row(path: Path) -> dict[str, Any]:
    report = runner.report(path)
    assert isinstance(report, Report)
    (table,) = report.tables
    (record,) = table.records
    return record.metrics


def test_a_numeric_label_with_a_regex_scores_right(project: Project, fault_server: ThreadedFaultServer) -> None:
    # "7" captured against the label 7, "05"-style padding and 12 against 12.0: all right; q4 is wrong.
    script = {"[q1]": ("The answer is 7.", "stop"), "[q2]": ("I believe the answer is 05", "stop"),
              "[q3]": ("the answer is 12", "stop"), "[q4]": ("the answer is 3", "stop")}
    path = _run(project, fault_server, script)
    metrics = _row(path)
    assert metrics["n"] == 4
    assert metrics["accuracy"]["value"] == pytest.approx(0.75)
    assert metrics["outcomes"] == {"answered": 1.0}
    findings = runner.explain(path)
    assert [f.text for f in findings] == ["fake: 1 of 4 answers have the expected form but are wrong"]


def test_a_cut_off_answer_that_matches_is_truncated_not_right(project: Project,
                                                              fault_server: ThreadedFaultServer) -> None:
    # q2 is a repetition loop cut off at max_tokens; its last "answer is 5" is the label, and it is not
    # an answer. q4 is cut off before any match. The other two answered right.
    loop = "the answer is 5, " * 8
    script = {"[q1]": ("The answer is 7.", "stop"), "[q2]": (loop, "length"),
              "[q3]": ("the answer is 12", "stop"), "[q4]": ("Let me think step by step about", "length")}
    path = _run(project, fault_server, script)
    metrics = _row(path)
    assert metrics["accuracy"]["value"] == pytest.approx(0.5)
    assert metrics["outcomes"] == {"answered": 0.5, "truncated": 0.5}
    # The loop is named as one, and only the other cut-off answer is told to raise max_tokens.
    texts = [f.text for f in runner.explain(path)]
    assert texts == [
        "fake: 2 of 4 answers cut off at max_tokens=16; for the 1 that is not a repetition loop, raise "
        "max_tokens or constrain the output (response_format)",
        "fake: 1 of 2 answers cut off at max_tokens=16 are repetition loops (the same text over and over): "
        "raising max_tokens will not help; a repeat penalty or a shorter field might",
    ]


def test_labels_a_regex_cannot_compare_are_an_error_before_any_request(
        project: Project, fault_server: ThreadedFaultServer, capsys: pytest.CaptureFixture[str]) -> None:
    fault_server.set_plan(FaultPlan())
    project.write_dataset([{"id": "q1", "question": "3 + 4", "answer": 7},
                           {"id": "q2", "question": "primes below 5", "answer": [2, 3]}])
    path = project.write(_experiment(fault_server))
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"runner: {path}: scorers[0]: labels in field 'answer' are lists or mappings (1 of 2 items, first 'q2': "
        "[2, 3]); scorer type 'regex' compares the text it matches with one value; point expected_field at a "
        "field with one value per item, or compare JSON with json_field (or exact with field)")
    assert fault_server.stats()["requests"] == 0
    assert not project.store_path().exists()


def test_unit_tests_that_are_not_python_are_refused_before_any_request(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # A dataset bug: caught when the experiment is checked, not per answer in the middle of a run.
    project.write_dataset([{"id": "c1", "spec": "f", "tests": "assert f(1) == 1"},
                           {"id": "c2", "spec": "g", "tests": "assert g(1) =="}])
    exp = base_experiment()
    exp["prompts"] = {"variants": [{"name": "p", "text": "Write {{ spec }}"}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": None}
    exp["scorers"] = [{"type": "code_tests"}]
    path = str(project.write(exp))
    capsys.readouterr()
    assert main(["validate", path, "--offline"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {path}: scorers[0].tests_field: the tests of dataset item 'c2' are not valid Python: invalid "
        "syntax (line 1); fix the tests in that row")
