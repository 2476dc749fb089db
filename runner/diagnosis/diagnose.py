"""From scores to reasons: findings in words, each with its numbers and n, most important first.

A finding explains some of the wrong answers (its weight is the share of the cell's answers it
accounts for) and, where it can, names the hypothesis of the analysis it speaks to. Kinds:

- outcome shares: answers cut off at max_tokens, with no JSON, of the wrong shape, empty, failed,
  with advice that fits the cell's settings, and cut-off answers that are repetition loops
  (`runner.diagnosis.outcomes`);
- repeats at temperature 0: they measure only whether the server is deterministic;
- constant answer: one class for at least 90% of a cell's items that state one;
- no better than the majority class: exact binomial test against always answering it;
- flips: items whose answer changes between repeats;
- item wrong everywhere: suspect the item or the task, not the settings, unless an outcome or a
  constant answer explains those items (`runner.diagnosis.across_cells`);
- context: prompts close to or over the per-request context;
- reasons and confidence: whether the stated failures name the broken rule, and calibration;
- underpowered comparison: a difference too small to detect at this n, with the n that would where
  there are enough discordant pairs to estimate it; two constant cells, which more items will not
  separate.

Nothing wrong means no findings, said in one line; no finding is made up to fill the page.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from operator import itemgetter
from typing import Any

from runner.analysis.compare import constant_answer, item_predictions, majority
from runner.analysis.metrics import hashable
from runner.analysis.results import ResultSet
from runner.analysis.stats import binomial_greater, brier_score
from runner.diagnosis.across_cells import context_findings, items_wrong_everywhere, power_findings
from runner.diagnosis.findings import CellView, Finding, FindingKind, say_axis_value, say_number, say_value
from runner.diagnosis.outcomes import determinism_findings, outcome_findings
from runner.plan.planner import Cell, Plan
from runner.scoring.loops import is_repetition_loop
from runner.scoring.scorers import ANSWERED, TRUNCATED, BinaryClassification, Score


def diagnose(results: ResultSet, *, alpha: float | None = None) -> list[Finding]:
    """Findings over the first scorer's scores, most important first."""
    if not results.scorers:
        return []
    plan = results.plan
    scorer = results.scorers[0]
    alpha = alpha if alpha is not None else plan.experiment.report.alpha
    cells = _collect(results)
    if all(not c.scores for c in cells):
        return []  # nothing stored yet
    findings: list[Finding] = []
    for c in cells:
        findings.extend(outcome_findings(c))
        if isinstance(scorer, BinaryClassification):
            findings.extend(_class_findings(c, scorer, alpha))
            findings.extend(_reason_findings(c, scorer))
        else:
            findings.extend(_wrong_answer_findings(c))
        findings.extend(_flip_findings(c))
        findings.extend(determinism_findings(c))
    findings.extend(items_wrong_everywhere(cells))
    findings.extend(context_findings(cells))
    findings.extend(injection_findings(cells))
    findings.extend(power_findings(results.comparisons(alpha), cells, alpha))
    findings = _merge_repeated(findings, cells)
    findings.sort(key=lambda f: -f.weight)
    return findings


def _merge_repeated(findings: list[Finding], cells: list[CellView]) -> list[Finding]:
    """One sentence for the same finding in several cells: "in every cell (8): 12 of 12 answers ..."."""
    labels = {c.label for c in cells}
    groups: dict[tuple[FindingKind, str], list[Finding]] = defaultdict(list)
    order: list[tuple[FindingKind, str]] = []
    for f in findings:
        prefix = f"{f.subject}: "
        key = (f.kind, f.text[len(prefix):]) if f.subject in labels and f.text.startswith(prefix) else (f.kind, f.text)
        if key not in groups:
            order.append(key)
        groups[key].append(f)
    out = []
    for key in order:
        group = groups[key]
        if len(group) == 1:
            out.append(group[0])
            continue
        subjects = [f.subject for f in group]
        where = f"in every cell ({len(group)})" if len(group) == len(labels) else \
            f"in {len(group)} cells ({'; '.join(subjects[:4])}{' ...' if len(subjects) > 4 else ''})"
        first = group[0]
        out.append(Finding(first.kind, where, f"{where}: {key[1]}", max(f.weight for f in group), first.hypothesis,
                           {**first.numbers, "cells": subjects}))
    return out


