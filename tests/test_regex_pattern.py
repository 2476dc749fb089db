"""The regex scorer's pattern: refused in one line when it does not compile; its time limit keeps
stored scores. (A search past its limit, and a signal during one: tests/test_signals.py.)"""

from __future__ import annotations

import pytest

from conftest import Project, base_experiment
from runner.cli import main
from runner.config.scorer_configs import RegexScorer
from runner.plan.dataset import Item
from runner.scoring.scorers import build_scorers


@pytest.mark.parametrize(("pattern", "problem"), [
    ("(abc", "missing ) at position 4"),
    ("a{2,1}", "min repeat greater than max repeat at position 2"),
    (r"(?P<x>a)(?P=y)", "unknown group at position 11"),
])
@pytest.mark.parametrize("verb", ["run", "validate"])
def test_an_invalid_pattern_is_one_line_before_anything_runs(project: Project, capsys: pytest.CaptureFixture[str],
                                                             verb: str, pattern: str, problem: str) -> None:
    exp = base_experiment()
    exp["scorers"] = [{"type": "binary", "field": "valid"}, {"type": "regex", "pattern": pattern}]
    path = project.write(exp)
    assert main([verb, str(path)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"runner: {path}: scorers[1].pattern: invalid regular expression: {problem}; "
                                "fix the pattern"]
    assert out == ""
    assert not (project.root / "results").exists()


def test_python_regex_syntax_still_works() -> None:
    (scorer,) = build_scorers([RegexScorer(type="regex", pattern=r"(?i)answer:\s*(?P<word>\w+)\b")], "label")
    score = scorer.score("Thinking... ANSWER:  Yes.", "stop", Item("i1", {"label": "yes"}))
    assert (score.outcome, score.prediction, score.correct) == ("answered", "Yes", True)


def test_the_time_limit_is_not_part_of_the_score_cache_key() -> None:
    keys = {build_scorers([RegexScorer(type="regex", pattern=r"answer: (\w+)", **limit)], "valid")[0].key
            for limit in ({}, {"timeout_s": 5}, {"timeout_s": 0.1})}
    # The key of this scorer before timeout_s existed: answers scored then keep their stored scores.
    assert keys == {"regex:4d88f05b5cc9"}
