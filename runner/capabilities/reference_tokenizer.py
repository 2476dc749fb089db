"""Reference tokenizers for `runner probe`: what the server's tokenization is compared with.

- `models[i].tokenizer: tokenizer.json`: the original model's tokenizer, read with the `tokenizers`
  library. This is the reference that catches a GGUF converted with a broken or foreign vocabulary.
- `models[i].tokenizer: file.gguf`, or by default the very GGUF the embedded backend serves: the
  file's own vocabulary, tokenized by llama.cpp's tokenizer in llama-cpp-python (vocabulary only, no
  weights). On the served file it catches a server that tokenizes its own file differently (another
  llama.cpp, a broken build), not a file converted wrongly: both sides read the same vocabulary.

Both split text as the server's /tokenize is asked to (runner.backends.llamacpp.api.tokenize):
special tokens written in the text are parsed as such, none are added (no BOS).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runner.config.imports import MissingDependency, require, require_installed
from runner.config.schema import Experiment
from runner.errors import ConfigError

GGUF_EXTRA = "llm-runner[quantize]"  # llama-cpp-python: the project installs it for the quantizer
JSON_EXTRA = "llm-runner[tokenizer]"
CHILD_TIMEOUT_S = 300  # loading a vocabulary takes well under a second; a hang must not hold the probe


class ReferenceFailed(Exception):
    """The reference tokenizer could not tokenize the samples (llama.cpp failed on the file)."""


@dataclass(frozen=True)
class Reference:
    path: Path
    kind: Literal["tokenizer.json", "gguf"]
    describe: str  # how the probe's line names it

    def encode_all(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text. Blocking: call it in a thread."""
        if self.kind == "gguf":
            return _gguf_encode(self.path, texts)
        tokenizers = require("tokenizers", JSON_EXTRA, "a tokenizer.json reference")
        tokenizer = tokenizers.Tokenizer.from_file(str(self.path))
        return [list(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def configured_references(experiment: Experiment) -> dict[str, Reference]:
    """The `models[i].tokenizer` references by model name, checked before any model is loaded:
    a file that is no tokenizer, or a library that is missing, is a one-line error naming the key."""
    out = {}
    for i, model in enumerate(experiment.models):
        if model.tokenizer is not None:
            out[model.name] = _configured(experiment.resolve(model.tokenizer), experiment.source_path,
                                          f"models[{i}].tokenizer")
    return out


def _configured(path: Path, config_file: Path, key: str) -> Reference:
    if _is_gguf(path):
        try:
            require_installed("llama_cpp", GGUF_EXTRA, "a GGUF reference tokenizer",
                              note="give the model's tokenizer.json instead")
        except MissingDependency as exc:
            raise MissingDependency(exc.problem, file=config_file, key=key, fix=exc.fix) from None
        return Reference(path, "gguf", f"{path.name}'s vocabulary (llama-cpp-python)")
    try:
        tokenizers = require("tokenizers", JSON_EXTRA, "a tokenizer.json reference")
    except MissingDependency as exc:
        raise MissingDependency(exc.problem, file=config_file, key=key, fix=exc.fix) from None
    try:
        tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # the library raises a bare Exception for any unreadable file
        raise ConfigError(f"{path} is not a tokenizer.json the tokenizers library can read "
                          f"({' '.join(str(exc).split())[:120]})", file=config_file, key=key,
                          fix="point at the model's tokenizer.json (or its .gguf file)") from None
    return Reference(path, "tokenizer.json", f"{path.name} (tokenizers)")


def _is_gguf(path: Path) -> bool:
    """By its magic bytes, whatever its name."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"GGUF"
    except OSError:
        return False


def served_reference(experiment: Experiment, model: str, served_file: object) -> Reference | str:
    """The default: the GGUF the backend serves, if it says which; else why there is no reference."""
    index = next(i for i, m in enumerate(experiment.models) if m.name == model)
    hint = f"set models[{index}].tokenizer to the model's tokenizer.json"
    if not isinstance(served_file, str):
        return f"no reference tokenizer: the backend does not say which file it serves; {hint}"
    try:
        require_installed("llama_cpp", GGUF_EXTRA, "the served GGUF's vocabulary as the reference")
    except MissingDependency as exc:
        return f"no reference tokenizer: {exc.problem} ({exc.fix}); or {hint}"
    return Reference(Path(served_file), "gguf", "the served GGUF's vocabulary (llama-cpp-python)")


def _gguf_encode(path: Path, texts: list[str]) -> list[list[int]]:
    # In a child process, as the quantizer runs: llama.cpp logs to the terminal's stderr, and a crash
    # in it must not take the probe (and its stored results) with it.
    try:
        proc = subprocess.run([sys.executable, "-m", __name__, str(path)], input=json.dumps(texts),
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ReferenceFailed(f"llama-cpp-python did not tokenize with {path.name} "
                              f"within {CHILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][-200:]
        raise ReferenceFailed(f"llama-cpp-python could not tokenize with {path.name}: {tail}")
    ids = json.loads(proc.stdout)
    assert isinstance(ids, list) and len(ids) == len(texts), "the child answers one list per text"
    return ids


def _child(path: str) -> None:
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    texts = json.load(sys.stdin)
    json.dump([vocab.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts], sys.stdout)


if __name__ == "__main__":
    _child(sys.argv[1])
