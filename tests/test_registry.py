"""Registries: a scorer registered once works everywhere; custom Python scorers; entry-point
plugins; optional dependencies with an install hint.

End-to-end cases run `runner.cli.main` against the fault server and pin the whole stderr line of
every user error. `$EXP` stands for the experiment file, `$ROOT` for the project folder.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import gguf
import pytest
from pydantic import TypeAdapter

import runner
import runner.backends as backends
import runner.config.registry as config_registry
from conftest import ITEMS, Project, base_experiment
from runner.backends import known_backends
from runner.cli import main
from runner.config.imports import MissingDependency, require
from runner.config.registry import known_scorers
from runner.config.scorer_configs import ScorerBase, ScorerConfig
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.scoring.base import ANSWERED, EMPTY, TRUNCATED, Score, Scorer
from runner.scoring.errors import ScorerError
from runner.scoring.registry import register_scorer
from runner.scoring.scorers import build_scorers, check_scorers
from runner.testing.fault_server import ThreadedFaultServer

BUILT_IN = ["exact", "regex", "json_field", "binary", "code_tests", "similarity", "python"]


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Registrations made by a test end with it."""
    monkeypatch.setattr(config_registry, "_ENTRIES", dict(config_registry._ENTRIES))
    monkeypatch.setenv("RUNNER_CACHE", str(tmp_path_factory.mktemp("cache")))


def _line(err: str, path: Path, project: Project) -> list[str]:
    return err.replace(str(path), "$EXP").replace(str(project.root), "$ROOT").rstrip("\n").split("\n")


def _scores(project: Project) -> list[dict[str, Any]]:
    """Every stored score with its job's answer text, in job order."""
    conn = sqlite3.connect(project.store_path())
    try:
        rows = conn.execute("SELECT j.text, s.scorer_key, s.score_json FROM jobs j JOIN scores s "
                            "ON s.job_id = j.job_id ORDER BY j.job_id").fetchall()
    finally:
        conn.close()
    return [{"text": text, "key": key, **json.loads(score)} for text, key, score in rows]


# a scorer registered in a test


class LengthConfig(ScorerBase):
    type: Literal["length"]
    max_chars: int = 1000
    must_have_field: str | None = None


class LengthCheck(Scorer):
    """Correct when the answer is at most `max_chars` long; the prediction is the length."""

    config: LengthConfig

    def check_items(self, items: Sequence[Item], file: Path, key: str) -> None:
        field = self.config.must_have_field
        if field is not None and any(field not in item.fields for item in items):
            raise ConfigError(f"some items have no {field!r}", file=file, key=f"{key}.must_have_field",
                              fix="add it")

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        return Score(ANSWERED, len(text) <= self.config.max_chars, len(text))


def _with_length(server: ThreadedFaultServer, **config: Any) -> dict[str, Any]:
    exp = base_experiment(f"{server.url}/v1")
    exp["scorers"] = [{"type": "binary", "field": "valid"}, {"type": "length", **config}]
    return exp


