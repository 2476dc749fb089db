"""What the server used for the sampling an experiment left to it: recorded per variant, said in the report.

The embedded llama.cpp (real model) and the openai backend against llama.cpp's server read /props;
Ollama's fake reports its Modelfile's parameters in /api/show; LM Studio's fake, like LM Studio's
documented /api/v0/models, reports nothing.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

import runner
from conftest import CLOSED_URL, Project, base_experiment, smollm_path
from runner.analysis.results import load_results
from runner.backends.sampler import from_llamacpp_props, from_ollama_show
from runner.cli import main
from runner.testing.fakes import FakeLMStudio, FakeModel, FakeOllama, ThreadedApp
from runner.testing.fault_server import ThreadedFaultServer

LEFT = "sampling left to the server"


def _experiment(backend: dict[str, Any], model: dict[str, Any], **sampling: Any) -> dict[str, Any]:
    exp = base_experiment()
    exp["backend"] = {"concurrency": 1, "timeout_s": 60, "max_retries": 0, **backend}
    exp["models"] = [model]
    exp["prompts"] = {"variants": [{"name": "p", "text": "Is this config valid? Answer JSON. {{ config | tojson }}"}]}
    # top_p and top_k unset: left to the server
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 4, **sampling}
    exp["repeats"] = 1
    return exp


def _notes(project: Project, exp: dict[str, Any]) -> list[str]:
    path = project.write(exp)
    assert main(["run", str(path), "--quiet", "--no-report", "--limit", "2"]) == 0
    report = runner.report(path)
    assert isinstance(report, runner.Report)
    assert all(LEFT not in n for t in report.tables[1:] for n in t.notes), "said once, on the first table"
    return [n for n in report.tables[0].notes if n.startswith(LEFT)]


def _variants(project: Project) -> list[dict[str, Any]]:
    with sqlite3.connect(project.store_path()) as conn:
        return [json.loads(v) for (v,) in conn.execute("SELECT variant_json FROM jobs ORDER BY quantization")]


# what the servers' answers are read as


def test_llamacpp_props_nested_under_params_and_at_the_top_level() -> None:
    newer = {"default_generation_settings": {"n_ctx": 1024, "params": {
        "temperature": 0.800000011920929, "top_p": 0.949999988079071, "top_k": 40, "seed": 4294967295,
        "n_predict": -1, "samplers": ["top_k"], "ignore_eos": False}}}
    assert from_llamacpp_props(newer) == {
        "sampler": {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "seed": 4294967295, "n_predict": -1},
        "sampler_source": "llama.cpp /props"}
    older = {"default_generation_settings": {"n_ctx": 1024, "temperature": 0.8, "top_k": 40, "min_p": 0.05}}
    assert from_llamacpp_props(older)["sampler"] == {"temperature": 0.8, "top_k": 40, "min_p": 0.05}
    for other in (None, [], {"error": "not found"}, {"default_generation_settings": {"n_ctx": 1024}}):
        assert from_llamacpp_props(other) == {}


def test_ollama_parameters_text_with_padded_columns() -> None:
    show = {"parameters": 'stop                           "<|im_end|>"\n'
                          "temperature                    0.7\nnum_predict                    128\n"
                          "top_k                          40\nmirostat_eta                   0.1"}
    assert from_ollama_show(show) == {"sampler": {"temperature": 0.7, "n_predict": 128, "top_k": 40},
                                      "sampler_source": "Ollama /api/show"}
    assert from_ollama_show({"details": {}}) == {}  # no PARAMETER lines: Ollama leaves the key out


# the fakes: Ollama reports its Modelfile's parameters, LM Studio nothing


def test_ollama_reports_the_modelfile_parameters_per_variant(project: Project) -> None:
    fake = FakeOllama([FakeModel("smollm2:135m-instruct-q4_K_M", "Q4_K_M", 8192),
                       FakeModel("smollm2:135m-instruct-q8_0", "Q8_0", 8192,
                                 parameters=(("stop", '"<|im_end|>"'), ("top_p", "0.9")))])
    with ThreadedApp(fake.app) as server:
        exp = _experiment({"kind": "ollama", "base_url": server.url},
                          {"name": "smollm2", "id": "smollm2:135m-instruct-{quant}",
                           "quantizations": ["q4_K_M", "q8_0"]})
        notes = _notes(project, exp)
    assert notes == ["sampling left to the server: top_p, top_k; "
                     "Ollama used top_k 40 and does not report top_p (smollm2 q4_K_M); "
                     "Ollama used top_p 0.9 and does not report top_k (smollm2 q8_0)"]
    samplers = {v["quantization"]: (v["sampler"], v["sampler_source"]) for v in _variants(project)}
    assert samplers == {"Q4_K_M": ({"temperature": 0.7, "top_k": 40}, "Ollama /api/show"),
                        "Q8_0": ({"top_p": 0.9}, "Ollama /api/show")}
    # What the runner sends in options overrides the Modelfile: the experiment's keys, and only those.
    assert {tuple(sorted(r["options"])) for r in fake.requests} == {("num_predict", "seed", "temperature")}


def test_ollama_variants_reporting_the_same_values_share_one_clause(project: Project) -> None:
    with ThreadedApp(FakeOllama().app) as server:
        exp = _experiment({"kind": "ollama", "base_url": server.url},
                          {"name": "smollm2", "id": "smollm2:135m-instruct-{quant}",
                           "quantizations": ["q4_K_M", "q8_0"]}, top_p=0.5)
        notes = _notes(project, exp)
    assert notes == ["sampling left to the server: top_k; Ollama used top_k 40 (smollm2 q4_K_M, smollm2 q8_0)"]


def test_lmstudio_does_not_report_its_defaults(project: Project) -> None:
    with ThreadedApp(FakeLMStudio().app) as server:
        exp = _experiment({"kind": "lmstudio", "base_url": f"{server.url}/v1"},
                          {"name": "smollm2", "id": "smollm2-135m-instruct@{quant}", "quantizations": ["q4_k_m"]})
        notes = _notes(project, exp)
    assert notes == ["sampling left to the server: top_p, top_k; LM Studio does not report its defaults"]
    assert all("sampler" not in v for v in _variants(project))


def test_an_openai_server_without_props_does_not_report_its_defaults(
        project: Project, fault_server: ThreadedFaultServer) -> None:
    exp = _experiment({"kind": "openai", "base_url": f"{fault_server.url}/v1"}, {"name": "fake", "id": "fake-model"})
    assert _notes(project, exp) == ["sampling left to the server: top_p, top_k; "
                                    "the server does not report its defaults"]


def test_an_experiment_that_sets_every_sampling_key_gets_no_note(project: Project) -> None:
    with ThreadedApp(FakeOllama().app) as server:
        exp = _experiment({"kind": "ollama", "base_url": server.url},
                          {"name": "smollm2", "id": "smollm2:135m-instruct-q4_K_M"},
                          top_p=0.9, top_k=20, stop=["\n\n"],
                          response_format={"type": "json_object"})
        assert _notes(project, exp) == []
    assert _variants(project)[0]["sampler"] == {"temperature": 0.7, "top_k": 40}  # recorded all the same


def test_a_report_with_nothing_run_has_no_note(project: Project) -> None:
    exp = _experiment({"kind": "openai", "base_url": CLOSED_URL}, {"name": "fake"})
    experiment = runner.load_experiment(project.write(exp))
    scorers = runner.build_scorers(list(experiment.scorers), "valid")
    report = runner.build_report(load_results(runner.build_plan(experiment), None, scorers))
    assert not [n for t in report.tables for n in t.notes if n.startswith(LEFT)]


# the real llama.cpp server


@pytest.mark.model
def test_embedded_llamacpp_says_the_top_p_and_top_k_it_used(project: Project) -> None:
    exp = _experiment({"kind": "llamacpp", "n_ctx": 1024, "parallel": 1},
                      {"name": "smollm2-135m", "source": {"path": str(smollm_path())}, "quantizations": ["Q4_1"]})
    assert _notes(project, exp) == [
        "sampling left to the server: top_p, top_k; llama.cpp used top_p 0.95, top_k 40 (smollm2-135m Q4_1)"]
    variants = _variants(project)
    assert len(variants) == 2
    for variant in variants:
        assert variant["sampler_source"] == "llama.cpp /props"
        assert variant["sampler"] == {
            "temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "typical_p": 1.0, "repeat_penalty": 1.0,
            "repeat_last_n": 64, "presence_penalty": 0.0, "frequency_penalty": 0.0, "mirostat": 0,
            "seed": 4294967295, "n_predict": -1}


@pytest.mark.model
def test_openai_against_llamacpp_reads_props_too(project: Project, llama_server: str) -> None:
    exp = _experiment({"kind": "openai", "base_url": f"{llama_server}/v1"}, {"name": "smollm2", "id": "smollm2"})
    exp["sampling"] = {"temperature": 0.0, "max_tokens": 4}  # seed left out too
    assert _notes(project, exp) == [
        "sampling left to the server: top_p, top_k, seed; llama.cpp used top_p 0.95, top_k 40, seed random (smollm2)"]
    assert {v["sampler_source"] for v in _variants(project)} == {"llama.cpp /props"}
