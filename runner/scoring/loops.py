"""Whether a response ends in a repetition loop: the same text over and over until max_tokens.

Small models decoding greedily fall into loops ("the port is 8080, the port is 8080, ..."), and a
loop cut off at max_tokens is not an answer that more tokens would finish: raising max_tokens
only makes the loop longer. Two signs, either enough:

- the tail is periodic: it ends in one chunk of 1 to 80 characters repeated at least 3 times,
  covering at least 40 characters (the last copy may be cut off part way);
- the tail's words repeat: of the word 3-grams in the last 60 words (at least 24 words), at most
  half are distinct. Prose and JSON keep almost all of theirs distinct; a loop of a long sentence,
  or of one with a word that changes (a counter), does not.

Short texts are never loops: a few repeats of a short chunk ("7 7 7") say nothing.
"""

from __future__ import annotations

TAIL_CHARS = 400
MAX_CHUNK = 80
MIN_REPEATS = 3
MIN_SPAN = 40
TAIL_WORDS = 60
MIN_WORDS = 24
NGRAM = 3
MAX_DISTINCT_SHARE = 0.5


def is_repetition_loop(text: str) -> bool:
    """True when `text` ends in a repetition loop (see the module docstring)."""
    return periodic_tail(text) is not None or _few_distinct_ngrams(text)


def periodic_tail(text: str) -> tuple[int, int] | None:
    """(chunk length, characters covered) of the shortest chunk the tail repeats, or None."""
    tail = text[-TAIL_CHARS:]
    n = len(tail)
    for period in range(1, min(MAX_CHUNK, n // MIN_REPEATS) + 1):
        # Walk back from the end while the text agrees with itself one period earlier.
        i = n - 1
        while i >= period and tail[i] == tail[i - period]:
            i -= 1
        span = n - 1 - i + period
        if span >= max(MIN_REPEATS * period, MIN_SPAN):
            return period, span
    return None


def _few_distinct_ngrams(text: str) -> bool:
    words = text.split()[-TAIL_WORDS:]
    if len(words) < MIN_WORDS:
        return False
    grams = [tuple(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)]
    return len(set(grams)) <= MAX_DISTINCT_SHARE * len(grams)
