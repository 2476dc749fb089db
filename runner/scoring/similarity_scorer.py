"""The `similarity` scorer: the answer against the item's reference text, by a library's measure.

The similarity itself (0 to 1) is kept in the score's extras, so that the report can show its mean
(`similarity`, `divergence`) whatever `min` makes right or wrong; the prediction stays empty, so
agreement across repeats compares the answers' texts, not a number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.config.scorer_configs import ScorerBase, SimilarityScorer
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.scoring.base import ANSWERED, EMPTY, TRUNCATED, Score, Scorer, normalize
from runner.scoring.extract import extract_json, get_path, is_missing
from runner.scoring.scorers import _json_outcome
from runner.scoring.similarity import check_installed, measure, normalize_answer, similarity


class Similarity(Scorer):
    config: SimilarityScorer
    needs_expected = True

    def __init__(self, config: ScorerBase, default_label: str | None) -> None:
        super().__init__(config, default_label)
        # Only looked for here, when the experiment's scorers are built (validation must not pay for
        # importing nltk); a missing one is a UserError naming the package. `warm` imports it.
        check_installed(self.config.method)

    def warm(self) -> None:
        measure(self.config.method)

    def expected_field(self) -> str | None:
        return self.config.reference_field

    def expected(self, item: Item) -> Any:
        value = item.fields.get(self.config.reference_field)
        return None if value is None else _as_text(value)

    def check_items(self, items: Sequence[Item], file: Path, key: str) -> None:
        field = self.config.reference_field
        missing = [item.id for item in items if field not in item.fields]
        if missing:
            raise ConfigError(f"dataset items {missing[:3]} have no field {field!r}", file=file,
                              key=f"{key}.reference_field",
                              fix="add the reference text to every row or name the field that holds it")
        bad = [item.id for item in items if isinstance(item.fields[field], list | dict | bool)
               or item.fields[field] is None]
        if bad:
            raise ConfigError(f"field {field!r} of dataset items {bad[:3]} is not a text", file=file,
                              key=f"{key}.reference_field", fix="give every row one reference text (a string)")

    def _compare(self, text: str, reference: str) -> float:
        if self.config.normalize:
            text, reference = normalize_answer(text), normalize_answer(reference)
        return similarity(text, reference, self.config.method)

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        reference = str(self.expected(item))
        expected = normalize(reference)  # the form the cache compares with (runner.analysis.metrics.scores_for)
        if self.config.field is not None:
            early, value, data = _json_outcome(text, finish_reason, self.config.field)
            if early is not None:
                # No text to compare (no JSON, no such field): nothing of the reference was said. A
                # cut-off answer that got as far as the field has its draft measured.
                said = get_path(data, self.config.field) if data is not None else None
                sim = self._compare(said, reference) if isinstance(said, str) and not is_missing(said) else 0.0
                return Score(early.outcome, False, None, expected, early.json_valid, early.detail,
                             {"similarity": sim})
            answer, json_valid = value if isinstance(value, str) else _as_text(value), True
        else:
            answer, json_valid = text.strip(), extract_json(text) is not None
        sim = self._compare(answer, reference)
        extras = {"similarity": sim}
        if not answer.strip():
            return Score(EMPTY, False, None, expected, json_valid, None, extras)
        if finish_reason == "length":
            return Score(TRUNCATED, False, None, expected, json_valid, "cut off at max_tokens", extras)
        correct = sim >= self.config.min if self.config.min is not None else sim == 1.0
        # The same words for every miss, so that the diagnosis can count them ("most often: ...").
        miss = f"{self.config.method} similarity below {self.config.min:g}" if self.config.min is not None \
            else f"not identical to the reference by {self.config.method}"
        return Score(ANSWERED, correct, None, expected, json_valid, None if correct else miss, extras)


def _as_text(value: Any) -> str:
    """A number or other JSON scalar as the text it is written as (a reference 1997, a field 42)."""
    return value if isinstance(value, str) else json.dumps(value)
