"""What the model actually receives, on the real SmolLM2 in llama.cpp: the rendered prompt is stored,
equals the server's /apply-template, and shows the system prompt the chat template injects when a
request has none (and not when it has an empty one)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

import runner
from conftest import Project, base_experiment, smollm_path

INJECTED = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _experiment(backend: dict[str, Any]) -> dict[str, Any]:
    exp = base_experiment()
    exp["backend"] = {"concurrency": 2, "timeout_s": 120, "max_retries": 0, "retry_backoff_s": 0, **backend}
    exp["models"] = [{"name": "smollm2", **({"source": {"path": str(smollm_path())}}
                                           if backend["kind"] == "llamacpp" else {"id": "smollm2"})}]
    exp["prompts"] = {"systems": [{"name": "none"}, {"name": "empty", "text": ""}],
                      "variants": [{"name": "p", "text": "Is this config valid? {{ config | tojson }}"}]}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 4}
    exp["repeats"] = 1
    return exp


def _apply_template(url: str, messages: list[dict[str, str]]) -> str:
    body = json.dumps({"messages": messages}).encode()
    request = urllib.request.Request(f"{url}/apply-template", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["prompt"])


@pytest.mark.model
def test_the_stored_prompt_is_the_servers_and_shows_the_injected_system_prompt(
        project: Project, llama_server: str) -> None:
    path = project.write(_experiment({"kind": "openai", "base_url": f"{llama_server}/v1"}))
    runner.run(path, limit=2)
    records = [json.loads(line) for line in runner.export(path)]
    assert len(records) == 4
    for r in records:
        assert r["rendered_by"] == "llama.cpp /apply-template"
        assert r["rendered_prompt"] == _apply_template(llama_server, r["request"]["messages"])
        if r["cell"]["system"] == "none":
            assert [m["role"] for m in r["request"]["messages"]] == ["user"]
            assert INJECTED in r["rendered_prompt"]
        else:
            assert r["request"]["messages"][0] == {"role": "system", "content": ""}
            assert INJECTED not in r["rendered_prompt"]
    findings = [f for f in runner.explain(path) if f.kind == "injected_system_prompt"]
    assert [f.text for f in findings] == [
        f"system=none: the server added a system prompt of 16 tokens the experiment did not send: '{INJECTED}' (the "
        "chat template's default when a request has no system message); every answer in this cell was given under "
        "it: send an explicit system prompt, or an empty one, to test without it"]
    assert findings[0].hypothesis == "system-prompt interference"


@pytest.mark.model
def test_the_embedded_backend_stores_the_rendered_prompt_too(project: Project) -> None:
    path = project.write(_experiment({"kind": "llamacpp", "n_ctx": 1024, "parallel": 2}))
    runner.run(path, limit=1)
    records = {r["cell"]["system"]: r for r in map(json.loads, runner.export(path, fmt="jsonl"))}
    assert INJECTED in records["none"]["rendered_prompt"]
    assert INJECTED not in records["empty"]["rendered_prompt"]
    assert records["none"]["rendered_prompt"].startswith("<|im_start|>system\n")
    injected = [f for f in runner.explain(path) if f.kind == "injected_system_prompt"]
    assert [f.subject for f in injected] == ["system=none"] and f"'{INJECTED}'" in injected[0].text
    csv_lines = list(runner.export(path, fmt="csv"))
    assert csv_lines[0].startswith("job_id,item_id,repeat,model,quantization,system,prompt,status,finish_reason,")
    assert len(csv_lines) == 3


@pytest.mark.model
@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "Is this config valid?"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Is this config valid?"}],
    [{"role": "system", "content": "You validate configs."}, {"role": "user", "content": '{"port": 80}'}],
])
def test_the_client_side_template_renders_what_the_server_renders(llama_server: str,
                                                                   messages: list[dict[str, str]]) -> None:
    # `runner plan` shows the prompt before any server runs: it must be the server's prompt.
    from runner.backends.llamacpp.chat_template import render_chat
    from runner.backends.llamacpp.gguf_info import read_gguf_info

    info = read_gguf_info(smollm_path())
    assert info.chat_template is not None
    assert render_chat(info.chat_template, messages, bos_token=info.bos_token,
                       eos_token=info.eos_token) == _apply_template(llama_server, messages)


@pytest.mark.model
def test_runner_plan_shows_the_rendered_prompt_before_anything_runs(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    from runner.cli import main

    path = project.write(_experiment({"kind": "llamacpp", "n_ctx": 1024, "parallel": 2}))
    assert main(["plan", str(path), "--show", "2", "--chars", "400"]) == 0
    rendered = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  rendered (")]
    assert len(rendered) == 2
    assert rendered[0].startswith("  rendered (client-side (the GGUF's tokenizer.chat_template)): <|im_start|>"
                                  f"system\\n{INJECTED}<|im_end|>")  # the first job: system=none
    assert not (project.root / "results").exists()  # plan wrote nothing
