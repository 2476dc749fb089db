"""Code generation through `runner run` against the fault server: compile rate, test pass rate, style, and C#.

The fault server's `script` plants each item's answer (the item id in the prompt picks it), so these
tests see what a user sees, with known answers: the report's compile_rate, test_pass_rate and
style_violations, the per-test results kept in each score, and C# classes compiled with mcs and
tested under mono in the sandbox (skipped, with the reason, where mono is not installed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sandbox_modes import machine_mode_fixture, mode_fixture  # noqa: F401 (the `machine_mode` and `mode` fixtures)
from statsmodels.stats.proportion import proportion_confint

import runner
from conftest import Project, base_experiment
from runner.cli import main
from runner.reporting.tables import Report
from runner.scoring.base import Score
from runner.scoring.csharp import missing_tools, run_csharp_tests
from runner.scoring.sandbox import SandboxLimits
from runner.scoring.sandbox_boundary import SCRATCH_BYTES, SandboxUnavailable
from runner.scoring.style import StyleResult, check_style
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

REPO = Path(__file__).resolve().parents[1]
NO_MONO = "mono is not installed here (apt-get install -y mono-mcs mono-runtime, or scripts/install_mono.sh)"
needs_mono = pytest.mark.skipif(bool(missing_tools()), reason=NO_MONO)

ADD_TESTS = "assert add(1, 2) == 3\nassert add(0, 0) == 0\nassert add(-1, 1) == 0\nassert add(2, 2) == 4"
PY_ROWS = [{"id": f"p{i}", "spec": "add two numbers", "tests": ADD_TESTS} for i in range(1, 6)]
PY_ANSWERS = {
    "[p1]": ("```python\ndef add(a, b):\n    return a + b\n```", "stop"),  # right, clean
    # right, with three known violations: F401 (os unused), E741 (the name l), F841 (l unused)
    "[p2]": ("```python\nimport os\ndef add(a, b):\n    l = 0\n    return a + b\n```", "stop"),
    "[p3]": ("```python\ndef add(a, b):\n    return a - b\n```", "stop"),  # passes test 2 only
    "[p4]": ("```python\ndef add(a, b)\n    return a + b\n```", "stop"),  # does not compile
    "[p5]": ("```python\ndef add(a, b):\n    return a + b\n", "length"),  # cut off: compiles, is no answer
}


def _experiment(server: ThreadedFaultServer, **scorer: Any) -> dict[str, Any]:
    exp = base_experiment(f"{server.url}/v1")
    exp["prompts"] = {"variants": [{"name": "code", "text": "[{{ id }}] Write: {{ spec }}"}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": None}
    exp["sampling"] = {"temperature": 0.0, "max_tokens": 64}
    exp["repeats"] = 1
    exp["scorers"] = [{"type": "code_tests", "timeout_s": 30, **scorer}]
    exp["report"] = {"rows": ["model"], "metrics": ["n", "accuracy", "compile_rate", "test_pass_rate",
                                                    "style_violations", "outcomes"]}
    return exp


def _run(project: Project, server: ThreadedFaultServer, rows: list[dict[str, Any]],
         answers: dict[str, tuple[str, str]], **scorer: Any) -> Path:
    server.set_plan(FaultPlan(script=answers))
    project.write_dataset(rows)
    path = project.write(_experiment(server, **scorer))
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    return path


def _metrics(path: Path) -> dict[str, Any]:
    report = runner.report(path)
    assert isinstance(report, Report)
    (table,) = report.tables
    (record,) = table.records
    return record.metrics


def _scores(path: Path) -> dict[str, Score]:
    results = runner.results(path)
    (cell,) = results.cells
    return {r.job.item.id: s for r, s in zip(cell.results, cell.scores[0], strict=True) if s is not None}


def test_python_answers_report_compile_rate_test_pass_rate_and_style(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server, PY_ROWS, PY_ANSWERS)
    metrics = _metrics(path)
    assert metrics["accuracy"]["value"] == pytest.approx(2 / 5)  # accuracy is still "every test passes"
    # p1, p2, p3 and the cut-off p5 compile; p4 does not.
    compile_rate = metrics["compile_rate"]
    assert compile_rate["value"] == pytest.approx(4 / 5)
    assert (compile_rate["low"], compile_rate["high"]) == pytest.approx(proportion_confint(4, 5, method="wilson"))
    assert (compile_rate["n_items"], compile_rate["interval"]) == (5, "wilson")
    # The mean share of an item's tests passed: 1, 1, 1/4, 0, 0 (the cut-off answer's tests are not run).
    pass_rate = metrics["test_pass_rate"]
    assert pass_rate["value"] == pytest.approx((1 + 1 + 0.25) / 5)
    # 5 items are too few for its bootstrap interval (at least 10): the value is data, with no bounds.
    assert (pass_rate["interval"], pass_rate["low"], pass_rate["high"]) == (None, None, None)
    # ruff on the answers that compiled and finished: 3 violations in 2 + 4 + 2 non-blank lines.
    assert metrics["style_violations"]["value"] == pytest.approx(100 * 3 / 8)
    assert metrics["outcomes"] == {"answered": 0.6, "no_code": 0.2, "truncated": 0.2}


def test_each_score_keeps_every_tests_result_and_the_rules_ruff_found(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    scores = _scores(_run(project, fault_server, PY_ROWS, PY_ANSWERS))
    assert {k: s.extras for k, s in scores.items()} == {
        "p1": {"compiled": True, "tests": [True] * 4, "style": {"violations": 0, "lines": 2, "rules": {}}},
        "p2": {"compiled": True, "tests": [True] * 4,
               "style": {"violations": 3, "lines": 4, "rules": {"E741": 1, "F401": 1, "F841": 1}}},
        "p3": {"compiled": True, "tests": [False, True, False, False],
               "style": {"violations": 0, "lines": 2, "rules": {}}},
        "p4": {"compiled": False, "tests": [False] * 4},
        "p5": {"compiled": True, "tests": [False] * 4},
    }
    assert scores["p3"].prediction == pytest.approx(0.25)
    assert scores["p3"].detail == "assertion failed at test 1"


def test_style_false_leaves_style_unmeasured(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server, PY_ROWS[:2], PY_ANSWERS, style=False)
    metrics = _metrics(path)
    assert metrics["style_violations"] == {"value": None, "low": None, "high": None, "n_items": 2, "n_jobs": 2,
                                           "interval": None}
    assert metrics["test_pass_rate"]["value"] == pytest.approx(1.0)


# --- C# -------------------------------------------------------------------------------------------

CS_ROWS = [json.loads(line) for line in (REPO / "datasets" / "codegen_csharp.jsonl").read_text().splitlines()]
COUNTER_TESTS = next(r for r in CS_ROWS if r["id"] == "cs01")["tests"]
COUNTER = ("public class Counter\n{\n    public int Value { get; private set; }\n"
           "    public void Increment() { Value++; }\n    public void Add(int amount) { Value += amount; }\n"
           "    public void Reset() { @RESET@ }\n}\n")
CS_ANSWERS = {
    "[c1]": ("```csharp\n" + COUNTER.replace("@RESET@", "Value = 0;") + "```", "stop"),  # right
    "[c2]": ("```csharp\n" + COUNTER.replace("@RESET@", "") + "```", "stop"),  # Reset does nothing: test 4 fails
    "[c3]": ("```csharp\n" + COUNTER.replace("@RESET@", "Value = 0") + "```", "stop"),  # a missing ';'
    # No Add: the two tests that call it do not compile against this class, and only they fail.
    "[c4]": ("```cs\npublic class Counter\n{\n    public int Value { get; private set; }\n"
             "    public void Increment() { Value++; }\n    public void Reset() { Value = 0; }\n}\n```", "stop"),
    # Cut off at max_tokens with an unfinished class: no answer, and it does not compile.
    "[c5]": ("```csharp\n" + COUNTER.replace("@RESET@", "Value = 0;")[:60], "length"),
}
CS_ITEMS = [{"id": f"c{i}", "spec": "a counter", "tests": COUNTER_TESTS} for i in range(1, 6)]


@needs_mono
def test_a_csharp_class_compiles_and_its_tests_run_under_mono(project: Project,
                                                             fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server, CS_ITEMS, CS_ANSWERS, language="csharp")
    scores = _scores(path)
    assert {k: (s.outcome, s.correct, s.extras) for k, s in scores.items()} == {
        "c1": ("answered", True, {"compiled": True, "tests": [True, True, True, True]}),
        "c2": ("answered", False, {"compiled": True, "tests": [True, True, True, False]}),
        "c3": ("no_code", False, {"compiled": False, "tests": [False] * 4}),
        "c4": ("answered", False, {"compiled": True, "tests": [True, True, False, False]}),
        "c5": ("truncated", False, {"compiled": False, "tests": [False] * 4}),
    }
    assert scores["c2"].detail == "test 4: assertion failed: expected 0, got 7"
    assert scores["c3"].detail == "compile error: CS1002: ; expected (line 6)"
    assert scores["c4"].detail is not None and scores["c4"].detail.startswith(
        "test 3: does not compile: CS1061: Type `Counter' does not contain a definition for `Add'")
    metrics = _metrics(path)
    assert metrics["accuracy"]["value"] == pytest.approx(1 / 5)
    assert metrics["compile_rate"]["value"] == pytest.approx(3 / 5)
    assert metrics["test_pass_rate"]["value"] == pytest.approx((1 + 0.75 + 0 + 0.5 + 0) / 5)
    assert metrics["style_violations"]["value"] is None  # not measured for C#


@needs_mono
def test_every_reference_solution_of_the_csharp_dataset_passes_its_tests(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    answers = {f"[{r['id']}]": ("```csharp\n" + r["solution"] + "```", "stop") for r in CS_ROWS}
    path = _run(project, fault_server, CS_ROWS, answers, language="csharp")
    assert {k: s.extras for k, s in _scores(path).items()} == {
        r["id"]: {"compiled": True, "tests": [True] * len(r["tests"])} for r in CS_ROWS}


@needs_mono
def test_a_csharp_answer_cannot_write_to_the_host(project: Project, fault_server: ThreadedFaultServer,
                                                  tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    code = ("public static class Probe\n{\n    public static bool Write()\n    {\n"
            f"        try {{ System.IO.File.WriteAllText(\"{target}\", \"x\"); return true; }}\n"
            "        catch (System.Exception) { return false; }\n    }\n}\n")
    rows = [{"id": "w1", "spec": "write", "tests": ["Probe.Write();"]}]
    path = _run(project, fault_server, rows, {"[w1]": ("```csharp\n" + code + "```", "stop")}, language="csharp")
    assert _scores(path)["w1"].extras == {"compiled": True, "tests": [True]}  # it ran, and tried
    assert not target.exists()


def _csharp_experiment(project: Project, server: ThreadedFaultServer) -> str:
    server.set_plan(FaultPlan(script=CS_ANSWERS))
    project.write_dataset(CS_ITEMS)
    return str(project.write(_experiment(server, language="csharp")))


def test_without_mcs_and_mono_a_csharp_run_stops_before_any_request(
        project: Project, fault_server: ThreadedFaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("RUNNER_CSHARP_PATH", str(empty))  # where the runner looks for mcs and mono
    path = _csharp_experiment(project, fault_server)
    capsys.readouterr()
    assert main(["run", path, "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {path}: scorers[0].language: code_tests with language csharp compiles and runs answers with mcs "
        "and mono, but mcs and mono are not installed; install Debian's mono-mcs and mono-runtime (apt-get install "
        "-y mono-mcs mono-runtime; scripts/install_mono.sh), or use language: python")
    assert fault_server.stats()["requests"] == 0
    assert not project.store_path().exists()


@needs_mono
def test_reading_stored_csharp_scores_needs_no_mono_and_scoring_again_says_so(
        project: Project, fault_server: ThreadedFaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    fault_server.set_plan(FaultPlan(script=CS_ANSWERS))
    project.write_dataset(CS_ITEMS)
    exp = _experiment(fault_server, language="csharp")
    exp["task"] = "code_generation"
    path = str(project.write(exp))
    assert main(["run", path, "--quiet", "--no-report"]) == 0  # with mono: every score stored
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("RUNNER_CSHARP_PATH", str(empty))
    capsys.readouterr()
    # Every score is stored: reading them needs no compiler.
    assert main(["report", path, "--format", "json"]) == 0
    assert main(["matrix", path, "--format", "json"]) == 0
    assert main(["score", path]) == 0
    out = capsys.readouterr().out
    assert '"verdict": "no bar"' in out and "left out" not in out
    # A renamed scorer has no stored score: the answers must be scored again, and cannot be here.
    exp["scorers"][0]["name"] = "renamed"
    project.write(exp)
    missing = (f"runner: {path}: scorers[0].language: code_tests with language csharp compiles and runs answers "
               "with mcs and mono, but mcs and mono are not installed; install Debian's mono-mcs and mono-runtime "
               "(apt-get install -y mono-mcs mono-runtime; scripts/install_mono.sh), or use language: python")
    for verb in ("report", "score"):
        assert main([verb, path]) == 2
        assert capsys.readouterr().err.strip() == missing
    # The matrix leaves that file out, and says why, rather than stopping.
    assert main(["matrix", path, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["status"] for e in data["experiments"]] == ["left out"]
    assert data["notes"] == [f"{path}: left out: stored answers have no valid score and cannot be scored here: "
                             + missing.removeprefix("runner: ")]


def test_csharp_is_refused_without_a_boundary(project: Project, fault_server: ThreadedFaultServer,
                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # The weak mode's audit hook guards Python only: C# answers would run with nothing around them.
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("mcs", "mono"):
        (tools / name).write_text("#!/bin/sh\nexit 1\n")
        (tools / name).chmod(0o755)
    monkeypatch.setenv("RUNNER_CSHARP_PATH", str(tools))
    monkeypatch.setenv("RUNNER_SANDBOX", "weak")
    path = _csharp_experiment(project, fault_server)
    capsys.readouterr()
    assert main(["run", path, "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {path}: scorers[0]: code_tests with language csharp runs the answers' code, but "
        "RUNNER_SANDBOX=weak has no audit hook outside Python; unset RUNNER_SANDBOX, with bubblewrap installed "
        "(or as root)")
    assert fault_server.stats()["requests"] == 0


def test_csharp_tests_that_are_not_statements_are_refused(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.write_dataset([{"id": "c1", "spec": "f", "tests": ["Assert.True(true);"]},
                           {"id": "c2", "spec": "g", "tests": [1, 2]}])
    exp = base_experiment()
    exp["prompts"] = {"variants": [{"name": "p", "text": "Write {{ spec }}"}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": None}
    exp["scorers"] = [{"type": "code_tests", "language": "csharp"}]
    path = str(project.write(exp))
    capsys.readouterr()
    assert main(["validate", path, "--offline"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {path}: scorers[0].tests_field: the tests of dataset item 'c2' are not C# statements; give a "
        "list of strings, one C# statement (a test) each")


def _validate_code_tests(project: Project, rows: list[dict[str, Any]], **scorer: Any) -> tuple[int, str]:
    project.write_dataset(rows)
    exp = base_experiment()
    exp["prompts"] = {"variants": [{"name": "p", "text": "Write {{ spec }}"}]}
    exp["dataset"] = {"path": "data.jsonl", "label_field": None}
    exp["scorers"] = [{"type": "code_tests", **scorer}]
    path = str(project.write(exp))
    return main(["validate", path, "--offline"]), path


def test_csharp_tests_under_the_python_language_are_refused(project: Project,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # A list, stringified, is one Python expression: any answer that compiles would pass it.
    capsys.readouterr()
    code, path = _validate_code_tests(project, [{"id": "c1", "spec": "f", "tests": COUNTER_TESTS}])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {path}: scorers[0].tests_field: the tests of dataset item 'c1' are a list, not Python source; "
        "give the tests as one string of Python (assert statements), or set language: csharp if they are C# "
        "statements")


def test_python_tests_under_the_csharp_language_are_refused(project: Project,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Each line of a Python string would be taken for a C# statement, and every test fail to compile.
    capsys.readouterr()
    code, path = _validate_code_tests(project, PY_ROWS[:1], language="csharp")
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"runner: {path}: scorers[0].tests_field: the tests of dataset item 'p1' are a string, not a list of C# "
        "statements; give a list of strings, one C# statement (a test) each, or use language: python for a string "
        "of Python tests")


def test_a_code_scorers_table_shows_the_code_metrics_by_default(project: Project,
                                                                 fault_server: ThreadedFaultServer) -> None:
    fault_server.set_plan(FaultPlan(script=PY_ANSWERS))
    project.write_dataset(PY_ROWS[:2])
    exp = _experiment(fault_server)
    del exp["report"]
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    assert list(_metrics(path)) == ["n", "failed", "items", "accuracy", "compile_rate", "test_pass_rate",
                                    "style_violations", "agreement", "tokens_per_s", "outcomes"]


@needs_mono
def test_a_class_in_a_namespace_is_still_tested_and_an_unknown_name_is_named(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    # The prompt asks for the global namespace; a class in one is imported all the same, and a
    # "namespace" line that is not one (in a comment) is dropped, not held against the answer.
    code = ("/*\nnamespace Not.Really\n*/\nnamespace Counting\n{\n    public class Counter\n    {\n"
            "        public int Value { get; private set; }\n    }\n}\n")
    rows = [{"id": "n1", "spec": "a counter", "tests": ["Assert.Equal(0, new Counter().Value);",
                                                        "Assert.Equal(0, new Counter().Missing);"]}]
    path = _run(project, fault_server, rows, {"[n1]": ("```csharp\n" + code + "```", "stop")}, language="csharp")
    score = _scores(path)["n1"]
    assert score.extras == {"compiled": True, "tests": [True, False]}
    # Not "the type arguments cannot be inferred" (CS0411), which the unknown name also causes.
    assert score.detail == ("test 2: does not compile: CS1061: Type `Counting.Counter' does not contain a "
                            "definition for `Missing' and no extension method `Missing' of type `Counting.Counter' "
                            "could be found. Are you missing an...")  # capped at 200 characters


# --- the tools in each sandbox mode ----------------------------------------------------------------


def test_ruff_counts_style_in_each_sandbox_mode(mode: str) -> None:
    assert check_style("import os\ndef add(a, b):\n    l = 0\n    return a + b\n") == StyleResult(
        3, 4, {"E741": 1, "F401": 1, "F841": 1})


@needs_mono
def test_csharp_compiles_and_runs_in_each_confined_mode(mode: str) -> None:
    counter = COUNTER.replace("@RESET@", "Value = 0;")
    if mode == "weak":
        with pytest.raises(SandboxUnavailable, match="RUNNER_SANDBOX=weak has no audit hook outside Python"):
            run_csharp_tests(counter, COUNTER_TESTS)
        return
    assert run_csharp_tests(counter, COUNTER_TESTS).results == (True, True, True, True)


# What a C# answer tries to see of the host: the review's planted answer read these in the unshare mode.
PEEK = """\
public static class Peek
{
    public static string Seen()
    {
        var seen = new System.Collections.Generic.List<string>();
        foreach (var file in new[] { "/etc/passwd", "@README@" })
        {
            try { System.IO.File.ReadAllText(file); seen.Add("read " + file); } catch (System.Exception) { }
        }
        foreach (var dir in new[] { "/etc", "/work", "/var", "/srv", "/mnt", "/opt", "/home", "/sys", "/boot" })
        {
            try
            {
                foreach (var entry in System.IO.Directory.GetFileSystemEntries(dir))
                    if (entry != "/etc/mono") seen.Add("listed " + entry);
            }
            catch (System.Exception) { }
        }
        return string.Join(" ", seen.Take(5));
    }
}
"""


@needs_mono
def test_a_csharp_answer_reads_nothing_of_the_host_in_each_confined_mode(mode: str) -> None:
    if mode == "weak":
        pytest.skip("C# is refused in the weak mode (test_csharp_compiles_and_runs_in_each_confined_mode)")
    code = "using System.Linq;\n" + PEEK.replace("@README@", str(REPO / "README.md"))
    result = run_csharp_tests(code, ['Assert.Equal("", Peek.Seen());'])
    assert (result.results, result.error) == ((True,), None)


FILL = """\
public static class Fill
{
    public static string Run()
    {
        // 160 MiB in files of 4 MiB, each under the file-size limit: only a cap on the whole folder stops it.
        long written = 0;
        var chunk = new byte[1 << 20];
        try
        {
            for (int n = 0; n < 40; n++)
                using (var f = System.IO.File.Create("fill-" + n))
                    for (int i = 0; i < 4; i++) { f.Write(chunk, 0, chunk.Length); f.Flush(); written += chunk.Length; }
        }
        catch (System.IO.IOException e)
        {
            return written <= @LIMIT@L ? "stopped within the limit" : "stopped at " + written + ": " + e.Message;
        }
        return "wrote " + written;
    }
}
"""


@needs_mono
def test_a_csharp_answer_cannot_fill_the_host_with_files(mode: str) -> None:
    # The review's case: 960 MB in 64 files, each under the per-file limit, on the host's /tmp.
    if mode == "weak":
        pytest.skip("C# is refused in the weak mode (test_csharp_compiles_and_runs_in_each_confined_mode)")
    result = run_csharp_tests(FILL.replace("@LIMIT@", str(SCRATCH_BYTES)),
                              ['Assert.Equal("stopped within the limit", Fill.Run());'],
                              SandboxLimits(timeout_s=30.0, memory_mb=256))
    assert (result.results, result.error) == ((True,), None)


def test_a_threshold_on_test_pass_rate_is_judged_by_its_interval_over_items(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    # Ten items (the five answers twice over): enough for a bootstrap interval.
    rows = [{"id": f"p{i}", "spec": "add two numbers", "tests": ADD_TESTS} for i in range(1, 11)]
    fault_server.set_plan(FaultPlan(script={f"[p{i}]": PY_ANSWERS[f"[p{(i - 1) % 5 + 1}]"] for i in range(1, 11)}))
    project.write_dataset(rows)
    exp = _experiment(fault_server)
    exp["report"]["threshold"] = {"metric": "test_pass_rate", "min": 0.3}
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    report = runner.report(path)
    assert isinstance(report, Report)
    (verdict,) = report.tables[0].verdicts
    assert verdict.text == (
        "model=fake: not shown viable at n=10 items: test_pass_rate 0.45 [0.17, 0.72] straddles 0.30; test_pass_rate "
        "0.45 cannot separate 45% from 30%; more items would narrow it (test_pass_rate is not a proportion: no exact "
        "figure)")


def test_noqa_comments_in_the_answer_do_not_hide_its_violations(machine_mode: str) -> None:
    # The answer is the code under review: its own suppression comments (per line, or for the whole file)
    # would otherwise zero its count.
    code = "import os\ndef add(a, b):\n    l = 0\n    return a + b\n"
    expected = StyleResult(3, 4, {"E741": 1, "F401": 1, "F841": 1})
    assert check_style("# ruff: noqa\n" + code) == StyleResult(3, 5, expected.rules)
    assert check_style("# flake8: noqa\n" + code) == StyleResult(3, 5, expected.rules)
    per_line = "import os  # noqa\ndef add(a, b):\n    l = 0  # noqa: E741, F841\n    return a + b\n"
    assert check_style(per_line) == expected


# Two items whose answers pass 2 of 4 and 3 of 5 tests: test_pass_rate 0.55, which a percentile bootstrap
# over the two items would put at exactly [0.50, 0.60], a "yes" against a bar of 0.5.
TWO_ROWS = [{"id": "h1", "spec": "add", "tests": ADD_TESTS},
            {"id": "h2", "spec": "add", "tests": ADD_TESTS + "\nassert add(5, 5) == 10"}]
TWO_ANSWERS = {"[h1]": ("```python\ndef add(a, b):\n    return a * 2 if a == b else a + b + 1\n```", "stop"),
               "[h2]": ("```python\ndef add(a, b):\n    return a * 2 if a == b else a + b + 1\n```", "stop")}


def test_two_items_give_no_bootstrap_interval_value_or_verdict(
        project: Project, fault_server: ThreadedFaultServer, capsys: pytest.CaptureFixture[str]) -> None:
    fault_server.set_plan(FaultPlan(script=TWO_ANSWERS))
    project.write_dataset(TWO_ROWS)
    exp = _experiment(fault_server)
    exp["task"] = "code_generation"
    exp["report"]["threshold"] = {"metric": "test_pass_rate", "min": 0.5}
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    scores = _scores(path)
    assert (scores["h1"].extras["tests"], scores["h2"].extras["tests"]) == (
        [False, True, False, True], [False, True, False, True, True])
    report = runner.report(path)
    assert isinstance(report, Report)
    (table,) = report.tables
    (verdict,) = table.verdicts
    assert (verdict.status, verdict.text) == ("not judged", (
        "model=fake: not judged: test_pass_rate has no interval here (fewer than 10 items, too few for a bootstrap "
        "interval to be trusted, or no answer it is defined over); run more items"))
    (row,) = table.rows
    assert row[table.headers.index("test_pass_rate")] == "-"
    assert row[table.headers.index("style_violations")] == "-"
    assert ('test_pass_rate, style_violations: "-" where a row has fewer than 10 items: a bootstrap interval over so '
            "few is far narrower than the uncertainty (items at 0.5 and 0.6 give exactly [0.50, 0.60]), so neither a "
            "value nor an interval is shown, nor judged against a threshold; run more items") in table.notes
    (record,) = table.records
    assert record.metrics["test_pass_rate"] == {"value": pytest.approx(0.55), "low": None, "high": None,
                                                "n_items": 2, "n_jobs": 2, "interval": None}
    capsys.readouterr()
    assert main(["matrix", str(path), "--format", "json"]) == 0
    cells = {c["task"]: c for c in json.loads(capsys.readouterr().out)["cells"]}
    assert (cells["code_generation"]["verdict"], cells["code_generation"]["value"]) == ("not judged", None)