def nothing_wrong_line(experiment: str, answered: bool = True) -> str:
    if not answered:  # "nothing wrong" would be claimed of answers that do not exist
        return f"{experiment}: no findings yet: no job has an answer stored"
    return (f"{experiment}: no findings: answers had the expected shape, no cell gave a constant answer "
            "or failed to beat the majority class, nothing flipped between repeats, and no prompt neared the "
            "context limit.")


def _collect(results: ResultSet) -> list[CellView]:
    plan = results.plan
    varying = plan.varying_axes()
    out = []
    for cell in results.cells:
        rows: list[tuple[str, int, Score | None, str | None]] = []
        c = CellView(cell.cell, _label(cell.cell, varying, plan), results.stats(cell, 0), rows, repeats=plan.repeats)
        items, prompt_tokens = c.items, c.prompt_tokens
        no_system = cell.cell.system is None
        stated: dict[tuple[str, int], Any] = {}
        # Locals, and the variant's details looked at once per dict (a variant's jobs share one): this
        # runs once per job.
        seen_variant: int | None = None
        for result, score in zip(cell.results, cell.scores[0], strict=True):
            job = result.job
            item_id = job.item.id
            items[item_id] = job.item.fields
            rec = result.record
            if rec is None:
                continue
            key = (item_id, job.repeat)
            rows.append((item_id, job.repeat, score, rec.error if rec.status != "ok" else None))
            if score is not None:
                outcome = score.outcome
                stated[key] = score.prediction if outcome == ANSWERED else None
                if outcome == TRUNCATED and is_repetition_loop(rec.text or ""):
                    c.looped.add(key)
            if rec.prompt_tokens:
                prompt_tokens[item_id] = rec.prompt_tokens
            variant = rec.variant
            if variant and id(variant) != seen_variant:
                # The same dict again would set the same values again: each distinct one is looked at once,
                # and the last one seen wins, as before (a dict is only skipped right after itself).
                seen_variant = id(variant)
                if variant.get("n_ctx_per_slot"):
                    c.n_ctx = int(variant["n_ctx_per_slot"])
                if variant.get("injected_system") and no_system:
                    c.injected_system = variant["injected_system"]
        c.constant = constant_answer(item_predictions(stated).values())
        out.append(c)
    return out


def injection_findings(cells: list[CellView]) -> list[Finding]:
    """Cells that sent no system message to a model whose chat template then inserts its own."""
    out = []
    for c in cells:
        injected = c.injected_system
        if not injected or not c.scores:
            continue
        tokens = injected.get("tokens")
        size = f"of {tokens} tokens " if tokens else ""
        text = str(injected.get("text", ""))
        shown = text if len(text) <= 120 else text[:117] + "..."
        out.append(Finding(
            FindingKind.INJECTED_SYSTEM_PROMPT, c.label,
            f"{c.label}: the server added a system prompt {size}the experiment did not send: {shown!r} (the chat "
            "template's default when a request has no system message); every answer in this cell was given "
            "under it: send an explicit system prompt, or an empty one, to test without it",
            0.3, "system-prompt interference", {"text": text, "tokens": tokens}))
    return out


def _label(cell: Cell, varying: list[str], plan: Plan) -> str:
    parts = [f"{a}={say_axis_value(cell.get(a))}" for a in varying]
    return ", ".join(parts) if parts else str(cell.get("model"))


# answers that are well-formed and wrong (scorers without classes: exact, regex, json_field, code_tests)


