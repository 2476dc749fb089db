"""The context-window study: the real limit, how the server fails past it, and which prompts do not fit.

Against the embedded llama.cpp server (real model) at two n_ctx values, and against the Ollama and
LM Studio fakes, which fail in the two other ways a server can: silent truncation and refusal.
Each llama.cpp study run takes a few seconds, so there are two of them and no more.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from conftest import CLOSED_HOST_URL, ITEMS, Project, base_experiment, smollm_path
from runner.cli import main
from runner.store import Store
from runner.testing.fakes import FakeLMStudio, FakeOllama, ThreadedApp

HUGE = {"id": "huge", "config": {"name": " ".join(["word"] * 3000), "port": 1}, "valid": False}


def _study(backend: dict[str, Any], model: dict[str, Any], **study: Any) -> dict[str, Any]:
    exp = base_experiment()
    exp["study"] = {"kind": "context_window", **study}
    exp["backend"] = backend
    exp["models"] = [{"name": "smollm2", **model}]
    exp["prompts"] = {"variants": [{"name": "p", "text": "Is this config valid? {{ config | tojson }}"}]}
    exp["sampling"] = {"temperature": 0.0, "max_tokens": 96}
    exp["repeats"] = 1
    return exp


def _run(project: Project, exp: dict[str, Any], name: str, capsys: pytest.CaptureFixture[str],
         ) -> tuple[str, str, dict[str, Any]]:
    """`runner run` on the study: (stdout, stderr, the one result stored in the experiment's store)."""
    path = project.write(exp, name=f"{name}.yaml")
    capsys.readouterr()
    assert main(["run", str(path)]) == 0
    out, err = capsys.readouterr()
    store = Store.open_readonly(project.store_path(name))
    assert store is not None
    try:
        data = store.latest_study("context_window")
    finally:
        store.close()
    assert data is not None
    assert data["max_tokens"] == 96
    [result] = data["results"]
    return out, err, result


def _printed(out: str) -> tuple[int, int, int]:
    """(limit, requests, bound) as printed by the study's report."""
    limit = re.search(r"limit: (\d+) prompt tokens", out)
    requests = re.search(r"requests: (\d+) \(doubling then bisection; bound (\d+)", out)
    assert limit and requests, out
    return int(limit.group(1)), int(requests.group(1)), int(requests.group(2))


def _check_probes(result: dict[str, Any]) -> None:
    """The probe log is consistent with the verdict: accepted below the limit, the failure kind above."""
    probes = result["probes"]
    # Without a tokenizer, two calibration requests (prompts of 1 and 2 filler words) come first.
    calibration = 0 if result["counted_by"] == "the server's tokenizer" else 2
    assert len(probes) + calibration == result["requests"]
    accepted = [p for p in probes if p["status"] == "accepted"]
    failed = [p for p in probes if p["status"] != "accepted"]
    assert accepted and failed
    assert max(p["words"] for p in accepted) + 1 == min(p["words"] for p in failed), "bisected to one word"
    assert {p["status"] for p in failed} == {result["failure_kind"]}


@pytest.mark.model
@pytest.mark.parametrize("n_ctx", [1024, 2048])
def test_llamacpp_limit_is_n_ctx_and_requests_are_logarithmic(
        project: Project, capsys: pytest.CaptureFixture[str], n_ctx: int) -> None:
    if n_ctx == 1024:
        project.write_dataset([*ITEMS, HUGE])
    exp = _study({"kind": "llamacpp", "n_ctx": n_ctx, "parallel": 1, "concurrency": 1},
                 {"source": {"path": str(smollm_path())}})
    out, err, result = _run(project, exp, f"cw{n_ctx}", capsys)
    limit, requests, bound = _printed(out)

    # llama.cpp refuses a prompt that fills the whole context: the largest prompt read whole is n_ctx - 1.
    assert n_ctx - 16 <= limit <= n_ctx
    assert result["limit_tokens"] == limit
    assert result["failure_kind"] == "refused"
    assert result["counted_by"] == "the server's tokenizer"
    assert "refused with an error" in out
    assert requests == result["requests"] <= 2 * math.ceil(math.log2(n_ctx)) + 2
    assert requests <= bound
    assert f"limit {limit} tokens after {requests} requests" in err
    _check_probes(result)
    # With the tokenizer count and the reported prompt tokens equal, the accepted probes were read whole.
    assert all(p["read_tokens"] == p["sent_tokens"] for p in result["probes"] if p["status"] == "accepted")
    # The tokenizer check: the server counts the dataset's prompts as the served GGUF's vocabulary does.
    assert result["tokenizer"]["honoured"] is True
    assert result["tokenizer"]["measured"]["differ"] == 0
    assert "tokenizer: counts alike: " in out and "reference the served GGUF's vocabulary" in out

    if n_ctx == 1024:
        assert result["items_checked"] == len(ITEMS) + 1
        assert [i["item"] for i in result["items_over"]] == ["huge"]
        assert result["items_over"][0]["counted"] is True
        assert result["items_over"][0]["prompt_tokens"] > 3000
        assert "dataset: 1 of 7 prompts + max_tokens=96 exceed the limit: huge" in out

        # `runner report` renders the stored study the same way, without any request.
        assert main(["report", str(project.root / "cw1024.yaml")]) == 0
        assert capsys.readouterr().out == out
    else:
        assert result["items_checked"] == len(ITEMS) and result["items_over"] == []
        assert f"dataset: all {len(ITEMS)} prompts fit with max_tokens=96" in out
    with capsys.disabled():
        print(f"\nn_ctx {n_ctx}: limit {limit} tokens after {requests} requests (bound {bound})")


def test_ollama_fake_truncates_silently_at_its_default_context(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.write_dataset([*ITEMS, HUGE])
    fake = FakeOllama()
    fake.default_num_ctx = 1500
    with ThreadedApp(fake.app) as server:
        exp = _study({"kind": "ollama", "base_url": server.url, "concurrency": 1},
                     {"id": "smollm2:135m-instruct-q4_K_M"})
        out, _, result = _run(project, exp, "ollama", capsys)
    assert all("num_ctx" not in r["options"] for r in fake.requests), "no num_ctx was configured"
    limit, requests, _ = _printed(out)
    assert limit == result["limit_tokens"] == 1500
    assert result["failure_kind"] == "truncated"
    assert "silently truncated" in result["failure"] and "silently truncated" in out
    assert result["counted_by"] == "calibration probes of 1 and 2 words"
    assert requests <= 2 * math.ceil(math.log2(1500)) + 2
    _check_probes(result)
    first_bad = min((p for p in result["probes"] if p["status"] == "truncated"), key=lambda p: p["words"])
    assert first_bad["sent_tokens"] == 1501 and first_bad["read_tokens"] == 1500
    # The dataset check estimates without a tokenizer; the 3,000-word item cannot fit in 1500 tokens.
    assert result["items_checked"] == len(ITEMS) + 1
    assert [i["item"] for i in result["items_over"]] == ["huge"]
    assert result["items_over"][0]["counted"] is False


def test_ollama_fake_honours_num_ctx(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeOllama()
    with ThreadedApp(fake.app) as server:
        exp = _study({"kind": "ollama", "base_url": server.url, "concurrency": 1, "num_ctx": 700},
                     {"id": "smollm2:135m-instruct-q4_K_M"})
        _, _, result = _run(project, exp, "ollama700", capsys)
    assert result["limit_tokens"] == 700 and result["failure_kind"] == "truncated"
    assert {r["options"]["num_ctx"] for r in fake.requests} == {700}


@pytest.mark.parametrize("loaded", [900, 3000])
def test_lmstudio_fake_refuses_one_token_past_the_loaded_context(
        project: Project, capsys: pytest.CaptureFixture[str], loaded: int) -> None:
    fake = FakeLMStudio(loaded_context=loaded)
    with ThreadedApp(fake.app) as server:
        exp = _study({"kind": "lmstudio", "base_url": f"{server.url}/v1", "concurrency": 1},
                     {"id": "smollm2-135m-instruct@q4_k_m"})
        out, _, result = _run(project, exp, f"lms{loaded}", capsys)
    limit, requests, _ = _printed(out)
    assert limit == result["limit_tokens"] == loaded
    assert result["failure_kind"] == "refused"
    assert f"refused with an error at {loaded + 1} tokens" in out
    assert "HTTP 400" in result["failure"]
    assert requests <= 2 * math.ceil(math.log2(loaded)) + 2
    _check_probes(result)
    assert result["items_checked"] == len(ITEMS) and result["items_over"] == []


def test_no_failure_up_to_max_words(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeLMStudio(loaded_context=100_000)
    with ThreadedApp(fake.app) as server:
        exp = _study({"kind": "lmstudio", "base_url": f"{server.url}/v1", "concurrency": 1},
                     {"id": "smollm2-135m-instruct@q4_k_m"}, max_words=256)
        out, _, result = _run(project, exp, "lmsbig", capsys)
    assert result["failure_kind"] == "none"
    assert [p["words"] for p in result["probes"]] == [32, 64, 128, 256]
    assert "no failure up to 256 filler words" in out
    assert result["limit_tokens"] == 256 + 11  # words + marker prompt + the fake's template tokens


def test_report_before_any_study_run_is_a_user_error(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    exp = _study({"kind": "ollama", "base_url": CLOSED_HOST_URL}, {"id": "x"})
    path = project.write(exp, name="none.yaml")
    assert main(["report", str(path)]) == 2
    assert "no results yet" in capsys.readouterr().err


def test_lmstudio_fake_limit_below_the_first_probe(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeLMStudio(loaded_context=20)
    with ThreadedApp(fake.app) as server:
        exp = _study({"kind": "lmstudio", "base_url": f"{server.url}/v1", "concurrency": 1},
                     {"id": "smollm2-135m-instruct@q4_k_m"})
        _, _, result = _run(project, exp, "lms20", capsys)
    # The first probe (32 words) is refused already; the search bisects down from it.
    assert result["probes"][0]["status"] == "refused"
    assert result["limit_tokens"] == 20 and result["failure_kind"] == "refused"
    _check_probes(result)


def test_ollama_fake_truncating_already_at_the_second_probe(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeOllama()
    fake.default_num_ctx = 60  # 64 filler words are 75 tokens: the second probe is cut to 60
    with ThreadedApp(fake.app) as server:
        exp = _study({"kind": "ollama", "base_url": server.url, "concurrency": 1},
                     {"id": "smollm2:135m-instruct-q4_K_M"})
        _, _, result = _run(project, exp, "ollama60", capsys)
    assert result["limit_tokens"] == 60 and result["failure_kind"] == "truncated"
    by_words = {p["words"]: p["status"] for p in result["probes"]}
    assert by_words[64] == "truncated"
    _check_probes(result)
    first_bad = min((p for p in result["probes"] if p["status"] == "truncated"), key=lambda p: p["words"])
    assert first_bad["words"] == 60 - 11 + 1 and first_bad["sent_tokens"] == 61


def test_a_study_written_by_an_older_runner_as_a_side_file_is_still_reported(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # Runners before the studies table wrote results/<name>/context_window.json and no store at all.
    path = project.write(_study({"kind": "ollama", "base_url": CLOSED_HOST_URL}, {"id": "x"}), name="legacy.yaml")
    folder = project.root / "results" / "legacy"
    folder.mkdir(parents=True)
    probe = {"words": 8, "status": "accepted", "sent_tokens": 20, "read_tokens": 20, "marker_repeated": True,
             "error": None}
    result = {"variant": "smollm2", "limit_tokens": 700, "failure": "refused with an error at 701 tokens: x",
              "failure_kind": "refused", "requests": 12, "request_bound": 14, "counted_by": "the server's tokenizer",
              "probes": [probe], "items_over": [], "items_checked": 6}
    (folder / "context_window.json").write_text(json.dumps({"max_tokens": 96, "results": [result]}))
    capsys.readouterr()
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("smollm2:\n  limit: 700 prompt tokens (the largest prompt read whole; counted by the "
                          "server's tokenizer)\n")
    assert sorted(p.name for p in folder.iterdir()) == ["context_window.json"]  # read, nothing written
