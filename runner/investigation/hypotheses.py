"""The investigation's conclusions: the hypotheses table (H1-H6) and the decision. Pure.

Each step with a `hypothesis` tests the axis its experiment varies (H1 prompt, H2 a sampling key,
H4 model, H5 quantization, H6 system prompt) by the rule an experiment's `report.effect` uses
(`runner.reporting.effect`): the most accurate value against the first declared one, paired over
items, `supported` when the test rejects (Holm) and the interval excludes 0, `refuted` when every
interval lies within +-SMALLEST_EFFECT over enough items, `inconclusive` otherwise, with the items
that would decide it.

H3 (context) is a `context_window` study step: supported when an answered job of another step sent
a prompt of at least CONTEXT_SHARE of its own limit (its server's n_ctx per slot less one, as the
study shows llama.cpp reads; the study's smallest limit for a server that reports no n_ctx; a server
that truncates silently reports at most the limit, so a truncated prompt counts there too; the store
records no per-job truncation flag), refuted when every prompt is below it, inconclusive without a
limit.

The decision judges the last step that is not a study against the investigation's threshold by the
report's verdict rule (`runner.reporting.judgement.verdicts`): its single row, or its best row, on
an interval that allows for how many settings it was chosen among on the same items (Bonferroni).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

from runner.analysis.compare import Comparison
from runner.analysis.metrics import CellStats, hashable
from runner.analysis.results import ResultSet
from runner.capabilities.context_window import ContextStudy
from runner.config.sampling import SAMPLING_KEYS
from runner.config.schema import Threshold
from runner.investigation.selection import PickedFrom, better_not_below, origins, settings_chosen_among
from runner.reporting.effect import SMALLEST_EFFECT, axis_effect
from runner.reporting.judgement import Key, Verdict, best_row, label_of, unit, verdicts

# A prompt this close to the context limit is at risk of being cut (H3).
CONTEXT_SHARE = 0.9

NAMES = {"H1": "prompt", "H2": "sampling", "H3": "context window", "H4": "general vs code model",
         "H5": "quantization", "H6": "system prompt"}
AXIS = {"H1": "prompt", "H4": "model", "H5": "quantization", "H6": "system"}


@dataclass(frozen=True)
class Hypothesis:
    """One row of the hypotheses table."""

    id: str
    name: str
    step: str | None
    tested: str
    effect: float | None
    interval: tuple[float, float] | None
    p: float | None  # Holm-adjusted McNemar p of the comparison shown
    n_items: int
    verdict: str  # supported | refuted | inconclusive | not tested
    items_to_decide: int | None
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "step": self.step, "tested": self.tested, "effect": self.effect,
                "interval": list(self.interval) if self.interval else None, "p": self.p, "n_items": self.n_items,
                "verdict": self.verdict, "items_to_decide": self.items_to_decide, "why": self.why}


@dataclass(frozen=True)
class Decision:
    verdict: str  # viable | inadequate | not decidable
    sentence: str
    step: str | None
    n_items: int
    interval: tuple[float, float] | None
    metric: str
    min: float

    # The interval's confidence: 0.95, or wider where the configuration was chosen among several on
    # the same items and the bar is claimed or not shown (`decide`; "inadequate" is judged at 0.95).
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "sentence": self.sentence, "step": self.step, "n_items": self.n_items,
                "interval": list(self.interval) if self.interval else None, "metric": self.metric, "min": self.min,
                "confidence": self.confidence}


@dataclass(frozen=True)
class StepEvidence:
    """What a step left to conclude from: its results (a matrix) or its study, and the values it took."""

    name: str
    hypothesis: str | None
    uses: dict[str, Any]
    results: ResultSet | None = None
    study: ContextStudy | None = None
    picked_from: dict[str, PickedFrom] = field(default_factory=dict)  # axis -> how it was picked


def hypotheses(steps: list[StepEvidence]) -> list[Hypothesis]:
    """H1..H6 in order: one row per step that tests it, `not tested` where none does."""
    out: list[Hypothesis] = []
    for hid, name in NAMES.items():
        testing = [s for s in steps if s.hypothesis == hid]
        if not testing:
            out.append(Hypothesis(hid, name, None, "-", None, None, None, 0, "not tested", None,
                                  "no step of the investigation tests it"))
        for step in testing:
            out.append(_context(step, steps) if hid == "H3" else _axis_effect(hid, step))
    return out


def _not_tested(hid: str, step: StepEvidence, why: str) -> Hypothesis:
    return Hypothesis(hid, NAMES[hid], step.name, "-", None, None, None, 0, "not tested", None, why)


def _axis_of(hid: str, results: ResultSet) -> str | None:
    varying = results.plan.varying_axes()
    if hid == "H2":
        return next((a for a in varying if a in SAMPLING_KEYS and a != "seed"), None)
    return AXIS[hid] if AXIS.get(hid) in varying else None


def _axis_effect(hid: str, step: StepEvidence) -> Hypothesis:
    results = step.results
    if results is None:
        return _not_tested(hid, step, f"step {step.name} has no results yet" if step.study is None
                           else f"step {step.name} is a study: it varies no {NAMES[hid]}")
    axis = _axis_of(hid, results)
    if axis is None:
        wanted = "a sampling key" if hid == "H2" else AXIS[hid]
        return _not_tested(hid, step, f"step {step.name} does not vary {wanted} (it varies "
                                      f"{', '.join(results.plan.varying_axes()) or 'nothing'})")
    values = list(results.plan.axes[axis])
    tested = f"{axis}: {', '.join(_show(v) for v in values)} (baseline {_show(values[0])})"
    if not results.scorers:
        return Hypothesis(hid, NAMES[hid], step.name, tested, None, None, None, 0, "inconclusive", None,
                          f"step {step.name} has no scorer: accuracy is not measured")
    effect = axis_effect(results, axis, shown="most_accurate")
    c = effect.comparison
    if c is None:
        return Hypothesis(hid, NAMES[hid], step.name, tested, None, None, None, 0, "inconclusive", None, effect.why)
    if effect.verdict == "supported":
        return _row(hid, step, tested, c, "supported", None, effect.why.replace(
            f"(Holm over the {effect.n_comparisons} comparisons)",
            f"(Holm over the step's {effect.n_comparisons} comparisons)"))
    if effect.verdict == "refuted":
        return _row(hid, step, tested, c, "refuted", None, effect.why)
    return _row(hid, step, tested, c, "inconclusive", effect.items_to_decide, f"{effect.why}: {c.sentence()}")


def _row(hid: str, step: StepEvidence, tested: str, c: Comparison, verdict: str, needed: int | None,
         why: str) -> Hypothesis:
    effect = f"{_show(c.value)} vs {_show(c.baseline)}"
    return Hypothesis(hid, NAMES[hid], step.name, f"{tested}; effect {effect}", c.difference, (c.low, c.high),
                      c.p_holm, c.n_items, verdict, needed, why)


def _context(step: StepEvidence, steps: list[StepEvidence]) -> Hypothesis:
    hid = "H3"
    if step.study is None:
        return _not_tested(hid, step, f"step {step.name} is not a context_window study" if step.results
                           else f"step {step.name} has not run yet")
    limits = sorted((r.limit_tokens, r.variant) for r in step.study.results if r.limit_tokens)
    if not limits:
        failures = "; ".join(f"{r.variant}: {r.failure}" for r in step.study.results) or "no variant studied"
        return Hypothesis(hid, NAMES[hid], step.name, "prompt tokens vs the context limit", None, None, None, 0,
                          "inconclusive", None, f"the study found no limit ({failures})")
    limit, variant = limits[0]
    tested = (f"prompt tokens of the other steps vs each job's own context (n_ctx per slot, as its server "
              f"reported it; else the study's smallest limit, {limit} tokens ({variant})); the tokenizer check")
    tokenizer = _tokenizer_check(step.study)
    # Each job against the context its own server had: the study may have run at another n_ctx (the
    # shipped one searches 1024 and 2048 while the other steps run at 3072), so its limit is only the
    # fallback for servers that report none. llama.cpp reads n_ctx - 1 prompt tokens whole (the study
    # shows it), so that is a job's limit.
    prompts = []
    for s in steps:
        if s is step or s.results is None:
            continue
        for cell in s.results.cells:
            for r in cell.results:
                if r.record is None or r.record.status != "ok" or r.record.prompt_tokens is None:
                    continue
                ctx = (r.record.variant or {}).get("n_ctx_per_slot")
                own = ctx - 1 if isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 1 else limit
                prompts.append((r.record.prompt_tokens, own, r.job.item.id))
    if not prompts:
        return Hypothesis(hid, NAMES[hid], step.name, tested, None, None, None, 0, "inconclusive", None,
                          f"no answered job of the other steps reports its prompt tokens; {tokenizer}")
    tokens, own, _ = max(prompts, key=lambda p: p[0] / p[1])
    share = tokens / own
    items = len({i for _, _, i in prompts})
    near = [(t, i) for t, o, i in prompts if t >= CONTEXT_SHARE * o]
    numbers = f"the closest prompt {tokens} tokens of a {own}-token limit ({share:.0%})"
    if near:
        return Hypothesis(hid, NAMES[hid], step.name, tested, share, None, None, items, "supported", None,
                          f"{len(near)} of {len(prompts)} answered jobs ({len({i for _, i in near})} items) sent at "
                          f"least {CONTEXT_SHARE:.0%} of their limit: {numbers}; {tokenizer}")
    return Hypothesis(hid, NAMES[hid], step.name, tested, share, None, None, items, "refuted", None,
                      f"{numbers}: every prompt of {len(prompts)} answered jobs over {items} items is below "
                      f"{CONTEXT_SHARE:.0%} of its limit; {tokenizer}")


def _tokenizer_check(study: ContextStudy) -> str:
    """The study's tokenizer check in one clause. It does not move H3's verdict: the server's own count
    decides what it truncates, whatever vocabulary it uses; a different one hurts answers instead."""
    checks = [(r.variant, r.tokenizer) for r in study.results if r.tokenizer is not None]
    if not checks:
        return "tokenizer check: not run (a study stored before it existed; run the step again)"
    differ = [f"{v}: {c.get('detail', '')}" for v, c in checks if c.get("honoured") is False]
    if differ:
        return ("tokenizer check: the server counts differently from the reference (" + "; ".join(differ) +
                "): the counts above are the server's, which decide truncation, but the model may be served "
                "another vocabulary than it was trained with (see `runner probe`)")
    unmeasured = [f"{v}: {c.get('detail', '')}" for v, c in checks if c.get("honoured") is None]
    if unmeasured:
        return "tokenizer check: not measured (" + "; ".join(unmeasured) + ")"
    return "tokenizer check: " + "; ".join(f"{v}: {c.get('detail', '')}" for v, c in checks)


# The confidence of a verdict's interval; a decision among k candidates widens it to 1 - 0.05 / k.
# Past MAX_SETTINGS the decision is not made at all (1 - 0.05 / k rounds to 1 near k = 10^15).
BASE_CONFIDENCE = 0.95
MAX_SETTINGS = 10**9


def decide(threshold: Threshold, steps: list[StepEvidence]) -> Decision:
    """The investigation's answer from the last step that is not a study. Where that step's settings
    were picked (or its rows ranked) on the items it is judged on, "viable" is claimed only on an
    interval wide enough for every candidate at once (Bonferroni), since the best of several looks
    better than it is; "inadequate" needs the 95% interval below the bar (the choice can only have
    flattered it) and every candidate scoring as high where it ran below it too (`selection`)."""
    metric, bar = threshold.metric, threshold.min
    final = next((s for s in reversed(steps) if s.study is None), None)

    def undecided(why: str, step: str | None = None) -> Decision:
        return Decision("not decidable", f"not decidable: {why}", step, 0, None, metric, bar)

    if final is None:
        return undecided("every step is a study; none is judged by accuracy")
    if final.results is None:
        return undecided(f"the last step, {final.name}, has not run yet", final.name)
    results = final.results
    if not results.scorers:
        return undecided(f"the last step, {final.name}, has no scorer", final.name)
    alpha = results.plan.experiment.report.alpha
    axes = results.plan.varying_axes()
    stats: dict[Key, CellStats] = {}
    for cell in results.cells:
        key: Key = (tuple(hashable(cell.cell.get(a)) for a in axes), ())
        s = results.stats(cell, 0)
        stats[key] = stats[key].merge(s) if key in stats else s
    picks = origins(final, steps)
    among, picked = settings_chosen_among(results, picks)
    k = among * len(stats)
    confidence = BASE_CONFIDENCE if k == 1 else 1 - (1 - BASE_CONFIDENCE) / min(k, MAX_SETTINGS)
    # "inadequate" is judged at 95%: choosing the best of several only makes it look better, so a
    # chosen setting below the bar is below it. "viable" on the interval that allows for the choice.
    judged = dict(zip(stats, verdicts(threshold, axes, [], stats, alpha), strict=True))
    row = ""
    if len(stats) > 1:
        found = best_row(axes, [], stats, results.scorers[0], alpha)
        chosen = found.winner or found.top or next(iter(stats))
        label = label_of(axes, [], chosen)
        row = (f", best row {label}" if found.winner else
               f", its most accurate row {label} ({found.rule} from the runner-up; the bar is judged on it alone)")
        picked.append(f"{len(stats)} rows of the step")
    else:
        chosen = next(iter(stats))
    v = judged[chosen]
    where = f"step {final.name}{row}"
    if v.status == "not judged":
        return _not_judged(v, where, final.name, metric, bar)
    assert v.value is not None and v.low is not None and v.high is not None
    over = f"over {unit(v.n_items, v.n_jobs)}"
    if v.status == "not viable":
        shown = f"{metric} {v.value:.2f} [{v.low:.2f}, {v.high:.2f}]"
        better = better_not_below(picks, threshold, alpha)
        if better is not None:
            return Decision("not decidable", f"not decidable: {shown} < {bar:.2f} {over} ({where}), but {better}",
                            final.name, v.n_items, (v.low, v.high), metric, bar)
        return Decision("inadequate", f"inadequate: {shown} < {bar:.2f} {over} ({where}): pivot: the model is "
                        "inadequate for the task at this bar", final.name, v.n_items, (v.low, v.high), metric, bar)
    used = BASE_CONFIDENCE
    if k > 1 and v.value >= bar:
        # Chosen as the best of k on these items, its 95% interval is too kind to claim the bar (the
        # winner's curse): every candidate's interval at 1 - 0.05/k covers all of them at once, the
        # chosen one with them. (Below the bar only "inadequate" can decide it: at 95%.)
        v, used = verdicts(threshold, axes, [], {chosen: stats[chosen]}, alpha / k, confidence)[0], confidence
        if k > MAX_SETTINGS:
            return Decision("not decidable", f"not decidable at {where}: its settings were chosen among {k:,} on "
                            f"these items ({' x '.join(picked)}), more than any interval here allows for",
                            final.name, v.n_items, None, metric, bar)
        where += (f"; a {_percent(confidence)} interval, Bonferroni over the {k} settings it was chosen among on "
                  f"these items: {' x '.join(picked)}")
        if v.status == "not judged":  # a bootstrap with no draws to put the wider bounds on
            return _not_judged(v, where, final.name, metric, bar)
    assert v.value is not None and v.low is not None and v.high is not None
    shown = f"{metric} {v.value:.2f} [{v.low:.2f}, {v.high:.2f}]"
    interval = (v.low, v.high)
    if v.status == "viable":
        settings = ", ".join(f"{a} {_show(x)}" for a, x in final.uses.items())
        own = label_of(axes, [], chosen).replace("=", " ") if len(stats) > 1 else ""
        use = ", ".join(p for p in (settings, own) if p) or "the settings of the last step"
        return Decision("viable", f"viable: {shown} >= {bar:.2f} {over} ({where}): use {use}",
                        final.name, v.n_items, interval, metric, bar, used)
    return Decision("not decidable", f"not decidable at n={v.n_items} items: {shown} straddles {bar:.2f} {over} "
                    f"({where}); {_to_decide(v)}", final.name, v.n_items, interval, metric, bar, used)


def _not_judged(v: Verdict, where: str, step: str, metric: str, bar: float) -> Decision:
    return Decision("not decidable", f"not decidable at {where}: {v.text.split(': not judged: ', 1)[-1]}",
                    step, v.n_items, None, metric, bar)


def _percent(confidence: float) -> str:
    """98.8%, 99.98%: as many decimals as it takes not to round up to 100%."""
    decimals = max(1, math.ceil(-math.log10(1 - confidence)) - 1)
    return f"{confidence:.{decimals}%}"


def _to_decide(v: Verdict) -> str:
    if v.items_needed:
        return f"about {v.items_needed} items would decide it (exact binomial test, 80% power)"
    return v.text.rsplit("; ", 1)[-1]


def render_conclusions(rows: list[Hypothesis], decision: Decision, markdown: bool) -> list[str]:
    """The hypotheses table, each row's reason, and the decision, as lines."""
    table = [[h.id, h.name, h.step or "-", h.tested, _effect(h), "-" if h.p is None else f"{h.p:.3g}",
              h.n_items or "-", h.verdict + (f" (~{h.items_to_decide} items would decide)" if h.items_to_decide
                                              else "")] for h in rows]
    headers = ["id", "hypothesis", "step", "tested", "effect [interval]", "p (Holm)", "n items", "verdict"]
    out = ["## hypotheses" if markdown else "hypotheses:", "",
           tabulate(table, headers=headers, tablefmt="github" if markdown else "simple"), ""]
    bullet = "- " if markdown else "  "
    out += [f"{bullet}{h.id} {h.verdict}: {h.why}" for h in rows if h.step is not None]
    out += [f"{bullet}refuted means every difference's interval lies within +-{SMALLEST_EFFECT:.2f}, the smallest "
            "effect that matters here", ""]
    out += ["## decision" if markdown else "decision:", "", decision.sentence if markdown
            else f"  {decision.sentence}"]
    return out


def _effect(h: Hypothesis) -> str:
    if h.effect is None:
        return "-"
    if h.interval is None:  # H3: the largest prompt's share of the limit
        return f"{h.effect:.0%} of the limit"
    return f"{h.effect:+.2f} [{h.interval[0]:+.2f}, {h.interval[1]:+.2f}]"


def _show(value: Any) -> str:
    return "-" if value is None else str(value)