def _wrong_answer_findings(c: CellView) -> list[Finding]:
    wrong = [s for _, _, s, _ in c.scores if s is not None and s.outcome == ANSWERED and not s.correct]
    n = c.stats.ok + c.stats.failed
    if not wrong or n == 0:
        return []
    details = Counter(s.detail for s in wrong if s.detail)
    most = f" (most often: {details.most_common(1)[0][0]})" if details else ""
    return [Finding(FindingKind.WRONG_ANSWER, c.label, f"{c.label}: {len(wrong)} of {n} answers have the expected "
                    f"form but are wrong{most}", len(wrong) / n, None, {"count": len(wrong), "n": n})]


# classes


def _by_item(c: CellView) -> list[Score]:
    """One score per item: the answer most repeats gave, right if most repeats were right.

    Repeats of one item are not independent trials; tests over items keep n honest."""
    groups: dict[str, list[Score]] = defaultdict(list)
    for item, _, s, _ in c.scores:
        if s is not None:
            groups[item].append(s)
    out = []
    for scores in groups.values():
        right = majority([bool(s.correct) for s in scores])
        if right is None:
            continue  # half right, half wrong: no verdict for this item
        # A dict and max, not a Counter per item (20,000 of them at 100,000 jobs): the same first of equal counts.
        stated: dict[Any, int] = {}
        for s in scores:
            if s.outcome == ANSWERED:
                key = hashable(s.prediction)
                stated[key] = stated.get(key, 0) + 1
        first = scores[0]
        top = max(stated.items(), key=itemgetter(1))[0] if stated else None
        out.append(Score(ANSWERED if stated else first.outcome, right, top, first.expected))
    return out


def _class_findings(c: CellView, scorer: BinaryClassification, alpha: float) -> list[Finding]:
    scored = _by_item(c)
    n = len(scored)
    if n == 0:
        return []
    labels = Counter(s.expected for s in scored)
    majority, majority_count = labels.most_common(1)[0]
    correct = sum(1 for s in scored if s.correct)
    predictions = Counter(s.prediction for s in scored if s.outcome == ANSWERED)
    answered = sum(predictions.values())
    st = c.stats
    numbers: dict[str, Any] = {
        "n": n, "correct": correct, "majority_class": majority, "majority_count": majority_count,
        "predictions": {str(k): v for k, v in predictions.items()}, "answered": answered,
        "balanced_accuracy": st.metric("balanced_accuracy"), "kappa": st.metric("kappa"), "mcc": st.metric("mcc"),
    }
    unit = "items" if len(c.scores) > n else "answers"
    parts: list[str] = []
    weight = 0.0
    constant = constant_answer(s.prediction for s in scored if s.outcome == ANSWERED)
    if constant is not None:
        top, top_count, _ = constant
        parts.append(f"gives {scorer.config.field}={say_value(top)} in {top_count} of {answered} {unit} that "
                     "state a class: a constant answer")
        numbers["constant_answer"] = top
        # The wrong answers this explains: items whose label is not the constant answer, answered wrong.
        weight = max(weight, sum(1 for s in scored if s.expected != top and not s.correct) / n)
    p = binomial_greater(correct, n, majority_count / n)
    numbers["p_vs_majority"] = p
    stated = (f"over {st.binary_n} {'answer' if st.binary_n == 1 else 'answers'} stating a class" if st.binary_n
              else "(no answer stated a class)")
    stats_text = (f"exact binomial p={p:.2g} over {n} items; kappa {say_number(st.metric('kappa'))} and MCC "
                  f"{say_number(st.metric('mcc'))} {stated}; balanced accuracy "
                  f"{say_number(st.metric('balanced_accuracy'))}")
    always = f"always answering {scorer.config.field}={say_value(majority)}"
    # "No better" in the statistical sense: not significantly more right than the trivial baseline. A
    # perfect cell is not called that, however small n is: there is nothing wrong to explain.
    no_better = p >= alpha and correct < n
    if no_better:
        parts.append(f"no better than {always} ({correct} of {n} right; always {say_value(majority)} gets "
                     f"{majority_count}; {stats_text})")
        # A summary, not a cause: it weighs what the cell falls short of the trivial baseline by.
        weight = max(weight, (majority_count - correct) / n)
    if not parts:
        return []
    if "constant_answer" in numbers:
        kind = FindingKind.CONSTANT_ANSWER_NO_BETTER_THAN_MAJORITY if no_better else FindingKind.CONSTANT_ANSWER
    else:
        kind = FindingKind.NO_BETTER_THAN_MAJORITY
    return [Finding(kind, c.label, f"{c.label}: " + "; ".join(parts), weight, None, numbers)]


