"""`--fail-on-verdict` exit codes and the JUnit file, through `runner run` and `runner report`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import Project, base_experiment
from runner.cli import main
from runner.testing.fault_server import ThreadedFaultServer


def _exp(url: str, minimum: float | None) -> dict[str, object]:
    exp = base_experiment(f"{url}/v1")
    exp["report"] = {"rows": ["prompt"]} | ({"threshold": {"metric": "accuracy", "min": minimum}}
                                            if minimum is not None else {})
    return exp


def test_exit_3_below_the_bar_and_0_above_it(project: Project, fault_server: ThreadedFaultServer,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The fault server's answers are right about half the time: never shown to reach 1.0, always above 0.0.
    low = str(project.write(_exp(fault_server.url, 0.0), name="low.yaml"))
    high = str(project.write(_exp(fault_server.url, 1.0), name="high.yaml"))
    junit = tmp_path / "junit.xml"
    assert main(["run", high, "--quiet", "--fail-on-verdict", "--junit", str(junit)]) == 3
    assert main(["report", high, "--fail-on-verdict"]) == 3
    assert main(["run", low, "--quiet", "--no-report", "--fail-on-verdict"]) == 0
    assert main(["report", low, "--fail-on-verdict"]) == 0
    assert main(["report", low]) == 0 and main(["report", high]) == 0  # without the flag: 0 either way
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "2")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["prompt=a: accuracy >= 1", "prompt=b: accuracy >= 1"]
    for case in cases:
        failure = case.find("failure")
        assert failure is not None and failure.get("message") == "not viable"
        assert (failure.text or "").startswith(case.get("name", "").split(":")[0] + ": not viable: accuracy ")
    capsys.readouterr()


def test_exit_2_on_a_bad_file_or_no_threshold(project: Project, fault_server: ThreadedFaultServer,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bad = project.root / "bad.yaml"
    bad.write_text("name: x\nsampling: {temperature: hot}\n")
    assert main(["report", str(bad), "--fail-on-verdict"]) == 2
    none = str(project.write(_exp(fault_server.url, None), name="none.yaml"))
    capsys.readouterr()
    assert main(["run", none, "--quiet", "--fail-on-verdict"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {none}: report.threshold: --fail-on-verdict needs a threshold to judge rows against; "
        "add report: {threshold: {metric: accuracy, min: 0.6}}")
    assert not project.store_path("none").exists()  # refused before anything ran


def test_a_row_not_run_yet_is_not_judged_and_fails_the_gate(
        project: Project, fault_server: ThreadedFaultServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Run prompts a and b, then add a prompt c and do not run it: the gate must not pass over c.
    exp = _exp(fault_server.url, 0.0)
    path = str(project.write(exp))
    assert main(["run", path, "--quiet", "--no-report", "--fail-on-verdict"]) == 0
    exp["prompts"]["variants"].append({"name": "c", "text": "C {{ config | tojson }}"})  # type: ignore[index]
    project.write(exp)
    junit = tmp_path / "j.xml"
    assert main(["report", path, "--fail-on-verdict", "--junit", str(junit)]) == 3
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "1")
    failure = suite.findall("testcase")[2].find("failure")
    assert failure is not None and failure.text == (
        "prompt=c: not judged: no answers yet (24 jobs not run); run the experiment")
    capsys.readouterr()


def test_a_study_with_fail_on_verdict_is_refused(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    exp = base_experiment()
    exp["study"] = {"kind": "context_window"}
    path = str(project.write(exp))
    assert main(["run", path, "--fail-on-verdict"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {path}: study: --fail-on-verdict judges rows against report.threshold; a study has none; "
        "drop --fail-on-verdict for this file")
