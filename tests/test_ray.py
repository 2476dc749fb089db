"""`runner run --ray`: the embedded engine's variants on a Ray cluster that the test starts (a head and a
worker node, one CPU each, on loopback), against a local run of the same experiment; and the address
checks that keep a wrong `--ray ADDRESS` from hanging the runner."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, base_experiment, smollm_path
from runner.cli import main


def _experiment() -> dict[str, Any]:
    exp = base_experiment()
    # One slot, one request at a time, one thread: at temperature 0 the answers then depend on nothing
    # but the model file and the prompt, on any node.
    exp["backend"] = {"kind": "llamacpp", "n_ctx": 512, "parallel": 1, "concurrency": 1, "threads": 1}
    exp["models"] = [{"name": "smollm2", "source": {"path": str(smollm_path())}, "quantizations": ["Q4_1", "Q8_0"]}]
    exp["prompts"] = {"variants": [{"name": "p", "text": "Is this config valid? Answer JSON. {{ config | tojson }}"}]}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 8}
    exp["repeats"] = 1
    return exp


def _stored(store: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as conn:
        return conn.execute("SELECT j.job_id, j.status, j.quantization, j.text, s.scorer_key, s.score_json "
                            "FROM jobs j LEFT JOIN scores s USING (job_id) ORDER BY j.job_id").fetchall()


def _on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's single-machine mode, in which nodes and the driver use 127.0.0.1 as is.

    Otherwise Ray replaces 127.0.0.1 by the machine's own IP wherever it meets it (the driver's
    address too), so nodes started on loopback cannot be reached. The variable is Ray's (meant for
    macOS and Windows, where it is off by default); the processes the cluster starts read it from the
    environment, and this one has read it already when ray was imported."""
    constants = pytest.importorskip("ray._private.ray_constants")
    monkeypatch.setenv(constants.ENABLE_RAY_CLUSTERS_ENV_VAR, "0")
    monkeypatch.setattr(constants, "ENABLE_RAY_CLUSTER", False)


@pytest.mark.model
def test_two_variants_on_a_local_ray_cluster_store_what_a_local_run_stores(
        project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    local = project.write(_experiment(), name="local.yaml")
    on_ray = project.write(_experiment(), name="on_ray.yaml")
    started = time.monotonic()
    assert main(["run", str(local), "--quiet", "--no-report", "--limit", "3"]) == 0
    local_s = time.monotonic() - started

    _on_loopback(monkeypatch)
    # Bounded: one CPU per node, and a small object store (the default takes 30% of memory).
    node = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 100 * 2**20}
    # The head node started in this process registers its own SIGTERM handler (Ray's shutdown hook):
    # the test's harness, not the runner, so it is undone here.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        assert cluster.address.startswith("127.0.0.1:")
        assert [n.node_ip_address for n in cluster.list_all_nodes()] == ["127.0.0.1", "127.0.0.1"]
        started = time.monotonic()
        assert main(["run", str(on_ray), "--quiet", "--no-report", "--limit", "3", "--ray", cluster.address]) == 0
        ray_s = time.monotonic() - started
        capsys.readouterr()
        # Everything is stored: the second run loads no variant, asks nothing, and stores nothing twice.
        assert main(["run", str(on_ray), "--no-report", "--limit", "3", "--ray", cluster.address]) == 0
        assert "0 succeeded, 0 failed, 6 resumed from the store" in capsys.readouterr().err
    finally:
        cluster.shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    mine, theirs = _stored(project.store_path("local")), _stored(project.store_path("on_ray"))
    assert len(mine) == 6 and {row[1] for row in mine} == {"ok"} and {row[2] for row in mine} == {"Q4_1", "Q8_0"}
    assert theirs == mine  # the same jobs, answers and scores
    with sqlite3.connect(project.store_path("on_ray")) as conn:
        details = [json.loads(v) for (v,) in conn.execute("SELECT variant_json FROM jobs")]
    assert all(d["ray_node"] and d["quantization"] in ("Q4_1", "Q8_0") for d in details)
    print(f"local run {local_s:.1f} s, on the Ray cluster {ray_s:.1f} s (cluster start not included)")


def test_ray_needs_the_embedded_backend(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.write(base_experiment())
    assert main(["run", str(path), "--quiet", "--ray"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: backend.kind: --ray runs the embedded backend's variants on a Ray cluster, and "
        "backend.kind is openai; drop --ray; to spread jobs over several servers, list them in backend.endpoints\n")
    assert not project.store_path().exists()


def _embedded(project: Project) -> Path:
    exp = _experiment()
    exp["models"][0]["quantizations"] = ["Q4_1"]  # the file as it is: nothing to derive
    return project.write(exp)


def _free_port() -> int:
    with socket.create_server(("0.0.0.0", 0)) as server:  # on every interface: free on loopback and the node IP
        port: int = server.getsockname()[1]
    return port


_FORM = ("give the head node's HOST:PORT (the GCS port `ray start --head` printed, 6379 unless --port changed it), "
         "e.g. --ray 127.0.0.1:6379, or ray://HOST:10001 for Ray Client")


@pytest.mark.parametrize("address", ["nohost", "127.0.0.1:abc", ":6379", "127.0.0.1:70000", "http://127.0.0.1:8265"])
def test_a_malformed_ray_address_is_one_line(project: Project, capsys: pytest.CaptureFixture[str],
                                              address: str) -> None:
    pytest.importorskip("ray")
    path = _embedded(project)
    assert main(["run", str(path), "--quiet", "--ray", address]) == 2
    assert capsys.readouterr().err == f"runner: {path}: --ray: {address!r} is not a Ray address; {_FORM}\n"
    assert not project.store_path().exists()


def test_an_unreachable_ray_address_is_one_line_in_seconds(project: Project, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    services = pytest.importorskip("ray._private.services")
    path = _embedded(project)
    port = _free_port()
    # Ray dials the node's own IP for 127.0.0.1 (on a cluster in loopback mode, 127.0.0.1 itself).
    dialed = services.resolve_ip_for_localhost("127.0.0.1")
    via = "" if dialed == "127.0.0.1" else f"Ray dials {dialed}:{port}: "
    started = time.monotonic()
    assert main(["run", str(path), "--quiet", "--ray", f"127.0.0.1:{port}"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: --ray: nothing listens at 127.0.0.1:{port} ({via}connection refused); "
        f"start the head there (ray start --head --port {port}) or correct the address\n")
    # RAY_ADDRESS, which a bare --ray uses, is checked the same way and named.
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.2:{port}")
    assert main(["run", str(path), "--quiet", "--ray"]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: --ray: nothing listens at RAY_ADDRESS 127.0.0.2:{port} (connection refused); "
        f"start the head there (ray start --head --port {port}) or correct the address\n")
    assert time.monotonic() - started < 10  # Ray's own attempts would run for minutes
    assert not project.store_path().exists()


def test_a_port_that_is_no_ray_head_is_one_line(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    path = _embedded(project)
    # A listener that takes connections and says nothing (as a wrong service might); 127.0.0.2 is
    # loopback too, and Ray dials it as given.
    with socket.create_server(("127.0.0.2", 0)) as silent:
        address = f"127.0.0.2:{silent.getsockname()[1]}"
        assert main(["run", str(path), "--quiet", "--ray", address]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: --ray: {address} is no Ray head (it takes connections but gives no gRPC answer); {_FORM}\n")
    assert not project.store_path().exists()