def _reason_findings(c: CellView, scorer: BinaryClassification) -> list[Finding]:
    out: list[Finding] = []
    cfg = scorer.config
    if not (cfg.reasons_field and cfg.reason_label_field) and not cfg.confidence_field:
        return out  # neither is asked of the answers: nothing to look at (100,000 scores at scale)
    scored = [(item, s) for item, _, s, _ in c.scores if s is not None and s.outcome == ANSWERED]
    if cfg.reasons_field and cfg.reason_label_field:
        rules = {item: fields.get(cfg.reason_label_field) for item, fields in c.items.items()}
        caught = [(item, s) for item, s in scored if s.correct and not scorer.is_positive(s.expected)
                  and rules.get(item)]
        if caught:
            repeated = len({i for i, _ in caught}) < len(caught)
            what = (f"{len(caught)} answers rightly calling an invalid item invalid" if repeated
                    else f"{len(caught)} invalid items rightly called invalid")
            hits = sum(1 for item, s in caught if str(rules[item]) in (s.extras or {}).get("reasons", []))
            if hits < len(caught):
                out.append(Finding(
                    FindingKind.REASONS_MISS, c.label,
                    f"{c.label}: of {what}, the "
                    f"{cfg.reasons_field} list named the broken rule for {hits} ({hits / len(caught):.0%}): "
                    "right answers for the wrong reasons", (len(caught) - hits) / max(len(c.scores), 1) * 0.5,
                    "prompt engineering", {"caught": len(caught), "hits": hits}))
    if cfg.confidence_field:
        pairs: list[tuple[float, bool]] = [
            (float((s.extras or {})["confidence"]), bool(s.correct))
            for _, s in scored if (s.extras or {}).get("confidence") is not None
        ]
        if len(pairs) >= 5:
            right = [p for p, ok in pairs if ok]
            wrong = [p for p, ok in pairs if not ok]
            brier = brier_score([p for p, _ in pairs], [ok for _, ok in pairs])
            mean_right = sum(right) / len(right) if right else math.nan
            mean_wrong = sum(wrong) / len(wrong) if wrong else math.nan
            numbers = {"mean_right": mean_right, "mean_wrong": mean_wrong, "brier": brier, "n": len(pairs)}
            means = (f"mean {say_number(mean_right)} when right (n={len(right)}), {say_number(mean_wrong)} when wrong "
                     f"(n={len(wrong)}); Brier score {brier:.2f} (always saying 0.5 scores 0.25)")
            if right and wrong and mean_right - mean_wrong < 0.1:
                out.append(Finding(FindingKind.CALIBRATION, c.label, f"{c.label}: stated confidence does not track "
                                   f"correctness: {means}", 0.05, None, numbers))
            elif brier > 0.25:
                out.append(Finding(FindingKind.CALIBRATION, c.label, f"{c.label}: stated confidence is miscalibrated, "
                                   f"worse than always saying 0.5: {means}", 0.05, None, numbers))
    return out


# repeats


def _flip_findings(c: CellView) -> list[Finding]:
    flipped, items = c.stats.flips()
    if items == 0 or flipped == 0:
        return []
    return [Finding(FindingKind.FLIPS, c.label, f"{c.label}: {flipped} of {items} items flip between repeats "
                    f"(agreement {c.stats.agreement():.2f}, answer entropy {c.stats.entropy():.2f} bits)",
                    flipped / items * 0.5, "sampling randomness", {"flipped": flipped, "items": items})]
