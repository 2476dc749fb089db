"""Findings across cells: items wrong everywhere, prompts near the context limit, comparisons too
small to detect a difference, and comparisons of two constant answers.

Items wrong in every cell are blamed on the item or the task only when nothing the settings did
explains them:

1. by their answers: an item most of whose answers (over all cells) are not `answered` (cut off,
   no JSON, wrong shape, empty, no code) is explained by the outcome findings, not by the item;
2. of the other items: when they are exactly the items of one class, no cell ever gets that class
   right; when every cell gives a constant answer (as the constant_answer finding defines it) that
   is not their label, the constant answer explains them;
3. otherwise: "suspect the item or the task, not the settings".

The finding's weight counts an item explained by its outcomes at a fifth of one that is not: the
outcome finding already carries it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from runner.analysis.compare import BOTH_CONSTANT, MIN_DISCORDANT, MORE_ITEMS_WONT_HELP, TOO_FEW_DISCORDANT, Comparison
from runner.analysis.metrics import hashable
from runner.diagnosis.findings import HYPOTHESES, CellView, Finding, FindingKind, say_axis_value, say_value
from runner.scoring.scorers import ANSWERED
from runner.scoring.values import same_answer

CONTEXT_CLOSE = 0.9  # a prompt using 90% of the context leaves little room for the answer

OUTCOME_WORDS = {"truncated": "cut off at max_tokens", "no_json": "with no JSON", "wrong_shape": "of the wrong shape",
                 "empty": "empty", "no_code": "with code that does not compile"}


def items_wrong_everywhere(cells: list[CellView]) -> list[Finding]:
    by_item: dict[str, list[bool]] = defaultdict(list)
    outcomes: dict[str, list[str]] = defaultdict(list)
    labels: dict[str, Any] = {}
    for c in cells:
        for item, _, s, _ in c.scores:
            if s is not None:
                by_item[item].append(bool(s.correct))
                outcomes[item].append(s.outcome)
                labels[item] = s.expected
    if len(cells) < 2:
        return []  # nothing was varied: "wrong everywhere" would say nothing about the settings
    wrong = sorted(item for item, oks in by_item.items() if oks and not any(oks))
    if not wrong or len(wrong) == len(by_item):
        # Every item wrong everywhere is a statement about the model, made by the class findings.
        return []
    head = f"{len(wrong)} of {len(by_item)} items are wrong in every cell ({len(cells)} cells): {_names(wrong)}"
    by_outcome = [i for i in wrong if sum(o != ANSWERED for o in outcomes[i]) * 2 > len(outcomes[i])]
    rest = [i for i in wrong if i not in by_outcome]
    answers = [o for i in by_outcome for o in outcomes[i]]
    missing = Counter(o for o in answers if o != ANSWERED)
    parts = ", ".join(f"{k} {OUTCOME_WORDS.get(o, o)}" for o, k in missing.most_common())
    same_class = _one_class(rest, labels)
    explained_by: str | None
    if not rest:
        explained_by = "outcomes"
        text = (f"{head}; {sum(missing.values())} of their {len(answers)} answers state no answer ({parts}): the "
                "findings on those outcomes explain them, not the item or the task")
    else:
        explained_by, verdict = _verdict(rest, labels, same_class, cells)
        text = f"{head}; {verdict}"
        if by_outcome:
            text = (f"{head}; {len(by_outcome)} of them ({_names(by_outcome)}) mostly state no answer "
                    f"({sum(missing.values())} of their {len(answers)} answers: {parts}), which the findings on "
                    f"those outcomes explain; for the other {len(rest)} ({_names(rest)}): {verdict}")
    weight = (len(rest) + 0.2 * len(by_outcome)) / len(by_item) * 0.5
    return [Finding(FindingKind.ITEM_WRONG_EVERYWHERE, "items", text, weight, None,
                    {"items": wrong, "cells": len(cells), "one_class": same_class, "explained_by": explained_by,
                     "by_outcome": by_outcome})]


def _names(items: list[str]) -> str:
    return ", ".join(items[:8]) + (" ..." if len(items) > 8 else "")


def _one_class(items: list[str], labels: dict[str, Any]) -> bool:
    """Whether `items` are exactly the items of one class."""
    if not items:
        return False
    label = labels.get(items[0])
    return len({repr(labels.get(i)) for i in items}) == 1 and \
        sum(1 for v in labels.values() if v == label) == len(items)


def _verdict(items: list[str], labels: dict[str, Any], same_class: bool,
             cells: list[CellView]) -> tuple[str | None, str]:
    """(what explains these items, in words) for items wrong everywhere that were answered."""
    if same_class:
        # Exactly the items of one class: the cells never give that answer; the items are not the problem.
        return "one_class", (f"they are exactly the items labelled {say_value(labels.get(items[0]))}: no cell ever "
                             "gets that class right")
    constants = [c.constant for c in cells if c.scores]
    if constants and all(k is not None and not any(same_answer(k[0], labels.get(i)) for i in items)
                         for k in constants):
        given = ", ".join(sorted({say_value(k[0]) for k in constants if k is not None}))
        return "constant_answer", (f"every cell gives a constant answer ({given}), which is not their label: the "
                                   "constant answer explains them, not the item or the task")
    return None, "suspect the item or the task, not the settings"


def context_findings(cells: list[CellView]) -> list[Finding]:
    out = []
    for c in cells:
        if c.n_ctx is None:
            continue
        max_tokens = int(c.cell.params.get("max_tokens") or 0)
        over = sorted(i for i, t in c.prompt_tokens.items() if t + max_tokens > c.n_ctx)
        close = sorted(i for i, t in c.prompt_tokens.items()
                       if i not in over and t > CONTEXT_CLOSE * c.n_ctx)
        refused = sorted({item for item, _, _, e in c.scores if e and "context" in e.lower()})
        if not (over or close or refused):
            continue
        parts = []
        if over:
            parts.append(f"{len(over)} prompts plus max_tokens={max_tokens} exceed the {c.n_ctx}-token context "
                         f"({', '.join(over[:6])})")
        if close:
            parts.append(f"{len(close)} use over {CONTEXT_CLOSE:.0%} of it ({', '.join(close[:6])})")
        if refused:
            parts.append(f"{len(refused)} were refused for context length ({', '.join(refused[:6])})")
        out.append(Finding(FindingKind.CONTEXT_LIMIT, c.label, f"{c.label}: " + "; ".join(parts) + "; raise n_ctx",
                           len(set(over) | set(refused)) / max(len(c.items), 1), "context-window truncation",
                           {"over": over, "close": close, "refused": refused, "n_ctx": c.n_ctx}))
    return out


def power_findings(comparisons: list[Comparison], cells: list[CellView], alpha: float) -> list[Finding]:
    out = []
    for cmp in comparisons:
        if cmp.significant or cmp.n_pairs == 0 or cmp.only_value == cmp.only_baseline:
            continue
        ctx = ", ".join(f"{k}={say_axis_value(v)}" for k, v in cmp.context.items())
        head = f"{cmp.axis} {say_axis_value(cmp.value)} vs {say_axis_value(cmp.baseline)}"
        head += f" ({ctx})" if ctx else ""
        numbers: dict[str, Any] = {"n_pairs": cmp.n_pairs, "difference": cmp.difference, "p": cmp.p_value,
                                   "p_holm": cmp.p_holm, "discordant": cmp.discordant}
        constant = _constants(cmp, cells)
        if constant is not None and constant[0][0] == constant[1][0]:  # the same constant on both sides
            # Two constant answers differ only by which items carry which label: more of them changes nothing.
            (value, k_v, n_v), (base, k_b, n_b) = constant
            text = (f"{head}: {BOTH_CONSTANT} ({say_value(value)} in {k_v} of {n_v} items, {say_value(base)} in "
                    f"{k_b} of {n_b}): {MORE_ITEMS_WONT_HELP}")
            out.append(Finding(FindingKind.BOTH_CONSTANT, head, text, abs(cmp.difference) * 0.25,
                               HYPOTHESES.get(cmp.axis), {**numbers, "constant": [value, base]}))
            continue
        needed = cmp.items_needed()  # None: too few discordant pairs, or fewer than were tested
        text = (f"{head}: difference {cmp.difference:+.2f} in accuracy is not detectable at n={cmp.n_pairs} "
                f"items (McNemar p={cmp.p_value:.2g}, Holm {cmp.p_holm:.2g})")
        if not cmp.estimable:
            text += f"; {TOO_FEW_DISCORDANT} ({cmp.discordant} discordant, at least {MIN_DISCORDANT} needed)"
        elif needed:
            text += f"; about {needed} items would be needed for 80% power at alpha={alpha:g} (Connor 1987)"
        else:
            text += ("; the normal approximation says this n should suffice, but the exact test on so few "
                     "discordant items does not reach significance")
        out.append(Finding(FindingKind.UNDERPOWERED, head, text, abs(cmp.difference) * 0.25, HYPOTHESES.get(cmp.axis),
                           {**numbers, "pairs_needed": needed}))
    return out


def _constants(cmp: Comparison, cells: list[CellView]) -> tuple[tuple[Any, int, int], tuple[Any, int, int]] | None:
    """The constant answers of the comparison's two cells (value's, baseline's), when both give one."""
    def find(value: Any) -> CellView | None:
        fixed = {**cmp.context, cmp.axis: value}
        return next((c for c in cells if all(hashable(c.cell.get(a)) == hashable(v) for a, v in fixed.items())),
                    None)

    pair = find(cmp.value), find(cmp.baseline)
    if pair[0] is None or pair[1] is None or pair[0].constant is None or pair[1].constant is None:
        return None
    return pair[0].constant, pair[1].constant
