"""The `python` scorer: your own function decides whether an answer is right.

    scorers:
      - {type: python, function: "scorers:score_answer", name: my_check}

The contract of the function:

- It is named `package.module:function`. The module is searched in the experiment file's folder
  first (so a `scorers.py` next to the YAML works), then on sys.path. It is imported when the
  experiment is validated: a missing module or name, or a function that cannot take three
  arguments, is a one-line error naming `scorers[i].function`, before any request.
- It is called as `function(text, finish_reason, fields)`: the answer's text, the server's finish
  reason ("stop", "length", or None) and a copy of the dataset row (a dict of its fields).
- It returns one of:
  - a bool: whether the answer is right;
  - a dict with `correct` (a bool) and optionally `prediction` (what the answer said),
    `expected` (default: the dataset label) and `outcome` (one of answered, no_json, truncated,
    wrong_shape, empty, no_code; default: answered, or empty for an empty answer);
  - a `runner.Score`.
- A cut-off answer (finish reason "length") is `truncated` and wrong, as for every scorer, when the
  function returns a bool or a dict without `outcome`; a dict with `outcome`, or a Score, is taken
  as it is (the function has looked at the finish reason itself).
- If it raises, or returns anything else, that job fails with a `ScorerError` (its message, stored
  as the job's error, names the exception and the line that raised it) and the run goes on.
- It should be a pure function of its arguments: stored scores are reused while the scorer's
  config is unchanged, so after editing the function, change the scorer's `version`.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runner.config.imports import ObjectNotFound, load_object
from runner.config.scorer_configs import PythonScorer, ScorerBase
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.scoring.base import ANSWERED, EMPTY, FAILED, OUTCOMES, TRUNCATED, Score, Scorer
from runner.scoring.errors import ScorerError
from runner.scoring.extract import extract_json

ScoreFunction = Callable[[str, str | None, dict[str, Any]], Any]

RESULT_KEYS = ("correct", "prediction", "expected", "outcome")
ANSWER_OUTCOMES = tuple(o for o in OUTCOMES if o != FAILED)  # "failed" is a request that got no answer


def resolve_function(spec: str, folder: Path | None, *, file: Path | str | None, key: str) -> ScoreFunction:
    """The function `spec` names, or a ConfigError at `file`/`key` saying what to write instead."""
    try:
        value = load_object(spec, folder)
    except ObjectNotFound as exc:
        raise ConfigError(exc.problem, file=file, key=key, fix=exc.fix) from None
    if not callable(value):
        raise ConfigError(f"{spec} is not a function but a value of type {type(value).__name__}", file=file,
                          key=key, fix="name a function that takes (text, finish_reason, fields)")
    try:
        inspect.signature(value).bind("", None, {})
    except TypeError as exc:
        raise ConfigError(f"{spec} cannot be called as function(text, finish_reason, fields): {exc}", file=file,
                          key=key, fix="give it three parameters: text, finish_reason, fields") from None
    except ValueError:
        pass  # no signature to read (some built-ins): find out when it is called
    return value


class PythonFunction(Scorer):
    config: PythonScorer

    def __init__(self, config: ScorerBase, default_label: str | None) -> None:
        super().__init__(config, default_label)
        self._function: ScoreFunction | None = None

    def check_items(self, items: Sequence[Item], file: Path, key: str) -> None:
        self._function = resolve_function(self.config.function, Path(file).parent, file=file, key=f"{key}.function")

    def _resolved(self) -> ScoreFunction:
        if self._function is None:  # built without check_items (no experiment file known): sys.path only
            self._function = resolve_function(self.config.function, None, file=None,
                                              key=f"scorer {self.name!r} function")
        return self._function

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        function = self._resolved()
        try:
            result = function(text, finish_reason, dict(item.fields))
        except Exception as exc:  # whatever the user's code raises is its own failure, for this job only
            raise ScorerError(f"scorer {self.name!r}: {self.config.function} raised {type(exc).__name__}: {exc} "
                              f"{_where(exc)}on item {item.id!r}", fix="fix the function") from exc
        return self._to_score(result, text, finish_reason, item)

    def _to_score(self, result: Any, text: str, finish_reason: str | None, item: Item) -> Score:
        if isinstance(result, Score):
            return result
        outcome = EMPTY if not text.strip() else (TRUNCATED if finish_reason == "length" else ANSWERED)
        json_valid = extract_json(text) is not None
        if isinstance(result, bool):
            return Score(outcome, result and outcome != TRUNCATED, None, self.expected(item), json_valid)
        if not isinstance(result, dict):
            raise self._bad_result(f"returned a {type(result).__name__}", item)
        unknown = sorted(set(result) - set(RESULT_KEYS))
        if unknown:
            raise self._bad_result(f"returned unknown keys {unknown} (allowed: {', '.join(RESULT_KEYS)})", item)
        if not isinstance(result.get("correct"), bool):
            raise self._bad_result(f"returned correct={result.get('correct')!r}, not true or false", item)
        correct = result["correct"] and (outcome != TRUNCATED or "outcome" in result)
        outcome = result.get("outcome", outcome)
        if outcome not in ANSWER_OUTCOMES:
            raise self._bad_result(f"returned outcome {outcome!r} (allowed: {', '.join(ANSWER_OUTCOMES)})", item)
        expected = result["expected"] if "expected" in result else self.expected(item)
        return Score(outcome, correct, result.get("prediction"), expected, json_valid)

    def _bad_result(self, what: str, item: Item) -> ScorerError:
        return ScorerError(f"scorer {self.name!r}: {self.config.function} {what} on item {item.id!r}",
                           fix="return a bool, a dict with 'correct', or a runner.Score")


def _where(exc: BaseException) -> str:
    """`(at scorers.py:12) `: the innermost line of the traceback, which is in the user's code or below it."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"(at {Path(frames[-1].filename).name}:{frames[-1].lineno}) " if frames else ""
