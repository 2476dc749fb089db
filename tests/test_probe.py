"""`runner probe`: which capabilities a server honours, measured, stored, and warned about before a run.

The verdicts are pinned for the embedded llama.cpp server (real model) and for the Ollama and LM
Studio fakes; a fake that ignores num_ctx shows a NO and the warning it leads to. Also the store
migration that added the probes table.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aiohttp import web

from conftest import Project, base_experiment, smollm_path
from runner.cli import main
from runner.config.loader import load_experiment
from runner.plan.planner import build_plan
from runner.store import Store
from runner.testing.fakes import FakeLMStudio, FakeOllama, ThreadedApp

OLLAMA_ID = "smollm2:135m-instruct-q4_K_M"
LMSTUDIO_ID = "smollm2-135m-instruct@q4_k_m"
CAPABILITIES = ["seed", "json_schema", "prompt_tokens", "requested_context", "system_prompt", "tokenizer"]
_LINE = re.compile(r"^  (\w+)\s+(yes|NO|n/a)\s+(.*)$")


def _experiment(backend: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    exp = base_experiment()
    exp["backend"] = {"concurrency": 1, "timeout_s": 60, "max_retries": 0, "retry_backoff_s": 0, **backend}
    exp["models"] = [{"name": "smollm2", **model}]
    exp["prompts"] = {"variants": [{"name": "p", "text": "Is this config valid? Answer JSON. {{ config | tojson }}"}]}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 4}
    exp["repeats"] = 1
    return exp


def _probe(project: Project, exp: dict[str, Any], capsys: pytest.CaptureFixture[str],
           name: str = "exp") -> tuple[str, dict[str, tuple[str, str]]]:
    """Run `runner probe`; (its output, {capability: (verdict, detail)})."""
    path = project.write(exp, name=f"{name}.yaml")
    capsys.readouterr()
    assert main(["probe", str(path)]) == 0
    out = capsys.readouterr().out
    verdicts = {m.group(1): (m.group(2), m.group(3)) for m in map(_LINE.match, out.splitlines()) if m}
    assert list(verdicts) == CAPABILITIES, out
    return out, verdicts


def _identities(project: Project, name: str = "exp") -> tuple[str, str]:
    """The backend and variant identity strings the CLI files probe results under."""
    experiment = load_experiment(str(project.root / f"{name}.yaml"))
    [variant] = build_plan(experiment).variants()
    return json.dumps(experiment.backend.identity(), sort_keys=True), variant.identity


def _stored(project: Project, name: str = "exp") -> dict[str, bool | None]:
    store = Store.open(project.store_path(name))
    try:
        results = store.latest_probe(*_identities(project, name))
    finally:
        store.close()
    assert results is not None
    return {r["capability"]: r["honoured"] for r in results}


def _verdicts(verdicts: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, (v, _) in verdicts.items()}


@pytest.mark.model
def test_probe_on_the_embedded_llamacpp_server(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    exp = _experiment({"kind": "llamacpp", "n_ctx": 1024, "parallel": 1}, {"source": {"path": str(smollm_path())}})
    out, verdicts = _probe(project, exp, capsys)
    assert out.startswith("smollm2 (llamacpp; Q4_1, context 1024):")
    assert _verdicts(verdicts) == {"seed": "yes", "json_schema": "yes", "prompt_tokens": "yes",
                                   "requested_context": "yes", "system_prompt": "NO", "tokenizer": "yes"}
    # Hypothesis 6, measured: SmolLM2's template inserts its own system prompt when a request has none.
    assert verdicts["system_prompt"][1] == (
        "with no system message the template adds 'You are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face' (16 tokens); send an explicit or empty system message to avoid it")
    reported, counted = re.fullmatch(r"reported (\d+), the server's tokenizer counts (\d+)",
                                     verdicts["prompt_tokens"][1]).groups()  # type: ignore[union-attr]
    assert reported == counted
    assert verdicts["requested_context"][1].startswith("asked for 1024; a ")
    # The server's tokens of the experiment's own prompts, against llama.cpp's tokenizer on the same file.
    assert re.fullmatch(r"5 of 5 sample prompts counted alike \(\d+ tokens, the same ids\): chat-template-rendered "
                        r"prompts, reference the served GGUF's vocabulary \(llama-cpp-python\)",
                        verdicts["tokenizer"][1])
    # This experiment sends no system message, so the injection is a warning for it.
    assert [line for line in out.splitlines() if "warning" in line] == [
        "  warning: smollm2: some cells send no system message, and the server was measured to add its own: "
        f"{verdicts['system_prompt'][1]}"]
    assert _stored(project) == {"seed": True, "json_schema": True, "prompt_tokens": True,
                                "requested_context": True, "system_prompt": False, "tokenizer": True}


@pytest.mark.parametrize("num_ctx", [4096, None])
def test_probe_on_the_ollama_fake(project: Project, capsys: pytest.CaptureFixture[str], num_ctx: int | None) -> None:
    with ThreadedApp(FakeOllama().app) as server:
        exp = _experiment({"kind": "ollama", "base_url": server.url, "num_ctx": num_ctx}, {"id": OLLAMA_ID})
        out, verdicts = _probe(project, exp, capsys)
    assert out.startswith(f"smollm2 (ollama; Q4_K_M, context {num_ctx or '?'}):")
    expected = {"seed": "yes", "json_schema": "yes", "prompt_tokens": "n/a",
                "requested_context": "yes" if num_ctx else "n/a", "system_prompt": "n/a", "tokenizer": "n/a"}
    assert _verdicts(verdicts) == expected
    assert "grows with the prompt" in verdicts["prompt_tokens"][1]
    assert verdicts["seed"][1] == "same seed, same text; another seed, another text"
    assert "warning" not in out
    assert _stored(project) == {k: {"yes": True, "n/a": None}[v] for k, v in expected.items()}


def test_probe_on_the_lmstudio_fake(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedApp(FakeLMStudio().app) as server:
        exp = _experiment({"kind": "lmstudio", "base_url": f"{server.url}/v1"}, {"id": LMSTUDIO_ID})
        out, verdicts = _probe(project, exp, capsys)
    assert out.startswith("smollm2 (lmstudio; Q4_K_M, context 4096):")
    assert _verdicts(verdicts) == {"seed": "yes", "json_schema": "yes", "prompt_tokens": "n/a",
                                   "requested_context": "n/a", "system_prompt": "n/a", "tokenizer": "n/a"}
    assert verdicts["tokenizer"][1] == "the server cannot tokenize text (no /tokenize endpoint)"
    assert _stored(project) == {"seed": True, "json_schema": True, "prompt_tokens": None,
                                "requested_context": None, "system_prompt": None, "tokenizer": None}


class _Request:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    async def json(self) -> dict[str, Any]:
        return self.body


class OllamaIgnoringNumCtx(FakeOllama):
    """Ollama as its /v1 route behaves: num_ctx is dropped, the prompt is cut to the default context."""

    default_num_ctx = 1024

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        (body.get("options") or {}).pop("num_ctx", None)
        return await super()._chat(_Request(body))  # type: ignore[arg-type]


def test_a_server_ignoring_num_ctx_is_measured_and_warned_about_before_a_run(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedApp(OllamaIgnoringNumCtx().app) as server:
        exp = _experiment({"kind": "ollama", "base_url": server.url, "num_ctx": 4096}, {"id": OLLAMA_ID})
        out, verdicts = _probe(project, exp, capsys)
        assert verdicts["requested_context"][0] == "NO"
        assert "silent truncation" in verdicts["requested_context"][1]
        assert "  warning: smollm2: the server did not read a prompt within the requested context whole" in out
        assert _stored(project)["requested_context"] is False

        assert main(["run", str(project.root / "exp.yaml"), "--no-report", "--limit", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: smollm2: the server did not read a prompt within the requested context whole" in err


# warnings from a stored probe before `runner run`


def _lmstudio_run(project: Project, results: list[dict[str, Any]] | None, capsys: pytest.CaptureFixture[str],
                  *flags: str) -> str:
    """Store `results` as the latest probe of the variant, then `runner run`; its standard error."""
    with ThreadedApp(FakeLMStudio().app) as server:
        path = project.write(_experiment({"kind": "lmstudio", "base_url": f"{server.url}/v1"}, {"id": LMSTUDIO_ID}))
        if results is not None:
            store = Store.open(project.store_path())
            try:
                store.save_probe(*_identities(project), results)
            finally:
                store.close()
        capsys.readouterr()
        assert main(["run", str(path), "--no-report", "--limit", "1", *flags]) == 0
    return capsys.readouterr().err


def _results(**honoured: bool | None) -> list[dict[str, Any]]:
    return [{"capability": c, "honoured": honoured.get(c, True), "detail": "pinned by a test"}
            for c in CAPABILITIES]


def test_run_warns_when_a_stored_probe_says_the_seed_is_ignored(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    err = _lmstudio_run(project, _results(seed=False), capsys)
    assert ("warning: smollm2: the experiment sets a seed but the server was measured to ignore it; repeats at "
            "temperature > 0 will not be reproducible") in err
    assert err.count("warning:") == 1


def test_run_warns_when_a_stored_probe_says_the_tokenizer_differs(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    results = _results(tokenizer=False)
    results[-1]["measured"] = {"prompts": 5, "differ": 2, "mean": -1.5, "max": -2}
    err = _lmstudio_run(project, results, capsys)
    assert ("warning: smollm2: the server's tokenizer counts 2 of 5 sample prompts differently from the reference "
            "(mean -1.5, max -2 tokens): scores may suffer from a broken or different tokenizer") in err
    assert err.count("warning:") == 1


def test_run_does_not_warn_when_everything_is_honoured(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    err = _lmstudio_run(project, _results(), capsys)
    assert "warning" not in err
    assert "1 succeeded" in err


def test_run_does_not_warn_without_a_stored_probe(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert "warning" not in _lmstudio_run(project, None, capsys)


def test_a_probe_of_another_backend_identity_does_not_warn(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store.open(project.store_path())
    try:
        store.save_probe(json.dumps({"kind": "lmstudio", "base_url": "http://elsewhere/v1"}, sort_keys=True),
                         LMSTUDIO_ID, _results(seed=False))
    finally:
        store.close()
    assert "warning" not in _lmstudio_run(project, None, capsys)


def test_run_quiet_still_warns(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    err = _lmstudio_run(project, _results(seed=False), capsys, "--quiet")
    assert "warning: smollm2: the experiment sets a seed but the server was measured to ignore it" in err


# the migration that added the probes table


