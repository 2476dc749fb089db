"""What the answers' texts do across repeats, beyond the class they state: per (cell, item) unit.

Agreement and flips compare the class an answer states, so an answer whose reasons change while
`valid` stays the same counts as consistent there. These measures read the text itself:

- `identical_share`: the share of a unit's repeats that give its most common text, exactly (after
  stripping surrounding whitespace); 1 when every repeat says the same thing word for word.
- `distinct_outputs`: how many different texts a unit's repeats gave.
- `pairwise_similarity`: the mean similarity (`runner.scoring.similarity.REPEAT_METHOD`) over all
  pairs of a unit's repeats.
- `similarity` / `divergence`: the mean similarity to the item's reference (from a `similarity`
  scorer) and 1 minus it; `divergence_t0`: 1 minus the mean similarity to the same item's answer at
  temperature 0 (repeat 0) in the cell that differs only in temperature.

Each is a value per unit; a row's value is the mean over its units, and its interval resamples items
with all their units (`CellStats.bootstrap_interval`), so the item stays the unit. Measures across
repeats need at least two repeats of a unit; the others one answer.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from runner.scoring.similarity import REPEAT_METHOD, similarity

Unit = tuple[str, str]  # (cell key, item id)

ACROSS_REPEATS = ("identical_share", "distinct_outputs", "pairwise_similarity")
TO_REFERENCE = ("similarity", "divergence", "divergence_t0")
TEXT_METRICS = ACROSS_REPEATS + TO_REFERENCE


def _similar(a: str, b: str) -> float:
    # Identical texts are 1 without asking the library: 20 identical repeats are 190 pairs.
    return 1.0 if a == b else similarity(a, b, REPEAT_METHOD)


def identical_share(texts: Sequence[str]) -> float:
    return Counter(texts).most_common(1)[0][1] / len(texts)


def distinct_outputs(texts: Sequence[str]) -> float:
    return float(len(set(texts)))


def pairwise_similarity(texts: Sequence[str]) -> float:
    pairs = list(itertools.combinations(texts, 2))
    return sum(_similar(a, b) for a, b in pairs) / len(pairs)


_ACROSS: dict[str, Callable[[Sequence[str]], float]] = {
    "identical_share": identical_share, "distinct_outputs": distinct_outputs,
    "pairwise_similarity": pairwise_similarity,
}


def unit_values(name: str, texts: Mapping[Unit, list[str]], reference_sims: Mapping[Unit, list[float]],
                t0_texts: Mapping[Unit, str]) -> dict[Unit, float]:
    """Metric `name`'s value for every unit it is defined for."""
    if name in _ACROSS:
        across = _ACROSS[name]
        return {unit: across(t) for unit, t in texts.items() if len(t) > 1}
    if name == "divergence_t0":
        return {unit: 1.0 - sum(_similar(t, t0_texts[unit]) for t in ts) / len(ts)
                for unit, ts in texts.items() if ts and unit in t0_texts}
    means = {unit: sum(s) / len(s) for unit, s in reference_sims.items() if s}
    if name == "similarity":
        return means
    return {unit: 1.0 - m for unit, m in means.items()}
