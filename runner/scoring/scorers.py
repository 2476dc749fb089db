"""Scorers, registered by name: each turns one answer into a `Score`.

A score says more than right or wrong: what the answer was (`outcome`), what the model predicted,
and what was expected, so that reports can count cut-off answers, missing JSON and wrong shapes
separately from honest mistakes. Scores are pure functions of (answer, item, scorer config), so
they can be recomputed whenever a scorer changes; `Scorer.key` names the config for the cache.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from runner.config.schema import BinaryScorer, CodeTestsScorer, ExactScorer, JsonFieldScorer, RegexScorer, ScorerConfig
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.plan.planner import Plan, canonical_hash
from runner.scoring.extract import extract_json, get_path, is_missing
from runner.scoring.sandbox import SandboxLimits, extract_code, run_tests

# What a response was, before asking whether it was right.
ANSWERED = "answered"
NO_JSON = "no_json"
TRUNCATED = "truncated"  # finish_reason "length": cut off by max_tokens
WRONG_SHAPE = "wrong_shape"
EMPTY = "empty"
NO_CODE = "no_code"  # the code does not compile
FAILED = "failed"  # the request failed after its retries; nothing to score
OUTCOMES = (ANSWERED, NO_JSON, TRUNCATED, WRONG_SHAPE, EMPTY, NO_CODE, FAILED)


@dataclass(frozen=True)
class Score:
    outcome: str
    correct: bool | None  # None when the job failed: not an answer at all
    prediction: Any = None
    expected: Any = None
    json_valid: bool = False
    detail: str | None = None
    # Beyond the label: the answer's confidence and the reasons it gave, when configured.
    extras: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        return cls(**data)


FAILED_SCORE = Score(outcome=FAILED, correct=None)

SCORING_VERSION = 2


def normalize(value: Any) -> Any:
    """Compare answers loosely where models are loose: "true" is true, " Valid " is "valid"."""
    if isinstance(value, str):
        text = value.strip().lower()
        return {"true": True, "false": False}.get(text, text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Scorer:
    config: ScorerConfig
    blocking = False  # True when scoring takes long enough to need a thread (it runs a process)

    def __init__(self, config: ScorerConfig, default_label: str | None) -> None:
        self.config = config
        self.default_label = default_label
        self.name = config.label()
        # The cache key covers what decides a score besides the answer: the scorer's config, the dataset
        # field it defaults to, and the scoring code's version (bump it when scoring changes).
        identity = {"config": config.model_dump(mode="json"), "label": default_label, "version": SCORING_VERSION}
        self.key = f"{self.name}:{canonical_hash(identity)[:12]}"

    @property
    def is_binary(self) -> bool:
        return isinstance(self.config, BinaryScorer)

    def expected(self, item: Item) -> Any:
        field = getattr(self.config, "expected_field", None) or getattr(self.config, "label_field", None)
        return item.label(field or self.default_label)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        raise NotImplementedError


def _json_outcome(text: str, finish_reason: str | None, field: str) -> tuple[Score | None, Any, Any]:
    """Shared by the JSON scorers: (the outcome when no usable value was found, the value, the JSON)."""
    if not text.strip():
        return Score(outcome=EMPTY, correct=False), None, None
    data = extract_json(text, prefer_key=field)
    if data is None:
        outcome = TRUNCATED if finish_reason == "length" else NO_JSON
        return Score(outcome=outcome, correct=False), None, None
    value = get_path(data, field)
    if is_missing(value) and finish_reason == "length":
        # A fragment parsed, but the answer was cut off before it got to the field.
        return Score(outcome=TRUNCATED, correct=False, json_valid=False), None, data
    if is_missing(value):
        shape = f"no key {field!r}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        return Score(outcome=WRONG_SHAPE, correct=False, json_valid=True, detail=shape), None, data
    return None, value, data


class ExactMatch(Scorer):
    config: ExactScorer

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = self.expected(item)
        if self.config.field:
            early, value, _ = _json_outcome(text, finish_reason, self.config.field)
            if early is not None:
                return Score(**{**early.to_dict(), "expected": expected})
            return Score(ANSWERED, normalize(value) == normalize(expected), value, expected, True)
        got, want = text.strip(), str(expected).strip()
        if not self.config.case_sensitive:
            got, want = got.lower(), want.lower()
        outcome = EMPTY if not got else ANSWERED
        return Score(outcome, got == want, text.strip(), expected, extract_json(text) is not None)


class RegexMatch(Scorer):
    config: RegexScorer

    def __init__(self, config: ScorerConfig, default_label: str | None) -> None:
        super().__init__(config, default_label)
        self.pattern = re.compile(self.config.pattern)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = self.expected(item)
        json_valid = extract_json(text) is not None
        match = self.pattern.search(text)
        if match is None:
            outcome = EMPTY if not text.strip() else (TRUNCATED if finish_reason == "length" else ANSWERED)
            return Score(outcome, False, None, expected, json_valid, "no match")
        found = match.group(1) if match.groups() else match.group(0)
        correct = True if expected is None else normalize(found) == normalize(expected)
        return Score(ANSWERED, correct, found, expected, json_valid)


class JsonField(Scorer):
    config: JsonFieldScorer

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = self.expected(item)
        early, value, _ = _json_outcome(text, finish_reason, self.config.field)
        if early is not None:
            return Score(**{**early.to_dict(), "expected": expected})
        return Score(ANSWERED, normalize(value) == normalize(expected), value, expected, True)


class BinaryClassification(Scorer):
    """A two-class answer in a JSON field (e.g. valid: true/false) against the dataset label."""

    config: BinaryScorer

    def expected(self, item: Item) -> Any:
        label = super().expected(item)
        if self.config.label_map is not None:
            return self.config.label_map.get(str(label), label)
        return label

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        expected = normalize(self.expected(item))
        early, value, data = _json_outcome(text, finish_reason, self.config.field)
        if early is not None:
            return Score(**{**early.to_dict(), "expected": expected})
        prediction = normalize(value)
        if not isinstance(prediction, bool | int | str) or isinstance(prediction, float):
            return Score(WRONG_SHAPE, False, None, expected, True,
                         f"{self.config.field!r} is a {type(value).__name__}")
        return Score(ANSWERED, prediction == expected, prediction, expected, True, extras=self._extras(data))

    def _extras(self, data: Any) -> dict[str, Any] | None:
        """The answer's stated confidence and reasons, where the experiment names those fields."""
        extras: dict[str, Any] = {}
        if self.config.confidence_field:
            conf = get_path(data, self.config.confidence_field)
            if isinstance(conf, int | float) and not isinstance(conf, bool) and 0 <= conf <= 1:
                extras["confidence"] = float(conf)
        if self.config.reasons_field:
            reasons = get_path(data, self.config.reasons_field)
            if isinstance(reasons, list):
                extras["reasons"] = [str(r) for r in reasons]
        return extras or None

    def is_positive(self, value: Any) -> bool:
        return bool(normalize(value) == normalize(self.config.positive))


