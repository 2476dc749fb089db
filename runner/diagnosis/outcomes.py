"""Findings about what a cell's answers were, apart from right or wrong, and about its repeats.

- outcome shares: answers cut off at max_tokens, with no JSON, of the wrong shape, empty, failed;
  the advice fits the cell's settings (under a JSON schema the output is already constrained);
- repetition loops: cut-off answers that repeat themselves (`runner.scoring.loops`), for which
  more max_tokens only means a longer loop;
- repeats at temperature 0: they measure only whether the server is deterministic.
"""

from __future__ import annotations

from collections import Counter

from runner.diagnosis.findings import CellView, Finding, FindingKind
from runner.scoring.scorers import EMPTY, FAILED, NO_CODE, NO_JSON, TRUNCATED, WRONG_SHAPE

LOOP_ADVICE = "raising max_tokens will not help; a repeat penalty or a shorter field might"


def outcome_findings(c: CellView) -> list[Finding]:
    n = c.stats.ok + c.stats.failed
    if n == 0:
        return []
    out = []
    counts = c.stats.outcomes
    if counts[TRUNCATED]:
        out.extend(_truncated(c, counts[TRUNCATED], n))
    if counts[NO_JSON]:
        k = counts[NO_JSON]
        # Under a JSON schema, prose means the server did not apply it: the prompt is not the problem.
        advice = (" although response_format asks for it: check that the server honours response_format "
                  "(`runner probe`)" if c.schema else
                  "; constrain the output with response_format or show the answer format")
        out.append(Finding(
            FindingKind.NO_JSON, c.label,
            f"{c.label}: {k} of {n} answers contain no JSON (prose or an echo of the input){advice}", k / n,
            "prompt engineering", {"count": k, "n": n}))
    if counts[WRONG_SHAPE]:
        k = counts[WRONG_SHAPE]
        details = Counter(s.detail for _, _, s, _ in c.scores if s is not None and s.outcome == WRONG_SHAPE)
        detail, times = details.most_common(1)[0]
        out.append(Finding(
            FindingKind.WRONG_SHAPE, c.label,
            f"{c.label}: {k} of {n} answers are JSON of the wrong shape (most often {detail}: {times})",
            k / n, "prompt engineering", {"count": k, "n": n, "most_common": detail}))
    for kind, words in ((EMPTY, "are empty"), (NO_CODE, "contain code that does not compile")):
        if counts[kind]:
            k = counts[kind]
            out.append(Finding(FindingKind(kind), c.label, f"{c.label}: {k} of {n} answers {words}", k / n, None,
                               {"count": k, "n": n}))
    if counts[FAILED]:
        k = counts[FAILED]
        errors = Counter((e or "").split(":")[0] for _, _, _, e in c.scores if e is not None)
        error, _ = errors.most_common(1)[0]
        out.append(Finding(FindingKind.FAILED, c.label, f"{c.label}: {k} of {n} requests failed after their retries "
                           f"(most often: {error}); `runner run` again retries them", k / n, None,
                           {"count": k, "n": n, "most_common": error}))
    return out


def _truncated(c: CellView, k: int, n: int) -> list[Finding]:
    """Cut-off answers, and those of them that are repetition loops, each with the advice that fits."""
    max_tokens = c.cell.params.get("max_tokens")
    # Under a JSON schema the output is already constrained: the answer asked for is too long.
    advice = ("raise max_tokens or ask for fewer or shorter fields (the output is already constrained by "
              "response_format)" if c.schema else "raise max_tokens or constrain the output (response_format)")
    loops = len(c.looped)
    head = f"{c.label}: {k} of {n} answers cut off at max_tokens={max_tokens}"
    if loops == 0:
        text = f"{head}; {advice}"
    elif loops == k:
        text = f"{head}, every one a repetition loop"
    else:
        others = k - loops
        which = "the 1 that is not a repetition loop" if others == 1 else f"the {others} that are not repetition loops"
        text = f"{head}; for {which}, {advice}"
    out = [Finding(FindingKind.TRUNCATED, c.label, text, k / n, "prompt engineering",
                   {"count": k, "n": n, "max_tokens": max_tokens})]
    if loops:
        out.append(Finding(
            FindingKind.REPETITION_LOOP, c.label,
            f"{c.label}: {loops} of {k} answers cut off at max_tokens={max_tokens} are repetition loops (the same "
            f"text over and over): {LOOP_ADVICE}", loops / n, None,
            {"count": loops, "truncated": k, "n": n, "max_tokens": max_tokens}))
    return out


def determinism_findings(c: CellView) -> list[Finding]:
    """Repeats at temperature 0 sample nothing: they can only show whether the server is deterministic."""
    temperature = c.cell.params.get("temperature")
    if c.repeats < 2 or temperature is None or float(temperature) != 0.0 or not c.scores:
        return []
    return [Finding(FindingKind.TEMPERATURE_ZERO_REPEATS, c.label,
                    f"{c.label}: {c.repeats} repeats at temperature 0 measure only whether the server is "
                    "deterministic, not sampling variation", 0.01, "sampling randomness",
                    {"repeats": c.repeats, "temperature": 0.0})]
