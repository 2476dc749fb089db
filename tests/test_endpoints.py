"""A pool of endpoints (`backend.endpoints`): three real loopback servers, one killed half way, one of
another model refused at start, and the report's per-endpoint table."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import CLOSED_URL, Project, base_experiment
from runner.cli import main
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer, answer_text, request_key

PLANNED = 48  # base_experiment: 6 items x 2 prompts x 2 temperatures x 2 repeats


@pytest.fixture
def three() -> Iterator[list[ThreadedFaultServer]]:
    servers = [ThreadedFaultServer(FaultPlan(latency_s=0.01)) for _ in range(3)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


def _pool(urls: list[str], **backend: Any) -> dict[str, Any]:
    exp = base_experiment()
    del exp["backend"]["base_url"]
    exp["backend"].update(endpoints=urls, concurrency=2, **backend)
    return exp


def _rows(project: Project) -> list[tuple[str, str, str | None, str | None, str]]:
    conn = sqlite3.connect(project.store_path())
    try:
        return conn.execute("SELECT job_id, status, json_extract(timings_json, '$.endpoint'), text, request_json "
                            "FROM jobs").fetchall()
    finally:
        conn.close()


def _endpoint_table(capsys: pytest.CaptureFixture[str], project: Project) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["report", str(project.root / "exp.yaml"), "--format", "json"]) == 0
    tables = json.loads(capsys.readouterr().out)["tables"]
    table = next(t for t in tables if t["title"] == "t — per endpoint")
    return list(table["rows"])


def test_an_endpoint_killed_half_way_loses_no_job_and_stores_none_twice(
        project: Project, three: list[ThreadedFaultServer], capsys: pytest.CaptureFixture[str]) -> None:
    victim = three[1]
    # The victim answers 5 requests, then holds the next ones (in flight) until it is stopped, which
    # drops their connections; from then on it refuses connections.
    victim.set_plan(FaultPlan(latency_s=0.01, hold_after=5))
    urls = [f"{s.url}/v1" for s in three]
    path = project.write(_pool(urls))

    def kill() -> None:
        victim.wait_held(2)  # both of its slots (concurrency 2) hold a job in flight
        victim.stop()

    killer = threading.Thread(target=kill)
    killer.start()
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    killer.join()
    err = capsys.readouterr().err
    assert f"backend.endpoints[1] {urls[1]} failed (connection error: " in err
    rows = _rows(project)
    assert len(rows) == PLANNED and len({r[0] for r in rows}) == PLANNED  # every job once
    assert {r[1] for r in rows} == {"ok"}
    for _, _, _, text, request in rows:  # each answer is its own request's
        assert text == answer_text(request_key(json.loads(request)))
    by_endpoint = Counter(r[2] for r in rows)
    assert by_endpoint[urls[1]] == 5  # what the victim answered before it died, and no more
    assert by_endpoint[urls[0]] + by_endpoint[urls[2]] == PLANNED - 5
    assert by_endpoint[urls[0]] > 5 and by_endpoint[urls[2]] > 5  # its share went to both others

    table = _endpoint_table(capsys, project)
    assert [(r["endpoint"], r["jobs"], r["ok"], r["failed"]) for r in table] == [
        (url, by_endpoint[url], by_endpoint[url], 0) for url in urls]


def test_an_endpoint_serving_another_model_is_refused_at_start(
        project: Project, three: list[ThreadedFaultServer], capsys: pytest.CaptureFixture[str]) -> None:
    three[2].set_plan(FaultPlan(model_id="other-model"))
    urls = [f"{s.url}/v1" for s in three]
    path = project.write(_pool(urls))
    assert main(["run", str(path), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: backend.endpoints[2]: {urls[2]} does not list model 'fake-model' (it serves other-model), "
        f"unlike {urls[0]}; serve the same model (file and settings) on every endpoint, or remove that one\n")
    assert not project.store_path().exists()
    assert all(s.stats()["requests"] == 0 for s in three)  # not one chat request sent


def test_an_unreachable_endpoint_is_refused_at_start(
        project: Project, three: list[ThreadedFaultServer], capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write(_pool([f"{three[0].url}/v1", CLOSED_URL]))
    assert main(["run", str(path), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: backend.endpoints[1]: cannot reach {CLOSED_URL} (ConnectionRefusedError); "
        "start that server, or correct or remove it\n")
    assert not project.store_path().exists()


@pytest.mark.parametrize(("backend", "line"), [
    ({"base_url": CLOSED_URL}, "gives both base_url and endpoints; give one (endpoints: [URL, ...] for a pool)"),
    ({"endpoints": []}, "endpoints is empty; list at least one URL, or give base_url"),
    ({"endpoints": [CLOSED_URL, CLOSED_URL + "/"]}, "endpoints lists one URL twice; list each server once"),
])
def test_endpoints_and_base_url_are_one_or_the_other(project: Project, capsys: pytest.CaptureFixture[str],
                                                    backend: dict[str, Any], line: str) -> None:
    exp = _pool([CLOSED_URL])
    exp["backend"].update(backend)
    path = project.write(exp)
    assert main(["validate", str(path), "--offline"]) == 2
    assert capsys.readouterr().err == f"runner: {path}: backend: {line}\n"


def test_the_report_breaks_failures_and_latency_down_per_endpoint(
        project: Project, three: list[ThreadedFaultServer], capsys: pytest.CaptureFixture[str]) -> None:
    # One endpoint answers every chat request with a 500 and there are no retries: each job sent there
    # fails, and the failure is counted against that endpoint.
    three[0].set_plan(FaultPlan(rate_500=1.0))
    urls = [f"{s.url}/v1" for s in three]
    path = project.write(_pool(urls, max_retries=0))
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    rows = _rows(project)
    failed = [r for r in rows if r[1] == "failed"]
    assert failed and {r[2] for r in failed} == {urls[0]}
    assert {r[2] for r in rows if r[1] == "ok"} == {urls[1], urls[2]}
    table = {r["endpoint"]: r for r in _endpoint_table(capsys, project)}
    assert (table[urls[0]]["ok"], table[urls[0]]["failed"]) == (0, len(failed))
    assert table[urls[0]]["failure_rate"]["value"] == 1.0 and table[urls[0]]["latency_mean_s"] is None
    for url in urls[1:]:
        assert table[url]["failed"] == 0 and table[url]["failure_rate"]["high"] > 0  # an interval, not a bare 0
        assert 0.01 <= table[url]["latency_p50_s"] <= table[url]["latency_p95_s"]  # the servers' 10 ms at least
    assert sum(r["jobs"] for r in table.values()) == PLANNED


def test_a_run_on_one_server_resumes_on_a_pool_that_starts_with_it(
        project: Project, three: list[ThreadedFaultServer], capsys: pytest.CaptureFixture[str]) -> None:
    urls = [f"{s.url}/v1" for s in three]
    single = base_experiment(urls[0])
    path = project.write(single)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "3"]) == 0
    project.write(_pool(urls))
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    rows = _rows(project)
    assert len(rows) == PLANNED and len({r[0] for r in rows}) == PLANNED
    # The 24 jobs of the first 3 items were not asked again: the pool sent only the other 24.
    assert sum(s.stats()["requests"] for s in three) == PLANNED
    assert Counter(r[2] for r in rows)[None] == PLANNED // 2  # the single server's jobs name no endpoint


def test_an_endpoint_that_times_out_again_and_again_is_taken_out(
        project: Project, three: list[ThreadedFaultServer], capsys: pytest.CaptureFixture[str]) -> None:
    # Its listing answers, its chat hangs: every job sent there times out and goes to another endpoint.
    three[0].set_plan(FaultPlan(rate_hang=1.0, hang_s=30))
    for server in three[1:]:  # slow enough that the run outlasts three timeouts on the first
        server.set_plan(FaultPlan(latency_s=0.1))
    urls = [f"{s.url}/v1" for s in three]
    path = project.write(_pool(urls, timeout_s=0.3, max_retries=0))
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    err = capsys.readouterr().err
    assert f"backend.endpoints[0] {urls[0]} failed (timed out after 0.3 s): its jobs go to the other endpoints" in err
    rows = _rows(project)
    assert len(rows) == PLANNED and {r[1] for r in rows} == {"ok"}  # no retries allowed, yet none failed
    assert {r[2] for r in rows} == {urls[1], urls[2]}
    assert three[0].stats()["requests"] >= 3  # three in a row before it was taken out
