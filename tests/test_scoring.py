"""JSON extraction from messy model output, and every scorer type with every outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from runner import Score, Scorer, build_scorers, extract_json
from runner.config.scorer_configs import ScorerConfig
from runner.errors import ConfigError
from runner.plan.dataset import Item
from runner.scoring.values import same_answer

# extract_json


@pytest.mark.parametrize("text, expected", [
    ('```json\n{"valid": true}\n```', {"valid": True}),
    ('Here you go:\n```json\n{"valid": false, "n": 2}\n```\nDone.', {"valid": False, "n": 2}),
    ('```JSON\n{"a": [1, 2]}\n```', {"a": [1, 2]}),
    ('```\n{"valid": true}\n```', {"valid": True}),
    ('The config is fine. {"valid": true, "why": "ok"}', {"valid": True, "why": "ok"}),
    ('{"valid": false}\nExplanation: the port {8080} is taken.', {"valid": False}),
    ('Use {name} placeholders. Answer: {"valid": true}', {"valid": True}),
    ('  {"nested": {"deep": [1, {"x": null}]}}  ', {"nested": {"deep": [1, {"x": None}]}}),
])
def test_extract_json_finds_the_object(text: str, expected: Any) -> None:
    assert extract_json(text) == expected


def test_extract_json_without_prefer_key_takes_the_first_object() -> None:
    assert extract_json('{"valid": false} then {"valid": true}') == {"valid": False}


def test_extract_json_prefer_key_takes_the_last_object_with_the_key() -> None:
    text = ('Thinking: {"draft": 1, "valid": false}\nActually no.\n{"valid": true, "final": 1}\n'
            'Notes: {"note": "x"}')
    assert extract_json(text, prefer_key="valid") == {"valid": True, "final": 1}
    assert extract_json(text) == {"draft": 1, "valid": False}


def test_extract_json_prefer_key_falls_back_when_no_object_has_it() -> None:
    assert extract_json('{"a": 1} {"b": 2}', prefer_key="valid") == {"a": 1}


def test_extract_json_prefer_key_uses_the_head_of_a_dotted_path() -> None:
    text = '{"result": {"valid": false}} {"other": 1} {"result": {"valid": true}} {"x": 2}'
    assert extract_json(text, prefer_key="result.valid") == {"result": {"valid": True}}


def test_extract_json_prefer_key_over_several_fenced_blocks() -> None:
    text = '```json\n{"valid": false}\n```\nrevised:\n```json\n{"valid": true}\n```'
    assert extract_json(text, prefer_key="valid") == {"valid": True}


def test_extract_json_returns_a_bare_array() -> None:
    assert extract_json("[1, 2, 3]") == [1, 2, 3]
    assert extract_json("The ports: [80, 443] are open.") == [80, 443]


def test_extract_json_prefers_an_object_over_an_earlier_array() -> None:
    assert extract_json('Ports [80, 443]; answer {"valid": true}') == {"valid": True}


@pytest.mark.parametrize("text", ["", "   ", "no json here", "valid: true", "{not json}", "[unclosed"])
def test_extract_json_returns_none_without_json(text: str) -> None:
    assert extract_json(text) is None


@pytest.mark.parametrize("text", [
    '{"valid": true, "reason": "the po',
    '```json\n{"valid": tr',
    '{"valid": ',
])
def test_extract_json_returns_none_for_truncated_json(text: str) -> None:
    assert extract_json(text) is None


def test_extract_json_does_not_return_a_fragment_of_a_truncated_object() -> None:
    assert extract_json('{"valid": false, "failures": [{"field": "port"}], "confidence": 0.') is None


# scorers


def _scorer(**config: Any) -> Scorer:
    cfg = TypeAdapter(ScorerConfig).validate_python(config)
    (scorer,) = build_scorers([cfg], "label")
    return scorer


def _item(label: Any = True, **fields: Any) -> Item:
    return Item("i1", {"id": "i1", "label": label, **fields})


def test_build_scorers_builds_one_per_config_in_order() -> None:
    cfgs = [TypeAdapter(ScorerConfig).validate_python(c) for c in
            ({"type": "exact"}, {"type": "regex", "pattern": "x", "name": "rx"},
             {"type": "json_field", "field": "a"}, {"type": "binary", "field": "valid"})]
    scorers = build_scorers(cfgs, "label")
    assert [s.name for s in scorers] == ["exact", "rx", "json_field", "binary"]
    assert [s.is_binary for s in scorers] == [False, False, False, True]


def test_scorer_key_names_the_config() -> None:
    a = _scorer(type="json_field", field="valid")
    assert a.key == _scorer(type="json_field", field="valid").key
    assert a.key != _scorer(type="json_field", field="result.valid").key
    assert a.key.startswith("json_field:")


# exact


def test_exact_matches_text_ignoring_case_and_whitespace() -> None:
    s = _scorer(type="exact")
    score = s.score("  VALID \n", "stop", _item("valid"))
    assert (score.outcome, score.correct, score.prediction, score.expected) == ("answered", True, "VALID", "valid")
    assert s.score("invalid", "stop", _item("valid")).correct is False


def test_exact_case_sensitive() -> None:
    s = _scorer(type="exact", case_sensitive=True)
    assert s.score("Valid", "stop", _item("Valid")).correct is True
    assert s.score("valid", "stop", _item("Valid")).correct is False


def test_exact_empty_answer() -> None:
    score = _scorer(type="exact").score("  ", "stop", _item("valid"))
    assert (score.outcome, score.correct) == ("empty", False)


def test_exact_on_a_json_field_normalizes() -> None:
    s = _scorer(type="exact", field="answer")
    assert s.score('{"answer": " Paris "}', "stop", _item("paris")).correct is True
    assert s.score('{"answer": "true"}', "stop", _item(True)).correct is True
    assert s.score('{"answer": 3.0}', "stop", _item(3)).correct is True
    missing = s.score('{"other": 1}', "stop", _item("paris"))
    assert (missing.outcome, missing.correct, missing.expected) == ("wrong_shape", False, "paris")


def test_exact_uses_expected_field() -> None:
    s = _scorer(type="exact", expected_field="city")
    assert s.score("Rome", "stop", _item("x", city="rome")).correct is True
    assert s.score("x", "stop", _item("x", city="rome")).correct is False


# regex


def test_regex_group_is_the_answer() -> None:
    s = _scorer(type="regex", pattern=r"verdict:\s*(\w+)")
    score = s.score("I think... verdict: TRUE.", "stop", _item(True))
    assert (score.outcome, score.correct, score.prediction) == ("answered", True, "TRUE")
    assert s.score("verdict: false", "stop", _item(True)).correct is False


def test_regex_without_group_uses_the_whole_match() -> None:
    s = _scorer(type="regex", pattern=r"\b\d{4}\b")
    score = s.score("the port is 8080 today", "stop", _item("8080"))
    assert (score.correct, score.prediction) == (True, "8080")
    assert s.score("the port is 9090", "stop", _item("8080")).correct is False


def test_regex_no_match_outcomes() -> None:
    s = _scorer(type="regex", pattern=r"verdict:\s*(\w+)")
    no_match = s.score("I cannot tell", "stop", _item(True))
    assert (no_match.outcome, no_match.correct, no_match.prediction) == ("answered", False, None)
    assert s.score("Let me think step by step about ver", "length", _item(True)).outcome == "truncated"
    assert s.score("", "stop", _item(True)).outcome == "empty"


# json_field


def test_json_field_dotted_path() -> None:
    s = _scorer(type="json_field", field="result.checks.0.ok")
    text = 'Answer:\n```json\n{"result": {"checks": [{"ok": "false"}, {"ok": true}]}}\n```'
    score = s.score(text, "stop", _item(False))
    assert (score.outcome, score.correct, score.prediction, score.json_valid) == ("answered", True, "false", True)
    assert s.score(text, "stop", _item(True)).correct is False


def test_json_field_outcomes() -> None:
    s = _scorer(type="json_field", field="result.valid")
    assert s.score("no json at all", "stop", _item()).outcome == "no_json"
    assert s.score('{"result": {"val', "length", _item()).outcome == "truncated"
    assert s.score('{"result": {"val', "stop", _item()).outcome == "no_json"  # not cut off: just broken
    shape = s.score('{"result": {"ok": true}}', "stop", _item())
    assert (shape.outcome, shape.correct, shape.json_valid) == ("wrong_shape", False, True)
    assert "result.valid" in (shape.detail or "")
    assert s.score("", "stop", _item()).outcome == "empty"


# binary


@pytest.mark.parametrize("text, finish, outcome, correct, prediction", [
    ('{"valid": true}', "stop", "answered", True, True),
    ('{"valid": false}', "stop", "answered", False, False),
    ('{"valid": "true"}', "stop", "answered", True, True),
    ('{"valid": " TRUE "}', "stop", "answered", True, True),
    ('Sure! ```json\n{"valid": true, "failures": []}\n```', "stop", "answered", True, True),
    ("The config looks valid to me.", "stop", "no_json", False, None),
    ('{"valid": tr', "length", "truncated", False, None),
    ('{"failures": []}', "stop", "wrong_shape", False, None),
    ('{"valid": {"value": true}}', "stop", "wrong_shape", False, None),
    ('{"valid": [true]}', "stop", "wrong_shape", False, None),
    ('{"valid": null}', "stop", "wrong_shape", False, None),
    ('{"valid": 0.5}', "stop", "wrong_shape", False, None),
    ("", "stop", "empty", False, None),
    ("   \n", "length", "empty", False, None),
])
def test_binary_outcomes(text: str, finish: str, outcome: str, correct: bool, prediction: Any) -> None:
    score = _scorer(type="binary", field="valid").score(text, finish, _item(True))
    assert (score.outcome, score.correct, score.prediction) == (outcome, correct, prediction)
    assert score.expected is True


def test_binary_normalizes_the_label_too() -> None:
    s = _scorer(type="binary", field="valid")
    score = s.score('{"valid": false}', "stop", _item("False"))
    assert (score.correct, score.expected) == (True, False)


def test_binary_takes_the_final_answer_after_chain_of_thought() -> None:
    s = _scorer(type="binary", field="valid")
    text = 'Draft: {"valid": false}\nOn reflection the port is fine.\nFinal: {"valid": true}'
    assert s.score(text, "stop", _item(True)).correct is True


def test_binary_wrong_type_names_the_type() -> None:
    score = _scorer(type="binary", field="valid").score('{"valid": {"x": 1}}', "stop", _item(True))
    assert score.json_valid is True
    assert "dict" in (score.detail or "")


def test_binary_label_field_and_positive_class() -> None:
    s = _scorer(type="binary", field="verdict", label_field="truth", positive="unsafe")
    assert s.is_binary
    score = s.score('{"verdict": "Unsafe"}', "stop", _item(None, truth="unsafe"))
    assert (score.correct, score.prediction, score.expected) == (True, "unsafe", "unsafe")
    assert s.is_positive("UNSAFE ") and not s.is_positive("safe")  # type: ignore[attr-defined]


def test_json_scorer_outcome_for_no_json_when_cut_off() -> None:
    s = _scorer(type="binary", field="valid")
    assert s.score("Let me think about this config step by", "length", _item()).outcome == "truncated"
    assert s.score("Let me think about this config step by", "stop", _item()).outcome == "no_json"


@pytest.mark.parametrize("text", [
    '{"valid": false, "failures": [{"field": "port"}], "confidence": 0.',
    'Thinking: {"step": 1}\nAnswer: {"valid": tr',
])
def test_binary_cut_off_answer_without_the_field_is_truncated(text: str) -> None:
    score = _scorer(type="binary", field="valid").score(text, "length", _item(True))
    assert score.outcome == "truncated"


def test_score_round_trips_through_a_dict() -> None:
    score = _scorer(type="binary", field="valid").score('{"valid": "true"}', "stop", _item(True))
    assert Score.from_dict(score.to_dict()) == score
    assert score.to_dict()["outcome"] == "answered"


# comparing with the label by its type (runner.scoring.values)


@pytest.mark.parametrize("answer, label, same", [
    # Numbers by value: a capture is text, the label is whatever JSON made it.
    ("7", 7, True), ("7", 7.0, True), ("7.0", 7, True), (" 7 ", 7, True), ("07", 7, True), ("+7", 7, True),
    ("7e0", 7, True), (7.0, 7, True), (7, 7.0, True), ("0.1", 0.1, True), ("8", 7, False),
    ("7 apples", 7, False), ("seven", 7, False), ("7.5", 7, False), (True, 1, False), ("", 7, False),
    (None, 7, False), ([7], 7, False),
    # Booleans: true/false text in any case; numbers are not booleans.
    ("TRUE", True, True), (" false ", False, True), (False, False, True), (True, False, False), (1, True, False),
    ("yes", True, False),
    # Text labels; the label text "true" is the boolean.
    (" Paris ", "paris", True), ("PARIS", "Paris", True), ("Lyon", "Paris", False), (7, "7", True),
    (True, "true", True), ("True", "TRUE", True), (7.0, "7", False), ("07", "7", False), (None, "x", False),
    # Structures element by element; null only by null.
    ([" a ", "7"], ["A", 7], True), (["a"], ["a", "b"], False), ({"n": "7"}, {"n": 7}, True),
    ({"n": 7}, {"m": 7}, False), (None, None, True), ("null", None, False),
])
def test_same_answer_reads_the_answer_by_the_labels_type(answer: Any, label: Any, same: bool) -> None:
    assert same_answer(answer, label) is same


def test_same_answer_case_sensitive_applies_to_text_labels_only() -> None:
    assert same_answer("Paris", "Paris", case_sensitive=True) is True
    assert same_answer("paris", "Paris", case_sensitive=True) is False
    assert same_answer("TRUE", True, case_sensitive=True) is True
    assert same_answer("7.0", 7, case_sensitive=True) is True


def test_regex_capture_equals_a_number_label() -> None:
    s = _scorer(type="regex", pattern=r"answer is (\d+)")
    for label in (7, 7.0):
        score = s.score("I think the answer is 7.", "stop", _item(label))
        assert (score.outcome, score.correct, score.prediction, score.expected) == ("answered", True, "7", label)
    assert s.score("the answer is 07", "stop", _item(7)).correct is True
    assert s.score("the answer is 8", "stop", _item(7)).correct is False


def test_regex_case_sensitive() -> None:
    loose = _scorer(type="regex", pattern=r"city: (\w+)")
    strict = _scorer(type="regex", pattern=r"city: (\w+)", case_sensitive=True)
    assert loose.score("city: paris", "stop", _item("Paris")).correct is True
    assert strict.score("city: paris", "stop", _item("Paris")).correct is False
    assert strict.score("city: Paris", "stop", _item("Paris")).correct is True
    assert loose.key != strict.key


def test_exact_whole_text_against_a_number_label() -> None:
    s = _scorer(type="exact")
    assert s.score("7.0\n", "stop", _item(7)).correct is True
    assert s.score("7", "stop", _item(7.5)).correct is False
    assert s.score("True", "stop", _item(True)).correct is True


def test_exact_case_sensitive_applies_to_a_json_field_too() -> None:
    s = _scorer(type="exact", field="city", case_sensitive=True)
    assert s.score('{"city": "Paris"}', "stop", _item("Paris")).correct is True
    assert s.score('{"city": "paris"}', "stop", _item("Paris")).correct is False


def test_json_field_number_as_text_equals_a_number_label() -> None:
    s = _scorer(type="json_field", field="n")
    assert s.score('{"n": "7"}', "stop", _item(7)).correct is True
    assert s.score('{"n": 7}', "stop", _item("7")).correct is True
    assert s.score('{"n": [1, 2]}', "stop", _item([1, 2])).correct is True


@pytest.mark.parametrize("config, text", [
    pytest.param({"type": "regex", "pattern": r"(\d+)"}, "7 7 7 7 7 7 7", id="regex"),
    pytest.param({"type": "exact"}, "7", id="exact"),
    pytest.param({"type": "exact", "field": "n"}, '{"n": 7} and then some more wor', id="exact-field"),
    pytest.param({"type": "json_field", "field": "n"}, '{"n": 7}\nBecause seven is', id="json_field"),
])
def test_a_cut_off_answer_is_truncated_whatever_it_matched(config: dict[str, Any], text: str) -> None:
    s = _scorer(**config)
    score = s.score(text, "length", _item(7))
    assert (score.outcome, score.correct, score.prediction, score.expected) == ("truncated", False, None, 7)
    assert s.score(text, "stop", _item(7)).outcome == "answered"


def test_a_cut_off_answer_says_what_it_had_matched() -> None:
    score = _scorer(type="regex", pattern=r"(\d+)").score("5 5 5 5", "length", _item(5))
    assert score.detail == "cut off at max_tokens after giving '5'"
    assert _scorer(type="regex", pattern=r"(\d+)").score("no digits", "length", _item(5)).detail == \
        "cut off at max_tokens"


def test_binary_cut_off_after_the_field_is_truncated() -> None:
    score = _scorer(type="binary", field="valid").score('{"valid": true}\nThe port is in ra', "length", _item(True))
    assert (score.outcome, score.correct, score.prediction) == ("truncated", False, None)
    assert score.detail == "cut off at max_tokens after giving True"


@pytest.mark.parametrize("text, label, outcome, prediction, detail", [
    ('{"valid": 1}', True, "wrong_shape", None, "'valid' is 1, not true or false"),
    ('{"valid": "maybe"}', True, "wrong_shape", None, "'valid' is 'maybe', not true or false"),
    ('{"valid": 1.0}', True, "wrong_shape", None, "'valid' is a float"),
    ('{"valid": "1"}', 1, "answered", 1, None),
    ('{"valid": 0.0}', 0, "answered", 0, None),
    ('{"valid": "one"}', 1, "wrong_shape", None, "'valid' is 'one', not a whole number"),
    ('{"valid": 0.5}', 1, "wrong_shape", None, "'valid' is a float"),
])
def test_binary_reads_the_class_by_the_labels_kind(text: str, label: Any, outcome: str, prediction: Any,
                                                   detail: str | None) -> None:
    score = _scorer(type="binary", field="valid").score(text, "stop", _item(label))
    assert (score.outcome, score.prediction, score.detail) == (outcome, prediction, detail)
    assert score.correct is (outcome == "answered")


# labels a scorer cannot compare with


def _check(config: dict[str, Any], labels: list[Any]) -> None:
    items = [Item(f"i{k}", {"id": f"i{k}", "label": v}) for k, v in enumerate(labels)]
    _scorer(**config).check_items(items, Path("exp.yaml"), "scorers[1]")


@pytest.mark.parametrize("config, line", [
    pytest.param({"type": "regex", "pattern": r"(\d+)"},
                 "exp.yaml: scorers[1]: labels in field 'label' are lists or mappings (2 of 3 items, first 'i1': "
                 "[1, 2]); scorer type 'regex' compares the text it matches with one value; point expected_field at a "
                 "field with one value per item, or compare JSON with json_field (or exact with field)", id="regex"),
    pytest.param({"type": "exact"},
                 "exp.yaml: scorers[1]: labels in field 'label' are lists or mappings (2 of 3 items, first 'i1': "
                 "[1, 2]); scorer type 'exact' compares the answer's text with one value; point expected_field at a "
                 "field with one value per item, or compare JSON with json_field (or exact with field)", id="exact"),
    pytest.param({"type": "binary", "field": "valid"},
                 "exp.yaml: scorers[1]: labels in field 'label' are lists or mappings (2 of 3 items, first 'i1': "
                 "[1, 2]); scorer type 'binary' compares the class it reads with one value; give every item one class "
                 "(a string, a number or true/false), or map labels with label_map", id="binary"),
])
def test_list_or_mapping_labels_are_refused_before_any_request(config: dict[str, Any], line: str) -> None:
    with pytest.raises(ConfigError) as err:
        _check(config, [7, [1, 2], {"a": 1}])
    assert err.value.line() == line


def test_a_long_label_is_cut_in_the_message() -> None:
    with pytest.raises(ConfigError) as err:
        _check({"type": "regex", "pattern": "x"}, [list(range(30))])
    assert "(1 of 1 items, first 'i0': [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11...)" in err.value.line()


def test_json_scorers_accept_list_labels() -> None:
    _check({"type": "json_field", "field": "ports"}, [[80, 443], {"a": 1}])
    _check({"type": "exact", "field": "ports"}, [[80, 443]])
    _check({"type": "regex", "pattern": "x"}, [7, "7", True, None])


def test_cut_off_code_is_truncated_without_running_it() -> None:
    s = _scorer(type="code_tests")
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    score = s.score(code, "length", _item(None, tests="assert add(1, 2) == 3"))
    assert (score.outcome, score.correct, score.prediction, score.detail) == ("truncated", False, None,
                                                                              "cut off at max_tokens")