def test_a_registered_scorer_validates_runs_and_reports(
    project: Project, fault_server: ThreadedFaultServer, capsys: pytest.CaptureFixture[str]
) -> None:
    register_scorer("length", LengthConfig, LengthCheck)
    assert known_scorers()[-1] == "length"
    path = project.write(_with_length(fault_server, max_chars=74))  # "valid": true fits, false is 75
    assert main(["validate", str(path)]) == 0
    assert main(["run", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "t — scorer length" in out
    scores = [s for s in _scores(project) if s["key"].startswith("length:")]
    assert len(scores) == 2 * 2 * len(ITEMS) * 2
    for s in scores:
        assert s["prediction"] == len(s["text"])
        assert s["correct"] == json.loads(s["text"])["valid"]
    assert {s["correct"] for s in scores} == {True, False}


def test_a_registered_scorer_checks_the_dataset_itself(project: Project, fault_server: ThreadedFaultServer,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    register_scorer("length", LengthConfig, LengthCheck)
    path = project.write(_with_length(fault_server, must_have_field="nope"))
    assert main(["validate", "--offline", str(path)]) == 2
    assert _line(capsys.readouterr().err, path, project) == [
        "runner: $EXP: scorers[1].must_have_field: some items have no 'nope'; add it"]
    assert not (project.root / "results").exists()


@pytest.mark.parametrize("config, expected", [
    ({"max_char": 5},
     "runner: $EXP: scorers[1].max_char: unknown key 'max_char'; allowed keys here: name, type, max_chars, "
     "must_have_field"),
    ({"max_chars": "long"},
     "runner: $EXP: scorers[1].max_chars: expected an integer, got 'long'; write a whole number"),
])
def test_a_registered_scorer_s_config_errors_name_its_keys(
    project: Project, capsys: pytest.CaptureFixture[str], config: dict[str, Any], expected: str
) -> None:
    register_scorer("length", LengthConfig, LengthCheck)
    exp = base_experiment()
    exp["scorers"] = [{"type": "binary", "field": "valid"}, {"type": "length", **config}]
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    assert _line(capsys.readouterr().err, path, project) == [expected]


def test_unknown_and_missing_types_list_the_registered_scorers(project: Project,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    register_scorer("length", LengthConfig, LengthCheck)
    tags = ", ".join(known_scorers())
    exp = base_experiment()
    exp["scorers"] = [{"type": "lenght"}]
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    assert _line(capsys.readouterr().err, path, project) == [
        f"runner: $EXP: scorers[0]: unknown type 'lenght'; use one of: {tags}"]
    exp["scorers"] = [{"max_chars": 3}]
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    assert _line(capsys.readouterr().err, path, project) == [
        f"runner: $EXP: scorers[0]: no type key to say which kind this is; add type: with one of {tags}"]
    assert known_scorers()[-1] == "length"


def test_register_scorer_refuses_a_config_model_of_another_name() -> None:
    with pytest.raises(ValueError, match=r"must declare type: Literal\['size'\]"):
        register_scorer("size", LengthConfig, LengthCheck)
    with pytest.raises(TypeError, match="Scorer subclass"):
        register_scorer("length", LengthConfig, object)  # type: ignore[arg-type]


def test_built_in_scorers_are_listed_in_registration_order() -> None:
    assert known_scorers()[: len(BUILT_IN)] == BUILT_IN


# the python scorer

SCORERS_PY = """
import json

THRESHOLD = 3


def score(text, finish_reason, fields):
    return json.loads(text)["valid"] == fields["valid"]


def detailed(text, finish_reason, fields):
    said = json.loads(text)["valid"]
    return {"correct": said == fields["valid"], "prediction": said, "outcome": "answered"}


def flaky(text, finish_reason, fields):
    if fields["id"] == "i03":
        return 1 / 0
    return True


def two_args(text, fields):
    return True
"""


def _python_experiment(project: Project, server_url: str, *scorers: dict[str, Any]) -> Path:
    (project.root / "scorers.py").write_text(SCORERS_PY)
    exp = base_experiment(server_url)
    exp["scorers"] = [{"type": "binary", "field": "valid"}, *scorers]
    return project.write(exp)


def test_a_python_scorer_next_to_the_experiment_scores_a_run(project: Project,
                                                            fault_server: ThreadedFaultServer) -> None:
    path = _python_experiment(project, f"{fault_server.url}/v1",
                              {"type": "python", "function": "scorers:score", "name": "plain"},
                              {"type": "python", "function": "scorers:detailed", "name": "detailed"})
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    binary = [s for s in _scores(project) if s["key"].startswith("binary:")]
    plain = [s for s in _scores(project) if s["key"].startswith("plain:")]
    detailed = [s for s in _scores(project) if s["key"].startswith("detailed:")]
    assert len(binary) == len(plain) == len(detailed) == 2 * 2 * len(ITEMS) * 2
    assert [s["correct"] for s in plain] == [s["correct"] for s in binary] == [s["correct"] for s in detailed]
    assert {s["correct"] for s in plain} == {True, False}
    assert [s["prediction"] for s in detailed] == [json.loads(s["text"])["valid"] for s in detailed]
    assert [s["expected"] for s in plain] == [s["expected"] for s in binary]  # the label, by default
    assert {s["outcome"] for s in plain} == {ANSWERED}


def test_a_python_function_that_raises_fails_only_its_jobs(project: Project,
                                                          fault_server: ThreadedFaultServer) -> None:
    path = _python_experiment(project, f"{fault_server.url}/v1",
                              {"type": "python", "function": "scorers:flaky", "name": "flaky"})
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    conn = sqlite3.connect(project.store_path())
    try:
        rows = conn.execute("SELECT item_id, status, error FROM jobs").fetchall()
    finally:
        conn.close()
    failed = [(item, error) for item, status, error in rows if status == "failed"]
    line = SCORERS_PY.splitlines().index("        return 1 / 0") + 1
    assert len(rows) == 2 * 2 * len(ITEMS) * 2
    assert {item for item, _ in failed} == {"i03"} and len(failed) == 2 * 2 * 2
    for _, error in failed:
        # The scorer's own error is stored as its message: a ScorerError, not an "internal error".
        assert error == ("scorer 'flaky': scorers:flaky raised ZeroDivisionError: division by zero (at scorers.py:"
                         f"{line}) on item 'i03'; fix the function")


BAD_FUNCTIONS = [
    ("scorers.score",
     "runner: $EXP: scorers[1].function: 'scorers.score' is not module:function; write package.module:function, "
     "e.g. scorers:score for a scorers.py next to the experiment file"),
    ("nosuch:score",
     "runner: $EXP: scorers[1].function: module 'nosuch' not found (searched $ROOT and sys.path); put nosuch.py "
     "next to the experiment file or install the package that has it"),
    ("scorers:nope",
     "runner: $EXP: scorers[1].function: module 'scorers' ($ROOT/scorers.py) has no attribute 'nope'; define nope "
     "there or correct the name after the colon"),
    ("scorers:THRESHOLD",
     "runner: $EXP: scorers[1].function: scorers:THRESHOLD is not a function but a value of type int; name a "
     "function that takes (text, finish_reason, fields)"),
    ("scorers:two_args",
     "runner: $EXP: scorers[1].function: scorers:two_args cannot be called as function(text, finish_reason, "
     "fields): too many positional arguments; give it three parameters: text, finish_reason, fields"),
    ("broken:score",
     "runner: $EXP: scorers[1].function: module 'broken' cannot be imported: ModuleNotFoundError: No module named "
     "'numpy_two'; install what it imports"),
]


@pytest.mark.parametrize("verb", [["validate", "--offline"], ["run", "--quiet"]])
@pytest.mark.parametrize("function, expected", BAD_FUNCTIONS, ids=[f for f, _ in BAD_FUNCTIONS])
def test_a_bad_function_is_one_line_and_exit_2(project: Project, capsys: pytest.CaptureFixture[str],
                                               function: str, expected: str, verb: list[str]) -> None:
    (project.root / "broken.py").write_text("import numpy_two\n")
    path = _python_experiment(project, "http://127.0.0.1:9/v1", {"type": "python", "function": function})
    assert main([verb[0], str(path), *verb[1:]]) == 2
    out, err = capsys.readouterr()
    assert _line(err, path, project) == [expected]
    assert out == ""
    assert not (project.root / "results").exists()


def _python_scorer(project: Project, function: str) -> Scorer:
    (project.root / "scorers.py").write_text(SCORERS_PY + "\n\n" + function)
    (scorer,) = build_scorers([TypeAdapter(ScorerConfig).validate_python(
        {"type": "python", "function": "scorers:f"})], "valid")
    check_scorers([scorer], [ITEM], project.root / "exp.yaml")
    return scorer


ITEM = Item("i00", {"id": "i00", "valid": True})


@pytest.mark.parametrize("body, expected", [
    ("def f(text, finish_reason, fields):\n    return False",
     Score(ANSWERED, False, None, True, True)),
    ("def f(text, finish_reason, fields):\n    return {'correct': True, 'prediction': 'yes', 'expected': 'yes'}",
     Score(ANSWERED, True, "yes", "yes", True)),
    ("def f(text, finish_reason, fields):\n    return {'correct': False, 'outcome': 'truncated'}",
     Score("truncated", False, None, True, True)),
    ("from runner import Score\ndef f(text, finish_reason, fields):\n    return Score('no_json', False, detail='x')",
     Score("no_json", False, detail="x")),
])
def test_what_a_python_function_returns_becomes_a_score(project: Project, body: str, expected: Score) -> None:
    assert _python_scorer(project, body).score('{"valid": true}', "stop", ITEM) == expected


@pytest.mark.parametrize("body, expected", [
    # A bool or a dict without outcome: truncated and wrong, as for the built-in scorers.
    ("def f(text, finish_reason, fields):\n    return True", Score(TRUNCATED, False, None, True, True)),
    ("def f(text, finish_reason, fields):\n    return {'correct': True, 'prediction': 7}",
     Score(TRUNCATED, False, 7, True, True)),
    # An explicit outcome is the function's own call on the cut-off answer.
    ("def f(text, finish_reason, fields):\n    return {'correct': True, 'outcome': 'answered'}",
     Score(ANSWERED, True, None, True, True)),
])
def test_a_cut_off_answer_is_truncated_unless_the_function_says_otherwise(project: Project, body: str,
                                                                         expected: Score) -> None:
    assert _python_scorer(project, body).score('{"valid": true}', "length", ITEM) == expected


def test_an_empty_answer_is_outcome_empty(project: Project) -> None:
    scorer = _python_scorer(project, "def f(text, finish_reason, fields):\n    return False")
    assert scorer.score("  ", "stop", ITEM) == Score(EMPTY, False, None, True, False)


@pytest.mark.parametrize("body, message", [
    ("def f(text, finish_reason, fields):\n    return 'yes'",
     "scorer 'python': scorers:f returned a str on item 'i00'; return a bool, a dict with 'correct', or a "
     "runner.Score"),
    ("def f(text, finish_reason, fields):\n    return {'correct': 1}",
     "scorer 'python': scorers:f returned correct=1, not true or false on item 'i00'; return a bool, a dict with "
     "'correct', or a runner.Score"),
    ("def f(text, finish_reason, fields):\n    return {'correct': True, 'why': 'x'}",
     "scorer 'python': scorers:f returned unknown keys ['why'] (allowed: correct, prediction, expected, outcome) "
     "on item 'i00'; return a bool, a dict with 'correct', or a runner.Score"),
    ("def f(text, finish_reason, fields):\n    return {'correct': True, 'outcome': 'failed'}",
     "scorer 'python': scorers:f returned outcome 'failed' (allowed: answered, no_json, truncated, wrong_shape, "
     "empty, no_code) on item 'i00'; return a bool, a dict with 'correct', or a runner.Score"),
    ("def f(text, finish_reason, fields):\n    fields['valid'] = 1\n    raise KeyError('x')",
     "scorer 'python': scorers:f raised KeyError: 'x' (at scorers.py:$LINE) on item 'i00'; fix the function"),
])
def test_a_result_that_is_no_score_is_a_scorer_error(project: Project, body: str, message: str) -> None:
    scorer = _python_scorer(project, body)
    with pytest.raises(ScorerError) as info:
        scorer.score('{"valid": true}', "stop", ITEM)
    line = (SCORERS_PY + "\n\n" + body).count("\n") + 1  # the function's last line raises
    assert info.value.line() == message.replace("$LINE", str(line))
    assert ITEM.fields["valid"] is True  # the function got a copy of the row


# entry-point plugins

PLUGIN_PY = '''
from typing import Literal

from runner.backends.openai import OpenAIBackend, OpenAISettings
from runner.config.scorer_configs import ScorerBase
from runner.scoring.base import ANSWERED, Score, Scorer


class RelaySettings(OpenAISettings):
    kind: str = "relay"
    note: str = "-"


class RelayBackend(OpenAIBackend):
    settings_model = RelaySettings


class ShoutConfig(ScorerBase):
    type: Literal["shout"]


class Shout(Scorer):
    config_model = ShoutConfig

    def score(self, text, finish_reason, item):
        return Score(ANSWERED, text.isupper(), text.upper())


class NoModel(Scorer):
    pass


class FakeConfig(ScorerBase):
    type: Literal["fake"]


class FakeScorer:
    config_model = FakeConfig
'''

ENTRY_POINTS_TXT = """\
[runner.backends]
relay = fancy_plugin:RelayBackend
gone = fancy_plugin_gone:Backend
notabackend = fancy_plugin:ShoutConfig

[runner.scorers]
shout = fancy_plugin:Shout
gone_scorer = fancy_plugin_gone:Scorer
nomodel = fancy_plugin:NoModel
fake = fancy_plugin:FakeScorer
"""


@pytest.fixture
def plugin(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed package `fancy-plugin` 1.0 announcing backends and scorers (a dist-info on sys.path)."""
    site = tmp_path_factory.mktemp("site")
    info = site / "fancy_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fancy-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS_TXT)
    (site / "fancy_plugin.py").write_text(PLUGIN_PY)
    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("fancy_plugin", None)


def test_plugins_are_listed_without_being_imported(plugin: Path) -> None:
    assert known_backends() == ["gone", "llamacpp", "lmstudio", "notabackend", "ollama", "openai", "relay"]
    assert known_scorers() == [*BUILT_IN, "fake", "gone_scorer", "nomodel", "shout"]
    assert "fancy_plugin" not in sys.modules


def test_a_plugin_backend_and_scorer_run_end_to_end(plugin: Path, project: Project,
                                                    fault_server: ThreadedFaultServer) -> None:
    exp = base_experiment(f"{fault_server.url}/v1")
    exp["backend"]["kind"] = "relay"
    exp["scorers"] = [{"type": "binary", "field": "valid"}, {"type": "shout"}]
    path = project.write(exp)
    assert main(["validate", str(path)]) == 0
    assert "fancy_plugin" in sys.modules  # imported because the experiment asked for its names
    assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    shouted = [s for s in _scores(project) if s["key"].startswith("shout:")]
    assert len(shouted) == 2 * 2 * len(ITEMS) * 2
    assert all(s["prediction"] == s["text"].upper() and s["correct"] is False for s in shouted)


def test_an_experiment_without_plugins_does_not_import_them(plugin: Path, project: Project) -> None:
    assert main(["validate", "--offline", str(project.write())]) == 0
    assert "fancy_plugin" not in sys.modules


PLUGIN_ERRORS = [
    ({"backend.kind": "gone"},
     "runner: $EXP: backend.kind: entry point 'gone = fancy_plugin_gone:Backend' (group runner.backends, from "
     "fancy-plugin 1.0) cannot be loaded: ModuleNotFoundError: No module named 'fancy_plugin_gone'; fix or "
     "uninstall the package that provides it"),
    ({"backend.kind": "notabackend"},
     "runner: $EXP: backend.kind: entry point 'notabackend = fancy_plugin:ShoutConfig' (group runner.backends, "
     "from fancy-plugin 1.0) is not a usable backend: it names <class 'fancy_plugin.ShoutConfig'>; point the "
     "entry point at a Backend subclass with a settings_model class attribute (a BackendSettings subclass)"),
    ({"backend.kind": "vllm"},
     "runner: $EXP: backend.kind: unknown backend kind 'vllm'; use one of: gone, llamacpp, lmstudio, notabackend, "
     "ollama, openai, relay"),
    ({"scorer": {"type": "gone_scorer"}},
     "runner: $EXP: scorers: entry point 'gone_scorer = fancy_plugin_gone:Scorer' (group runner.scorers, from "
     "fancy-plugin 1.0) cannot be loaded: ModuleNotFoundError: No module named 'fancy_plugin_gone'; fix or "
     "uninstall the package that provides it"),
    ({"scorer": {"type": "nomodel"}},
     "runner: $EXP: scorers: entry point 'nomodel = fancy_plugin:NoModel' (group runner.scorers, from "
     "fancy-plugin 1.0) is not a usable scorer: config model of scorer 'nomodel' must subclass "
     "runner.config.schema.ScorerBase, got None; point the entry point at a Scorer subclass with a config_model "
     "class attribute"),
    # Only building the scorer can tell that the class is no Scorer (config may not import scoring).
    ({"scorer": {"type": "fake"}},
     "runner: entry point 'fake = fancy_plugin:FakeScorer' (group runner.scorers, from fancy-plugin 1.0) names "
     "<class 'fancy_plugin.FakeScorer'>, which is not a runner Scorer subclass; point it at a subclass of "
     "runner.scoring.base.Scorer"),
    ({"scorer": {"type": "shout", "loud": True}},
     "runner: $EXP: scorers[1].loud: unknown key 'loud'; allowed keys here: name, type"),
    # A typo lists every scorer that loads; the broken plugin is reported only when asked for by name.
    ({"scorer": {"type": "shuot"}},
     "runner: $EXP: scorers[1]: unknown type 'shuot'; use one of: exact, regex, json_field, binary, code_tests, "
     "similarity, python, fake, shout"),
]


@pytest.mark.parametrize("change, expected", PLUGIN_ERRORS, ids=[json.dumps(c) for c, _ in PLUGIN_ERRORS])
def test_a_broken_plugin_is_one_line_naming_the_entry_point(
    plugin: Path, project: Project, capsys: pytest.CaptureFixture[str], change: dict[str, Any], expected: str
) -> None:
    exp = base_experiment()
    if "backend.kind" in change:
        exp["backend"]["kind"] = change["backend.kind"]
    else:
        exp["scorers"].append(change["scorer"])
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    out, err = capsys.readouterr()
    assert _line(err, path, project) == [expected]
    assert out == ""


# optional dependencies


def _tiny_gguf(path: Path) -> Path:
    """A GGUF header with no tensors: enough for the checks before a server starts (Q4_1, 4096 context)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_file_type(3)
    writer.add_context_length(4096)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _embedded(project: Project, **model: Any) -> Path:
    exp = base_experiment()
    exp["backend"] = {"kind": "llamacpp", "concurrency": 1, "max_retries": 0}
    exp["models"] = [{"name": "tiny", "source": {"path": str(_tiny_gguf(project.root / "tiny.gguf"))}, **model}]
    return project.write(exp)


def test_deriving_without_the_quantizer_says_how_to_install_it(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    path = _embedded(project, quantizations=["Q8_0"])
    assert main(["run", str(path), "--quiet"]) == 2
    assert _line(capsys.readouterr().err, path, project) == [
        "runner: $EXP: models[0]: deriving Q8_0 with llama.cpp's quantizer needs llama_cpp, which is not installed; "
        "pip install 'llm-runner[quantize]', or run scripts/setup.sh (it builds and caches the wheel)"]
    assert not (project.root / "results").exists()


def test_the_embedded_backend_without_its_engine_says_how_to_install_it(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    path = _embedded(project)
    assert main(["validate", str(path)]) == 0  # nothing to start: the engine is needed by run only
    capsys.readouterr()
    assert main(["run", str(path), "--quiet"]) == 2
    pin = next(r for r in importlib.metadata.requires("llm-runner") or [] if r.startswith("xllamacpp"))
    assert _line(capsys.readouterr().err, path, project) == [
        f"runner: $EXP: backend.kind: the embedded backend (kind: llamacpp) needs xllamacpp, which is not "
        f"installed; pip install {pin}, or set backend.kind to a server you run: openai, ollama or lmstudio"]
    assert not (project.root / "results").exists()


def test_the_server_process_without_its_engine_prints_the_hint_as_its_last_line(tmp_path: Path) -> None:
    # The parent reports the child's last stderr line when the server does not start.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "xllamacpp.py").write_text('raise ModuleNotFoundError("no xllamacpp", name="xllamacpp")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), str(Path(runner.__file__).parent.parent)])}
    # stdin stays open: the server process leaves when it closes.
    with subprocess.Popen([sys.executable, "-m", "runner.backends.llamacpp.server", "--model", "x.gguf",
                           "--n-ctx", "64", "--parallel", "1", "--threads", "1"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.wait(timeout=60) == 2
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read() == ""
        assert proc.stderr.read().splitlines()[-1].startswith(
            "llama.cpp's server needs xllamacpp, which is not installed; pip install xllamacpp==")


@pytest.mark.parametrize("install, fix", [
    ("llm-runner[plots]", "pip install 'llm-runner[plots]'"),
    ("no-such-package-xyz", "pip install no-such-package-xyz"),
])
def test_require_names_the_module_the_purpose_and_the_pip_command(install: str, fix: str) -> None:
    with pytest.raises(MissingDependency) as info:
        require("no_such_module_xyz", install, "drawing plots")
    assert info.value.line() == f"drawing plots needs no_such_module_xyz, which is not installed; {fix}"
    assert require("json", "json", "reading JSON") is json
