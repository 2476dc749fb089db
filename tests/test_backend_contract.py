"""The contract every backend keeps, checked through the public `Backend` interface alone.

Four backends: the embedded llama.cpp server (real model), `openai` against a real llama.cpp server,
and `ollama` and `lmstudio` against their recorded-protocol fakes. Each served backend is started
and loaded once per module (one event loop for the module), so the real model loads twice here.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from conftest import CLOSED_HOST_URL, CLOSED_PORT, CLOSED_URL, Project, base_experiment, smollm_path
from runner.backends import Backend, ChatRequest, Variant, create_backend
from runner.cli import main
from runner.config.loader import load_experiment
from runner.errors import BackendUnavailable
from runner.plan.planner import build_plan
from runner.testing.fakes import FakeLMStudio, FakeOllama, ThreadedApp

HTTP = ("openai", "ollama", "lmstudio")
MODEL_IDS = {"ollama": "smollm2:135m-instruct-q4_K_M", "lmstudio": "smollm2-135m-instruct@q4_k_m"}
QUANTIZATION = {"llamacpp": "Q4_1", "openai": "Q4_1", "ollama": "Q4_K_M", "lmstudio": "Q4_K_M"}
HI = [{"role": "user", "content": "Say hello in three words."}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon and a lighthouse."}]

in_module_loop = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Case:
    name: str
    experiment: dict[str, Any]
    project: Project
    path: Path


def _experiment(backend: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    exp = base_experiment()
    exp["backend"] = {"concurrency": 1, "timeout_s": 60, "max_retries": 0, **backend}
    exp["models"] = [{"name": "smollm2", **model}]
    exp["prompts"] = {"variants": [{"name": "p", "text": "Is this config valid? Answer JSON. {{ config | tojson }}"}]}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 4}
    exp["repeats"] = 1
    return exp


@pytest.fixture(scope="module", params=[
    pytest.param("llamacpp", marks=pytest.mark.model),
    pytest.param("openai", marks=pytest.mark.model),
    "ollama",
    "lmstudio",
])
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Case]:
    """(name, experiment dict) for one backend, with its server running for the whole module."""
    name: str = request.param
    project = Project(tmp_path_factory.mktemp(name))

    def made(exp: dict[str, Any]) -> Case:
        return Case(name, exp, project, project.write(exp))

    if name == "llamacpp":
        yield made(_experiment({"kind": "llamacpp", "n_ctx": 1024, "parallel": 1},
                               {"source": {"path": str(smollm_path())}}))
    elif name == "openai":
        url = request.getfixturevalue("llama_server")
        # The id the server lists (its model path): the one its /v1/models describes.
        yield made(_experiment({"kind": "openai", "base_url": f"{url}/v1"}, {"id": str(smollm_path())}))
    else:
        fake = FakeOllama() if name == "ollama" else FakeLMStudio()
        with ThreadedApp(fake.app) as server:
            base_url = server.url if name == "ollama" else f"{server.url}/v1"
            yield made(_experiment({"kind": name, "base_url": base_url}, {"id": MODEL_IDS[name]}))


@dataclass
class Served:
    name: str
    backend: Backend
    variant: Variant
    details: dict[str, Any]

    async def ask(self, messages: list[dict[str, str]], **params: Any) -> Any:
        return await self.backend.generate(ChatRequest(self.variant.model_id, messages, params))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(case: Case) -> AsyncIterator[Served]:
    experiment = load_experiment(str(case.path))
    backend = create_backend(experiment)
    backend.check()
    await backend.start()
    try:
        [variant] = build_plan(experiment).variants()
        async with backend.serve(variant) as info:
            yield Served(case.name, backend, variant, dict(info.details))
    finally:
        await backend.close()


def _with_closed_port(case: Case) -> Case:
    exp = json.loads(json.dumps(case.experiment))
    exp["backend"]["base_url"] = CLOSED_URL if case.name != "ollama" else CLOSED_HOST_URL
    return Case(case.name, exp, case.project, case.project.write(exp, name="closed.yaml"))


# (1)-(4): requests through a served variant


@in_module_loop
async def test_a_completion_has_text_a_finish_reason_and_token_counts(served: Served) -> None:
    completion = await served.ask(HI, temperature=0.0, max_tokens=8)
    assert completion.text.strip()
    assert completion.finish_reason in ("stop", "length")
    assert completion.prompt_tokens is not None and completion.prompt_tokens > 0
    assert completion.completion_tokens is not None and 0 < completion.completion_tokens <= 8
    assert completion.request["messages"] == HI
    assert completion.response, "the raw answer is kept for the store"


@in_module_loop
async def test_max_tokens_cuts_the_answer_with_finish_reason_length(served: Served) -> None:
    completion = await served.ask(STORY, temperature=0.0, max_tokens=2)
    assert completion.finish_reason == "length"
    assert completion.completion_tokens is not None and completion.completion_tokens <= 2
    assert completion.text.strip()


@in_module_loop
async def test_serve_describes_the_variant_with_quantization_and_context(served: Served) -> None:
    details = served.details
    assert details.get("quantization") == QUANTIZATION[served.name]
    context = details.get("n_ctx_per_slot") or details.get("n_ctx_train")
    assert isinstance(context, int) and context > 0
    if served.name in ("llamacpp", "openai"):
        assert details["n_ctx_per_slot"] == 1024  # per slot, not the server's total
    json.dumps(details)  # stored with every job as JSON


@in_module_loop
async def test_serve_records_the_servers_sampler_defaults_where_it_reports_them(served: Served) -> None:
    details = served.details
    if served.name == "lmstudio":
        assert "sampler" not in details  # its /api/v0/models has no sampler fields
        return
    assert details["sampler_source"] == ("Ollama /api/show" if served.name == "ollama" else "llama.cpp /props")
    assert details["sampler"]["top_k"] == 40  # llama.cpp's default; the fake Modelfile's PARAMETER top_k


@in_module_loop
async def test_a_seed_makes_a_sampled_answer_repeatable(served: Served) -> None:
    prompt = [{"role": "user", "content": "Write one sentence about a lighthouse."}]
    first = await served.ask(prompt, temperature=0.9, seed=11, max_tokens=8)
    again = await served.ask(prompt, temperature=0.9, seed=11, max_tokens=8)
    assert first.text == again.text
    assert first.text.strip()


@in_module_loop
async def test_count_tokens_is_none_or_the_reported_prompt_tokens(served: Served) -> None:
    completion = await served.ask(HI, temperature=0.0, max_tokens=1)
    counted = await served.backend.count_tokens(HI)
    if served.name in ("llamacpp", "openai"):
        assert counted == completion.prompt_tokens  # llama.cpp's tokenizer endpoints
    else:
        assert counted is None


@in_module_loop
async def test_the_rendered_prompt_and_its_tokens_are_none_or_what_the_model_reads(served: Served) -> None:
    prompt = await served.backend.apply_template(HI)
    if served.name in ("llamacpp", "openai"):
        assert prompt is not None and HI[0]["content"] in prompt
        tokens = await served.backend.tokenize(prompt)
        assert tokens is not None and len(tokens) == await served.backend.count_tokens(HI)
        assert all(isinstance(t, int) for t in tokens)
    else:
        assert prompt is None
        assert await served.backend.tokenize("Say hello in three words.") is None


# (5)-(6): failures that stop a run before its first job


def test_the_closed_port_refuses_connections() -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", CLOSED_PORT), timeout=5).close()


async def test_start_against_a_closed_port_is_backend_unavailable(case: Case) -> None:
    if case.name not in HTTP:
        pytest.skip("the embedded backend starts its own server; there is no port to be closed")
    closed = _with_closed_port(case)
    backend = create_backend(load_experiment(str(closed.path)))
    with pytest.raises(BackendUnavailable) as err:
        await backend.start()
    assert f"127.0.0.1:{CLOSED_PORT}" in str(err.value)
    await backend.close()
    await backend.close()


def _web_page() -> web.Application:
    """Something else on the port: a web page answering every GET with HTML and 200."""
    async def page(_: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome</body></html>", content_type="text/html")
    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app


@pytest.mark.parametrize("kind", HTTP)
async def test_start_against_a_server_that_is_not_the_api_is_backend_unavailable(
        kind: str, project: Project) -> None:
    with ThreadedApp(_web_page) as server:
        exp = base_experiment(server.url if kind == "ollama" else f"{server.url}/v1")
        exp["backend"]["kind"] = kind
        backend = create_backend(load_experiment(str(project.write(exp))))
        try:
            with pytest.raises(BackendUnavailable):
                await backend.start()
        finally:
            await backend.close()


async def test_an_unknown_model_id_stops_serve(case: Case) -> None:
    if case.name in ("llamacpp", "openai"):
        pytest.skip("llama.cpp's server serves one model and answers to any model id")
    exp = json.loads(json.dumps(case.experiment))
    exp["models"] = [{"name": "ghost", "id": "no-such-model:7b"}]
    experiment = load_experiment(str(case.project.write(exp, name="ghost.yaml")))
    backend = create_backend(experiment)
    await backend.start()
    try:
        [variant] = build_plan(experiment).variants()
        with pytest.raises(BackendUnavailable) as err:
            async with backend.serve(variant):
                pytest.fail("serve() yielded for a model the server does not have")
        assert "no-such-model:7b" in str(err.value)
    finally:
        await backend.close()


async def test_close_is_safe_twice_and_requested_context_is_what_the_settings_ask(case: Case) -> None:
    backend = create_backend(load_experiment(str(case.path)))
    await backend.start()
    await backend.close()
    await backend.close()
    expected = {"llamacpp": 1024, "openai": None, "ollama": None, "lmstudio": None}[case.name]
    assert backend.requested_context() == expected


# (7): a whole run records the same details with every job


def test_a_run_stores_the_served_details_with_every_job(case: Case, served: Served) -> None:
    assert main(["run", str(case.path), "--quiet", "--no-report", "--limit", "2"]) == 0
    store = case.project.store_path()
    with sqlite3.connect(store) as conn:
        conn.row_factory = sqlite3.Row
        jobs = [dict(r) for r in conn.execute("SELECT * FROM jobs ORDER BY item_id")]
    assert len(jobs) == 2 and all(j["status"] == "ok" for j in jobs)
    for job in jobs:
        stored = json.loads(job["variant_json"])
        # Beyond what serve() reported: what the chat template inserts where no system message is sent
        # (SmolLM2 behind llama.cpp), recorded by the executor, never invented where the server cannot say.
        injected = stored.pop("injected_system", None)
        # And the size class, from the count the backend read (the GGUF's tensors, Ollama's parameter_size);
        # where it read none, the count is stored as unknown, not guessed.
        size = stored.pop("size_class")
        for key in ("parameters", "parameters_source"):
            if key not in served.details:
                assert stored.pop(key) is None
        assert size == {"llamacpp": "<=1B", "openai": "<=1B", "ollama": "<=1B", "lmstudio": "unknown"}[case.name]
        if case.name in ("llamacpp", "openai"):
            # The GGUF's tensor elements as the runner sums them, and llama.cpp's server's own n_params: one count.
            assert stored["parameters"] == 134_515_008
        assert stored == served.details
        assert injected is None or injected["text"].startswith("You are a helpful AI assistant named SmolLM")
        assert job["text"].strip() and job["finish_reason"] in ("stop", "length")
        assert 0 < job["completion_tokens"] <= 4
