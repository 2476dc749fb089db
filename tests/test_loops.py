"""The repetition-loop detector on loops as small models write them, on prose, JSON, and short texts."""

from __future__ import annotations

import json

import pytest

from runner.scoring.loops import is_repetition_loop, periodic_tail

PROSE = ("The configuration declares a service named svc3 listening on port 8003. Ports below 1024 need "
         "root, and this one is well above that, so the port itself is fine. The name follows the lowercase "
         "pattern the schema asks for, and no required key is missing: host defaults to localhost when it is "
         "left out. I would therefore call this configuration valid, with high confidence, although the "
         "timeout of zero seconds is unusual and may deserve a second look before deployment.")

LOOPS = {
    # Greedy decoding stuck on one clause, cut off mid-copy (the last copy is incomplete).
    "clause": "The answer is 5. " * 12 + "The ans",
    # A JSON list that never closes: the same reason again and again.
    "json-list": '{"valid": false, "failures": [' + '"port out of range", ' * 15 + '"port ou',
    # One character, or a newline, until max_tokens.
    "one-char": "Let me check" + "!" * 60,
    "newlines": '{"valid": true}' + "\n" * 50,
    # A chunk of 69 characters, three times and a bit.
    "long-chunk": "Checking the port range against the allowed values for this service. " * 3 + "Checking t",
    # A loop of a long sentence (over 80 characters a copy): the word 3-grams repeat.
    "long-sentence": ("Now I will verify once more that the port number of the service lies inside the permitted "
                      "range of values before answering. ") * 5,
    # A counter changes in every copy, so no chunk repeats exactly; most 3-grams still do.
    "counter": " ".join(f"Step {k}: verify that the port of the service is within the allowed range."
                        for k in range(1, 9)),
}

NOT_LOOPS = {
    "prose": PROSE,
    "json": json.dumps({"valid": False, "confidence": 0.8, "failures": [
        {"field": "port", "reason": "out of range"}, {"field": "name", "reason": "uppercase letters"},
        {"field": "host", "reason": "missing"}, {"field": "timeout", "reason": "zero"}]}),
    "json-list-of-numbers": json.dumps({"ports": list(range(8000, 8040))}),
    "cut-off-prose": PROSE[:230],
    "markdown-list": "\n".join(f"- {w}: checked, fine" for w in ("port", "name", "host", "timeout", "retries",
                                                                 "replicas", "image", "labels")),
}

SHORT = ["", "7", "7 7 7", "ok ok ok ok", "no no no no no no", "!!!!!!", '{"valid": true}', "aaaaaaaaaaaaaaaaaaaa"]


@pytest.mark.parametrize("text", LOOPS.values(), ids=LOOPS.keys())
def test_loops_are_loops(text: str) -> None:
    assert is_repetition_loop(text)


@pytest.mark.parametrize("text", NOT_LOOPS.values(), ids=NOT_LOOPS.keys())
def test_prose_and_json_are_not_loops(text: str) -> None:
    assert not is_repetition_loop(text)


@pytest.mark.parametrize("text", SHORT)
def test_short_texts_are_not_loops(text: str) -> None:
    assert not is_repetition_loop(text)


def test_periodic_tail_finds_the_shortest_chunk_and_its_span() -> None:
    # "ab" repeated 25 times after a prefix: the chunk is 2 characters, the periodic tail 50.
    assert periodic_tail("Start: " + "ab" * 25) == (2, 50)
    # A cut-off last copy still counts: 12 copies of 17 characters and 7 more.
    assert periodic_tail("The answer is 5. " * 12 + "The ans") == (17, 17 * 12 + 7)
    # Three copies are needed, and 40 characters: two copies of 30 are not a loop.
    assert periodic_tail("x" + "0123456789abcdefghijklmnopqrst" * 2) is None
    assert periodic_tail("x" + "0123456789abcdefghijklmn" * 3) == (24, 72)
    assert periodic_tail(LOOPS["long-chunk"]) == (69, 69 * 3 + 10)
    # A chunk over 80 characters is left to the word 3-grams.
    assert periodic_tail("y" + "".join(chr(65 + k % 26) + str(k) for k in range(40)) * 3) is None


def test_only_the_tail_matters() -> None:
    # A loop early on, then an answer: the text does not end in a loop.
    assert not is_repetition_loop("The answer is 5. " * 12 + PROSE)
    assert is_repetition_loop(PROSE + " The answer is 5." * 12)
