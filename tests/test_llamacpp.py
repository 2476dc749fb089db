"""The embedded llama.cpp backend and the openai backend against a real llama.cpp server.

These use the real SmolLM2-135M-Instruct file (installed by scripts/setup.sh) with tiny
max_tokens and two items, so the whole module takes seconds.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, base_experiment, smollm_path
from runner.backends.llamacpp.gguf_info import read_gguf_info
from runner.cli import main

pytestmark = pytest.mark.model

def _experiment(backend: dict[str, Any], **models: Any) -> dict[str, Any]:
    exp = base_experiment()
    exp["backend"] = backend
    exp["models"] = [{"name": "smollm2", **models}]
    exp["prompts"] = {"variants": [{"name": "p", "text": 'Is this config valid? Answer JSON. {{ config | tojson }}'}]}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 8}
    exp["repeats"] = 1
    return exp


def _jobs(store: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(store) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY item_id, quantization")]


def test_openai_backend_against_a_real_llamacpp_server(project: Project, llama_server: str) -> None:
    path = project.write(_experiment({"kind": "openai", "base_url": f"{llama_server}/v1", "concurrency": 1},
                                     id="smollm2"))
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2"]) == 0
    jobs = _jobs(project.store_path())
    assert [j["status"] for j in jobs] == ["ok", "ok"]
    for job in jobs:
        assert job["text"].strip()
        assert 0 < job["completion_tokens"] <= 8
        assert job["finish_reason"] in ("stop", "length")
        assert json.loads(job["timings_json"])["predicted_n"] == job["completion_tokens"]


def test_embedded_backend_records_each_variants_real_quantization(project: Project) -> None:
    exp = _experiment({"kind": "llamacpp", "n_ctx": 1024, "parallel": 2, "concurrency": 2},
                      source={"path": str(smollm_path())}, quantizations=["Q4_1", "Q8_0"])
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2"]) == 0
    jobs = _jobs(project.store_path())
    assert len(jobs) == 4 and all(j["status"] == "ok" for j in jobs)
    for job in jobs:
        variant = json.loads(job["variant_json"])
        file = Path(variant["file"])
        # What was asked for, what the run recorded, and what the file itself says all agree.
        assert variant["quantization"] == job["quantization"] == read_gguf_info(file).quantization
        assert variant["size_bytes"] == file.stat().st_size
        assert variant["n_ctx_per_slot"] == 1024 and variant["slots"] == 2
        assert json.loads(job["timings_json"])["predicted_per_second"] > 0
    q4 = {json.loads(j["variant_json"])["file"] for j in jobs if j["quantization"] == "Q4_1"}
    assert q4 == {str(smollm_path())}, "the source's own type is served as is, not re-derived"


def test_same_answers_through_openai_and_embedded_backends_at_temperature_0(
        project: Project, llama_server: str) -> None:
    served = project.write(_experiment({"kind": "openai", "base_url": f"{llama_server}/v1", "concurrency": 1},
                                       id="smollm2"), name="served.yaml")
    embedded = project.write(_experiment({"kind": "llamacpp", "n_ctx": 1024, "concurrency": 1},
                                         source={"path": str(smollm_path())}), name="embedded.yaml")
    for path in (served, embedded):
        assert main(["run", str(path), "--quiet", "--no-report", "--limit", "3"]) == 0
    texts = [[j["text"] for j in _jobs(project.store_path(name))] for name in ("served", "embedded")]
    assert texts[0] == texts[1]
    assert len(texts[0]) == 3


def test_a_second_run_loads_no_model_and_sends_nothing(project: Project, capfd: pytest.CaptureFixture[str]) -> None:
    exp = _experiment({"kind": "llamacpp", "n_ctx": 1024, "concurrency": 2}, source={"path": str(smollm_path())})
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2"]) == 0
    first = capfd.readouterr().err
    assert "loading smollm2" in first
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2"]) == 0
    second = capfd.readouterr().err
    assert "loading" not in second  # every job was resumed from the store: the model is never started
    assert "0 succeeded, 0 failed, 2 resumed from the store" in second


def test_a_finished_experiment_derives_nothing_again(project: Project, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNNER_CACHE", str(tmp_path / "cache"))
    exp = _experiment({"kind": "llamacpp", "n_ctx": 512, "concurrency": 1},
                      source={"path": str(smollm_path())}, quantizations=["Q8_0"])
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "1"]) == 0
    assert "deriving" in capfd.readouterr().err
    # The derived file is gone (a cleaned cache); every job is stored, so nothing is derived or loaded.
    for derived in (tmp_path / "cache" / "derived").rglob("*.gguf"):
        derived.unlink()
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "1"]) == 0
    err = capfd.readouterr().err
    assert "deriving" not in err and "loading" not in err
