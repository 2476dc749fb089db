"""Tokenizer parity in `runner probe`: the server's tokens of the experiment's own prompts against a reference.

On the real model: a tokenizer.json rebuilt from the GGUF's own vocabulary agrees with the embedded
server; a WordLevel tokenizer trained on a few words (a deliberately different tokenizer) does not,
and the probe says NO with the share and the differences, stores it, and warns. Without a model: the
arithmetic, the contents-only comparison, the one-line errors for a missing or unreadable file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import pytest

from conftest import Project, base_experiment, smollm_path
from runner.backends.base import Backend
from runner.capabilities.probe import warnings_for
from runner.capabilities.reference_tokenizer import Reference, served_reference
from runner.capabilities.tokenizer_parity import CONTENTS, RENDERED, parity, probe_tokenizer
from runner.cli import main
from runner.config.loader import load_experiment
from runner.plan.planner import build_plan
from runner.store import Store
from runner.testing.fakes import FakeLMStudio, ThreadedApp

tokenizers = pytest.importorskip("tokenizers")

_LINE = re.compile(r"^  (\w+)\s+(yes|NO|n/a)\s+(.*)$")
_DIFFER = re.compile(r"(\d+) of (\d+) sample prompts counted differently \(server minus reference: "
                     r"mean ([+-]\d+\.\d), max ([+-]\d+) tokens\): (.*), reference (.*)")


def word_level(path: Path, words: list[str]) -> Path:
    """A WordLevel tokenizer that knows only these words: every other word is [UNK]."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(words, trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    tok.save(str(path))
    return path


def tokenizer_json_from_gguf(gguf_path: Path, path: Path) -> Path:
    """SmolLM2's tokenizer.json as Hugging Face ships it, rebuilt from the vocabulary in the GGUF (no
    hub here): byte-level BPE with the GGUF's tokens and merges, digits split one by one (llama.cpp's
    `smollm` pre-tokenizer), and the control tokens as special tokens."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE

    reader = gguf.GGUFReader(str(gguf_path))

    def values(name: str) -> list[Any]:
        field = reader.fields[name]
        return [field.parts[i] for i in field.data]

    tokens = [bytes(v).decode("utf-8") for v in values("tokenizer.ggml.tokens")]
    merges = [tuple(bytes(v).decode("utf-8").split(" ", 1)) for v in values("tokenizer.ggml.merges")]
    control = [t for t, kind in zip(tokens, values("tokenizer.ggml.token_type"), strict=True) if int(kind[0]) == 3]
    tok = Tokenizer(BPE({t: i for i, t in enumerate(tokens)}, merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    tok.save(str(path))
    return path


def _embedded(tokenizer: Path) -> dict[str, Any]:
    exp = base_experiment()
    exp["backend"] = {"kind": "llamacpp", "n_ctx": 512, "parallel": 1, "concurrency": 1, "timeout_s": 60,
                      "max_retries": 0, "retry_backoff_s": 0}
    exp["models"] = [{"name": "smollm2", "source": {"path": str(smollm_path())}, "tokenizer": tokenizer.name}]
    exp["prompts"] = {"variants": [{"name": "p", "text": "Is this config valid? {{ config | tojson }}"}]}
    exp["sampling"] = {"temperature": 0.0, "seed": 1, "max_tokens": 4}
    exp["repeats"] = 1
    return exp


def _probe(project: Project, exp: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[str, str, str]:
    """`runner probe`: its output, the tokenizer line's verdict and detail."""
    path = project.write(exp)
    capsys.readouterr()
    assert main(["probe", str(path)]) == 0
    out = capsys.readouterr().out
    lines = {m.group(1): (m.group(2), m.group(3)) for m in map(_LINE.match, out.splitlines()) if m}
    verdict, detail = lines["tokenizer"]
    return out, verdict, detail


def _stored_tokenizer(project: Project) -> dict[str, Any]:
    experiment = load_experiment(project.root / "exp.yaml")
    [variant] = build_plan(experiment).variants()
    store = Store.open(project.store_path())
    try:
        results = store.latest_probe(json.dumps(experiment.backend.identity(), sort_keys=True), variant.identity)
    finally:
        store.close()
    assert results is not None
    return next(r for r in results if r["capability"] == "tokenizer")


