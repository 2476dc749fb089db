"""What every scorer is: the `Score` it returns and the `Scorer` interface, apart from the built-ins.

A score says more than right or wrong: what the answer was (`outcome`), what the model predicted,
and what was expected, so that reports can count cut-off answers, missing JSON and wrong shapes
separately from honest mistakes. Scores are pure functions of (answer, item, scorer config), so
they can be recomputed whenever a scorer changes; `Scorer.key` names the config for the cache.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from runner.config.scorer_configs import ScorerBase
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.plan.planner import canonical_hash
from runner.scoring.errors import ScoringUnavailable


class Outcome(enum.StrEnum):
    """What a response was, before asking whether it was right. A str: stored scores keep the text."""

    ANSWERED = "answered"
    NO_JSON = "no_json"
    TRUNCATED = "truncated"  # finish_reason "length": cut off by max_tokens
    WRONG_SHAPE = "wrong_shape"
    EMPTY = "empty"
    NO_CODE = "no_code"  # the code does not compile
    FAILED = "failed"  # the request failed after its retries; nothing to score


ANSWERED, NO_JSON, TRUNCATED, WRONG_SHAPE = Outcome.ANSWERED, Outcome.NO_JSON, Outcome.TRUNCATED, Outcome.WRONG_SHAPE
EMPTY, NO_CODE, FAILED = Outcome.EMPTY, Outcome.NO_CODE, Outcome.FAILED
OUTCOMES = tuple(Outcome)


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
        # Written out, not dataclasses.asdict: that deep-copies every value (8 deepcopy calls a score),
        # and the dict is encoded to JSON straight away. Keys in field order, as asdict gave them.
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(Score))
FAILED_SCORE = Score(outcome=FAILED, correct=None)

# 3: labels compared by their type (runner.scoring.values); a cut-off answer is truncated for every scorer.
SCORING_VERSION = 3


def normalize(value: Any) -> Any:
    """A value in a normal form for display and counting: "true" is true, " Valid " is "valid", 3.0 is 3.

    Scorers decide right and wrong with `runner.scoring.values.same_answer`, which reads the answer
    by the label's type; this is the form predictions and labels are stored and counted in."""
    if isinstance(value, str):
        text = value.strip().lower()
        return {"true": True, "false": False}.get(text, text)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Scorer:
    """Scores one answer. A subclass is registered once with its config model (`register_scorer`)."""

    config: ScorerBase
    # Unused since every scorer runs in a thread with a time limit (runner.execution.off_loop); kept for plugins.
    blocking = False
    is_binary = False  # True for two-class scorers: reports add precision, recall and the error kinds
    needs_expected = False  # True when there is nothing to score without a dataset field to compare with
    # What the answer is compared with the label as, when that can only be one value (text or a class):
    # a label that is a list or a mapping cannot be compared at all, and `check_items` refuses it.
    compares_as: str | None = None
    # Config keys that never change a score, only whether there is one (a time limit): left out of the
    # cache key, so that changing them (or adding them to a scorer) keeps the stored scores.
    not_in_key: tuple[str, ...] = ()
    one_value_fix = ("point expected_field at a field with one value per item, or compare JSON with json_field "
                     "(or exact with field)")

    def __init__(self, config: ScorerBase, default_label: str | None) -> None:
        self.config = config
        self.default_label = default_label
        self.name = config.label()
        # The cache key covers what decides a score besides the answer: the scorer's config, the dataset
        # field it defaults to, and the scoring code's version (bump it when scoring changes).
        config_identity = config.model_dump(mode="json", exclude=set(self.not_in_key))
        identity = {"config": config_identity, "label": default_label, "version": SCORING_VERSION}
        self.key = f"{self.name}:{canonical_hash(identity)[:12]}"

    def cheap_on(self, text: str) -> bool:
        """Whether scoring this answer is known to take well under a millisecond, so the executor may
        run it on the event loop instead of handing it to a thread (about 40 us a hop, the loop woken
        twice). False unless a scorer knows its worst case: a plugin, a regex, code tests never."""
        return False

    def expected_field(self) -> str | None:
        """The dataset field answers are compared with: the scorer's own setting, else the label."""
        field = getattr(self.config, "expected_field", None) or getattr(self.config, "label_field", None)
        return field or self.default_label

    def expected(self, item: Item) -> Any:
        # The field looked up once: a missing attribute of a pydantic model goes through its slow
        # __getattr__, 25 us a call, and the read path asks once per job (2.6 s of a 100,000-job report).
        field = self.__dict__.get("_expected_field", self)
        if field is self:
            field = self.__dict__["_expected_field"] = self.expected_field()
        return item.label(field)

    # Where check_scorers found this scorer (file, key), for `ensure_tools`; None: built without a file.
    _where: tuple[Path, str] | None = None
    _tools_checked = False

    def check_tools(self, file: Path, key: str) -> None:
        """Refuse, with a `ConfigError`, a machine without what scoring an answer needs (a compiler, a
        sandbox). Apart from `check_items`: reading stored scores needs none of it (`ensure_tools`)."""

    def warm(self) -> None:
        """Import what scoring needs, before a run's first answer: an import inside the first answer's
        scorer time limit would count against it. Validation never calls it."""

    def ensure_tools(self) -> None:
        """`check_tools` once, before the first answer this scorer scores: a read verb that finds every
        score cached never asks for the tools, one that must score an answer in memory does."""
        if not self._tools_checked:
            if self._where is not None:
                try:
                    self.check_tools(*self._where)
                except ConfigError as exc:
                    raise ScoringUnavailable(exc.problem, file=exc.file, key=exc.key, fix=exc.fix) from None
            self._tools_checked = True

    def check_items(self, items: Sequence[Item], file: Path, key: str) -> None:
        """Refuse, before any request, a dataset this scorer cannot score (a `ConfigError`).

        `file` is the experiment file and `key` this scorer's place in it (`scorers[0]`). By default:
        the field answers are compared with must be in every row.
        """
        field = self.expected_field()
        if field is None and self.needs_expected:
            raise ConfigError("no dataset field to compare with", file=file, key=key,
                              fix="set dataset.label_field or the scorer's expected_field")
        missing = [item.id for item in items if field is not None and field not in item.fields]
        if missing:
            raise ConfigError(f"dataset items {missing[:3]} have no field {field!r}", file=file, key=key,
                              fix="add the field to every row or point the scorer at another one")
        self._check_one_value_labels(items, field, file, key)

    def _check_one_value_labels(self, items: Sequence[Item], field: str | None, file: Path, key: str) -> None:
        """A label that is a list or a mapping, for a scorer that compares one value: an error, not 0%."""
        if self.compares_as is None:
            return
        bad = [(item.id, self.expected(item)) for item in items]
        bad = [(i, v) for i, v in bad if isinstance(v, list | dict)]
        if not bad:
            return
        item_id, value = bad[0]
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ConfigError(
            f"labels in field {field!r} are lists or mappings ({len(bad)} of {len(items)} items, first {item_id!r}: "
            f"{shown}); scorer type {self.config.type!r} compares {self.compares_as} with one value",
            file=file, key=key, fix=self.one_value_fix)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        raise NotImplementedError


# extract_json's worst case is one scan to the end of the text per bracket it tries (0.04 us a character
# and bracket measured: 1.3 ms for 8 brackets in 4,096 characters); this budget keeps it under about 0.7 ms.
CHEAP_JSON_BUDGET = 16_384


def json_read_is_cheap(text: str) -> bool:
    """Whether reading JSON out of this answer is cheap whatever it holds: short, with few brackets."""
    if len(text) > CHEAP_JSON_BUDGET:
        return False
    return len(text) * max(1, text.count("{") + text.count("[")) <= CHEAP_JSON_BUDGET
