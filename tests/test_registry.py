"""Registries: a scorer registered once works everywhere; custom Python scorers; entry-point
plugins; optional dependencies with an install hint.

End-to-end cases run `runner.cli.main` against the fault server and pin the whole stderr line of
every user error. `$EXP` stands for the experiment file, `$ROOT` for the project folder.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

import runner.config.registry as config_registry
from conftest import ITEMS, Project, base_experiment
from runner.cli import main
from runner.config.registry import known_scorers
from runner.config.schema import ScorerBase
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.scoring.base import ANSWERED, Score, Scorer
from runner.scoring.registry import register_scorer
from runner.testing.fault_server import ThreadedFaultServer

BUILT_IN = ["exact", "regex", "json_field", "binary", "code_tests"]


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
     "runner: $EXP: scorers[1].max_chars: Input should be a valid integer, unable to parse string as an integer "
     "(got 'long'); write a whole number"),
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
    tags = ", ".join(f"'{n}'" for n in known_scorers())
    exp = base_experiment()
    exp["scorers"] = [{"type": "lenght"}]
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    assert _line(capsys.readouterr().err, path, project) == [
        f"runner: $EXP: scorers[0]: Input tag 'lenght' found using 'type' does not match any of the expected "
        f"tags: {tags}; use one of the types named"]
    exp["scorers"] = [{"max_chars": 3}]
    path = project.write(exp)
    assert main(["validate", "--offline", str(path)]) == 2
    assert _line(capsys.readouterr().err, path, project) == [
        f"runner: $EXP: scorers[0]: Unable to extract tag using discriminator 'type'; add type: with one of "
        f"{', '.join(known_scorers())}"]
    assert known_scorers()[-1] == "length"


def test_register_scorer_refuses_a_config_model_of_another_name() -> None:
    with pytest.raises(ValueError, match=r"must declare type: Literal\['size'\]"):
        register_scorer("size", LengthConfig, LengthCheck)
    with pytest.raises(TypeError, match="Scorer subclass"):
        register_scorer("length", LengthConfig, object)  # type: ignore[arg-type]


def test_built_in_scorers_are_listed_in_registration_order() -> None:
    assert known_scorers()[: len(BUILT_IN)] == BUILT_IN