@pytest.mark.model
def test_the_original_tokenizer_json_agrees_with_the_embedded_server(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    tokenizer_json_from_gguf(smollm_path(), project.root / "smollm2-tokenizer.json")
    out, verdict, detail = _probe(project, _embedded(project.root / "smollm2-tokenizer.json"), capsys)
    assert verdict == "yes", out
    assert re.fullmatch(r"5 of 5 sample prompts counted alike \(\d+ tokens, the same ids\): "
                        r"chat-template-rendered prompts, reference smollm2-tokenizer.json \(tokenizers\)", detail)
    # No tokenizer warning (the experiment sends no system message, so the probe warns of SmolLM2's own).
    assert not [line for line in out.splitlines() if "warning" in line and "tokenizer" in line]
    assert _stored_tokenizer(project)["honoured"] is True


@pytest.mark.model
def test_a_different_tokenizer_is_measured_stored_and_warned_about(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    word_level(project.root / "words.json", ["Is this config valid", "name port svc0 svc1"])
    out, verdict, detail = _probe(project, _embedded(project.root / "words.json"), capsys)
    assert verdict == "NO", out
    found = _DIFFER.fullmatch(detail)
    assert found is not None, detail
    differ, prompts, mean, largest, text, reference = found.groups()
    assert (differ, prompts, text, reference) == ("5", "5", RENDERED, "words.json (tokenizers)")
    # WordLevel splits `<|im_start|>` into three and reads many words as one [UNK]: never the same counts.
    assert float(mean) != 0 and int(largest) != 0
    assert (f"  warning: smollm2: the server's tokenizer counts 5 of 5 sample prompts differently from the "
            f"reference (mean {mean}, max {largest} tokens): scores may suffer from a broken or different "
            "tokenizer") in out
    stored = _stored_tokenizer(project)
    assert stored["honoured"] is False
    assert stored["measured"] == {"prompts": 5, "differ": 5, "mean": pytest.approx(float(mean), abs=0.05),
                                  "max": int(largest)}


# without a model


def test_parity_counts_the_prompts_that_differ_and_by_how_much() -> None:
    found = parity([10, 12, 9, 7], [10, 10, 12, 7])
    assert (found.prompts, found.differ, found.mean, found.max) == (4, 2, -0.5, -3)
    assert parity([5, 6], [5, 6]).to_dict() == {"prompts": 2, "differ": 0, "mean": 0.0, "max": 0}


class _ContentsOnlyServer:
    """A server with /tokenize but no chat template rendering (a stand-in for the two methods used)."""

    def __init__(self, tokenizer_file: Path) -> None:
        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        self.asked: list[str] = []

    async def apply_template(self, messages: list[dict[str, str]]) -> str | None:
        return None

    async def tokenize(self, text: str) -> list[int] | None:
        self.asked.append(text)
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)


async def test_without_a_chat_template_the_message_contents_are_compared(tmp_path: Path) -> None:
    words = word_level(tmp_path / "words.json", ["validate this config", "port name"])
    server = _ContentsOnlyServer(words)
    samples = [({"role": "system", "content": "You validate configs."}, {"role": "user", "content": "port 80"}),
               ({"role": "user", "content": "name svc"},)]
    same = await probe_tokenizer(cast(Backend, server), samples, Reference(words, "tokenizer.json", "words.json"))
    assert server.asked == ["You validate configs.", "port 80", "name svc"]
    assert (same.honoured, same.detail) == (
        True, f"2 of 2 sample prompts counted alike (8 tokens, the same ids): {CONTENTS}, reference words.json")

    chars = tmp_path / "chars.json"
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="?"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex("."), "isolated")  # one per character
    tok.train_from_iterator(["abc"], tokenizers.trainers.WordLevelTrainer(special_tokens=["?"]))
    tok.save(str(chars))
    other = await probe_tokenizer(cast(Backend, server), samples, Reference(chars, "tokenizer.json", "chars.json"))
    # server (words): 4 + 2 and 2 tokens; reference (characters): 21 + 7 and 8
    assert (other.honoured, other.detail) == (
        False, "2 of 2 sample prompts counted differently (server minus reference: mean -14.0, max -22 tokens): "
               f"{CONTENTS}, reference chars.json")
    assert other.measured == {"prompts": 2, "differ": 2, "mean": -14.0, "max": -22}


def test_the_warning_quotes_the_stored_numbers(project: Project) -> None:
    experiment = load_experiment(project.write())
    [variant] = build_plan(experiment).variants()
    stored = [{"capability": "tokenizer", "honoured": False, "detail": "...",
               "measured": {"prompts": 5, "differ": 3, "mean": 2.33, "max": 4}}]
    assert warnings_for(experiment, stored, variant) == [
        "fake: the server's tokenizer counts 3 of 5 sample prompts differently from the reference (mean +2.3, "
        "max +4 tokens): scores may suffer from a broken or different tokenizer"]
    assert warnings_for(experiment, [{**stored[0], "honoured": None}], variant) == []


def test_without_a_served_file_or_a_tokenizer_there_is_no_reference(project: Project) -> None:
    experiment = load_experiment(project.write())
    assert served_reference(experiment, "fake", None) == (
        "no reference tokenizer: the backend does not say which file it serves; set models[0].tokenizer to the "
        "model's tokenizer.json")


def test_a_missing_tokenizer_file_is_a_one_line_config_error(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    exp = base_experiment()
    exp["models"] = [{"name": "fake", "id": "fake-model", "tokenizer": "tok/tokenizer.json"}]
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: models[0].tokenizer: tokenizer file {project.root / 'tok/tokenizer.json'} not found; "
        "give the path (relative to the experiment file) of the model's tokenizer.json or GGUF file, or remove "
        "the key\n")


def test_an_unreadable_tokenizer_stops_the_probe_before_any_request(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    (project.root / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    with ThreadedApp(FakeLMStudio().app) as server:
        exp = base_experiment(f"{server.url}/v1")
        exp["backend"]["kind"] = "lmstudio"
        exp["models"] = [{"name": "fake", "id": "smollm2-135m-instruct@q4_k_m", "tokenizer": "tokenizer.json"}]
        path = project.write(exp)
        assert main(["probe", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"runner: {path}: models[0].tokenizer: {project.root / 'tokenizer.json'} is not a "
                          "tokenizer.json the tokenizers library can read (")
    assert err.endswith("; point at the model's tokenizer.json (or its .gguf file)\n")
    assert err.count("\n") == 1
    assert not project.store_path().exists()
