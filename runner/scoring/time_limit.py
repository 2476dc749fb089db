"""A score computed with no event loop (the read verbs re-scoring stored answers, `runner score`),
within the experiment's time limit.

The executor scores off its loop in daemon threads (runner.execution.off_loop); reading has the same
hazard with no loop: a scorer is the user's code (a regex, a `python` scorer, a sandbox per answer)
and can run for ever, and `runner report` must not hang on it. A call that is not known to be cheap
(`Scorer.cheap_on`) runs in a daemon thread of its own; past the limit it is abandoned (its thread
ends with the process, never joined) and `ScorerTimedOut` says which scorer on which item.
"""

from __future__ import annotations

import threading
from typing import Any

from runner.scoring.base import Score
from runner.scoring.scorers import Scorer


class ScorerTimedOut(Exception):
    def __init__(self, scorer: Scorer, item_id: Any, limit_s: float) -> None:
        super().__init__(f"scorer {scorer.name!r} did not finish within {limit_s:g} s on item {item_id!r}")
        self.scorer = scorer
        self.limit_s = limit_s


def score_within(scorer: Scorer, text: str, finish_reason: str | None, item: Any, limit_s: float | None) -> Score:
    """`scorer.score(...)`, or ScorerTimedOut after `limit_s` (None: no limit, on this thread)."""
    if limit_s is None or scorer.cheap_on(text):
        return scorer.score(text, finish_reason, item)
    outcome: list[tuple[bool, Any]] = []

    def call() -> None:
        try:
            outcome.append((True, scorer.score(text, finish_reason, item)))
        except BaseException as exc:  # handed to the caller, which raises it as if the call were its own
            outcome.append((False, exc))

    thread = threading.Thread(target=call, name=f"score {scorer.name}", daemon=True)
    thread.start()
    thread.join(limit_s)
    if not outcome:
        raise ScorerTimedOut(scorer, item.id, limit_s)
    ok, value = outcome[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value
