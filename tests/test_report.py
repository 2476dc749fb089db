"""Reports from a real run against the fault server: every format, pooling, and jobs not run yet."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import ITEMS, Project, base_experiment
from runner import Report, Store, build_plan, build_report, build_scorers, load_experiment, render
from runner.analysis.results import load_results
from runner.cli import main
from runner.plan.planner import Plan
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

PLANNED = 2 * 2 * len(ITEMS) * 2  # prompts x temperatures x items x repeats


def _run(project: Project, server: ThreadedFaultServer, exp: dict[str, Any] | None = None,
         limit: int | None = None) -> Path:
    # Some requests get a non-retryable empty answer, so the report has both ok and failed jobs.
    server.set_plan(FaultPlan(rate_empty_choices=0.2, seed=3))
    path = project.write(exp or base_experiment(f"{server.url}/v1"))
    args = ["run", str(path), "--quiet", "--no-report"] + (["--limit", str(limit)] if limit else [])
    assert main(args) == 0
    return path


def _report(path: Path, limit: int | None = None, **report_cfg: Any) -> Report:
    if report_cfg:  # the same experiment (same job ids), other report settings
        data = yaml.safe_load(path.read_text())
        data["report"] = report_cfg
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    experiment = load_experiment(path)
    plan = build_plan(experiment)
    scorers = build_scorers(list(experiment.scorers), experiment.dataset.label_field)
    store = Store.open_existing(experiment.store_path())
    try:
        return build_report(load_results(plan, store, scorers, limit))
    finally:
        if store is not None:
            store.close()


def _store_counts(project: Project) -> dict[str, int]:
    store = Store.open_existing(project.store_path())
    assert store is not None
    try:
        return store.count_by_status()
    finally:
        store.close()


def _statuses(path: Path, project: Project) -> tuple[Plan, dict[str, str]]:
    """The experiment's plan and, straight from the store, each stored job's status."""
    plan = build_plan(load_experiment(path))
    store = Store.open_existing(project.store_path())
    assert store is not None
    try:
        return plan, {r.job_id: r.status for r in store.jobs(j.job_id for j in plan.jobs())}
    finally:
        store.close()


def _ok_by(path: Path, project: Project, axis: str) -> tuple[Counter[Any], Counter[Any]]:
    """Straight from the store: ok and failed jobs per value of one axis."""
    plan, status = _statuses(path, project)
    ok: Counter[Any] = Counter()
    failed: Counter[Any] = Counter()
    for job in plan.jobs():
        if status.get(job.job_id) == "ok":
            ok[job.cell.get(axis)] += 1
        elif status.get(job.job_id) == "failed":
            failed[job.cell.get(axis)] += 1
    return ok, failed


def _items_answered(path: Path, project: Project) -> Counter[Any]:
    """Straight from the store: per (prompt, temperature), the items with at least one ok job."""
    plan, status = _statuses(path, project)
    answered = {(j.cell.get("prompt"), j.cell.get("temperature"), j.item.id)
                for j in plan.jobs() if status.get(j.job_id) == "ok"}
    return Counter((prompt, temperature) for prompt, temperature, _ in answered)


def _column(table_rows: list[list[Any]], headers: list[str], name: str) -> list[Any]:
    i = headers.index(name)
    return [r[i] for r in table_rows]


def test_run_leaves_ok_and_failed_jobs(project: Project, fault_server: ThreadedFaultServer) -> None:
    _run(project, fault_server)
    counts = _store_counts(project)
    assert counts["ok"] + counts["failed"] == PLANNED
    assert counts["ok"] > 0 and counts["failed"] > 0


def test_table_format(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server)
    report = _report(path)
    (table,) = report.tables
    assert table.headers[:4] == ["prompt", "temperature", "n", "failed"]
    text = render(report, "table")
    lines = text.splitlines()
    assert lines[0] == "t — scorer binary"
    header_line = next(line for line in lines if line.startswith("prompt"))
    for h in table.headers:
        assert h in header_line
    body = [line.split() for line in lines if line[:1] in ("a", "b")]
    assert len(body) == 4
    assert [int(r[2]) for r in body] == _column(table.rows, table.headers, "n")
    counts = _store_counts(project)
    assert sum(int(r[2]) for r in body) == counts["ok"]
    assert sum(int(r[3]) for r in body) == counts["failed"]
    assert f"jobs: {PLANNED} planned, {counts['ok']} succeeded, {counts['failed']} failed, 0 not run" in text


def test_markdown_format(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server)
    report = _report(path)
    text = render(report, "markdown")
    assert "## t — scorer binary" in text
    piped = [line for line in text.splitlines() if line.startswith("|")]
    assert len(piped) == 2 + 4  # header, separator, one line per cell
    assert all(line.endswith("|") for line in piped)
    assert set(piped[1]) <= set("|-: ")
    assert [c.strip() for c in piped[0].strip("|").split("|")] == report.tables[0].headers


def test_csv_format_has_one_row_per_cell_group(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server)
    rows = list(csv.reader(io.StringIO(render(_report(path), "csv"))))
    header, data = rows[0], rows[1:]
    assert header[:5] == ["table", "prompt", "temperature", "n", "failed"]
    assert len(data) == 4
    assert all(len(r) == len(header) for r in data)
    assert {(r[1], float(r[2])) for r in data} == {("a", 0.0), ("a", 0.5), ("b", 0.0), ("b", 0.5)}
    assert {r[0] for r in data} == {"t — scorer binary"}
    counts = _store_counts(project)
    assert sum(int(r[3]) for r in data) == counts["ok"]
    assert sum(int(r[3]) + int(r[4]) for r in data) == PLANNED


def test_json_format_totals_equal_the_store(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server)
    data = json.loads(render(_report(path), "json"))
    counts = _store_counts(project)
    assert data["experiment"] == "t"
    assert data["totals"] == {"planned": PLANNED, "ok": counts["ok"], "failed": counts["failed"], "missing": 0}
    (table,) = data["tables"]
    assert len(table["rows"]) == 4
    assert sum(r["n"] for r in table["rows"]) == counts["ok"]
    assert sum(r["failed"] for r in table["rows"]) == counts["failed"]
    items = _items_answered(path, project)
    for row in table["rows"]:
        rate = row["json_valid"]  # a rate: numbers, with its interval and its units
        assert set(rate) == {"value", "low", "high", "n_items", "n_jobs", "interval"}
        assert rate["interval"] == "cluster" or rate["interval"] == "items"  # two repeats per item
        assert 0 <= rate["low"] <= rate["value"] <= rate["high"] <= 1
        # Which jobs the faults hit depends on the order requests arrive in: counted from the store.
        assert rate["n_jobs"] == row["n"] and rate["n_items"] == items[(row["prompt"], row["temperature"])]
        assert row["accuracy"]["n_jobs"] == row["n"]


def test_rows_pool_over_the_axes_not_shown(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server)
    ok, failed = _ok_by(path, project, "prompt")
    unpooled = _report(path).tables[0]
    pooled = _report(path, rows=["prompt"]).tables[0]
    assert pooled.headers[:3] == ["prompt", "n", "failed"]
    assert {r[0]: r[1] for r in pooled.rows} == dict(ok)
    assert {r[0]: r[2] for r in pooled.rows} == {p: failed[p] for p in ("a", "b")}
    for row in pooled.rows:
        assert row[1] == sum(r[2] for r in unpooled.rows if r[0] == row[0])
        assert row[2] == sum(r[3] for r in unpooled.rows if r[0] == row[0])


def test_columns_spread_an_axis_across(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server)
    unpooled = {(r[0], r[1]): r[2] for r in _report(path).tables[0].rows}
    table = _report(path, rows=["prompt"], columns=["temperature"], metrics=["n"]).tables[0]
    assert table.headers == ["prompt", "n [temperature=0.0]", "n [temperature=0.5]"]
    assert {r[0]: (r[1], r[2]) for r in table.rows} == {
        p: (unpooled[(p, 0.0)], unpooled[(p, 0.5)]) for p in ("a", "b")}


def test_items_not_run_show_as_not_run(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server, limit=2)
    counts = _store_counts(project)
    assert counts.get("ok", 0) + counts.get("failed", 0) == PLANNED // len(ITEMS) * 2
    report = _report(path)
    assert report.totals == {"planned": PLANNED, "ok": counts.get("ok", 0), "failed": counts.get("failed", 0),
                             "missing": PLANNED - PLANNED // len(ITEMS) * 2}
    assert f"{PLANNED - PLANNED // len(ITEMS) * 2} not run" in render(report, "table")
    limited = _report(path, limit=2)
    assert limited.totals["missing"] == 0 and limited.totals["planned"] == PLANNED // len(ITEMS) * 2


def test_report_without_a_store_counts_everything_as_not_run(project: Project) -> None:
    experiment = load_experiment(project.write(base_experiment()))
    plan = build_plan(experiment)
    report = build_report(load_results(plan, None, build_scorers(list(experiment.scorers), "valid")))
    assert report.totals == {"planned": PLANNED, "ok": 0, "failed": 0, "missing": PLANNED}
    assert [r[2] for r in report.tables[0].rows] == [0, 0, 0, 0]
    assert json.loads(render(report, "json"))["tables"][0]["rows"][0]["accuracy"] == {
        "value": None, "low": None, "high": None, "n_items": 0, "n_jobs": 0, "interval": None}


def test_report_without_scorers_shows_request_metrics(project: Project, fault_server: ThreadedFaultServer) -> None:
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["scorers"] = []
    path = _run(project, fault_server, exp)
    (table,) = _report(path).tables
    assert table.title == "t"
    assert table.headers == ["prompt", "temperature", "n", "failed", "completion_tokens", "latency_s",
                             "tokens_per_s"]
    assert all(isinstance(v, float) and v > 0 for v in _column(table.rows, table.headers, "completion_tokens"))


def test_report_with_a_stop_axis(project: Project) -> None:
    exp = base_experiment()
    exp["sampling"]["stop"] = [["\n"], ["###"]]
    experiment = load_experiment(project.write(exp))
    plan = build_plan(experiment)
    report = build_report(load_results(plan, None, build_scorers(list(experiment.scorers), "valid")))
    assert len(report.tables[0].rows) == 8
    assert report.totals["planned"] == PLANNED * 2


def test_unknown_report_axis_is_a_config_error(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    exp = base_experiment()
    exp["report"] = {"rows": ["promt"]}
    assert main(["validate", "--offline", str(project.write(exp))]) == 2
    assert "report.rows" in capsys.readouterr().err


def _strict_json(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise AssertionError(f"bare {constant} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_json_output_has_numbers_and_no_bare_nan(project: Project, fault_server: ThreadedFaultServer,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # One repeat: agreement, flip_rate and (for a constant class) kappa are undefined: null, not NaN.
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["repeats"] = 1
    exp["report"] = {"metrics": ["n", "accuracy", "agreement", "kappa", "flip_rate", "outcomes", "answers"]}
    path = _run(project, fault_server, exp)
    data = _strict_json(render(_report(path), "json"))
    (table,) = data["tables"]
    row = table["rows"][0]
    assert row["agreement"]["value"] is None and row["flip_rate"]["value"] is None  # nothing was repeated
    assert row["agreement"]["low"] is None and row["kappa"]["value"] is not None
    assert isinstance(row["outcomes"], dict) and sum(row["outcomes"].values()) == pytest.approx(1)
    assert set(row["answers"]) <= {"true", "false"}
    (cmp, *_) = table["comparisons"]
    assert {"axis", "baseline", "value", "n_pairs", "difference", "low", "high", "p_value", "p_holm",
            "significant", "sentence"} <= set(cmp)
    assert isinstance(cmp["p_value"], float) and isinstance(cmp["significant"], bool)
    assert main(["explain", str(path), "--format", "json"]) == 0
    _strict_json(capsys.readouterr().out)


def test_csv_gives_each_interval_its_own_columns(project: Project, fault_server: ThreadedFaultServer) -> None:
    path = _run(project, fault_server)
    report = _report(path, metrics=["n", "accuracy"])
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert rows[0] == ["table", "prompt", "temperature", "n", "accuracy", "accuracy_low", "accuracy_high"]
    for line, record in zip(rows[1:], report.tables[0].records, strict=True):
        acc = record.metrics["accuracy"]
        assert [float(x) for x in line[4:]] == pytest.approx([acc["value"], acc["low"], acc["high"]])


def test_output_writes_the_report_with_the_mode_a_plain_file_gets(
        project: Project, fault_server: ThreadedFaultServer, capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import stat

    path = _run(project, fault_server)
    capsys.readouterr()
    assert main(["report", str(path)]) == 0
    printed = capsys.readouterr().out
    old = os.umask(0o027)
    try:
        out = project.root / "reports" / "report.txt"
        assert main(["report", str(path), "--output", str(out)]) == 0
    finally:
        os.umask(old)
    assert capsys.readouterr().err.endswith(f"wrote {out}\n")
    assert out.read_text(encoding="utf-8") == printed
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # 0666 less the umask, not mkstemp's 0600
    assert [p.name for p in out.parent.iterdir()] == ["report.txt"]  # no temporary file left beside it
