"""Paired comparisons from right/wrong outcomes per (item, repeat): the unit, ties, power and constant cells."""

from __future__ import annotations

from typing import Any

import pytest

from runner.analysis.compare import (
    CellOutcomes,
    Comparison,
    constant_answer,
    item_predictions,
    paired_comparisons,
)


def _cell(prompt: str, right: dict[str, list[bool]], answers: dict[str, list[Any]] | None = None) -> CellOutcomes:
    outcomes = {(item, r): ok for item, oks in right.items() for r, ok in enumerate(oks)}
    said = {(item, r): a for item, got in (answers or {}).items() for r, a in enumerate(got)}
    return CellOutcomes({"prompt": prompt}, outcomes, said)


def _compare(a: CellOutcomes, b: CellOutcomes) -> Comparison:
    (cmp,) = paired_comparisons([a, b], {"prompt": ["a", "b"]})
    return cmp


def test_ties_are_left_out_of_mcnemar_but_not_out_of_the_accuracies() -> None:
    # Two repeats. i00 is right once under a (a tie), twice under b; every other item right twice in both.
    # Accuracies over 10 items: a (0.5 + 9) / 10 = 0.95, b 1.0. McNemar has 9 pairs and none discordant.
    a = _cell("a", {"i00": [True, False], **{f"i{k:02d}": [True, True] for k in range(1, 10)}})
    b = _cell("b", {f"i{k:02d}": [True, True] for k in range(10)})
    cmp = _compare(a, b)
    assert (cmp.n_items, cmp.n_pairs, cmp.discordant) == (10, 9, 0)
    assert (cmp.baseline_accuracy, cmp.value_accuracy, cmp.difference) == pytest.approx((0.95, 1.0, 0.05))
    assert cmp.sentence() == (
        f"prompt b vs a: accuracy 1.00 vs 0.95 over 10 items, 2 repeats each; difference +0.05 [{cmp.low:+.2f}, "
        f"{cmp.high:+.2f}]; McNemar on per-item majority p=1 (Holm 1, 0 vs 0 discordant, 1 tied item left out): no "
        "discordant pairs: the two give the same right/wrong pattern")
    assert 0 <= cmp.low <= 0.05 <= cmp.high <= 0.15


def test_items_with_fewer_answers_say_so_in_the_unit() -> None:
    # Three repeats, but one of i00's answers under b failed (no outcome): 2-3 repeats each. i00's
    # accuracy under b is 1 of its 2 answers. Items only one cell answered are not paired.
    a = _cell("a", {"i00": [True, True, True], "i01": [False, False, False], "i02": [True, True, True]})
    b = _cell("b", {"i00": [True, False], "i01": [False, False, False], "i03": [True, True, True]})
    cmp = _compare(a, b)
    assert (cmp.n_items, cmp.repeats) == (2, (2, 3))
    assert cmp.unit() == "2 items, 2-3 repeats each"
    assert (cmp.baseline_accuracy, cmp.value_accuracy) == pytest.approx((0.5, 0.25))
    assert cmp.sentence().startswith("prompt b vs a: accuracy 0.25 vs 0.50 over 2 items, 2-3 repeats each; "
                                     "difference -0.25 [-0.50, +0.00]; McNemar on per-item majority p=1 (Holm 1, "
                                     "0 vs 0 discordant, 1 tied item left out)")


def test_one_repeat_says_no_repeats_and_no_majority_rule() -> None:
    a = _cell("a", {f"i{k}": [k < 2] for k in range(8)})
    b = _cell("b", {f"i{k}": [k < 5] for k in range(8)})
    cmp = _compare(a, b)
    assert cmp.sentence().startswith("prompt b vs a: accuracy 0.62 vs 0.25 over 8 items; difference +0.38 [")
    assert "McNemar p=0.25 (Holm 0.25, 3 vs 0 discordant): noise at this n; too few discordant pairs" in cmp.sentence()


@pytest.mark.parametrize(("only_value", "only_baseline", "estimable"), [(4, 0, False), (3, 1, False), (5, 0, True),
                                                                        (3, 2, True)])
def test_items_needed_wants_five_discordant_pairs(only_value: int, only_baseline: int, estimable: bool) -> None:
    cmp = Comparison("prompt", "a", "b", {}, 100, 50, 50 + only_value - only_baseline, only_baseline, only_value,
                     0.0, 0.0, 0.0, 0.5, n_items=100)
    assert cmp.estimable is estimable
    assert (cmp.items_needed() is not None) is estimable
    assert (("too few discordant pairs to estimate the items needed" in cmp.sentence()) is not estimable)


def test_two_constant_cells_are_said_to_be_constant_not_noise() -> None:
    # a always says true; b says true on all but i0. The stated classes make both constant (10 of 10 and
    # 9 of 10 items), so more items would not separate them.
    labels = [k % 2 == 0 for k in range(10)]
    said_a = [True] * 10
    said_b = [k != 1 for k in range(10)]
    a = _cell("a", {f"i{k}": [said_a[k] == labels[k]] for k in range(10)}, {f"i{k}": [said_a[k]] for k in range(10)})
    b = _cell("b", {f"i{k}": [said_b[k] == labels[k]] for k in range(10)}, {f"i{k}": [said_b[k]] for k in range(10)})
    cmp = _compare(a, b)
    assert cmp.constant_answers == (True, True)
    assert cmp.sentence().endswith(": both cells give a constant answer: more items will not separate them")
    # Without the stated classes (the caller passed none), nothing is claimed about them.
    plain = _compare(CellOutcomes(a.values, a.outcomes), CellOutcomes(b.values, b.outcomes))
    assert plain.constant_answers is None
    assert plain.sentence().endswith("noise at this n; too few discordant pairs to estimate the items needed")


def test_constant_answer_rule() -> None:
    assert constant_answer([True] * 9 + [False]) == (True, 9, 10)
    assert constant_answer([True] * 8 + [False] * 2) is None
    assert constant_answer([True] * 4) is None  # too few to call constant
    assert constant_answer([True] * 5 + [None] * 5) == (True, 5, 5)  # items stating no class are not counted
    assert item_predictions({("i0", 0): "x", ("i0", 1): "y", ("i0", 2): "y", ("i1", 0): None}) == {"i0": "y",
                                                                                                 "i1": None}


def test_two_different_constants_are_not_called_inseparable() -> None:
    # a always says true, b always false, on 8 true / 2 false labels: they do differ, and enough items
    # would show it, so the "more items will not separate them" claim must not be made.
    labels = [k < 8 for k in range(10)]
    a = _cell("a", {f"i{k}": [labels[k]] for k in range(10)}, {f"i{k}": [True] for k in range(10)})
    b = _cell("b", {f"i{k}": [not labels[k]] for k in range(10)}, {f"i{k}": [False] for k in range(10)})
    cmp = _compare(a, b)
    assert cmp.constant_answers is None
    assert "more items will not separate them" not in cmp.sentence()
