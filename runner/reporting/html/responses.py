"""The response browser: per cell, every item with its label, each repeat's answer, outcome and score,
and the prompt (collapsed); items that flip between repeats and items wrong everywhere marked.

All of it is plain HTML (native <details> to collapse), readable without a script; the page's small
script only adds the filters (by outcome, right/wrong, flipping, wrong everywhere), which hide rows
by their data attributes.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

from runner.analysis.results import CellResults, ResultSet
from runner.reporting.html.plots import cell_label
from runner.scoring.base import OUTCOMES, Score

# (prompt text, who rendered it: the server's name, or None for the messages as the runner sent them)
Prompt = tuple[str, str | None]


def wrong_everywhere(results: ResultSet) -> set[str]:
    """Items with scored answers, every one of them wrong under the first scorer, in every cell."""
    seen: dict[str, list[bool]] = defaultdict(list)
    for c in results.cells:
        for r, score in zip(c.results, c.scores[0] if results.scorers else [], strict=False):
            if score is not None:
                seen[r.job.item.id].append(bool(score.correct))
    return {item for item, oks in seen.items() if oks and not any(oks)}


def prompt_jobs(results: ResultSet) -> list[str]:
    """One stored job per (cell, item): whose rendered prompt the browser shows (repeats share it)."""
    out = []
    for c in results.cells:
        seen: set[str] = set()
        for r in c.results:
            if r.record is not None and r.job.item.id not in seen:
                seen.add(r.job.item.id)
                out.append(r.job.job_id)
    return out


FILTERS = ("<form class='filters' id='filters' hidden><label>outcome <select name='outcome'>"
           "<option value=''>any</option>"
           + "".join(f"<option value='{o}'>{o}</option>" for o in OUTCOMES)
           + "</select></label> <label>answers <select name='right'><option value=''>right or wrong</option>"
           "<option value='1'>right</option><option value='0'>wrong</option></select></label> "
           "<label><input type='checkbox' name='flips'> flipping items only</label> "
           "<label><input type='checkbox' name='everywhere'> wrong everywhere only</label> "
           "<output name='shown'></output></form>")


def browser(results: ResultSet, prompts: dict[str, Prompt], *, filters: bool = True) -> str:
    """One collapsible section per cell, after the filters (shown by the page's script; one form per
    page, so an investigation's later steps pass `filters=False`: the form filters every step).

    `prompts`: job id -> the prompt as the server rendered it; jobs missing from it show the messages
    as the runner sent them."""
    everywhere = wrong_everywhere(results)
    sections = [_cell(results, c, prompts, everywhere, first=i == 0) for i, c in enumerate(results.cells)]
    return (FILTERS if filters else "") + "".join(sections)


def _cell(results: ResultSet, cell: CellResults, prompts: dict[str, Prompt], everywhere: set[str],
          first: bool) -> str:
    by_item: dict[str, list[int]] = defaultdict(list)
    for index, r in enumerate(cell.results):
        by_item[r.job.item.id].append(index)
    scores: list[Score | None] = cell.scores[0] if results.scorers else [None] * len(cell.results)
    stats = results.stats(cell, 0) if results.scorers else None
    rows = []
    flipping = 0
    for item_id, indexes in by_item.items():
        flips = stats is not None and len(set(stats.answers.get((cell.cell.key(), item_id), []))) > 1
        flipping += flips
        rows.append(_item_row(results, cell, item_id, indexes, scores, prompts, flips, item_id in everywhere))
    label = cell_label(results, cell)
    done = sum(1 for r in cell.results if r.record is not None)
    right = sum(1 for s in scores if s is not None and s.correct)
    scored = sum(1 for s in scores if s is not None)
    summary = (f"{escape(label)} <span class='muted'>{len(by_item)} items, {done} of {len(cell.results)} answers "
               f"stored" + (f", {right} of {scored} right" if results.scorers else "")
               + (f", {flipping} flipping" if flipping else "") + "</span>")
    return (f"<details class='cell'{' open' if first else ''}><summary>{summary}</summary>"
            "<table class='items'><thead><tr><th>item</th><th>label</th><th>marks</th><th>answers</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></details>")


def _item_row(results: ResultSet, cell: CellResults, item_id: str, indexes: list[int], scores: list[Score | None],
              prompts: dict[str, Prompt], flips: bool, everywhere: bool) -> str:
    first = cell.results[indexes[0]]
    label = _label(results, first.job.item.fields, scores[indexes[0]])
    marks = (["<span class='mark flips'>flips</span>"] if flips else []) + \
        (["<span class='mark everywhere'>wrong everywhere</span>"] if everywhere else [])
    if all(cell.results[i].record is None for i in indexes):
        n = len(indexes)
        answers = [f"<div class='answer missing' data-outcome='' data-right=''>not run yet"
                   f"{f' ({n} repeats)' if n > 1 else ''}</div>"]
    else:
        answers = [_answer(cell, i, scores[i], results.plan.repeats > 1) for i in indexes]
    stored = next((cell.results[i].job.job_id for i in indexes if cell.results[i].job.job_id in prompts), None)
    if stored is not None:
        text, by = prompts[stored]
        head = f"prompt as {escape(by)} rendered it" if by else "prompt as rendered"
    else:
        text = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in first.job.messages)
        head = "prompt: the messages as sent"
    prompt = f"<details class='prompt'><summary>{head}</summary><pre>{escape(text)}</pre></details>"
    return (f"<tr class='item' data-item='{escape(item_id)}' data-flips='{int(flips)}' "
            f"data-everywhere='{int(everywhere)}'><td class='id'>{escape(item_id)}</td><td>{escape(label)}</td>"
            f"<td>{''.join(marks)}</td><td>{''.join(answers)}{prompt}</td></tr>")


def _answer(cell: CellResults, index: int, score: Score | None, repeated: bool) -> str:
    r = cell.results[index]
    rec = r.record
    head = f"repeat {r.job.repeat}" if repeated else "answer"
    if rec is None:
        return f"<div class='answer missing' data-outcome='' data-right=''><b>{head}</b> not run yet</div>"
    if rec.status != "ok":
        return (f"<div class='answer failed' data-outcome='failed' data-right='0'><b>{head}</b> "
                f"<span class='outcome'>failed</span><pre>{escape(rec.error or '')}</pre></div>")
    right = "" if score is None or score.correct is None else str(int(bool(score.correct)))
    verdict = "" if score is None else (
        f"<span class='score {'right' if score.correct else 'wrong'}'>{'right' if score.correct else 'wrong'}"
        + (f": said {escape(_say(score.prediction))}" if score.prediction is not None else "") + "</span>")
    name = "" if score is None else escape(str(score.outcome))
    outcome = f"<span class='outcome o-{name}'>{name}</span>" if name else ""
    tokens = f"<span class='muted'>{rec.completion_tokens} tokens, {escape(str(rec.finish_reason))}</span>" \
        if rec.completion_tokens is not None else ""
    cls = "" if score is None else (" right" if score.correct else " wrong")
    return (f"<div class='answer{cls}' data-outcome='{escape(str(score.outcome)) if score else ''}' "
            f"data-right='{right}'><b>{head}</b> {outcome} {verdict} {tokens}<pre>{escape(rec.text or '')}</pre></div>")


def _label(results: ResultSet, fields: dict[str, Any], score: Score | None) -> str:
    if score is not None and score.expected is not None:
        return _say(score.expected)
    field = results.plan.experiment.dataset.label_field
    return _say(fields.get(field)) if field and field in fields else "-"


def _say(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
