"""Findings across cells: items wrong everywhere, prompts near the context limit, comparisons too
small to detect a difference."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from runner.analysis.compare import Comparison
from runner.diagnosis.findings import HYPOTHESES, CellView, Finding, FindingKind, say_axis_value, say_value

CONTEXT_CLOSE = 0.9  # a prompt using 90% of the context leaves little room for the answer


def items_wrong_everywhere(cells: list[CellView]) -> list[Finding]:
    by_item: dict[str, list[bool]] = defaultdict(list)
    labels: dict[str, Any] = {}
    for c in cells:
        for item, _, s, _ in c.scores:
            if s is not None:
                by_item[item].append(bool(s.correct))
                labels[item] = s.expected
    if len(cells) < 2:
        return []  # nothing was varied: "wrong everywhere" would say nothing about the settings
    wrong = sorted(item for item, oks in by_item.items() if oks and not any(oks))
    if not wrong or len(wrong) == len(by_item):
        # Every item wrong everywhere is a statement about the model, made by the class findings.
        return []
    shown = ", ".join(wrong[:8]) + (" ..." if len(wrong) > 8 else "")
    classes = {repr(labels.get(i)) for i in wrong}
    label_of_all = labels.get(wrong[0])
    same_class = len(classes) == 1 and sum(1 for v in labels.values() if v == label_of_all) == len(wrong)
    if same_class:
        # Exactly the items of one class: the cells never give that answer; the items are not the problem.
        text = (f"{len(wrong)} of {len(by_item)} items are wrong in every cell ({len(cells)} cells): {shown}; they "
                f"are exactly the items labelled {say_value(label_of_all)}: no cell ever gets that class right")
    else:
        text = (f"{len(wrong)} of {len(by_item)} items are wrong in every cell ({len(cells)} cells): {shown}; "
                "suspect the item or the task, not the settings")
    return [Finding(FindingKind.ITEM_WRONG_EVERYWHERE, "items", text, len(wrong) / len(by_item) * 0.5, None,
                    {"items": wrong, "cells": len(cells), "one_class": same_class})]


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
        needed = cmp.items_needed()  # None when the approximation would ask for fewer than were tested
        ctx = ", ".join(f"{k}={say_axis_value(v)}" for k, v in cmp.context.items())
        head = f"{cmp.axis} {say_axis_value(cmp.value)} vs {say_axis_value(cmp.baseline)}"
        head += f" ({ctx})" if ctx else ""
        text = (f"{head}: difference {cmp.difference:+.2f} in accuracy is not detectable at n={cmp.n_pairs} "
                f"items (McNemar p={cmp.p_value:.2g}, Holm {cmp.p_holm:.2g})")
        if needed:
            text += f"; about {needed} items would be needed for 80% power at alpha={alpha:g} (Connor 1987)"
        else:
            text += ("; the normal approximation says this n should suffice, but the exact test on so few "
                     "discordant items does not reach significance")
        out.append(Finding(FindingKind.UNDERPOWERED, head, text, abs(cmp.difference) * 0.25, HYPOTHESES.get(cmp.axis),
                           {"n_pairs": cmp.n_pairs, "difference": cmp.difference, "p": cmp.p_value,
                            "p_holm": cmp.p_holm, "pairs_needed": needed}))
    return out
