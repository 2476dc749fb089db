"""How alike two texts are, from 0 to 1, by well-kept libraries' own measures.

- `ratio`: rapidfuzz's `fuzz.ratio` / 100, the normalized Indel similarity of the characters
  (1 - insertions and deletions needed / total length). Symmetric, fast, defined for any text: the
  measure the repeat metrics use (identical share aside), so they need no scorer.
- `levenshtein`: rapidfuzz's `Levenshtein.normalized_similarity` (substitutions count once).
- `token_sort_ratio`: rapidfuzz's `fuzz.token_sort_ratio` / 100 (word order ignored).
- `chrf`: sacrebleu's sentence chrF (character n-gram F-score, beta 2) / 100, the answer as the
  hypothesis and the reference as its one reference.
- `rouge1`, `rougeL`: rouge-score's F-measure of unigram overlap and of the longest common word
  subsequence (its default tokenizer: lower case, letters and digits only; no stemming).

The libraries are imported when a measure is first asked for, not with this module: `runner report`
of an experiment without text measures never pays for them (rouge-score brings nltk, the slowest:
bench/similarity_cost.py).
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable

from runner.errors import UserError

Measure = Callable[[str, str], float]

METHODS = ("ratio", "levenshtein", "token_sort_ratio", "chrf", "rouge1", "rougeL")
# The measure behind divergence from the temperature-0 answer and the pairwise similarity of repeats.
REPEAT_METHOD = "ratio"

_PACKAGE = {"ratio": "rapidfuzz", "levenshtein": "rapidfuzz", "token_sort_ratio": "rapidfuzz",
            "chrf": "sacrebleu", "rouge1": "rouge-score", "rougeL": "rouge-score"}


def _rapidfuzz(method: str) -> Measure:
    from rapidfuzz import fuzz
    from rapidfuzz.distance import Levenshtein

    if method == "levenshtein":
        return lambda a, b: float(Levenshtein.normalized_similarity(a, b))
    scorer = fuzz.ratio if method == "ratio" else fuzz.token_sort_ratio
    return lambda a, b: float(scorer(a, b)) / 100.0


def _chrf() -> Measure:
    from sacrebleu.metrics.chrf import CHRF

    chrf = CHRF()
    return lambda answer, reference: float(chrf.sentence_score(answer, [reference]).score) / 100.0


def _rouge(method: str) -> Measure:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([method], use_stemmer=False)
    # rouge-score's argument order is (target, prediction).
    return lambda answer, reference: float(scorer.score(reference, answer)[method].fmeasure)


_MODULE = {"rapidfuzz": "rapidfuzz", "sacrebleu": "sacrebleu", "rouge-score": "rouge_score"}


def check_installed(method: str) -> None:
    """Raise the UserError `measure` would, without importing the library (validation stays cheap:
    rouge-score brings nltk, 1.7 s); `measure` imports it when scoring starts."""
    import importlib.util

    if method not in METHODS:
        raise ValueError(f"unknown similarity method {method!r}; one of {', '.join(METHODS)}")
    package = _PACKAGE[method]
    if importlib.util.find_spec(_MODULE[package]) is None:
        raise _missing(method, f"No module named {_MODULE[package]!r}")


def _missing(method: str, why: str) -> UserError:
    package = _PACKAGE[method]
    return UserError(f"similarity method {method!r} needs the {package} package, which is not installed ({why})",
                     fix=f"pip install {package} (a dependency of llm-runner: reinstall it)")


@functools.cache
def measure(method: str) -> Measure:
    """The measure `method` as a function (answer, reference) -> [0, 1]; its library imported now.

    Raises UserError with the package to install when the library is missing."""
    if method not in METHODS:
        raise ValueError(f"unknown similarity method {method!r}; one of {', '.join(METHODS)}")
    try:
        if method == "chrf":
            return _chrf()
        if method.startswith("rouge"):
            return _rouge(method)
        return _rapidfuzz(method)
    except ImportError as exc:
        raise _missing(method, str(exc)) from None


def similarity(answer: str, reference: str, method: str = REPEAT_METHOD) -> float:
    """How alike `answer` is to `reference` by `method`, from 0 (nothing shared) to 1 (the same)."""
    if not answer and not reference:
        return 1.0  # two empty texts are the same; the libraries disagree on 0/0
    return measure(method)(answer, reference)


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalization of a short answer: lower case, no punctuation, no articles (a, an,
    the), single spaces. "The Eiffel Tower." and "eiffel tower" are then the same text."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())