class CodeTests(Scorer):
    """Correct when the answer's code passes every test; the prediction is the pass rate."""

    config: CodeTestsScorer
    blocking = True

    def expected(self, item: Item) -> Any:
        return None

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        code = extract_code(text)
        if not code.strip():
            return Score(EMPTY, False)
        limits = SandboxLimits(timeout_s=self.config.timeout_s, memory_mb=self.config.memory_mb)
        result = run_tests(code, str(item.fields.get(self.config.tests_field, "")), limits)
        if not result.compiled:
            outcome = TRUNCATED if finish_reason == "length" else NO_CODE
            return Score(outcome, False, 0.0, None, False, result.error)
        return Score(ANSWERED, result.total > 0 and result.passed == result.total, result.pass_rate, None,
                     False, result.error)


_SCORERS: dict[str, Callable[[Any, str | None], Scorer]] = {
    "exact": ExactMatch,
    "regex": RegexMatch,
    "json_field": JsonField,
    "binary": BinaryClassification,
    "code_tests": CodeTests,
}


def check_scorer_fields(plan: Plan, scorers: list[Scorer]) -> None:
    """Every dataset row has the fields the scorers compare with; raise ConfigError naming the first."""
    for i, scorer in enumerate(scorers):
        cfg = scorer.config
        if cfg.type == "code_tests":
            missing = [item.id for item in plan.items if cfg.tests_field not in item.fields]
            if missing:
                raise ConfigError(f"dataset items {missing[:3]} have no field {cfg.tests_field!r}",
                                  file=plan.experiment.source_path, key=f"scorers[{i}].tests_field",
                                  fix="add the unit tests to every row or name the field that holds them")
            continue
        field = getattr(cfg, "expected_field", None) or getattr(cfg, "label_field", None)
        field = field or plan.experiment.dataset.label_field
        if field is None and cfg.type in ("json_field", "binary"):
            raise ConfigError("no dataset field to compare with", file=plan.experiment.source_path,
                              key=f"scorers[{i}]", fix="set dataset.label_field or the scorer's expected_field")
        missing = [item.id for item in plan.items if field is not None and field not in item.fields]
        if missing:
            raise ConfigError(f"dataset items {missing[:3]} have no field {field!r}",
                              file=plan.experiment.source_path, key=f"scorers[{i}]",
                              fix="add the field to every row or point the scorer at another one")


def build_scorers(configs: list[ScorerConfig], default_label: str | None) -> list[Scorer]:
    return [_SCORERS[c.type](c, default_label) for c in configs]
