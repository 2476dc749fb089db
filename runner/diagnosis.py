"""From scores to reasons: findings in words, each with its numbers and n, most important first.

A finding explains some of the wrong answers (its weight is the share of the cell's answers it
accounts for) and, where it can, names the hypothesis of the analysis it speaks to. Kinds:

- outcome shares: answers cut off at max_tokens, with no JSON, of the wrong shape, empty, failed;
- constant answer: one class for at least 90% of a cell's answers;
- no better than the majority class: exact binomial test against always answering it;
- flips: items whose answer changes between repeats;
- item wrong everywhere: suspect the item or the task, not the settings;
- context: prompts close to or over the per-request context;
- reasons and confidence: whether the stated failures name the broken rule, and calibration;
- underpowered comparison: a difference too small to detect at this n, with the n that would.

Nothing wrong means no findings, said in one line; no finding is made up to fill the page.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from runner.compare import CellOutcomes, paired_comparisons
from runner.metrics import CellStats, iter_cell_results, scores_for
from runner.planner import Cell, Plan
from runner.scoring.scorers import (
    ANSWERED,
    EMPTY,
    FAILED,
    NO_CODE,
    NO_JSON,
    TRUNCATED,
    WRONG_SHAPE,
    BinaryClassification,
    Score,
    Scorer,
)
from runner.stats import binomial_greater, brier_score
from runner.store import Store

CONSTANT_SHARE = 0.9
CONTEXT_CLOSE = 0.9  # a prompt using 90% of the context leaves little room for the answer

HYPOTHESES = {
    "prompt": "prompt engineering", "system": "system-prompt interference", "quantization": "quantization",
    "model": "model architecture", "temperature": "sampling randomness", "top_p": "sampling randomness",
    "top_k": "sampling randomness", "seed": "sampling randomness",
}


@dataclass
class Finding:
    kind: str
    subject: str
    text: str
    weight: float
    hypothesis: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Cell:
    cell: Cell
    label: str
    stats: CellStats
    scores: list[tuple[str, int, Score | None, str | None]]  # item id, repeat, score, error of a failed job
    prompt_tokens: dict[str, int] = field(default_factory=dict)
    n_ctx: int | None = None
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # item id -> dataset fields


def diagnose(plan: Plan, store: Store | None, scorers: list[Scorer], *, limit_items: int | None = None,
             alpha: float | None = None) -> list[Finding]:
    if not scorers or store is None:
        return []
    scorer = scorers[0]
    alpha = alpha if alpha is not None else plan.experiment.report.alpha
    cells = list(_collect(plan, store, scorer, limit_items))
    findings: list[Finding] = []
    for c in cells:
        findings.extend(_outcome_findings(c))
        if isinstance(scorer, BinaryClassification):
            findings.extend(_class_findings(c, scorer, alpha))
            findings.extend(_reason_findings(c, scorer))
        else:
            findings.extend(_wrong_answer_findings(c))
        findings.extend(_flip_findings(c))
    findings.extend(_items_wrong_everywhere(cells))
    findings.extend(_context_findings(cells))
    findings.extend(_power_findings(plan, cells, alpha))
    findings = _merge_repeated(findings, cells)
    findings.sort(key=lambda f: -f.weight)
    return findings


def _merge_repeated(findings: list[Finding], cells: list[_Cell]) -> list[Finding]:
    """One sentence for the same finding in several cells: "in every cell (8): 12 of 12 answers ..."."""
    labels = {c.label for c in cells}
    groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    order: list[tuple[str, str]] = []
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


def nothing_wrong_line(plan: Plan) -> str:
    return (f"{plan.experiment.name}: no findings: answers had the expected shape, no cell gave a constant answer "
            "or failed to beat the majority class, nothing flipped between repeats, and no prompt neared the "
            "context limit.")


def _collect(plan: Plan, store: Store, scorer: Scorer, limit_items: int | None) -> list[_Cell]:
    varying = plan.varying_axes()
    out = []
    for cell, results in iter_cell_results(plan, store, limit_items):
        stats = CellStats()
        scores = scores_for(results, scorer, store)
        rows: list[tuple[str, int, Score | None, str | None]] = []
        c = _Cell(cell, _label(cell, varying, plan), stats, rows)
        for result, score in zip(results, scores, strict=True):
            stats.add(result, score, scorer)
            c.items[result.job.item.id] = result.job.item.fields
            rec = result.record
            if rec is None:
                continue
            rows.append((result.job.item.id, result.job.repeat, score, rec.error if rec.status != "ok" else None))
            if rec.prompt_tokens:
                c.prompt_tokens[result.job.item.id] = rec.prompt_tokens
            if rec.variant and rec.variant.get("n_ctx_per_slot"):
                c.n_ctx = int(rec.variant["n_ctx_per_slot"])
        out.append(c)
    return out


def _label(cell: Cell, varying: list[str], plan: Plan) -> str:
    parts = [f"{a}={_show(cell.get(a))}" for a in varying]
    return ", ".join(parts) if parts else str(cell.get("model"))


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


# outcomes


def _outcome_findings(c: _Cell) -> list[Finding]:
    n = c.stats.ok + c.stats.failed
    if n == 0:
        return []
    out = []
    max_tokens = c.cell.params.get("max_tokens")
    counts = c.stats.outcomes
    if counts[TRUNCATED]:
        k = counts[TRUNCATED]
        out.append(Finding(
            TRUNCATED, c.label,
            f"{c.label}: {k} of {n} answers cut off at max_tokens={max_tokens}; raise max_tokens or constrain "
            "the output (response_format)", k / n, "prompt engineering",
            {"count": k, "n": n, "max_tokens": max_tokens}))
    if counts[NO_JSON]:
        k = counts[NO_JSON]
        out.append(Finding(
            NO_JSON, c.label,
            f"{c.label}: {k} of {n} answers contain no JSON (prose or an echo of the input); constrain the output "
            "with response_format or show the answer format", k / n, "prompt engineering", {"count": k, "n": n}))
    if counts[WRONG_SHAPE]:
        k = counts[WRONG_SHAPE]
        details = Counter(s.detail for _, _, s, _ in c.scores if s is not None and s.outcome == WRONG_SHAPE)
        detail, times = details.most_common(1)[0]
        out.append(Finding(
            WRONG_SHAPE, c.label,
            f"{c.label}: {k} of {n} answers are JSON of the wrong shape (most often {detail}: {times})",
            k / n, "prompt engineering", {"count": k, "n": n, "most_common": detail}))
    for kind, words in ((EMPTY, "are empty"), (NO_CODE, "contain code that does not compile")):
        if counts[kind]:
            k = counts[kind]
            out.append(Finding(kind, c.label, f"{c.label}: {k} of {n} answers {words}", k / n, None,
                               {"count": k, "n": n}))
    if counts[FAILED]:
        k = counts[FAILED]
        errors = Counter((e or "").split(":")[0] for _, _, _, e in c.scores if e is not None)
        error, _ = errors.most_common(1)[0]
        out.append(Finding(FAILED, c.label, f"{c.label}: {k} of {n} requests failed after their retries "
                           f"(most often: {error}); `runner run` again retries them", k / n, None,
                           {"count": k, "n": n, "most_common": error}))
    return out


# answers that are well-formed and wrong (scorers without classes: exact, regex, json_field, code_tests)


def _wrong_answer_findings(c: _Cell) -> list[Finding]:
    wrong = [s for _, _, s, _ in c.scores if s is not None and s.outcome == ANSWERED and not s.correct]
    n = c.stats.ok + c.stats.failed
    if not wrong or n == 0:
        return []
    details = Counter(s.detail for s in wrong if s.detail)
    most = f" (most often: {details.most_common(1)[0][0]})" if details else ""
    return [Finding("wrong_answer", c.label, f"{c.label}: {len(wrong)} of {n} answers have the expected form but "
                    f"are wrong{most}", len(wrong) / n, None, {"count": len(wrong), "n": n})]


# classes


def _by_item(c: _Cell) -> list[Score]:
    """One score per item: the answer most repeats gave, right if most repeats were right.

    Repeats of one item are not independent trials; tests over items keep n honest."""
    groups: dict[str, list[Score]] = defaultdict(list)
    for item, _, s, _ in c.scores:
        if s is not None:
            groups[item].append(s)
    out = []
    for scores in groups.values():
        right = sum(1 for s in scores if s.correct)
        top = Counter(_hashable(s.prediction) for s in scores if s.outcome == ANSWERED).most_common(1)
        first = scores[0]
        out.append(Score(ANSWERED if top else first.outcome, right * 2 > len(scores), top[0][0] if top else None,
                         first.expected))
    return out


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, list | dict) else value


def _class_findings(c: _Cell, scorer: BinaryClassification, alpha: float) -> list[Finding]:
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
    if answered >= 2:
        top, top_count = predictions.most_common(1)[0]
        if top_count / answered >= CONSTANT_SHARE:
            parts.append(f"gives {scorer.config.field}={_fmt(top)} in {top_count} of {answered} {unit} that "
                         "state a class: a constant answer")
            numbers["constant_answer"] = top
            # The wrong answers this explains: items whose label is not the constant answer, answered wrong.
            weight = max(weight, sum(1 for s in scored if s.expected != top and not s.correct) / n)
    p = binomial_greater(correct, n, majority_count / n)
    numbers["p_vs_majority"] = p
    stats_text = (f"exact binomial p={p:.2g} over {n} items; kappa {_num(st.metric('kappa'))}, MCC "
                  f"{_num(st.metric('mcc'))}, balanced accuracy {_num(st.metric('balanced_accuracy'))}")
    always = f"always answering {scorer.config.field}={_fmt(majority)}"
    # "No better" in the statistical sense: not significantly more right than the trivial baseline. A
    # perfect cell is not called that, however small n is: there is nothing wrong to explain.
    no_better = p >= alpha and correct < n
    if no_better:
        parts.append(f"no better than {always} ({correct} of {n} right; always {_fmt(majority)} gets "
                     f"{majority_count}; {stats_text})")
        # A summary, not a cause: it weighs what the cell falls short of the trivial baseline by.
        weight = max(weight, (majority_count - correct) / n)
    if not parts:
        return []
    if "constant_answer" in numbers:
        kind = "constant_answer_no_better_than_majority" if no_better else "constant_answer"
    else:
        kind = "no_better_than_majority"
    return [Finding(kind, c.label, f"{c.label}: " + "; ".join(parts), weight, None, numbers)]


def _reason_findings(c: _Cell, scorer: BinaryClassification) -> list[Finding]:
    out = []
    cfg = scorer.config
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
                    "reasons_miss", c.label,
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
            means = (f"mean {_num(mean_right)} when right (n={len(right)}), {_num(mean_wrong)} when wrong "
                     f"(n={len(wrong)}); Brier score {brier:.2f} (always saying 0.5 scores 0.25)")
            if right and wrong and mean_right - mean_wrong < 0.1:
                out.append(Finding("calibration", c.label, f"{c.label}: stated confidence does not track "
                                   f"correctness: {means}", 0.05, None, numbers))
            elif brier > 0.25:
                out.append(Finding("calibration", c.label, f"{c.label}: stated confidence is miscalibrated, "
                                   f"worse than always saying 0.5: {means}", 0.05, None, numbers))
    return out


# repeats


def _flip_findings(c: _Cell) -> list[Finding]:
    flipped, items = c.stats.flips()
    if items == 0 or flipped == 0:
        return []
    return [Finding("flips", c.label, f"{c.label}: {flipped} of {items} items flip between repeats "
                    f"(agreement {c.stats.agreement():.2f}, answer entropy {c.stats.entropy():.2f} bits)",
                    flipped / items * 0.5, "sampling randomness", {"flipped": flipped, "items": items})]


# items


def _items_wrong_everywhere(cells: list[_Cell]) -> list[Finding]:
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
                f"are exactly the items labelled {_fmt(label_of_all)}: no cell ever gets that class right")
    else:
        text = (f"{len(wrong)} of {len(by_item)} items are wrong in every cell ({len(cells)} cells): {shown}; "
                "suspect the item or the task, not the settings")
    return [Finding("item_wrong_everywhere", "items", text, len(wrong) / len(by_item) * 0.5, None,
                    {"items": wrong, "cells": len(cells), "one_class": same_class})]


def _context_findings(cells: list[_Cell]) -> list[Finding]:
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
        out.append(Finding("context_limit", c.label, f"{c.label}: " + "; ".join(parts) + "; raise n_ctx",
                           len(set(over) | set(refused)) / max(len(c.items), 1), "context-window truncation",
                           {"over": over, "close": close, "refused": refused, "n_ctx": c.n_ctx}))
    return out


# comparisons


def _power_findings(plan: Plan, cells: list[_Cell], alpha: float) -> list[Finding]:
    outcomes = [CellOutcomes(dict(c.cell.values), {(i, r): bool(s.correct) for i, r, s, _ in c.scores
                                                  if s is not None}) for c in cells]
    out = []
    for cmp in paired_comparisons(outcomes, plan.axes, alpha=alpha):
        if cmp.significant or cmp.n_pairs == 0 or cmp.only_value == cmp.only_baseline:
            continue
        needed = cmp.items_needed()  # None when the approximation would ask for fewer than were tested
        ctx = ", ".join(f"{k}={_show(v)}" for k, v in cmp.context.items())
        head = f"{cmp.axis} {_show(cmp.value)} vs {_show(cmp.baseline)}" + (f" ({ctx})" if ctx else "")
        text = (f"{head}: difference {cmp.difference:+.2f} in accuracy is not detectable at n={cmp.n_pairs} "
                f"items (McNemar p={cmp.p_value:.2g}, Holm {cmp.p_holm:.2g})")
        if needed:
            text += f"; about {needed} items would be needed for 80% power at alpha={alpha:g} (Connor 1987)"
        else:
            text += "; too few items for the normal approximation to say how many would be needed"
        out.append(Finding("underpowered", head, text, abs(cmp.difference) * 0.25, HYPOTHESES.get(cmp.axis),
                           {"n_pairs": cmp.n_pairs, "difference": cmp.difference, "p": cmp.p_value,
                            "p_holm": cmp.p_holm, "pairs_needed": needed}))
    return out


def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _num(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
