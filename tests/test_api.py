"""The public API is what `runner.__all__` lists: sorted, unique, importable, and complete."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import runner
from conftest import Project, base_experiment
from runner.testing.fault_server import ThreadedFaultServer


def test_all_is_sorted_and_unique() -> None:
    assert runner.__all__ == sorted(runner.__all__)
    assert len(runner.__all__) == len(set(runner.__all__))


def test_every_name_in_all_is_importable_from_runner() -> None:
    module = importlib.import_module("runner")
    for name in runner.__all__:
        namespace: dict[str, object] = {}
        exec(f"from runner import {name}", namespace)
        assert namespace[name] is getattr(module, name)


def test_every_public_name_is_in_all() -> None:
    # Like httpx's test: nothing public is exported by accident. Submodules are not API names.
    public = {name for name, value in vars(runner).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public == set(runner.__all__)


def test_core_entry_points_are_public() -> None:
    for name in ("load_experiment", "build_plan", "build_report", "render", "build_scorers", "extract_json",
                 "Store", "Plan", "ConfigError"):
        assert name in runner.__all__


def test_version_is_a_string() -> None:
    assert isinstance(runner.__version__, str) and runner.__version__.count(".") >= 1


def test_run_report_explain_and_score_through_the_python_api(project: Project, fault_server: ThreadedFaultServer,
                                                             tmp_path: Path) -> None:
    path = project.write(base_experiment(f"{fault_server.url}/v1"))
    seen: list[runner.Event] = []
    events = tmp_path / "events.jsonl"
    summary = runner.run(path, limit=3, subscribers=[seen.append], events_path=events)
    assert isinstance(summary, runner.RunSummary) and summary.study is None
    # 2 prompts x 2 temperatures x 3 items x 2 repeats
    assert (summary.planned, summary.succeeded, summary.failed, summary.resumed) == (24, 24, 0, 0)
    kinds = [e.kind for e in seen]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("job_finished") == 24 and kinds.count("variant_loading") == 1
    logged = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["kind"] for e in logged] == kinds
    assert logged[-1]["succeeded"] == 24

    report = runner.report(path, limit=3)
    assert isinstance(report, runner.Report)
    assert report.totals == {"planned": 24, "ok": 24, "failed": 0, "missing": 0}
    assert runner.render(report, "table").startswith("t — scorer binary")
    findings = runner.explain(path, limit=3)
    assert all(isinstance(f, runner.Finding) for f in findings)
    assert runner.render_findings("t", findings, "json") == render_findings_via_cli(path)

    # A second run resumes everything; score finds nothing stale.
    again = runner.run(path, limit=3)
    assert (again.resumed, again.succeeded) == (24, 0)
    assert runner.score(path, limit=3) == runner.ScoreSummary(jobs=24, rescored=0)


def render_findings_via_cli(path: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "runner.cli", "explain", str(path), "--limit", "3", "--format", "json"],
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_the_read_verbs_never_write_the_store(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = project.write(base_experiment(f"{fault_server.url}/v1"))
    runner.run(path, limit=2)
    store = project.store_path()
    # A scorer change: report and explain score in memory, and leave the store as it was.
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["scorers"] = [{"type": "json_field", "field": "valid"}]
    project.write(exp)
    files = sorted(p.name for p in store.parent.iterdir())
    before = {name: (store.parent / name).read_bytes() for name in files}
    report = runner.report(path, limit=2)
    assert isinstance(report, runner.Report) and report.totals["ok"] == 16
    runner.explain(path, limit=2)
    assert {name: (store.parent / name).read_bytes() for name in files} == before
    assert sorted(p.name for p in store.parent.iterdir()) == files
    # `runner score` is the verb that stores the new scores.
    assert runner.score(path, limit=2) == runner.ScoreSummary(jobs=16, rescored=16)
    assert runner.score(path, limit=2) == runner.ScoreSummary(jobs=16, rescored=0)


def test_run_async_leaves_the_callers_sigterm_alone(project: Project, fault_server: ThreadedFaultServer) -> None:
    import asyncio
    import os
    import signal

    path = project.write(base_experiment(f"{fault_server.url}/v1"))
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        async def caller() -> None:
            await runner.run_async(path, limit=1)
            os.kill(os.getpid(), signal.SIGTERM)  # after the run: the caller's handler, not a cancel
            await asyncio.sleep(0.05)

        asyncio.run(caller())
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == [signal.SIGTERM]


def test_a_study_run_prints_no_progress_line(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    from runner.execution.events import Note

    line = runner.api.progress_line(enabled=True)
    line(Note("smollm2: limit 700 tokens after 17 requests"))
    assert capsys.readouterr().err == "smollm2: limit 700 tokens after 17 requests\n"
