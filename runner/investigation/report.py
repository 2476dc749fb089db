"""An investigation's report: each step's report (or study) with what it took from earlier steps,
the picks with their reasons, the hypotheses table and the decision; as data (JSON) and as text
(table, markdown)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.analysis.results import ResultSet
from runner.capabilities.context_window import ContextStudy
from runner.config.schema import Threshold
from runner.diagnosis.diagnose import diagnose
from runner.diagnosis.findings import Finding
from runner.investigation.hypotheses import Decision, Hypothesis, StepEvidence, decide, hypotheses, render_conclusions
from runner.investigation.pick import Pick
from runner.investigation.selection import PickedFrom
from runner.reporting.render import dump_json, render, report_data
from runner.reporting.tables import Report

# The analysis's hypotheses by the names diagnosis tags its findings with (runner.diagnosis.findings).
HYPOTHESIS_OF_TAG = {"prompt engineering": "H1", "sampling randomness": "H2", "model architecture": "H4",
                     "quantization": "H5", "system-prompt interference": "H6"}
FINDINGS_SHOWN_PER_STEP = 3  # in the text; the JSON has them all


@dataclass(frozen=True)
class StepFinding:
    """One of `runner explain`'s findings on a step's results, tied to a hypothesis: the one its tag
    names, else the one the step tests (None when neither says)."""

    step: str
    hypothesis: str | None
    finding: Finding

    def to_dict(self) -> dict[str, Any]:
        f = self.finding
        return {"step": self.step, "hypothesis": self.hypothesis, "kind": str(f.kind), "subject": f.subject,
                "text": f.text, "weight": f.weight}


@dataclass(frozen=True)
class PickRecord:
    """One use of a pick: `step`'s `axis` takes `pick.value`, picked over step `source`'s results."""

    step: str
    source: str
    pick: Pick

    def line(self) -> str:
        return f"pick: {self.step}.{self.pick.axis} = {self.pick.value} ({self.pick.why})"

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "axis": self.pick.axis, "value": self.pick.value, "from": self.source,
                "rule": self.pick.rule, "why": self.pick.why, "evidence": self.pick.evidence}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PickRecord:
        return cls(str(data["step"]), str(data["from"]), Pick.from_dict(data))


@dataclass
class StepReport:
    name: str
    experiment: Path  # as the investigation file writes it
    hypothesis: str | None
    uses: dict[str, Any]  # axis -> the value it took (None: not picked yet)
    status: str  # done | partial | not run | waiting (for an earlier step's pick)
    report: Report | ContextStudy | None = None
    results: ResultSet | None = None  # the step's results, for the hypotheses and the decision (not in JSON)
    store_path: Path | None = None  # where they are stored (the HTML report reads the rendered prompts there)

    @property
    def totals(self) -> dict[str, int] | None:
        return self.report.totals if isinstance(self.report, Report) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "experiment": str(self.experiment), "hypothesis": self.hypothesis,
                               "uses": self.uses, "status": self.status, "totals": self.totals}
        if isinstance(self.report, Report):
            out["report"] = report_data(self.report)
        elif isinstance(self.report, ContextStudy):
            out["study"] = self.report.to_dict()
        return out


@dataclass
class InvestigationReport:
    name: str
    question: str
    threshold: Threshold
    steps: list[StepReport] = field(default_factory=list)
    picks: list[PickRecord] = field(default_factory=list)
    hypotheses: list[Hypothesis] = field(default_factory=list)
    decision: Decision | None = None
    findings: list[StepFinding] = field(default_factory=list)

    def conclude(self) -> InvestigationReport:
        """Fill in the hypotheses table and the decision from the steps' results and studies."""
        sources: dict[str, dict[str, PickedFrom]] = {}
        for p in self.picks:
            candidates = len(p.pick.evidence.get("candidates") or [])
            sources.setdefault(p.step, {})[p.pick.axis] = PickedFrom(p.source, candidates, p.pick.value)
        evidence = [StepEvidence(s.name, s.hypothesis, s.uses, s.results,
                                 s.report if isinstance(s.report, ContextStudy) else None, sources.get(s.name, {}))
                    for s in self.steps]
        self.hypotheses = hypotheses(evidence)
        self.decision = decide(self.threshold, evidence)
        self.findings = [StepFinding(s.name, HYPOTHESIS_OF_TAG.get(f.hypothesis or "", s.hypothesis), f)
                         for s in self.steps if s.results is not None for f in diagnose(s.results)]
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "question": self.question, "threshold": self.threshold.model_dump(),
                "steps": [s.to_dict() for s in self.steps], "picks": [p.to_dict() for p in self.picks],
                "hypotheses": [h.to_dict() for h in self.hypotheses],
                "decision": self.decision.to_dict() if self.decision else None,
                "findings": [f.to_dict() for f in self.findings]}


def render_conclusion(rep: InvestigationReport, fmt: str) -> str:
    """Only the hypotheses table and the decision (the end of `runner run` on an investigation)."""
    if fmt == "json":
        return dump_json({"hypotheses": [h.to_dict() for h in rep.hypotheses],
                          "decision": rep.decision.to_dict() if rep.decision else None})
    if rep.decision is None:
        return ""
    return "\n".join(render_conclusions(rep.hypotheses, rep.decision, fmt == "markdown")).rstrip("\n") + "\n"


def render_investigation(rep: InvestigationReport, fmt: str) -> str:
    """json, table or markdown (csv has no single table to give)."""
    if fmt == "json":
        return dump_json(rep.to_dict())
    md = fmt == "markdown"
    out = [f"# {rep.name}" if md else f"investigation: {rep.name}", "",
           f"{'**question:**' if md else 'question:'} {rep.question} "
           f"({rep.threshold.metric} >= {rep.threshold.min:g})", ""]
    for i, step in enumerate(rep.steps, 1):
        hyp = f" ({step.hypothesis})" if step.hypothesis else ""
        uses = ", ".join(f"{a}={'-' if v is None else v}" for a, v in step.uses.items())
        head = f"step {i} {step.name}{hyp}: {step.experiment}" + (f" with {uses}" if uses else "")
        out += [f"## {head}" if md else head, ""]
        if step.report is None:
            out += [f"{step.status}", ""]
        elif isinstance(step.report, ContextStudy):
            out += [step.report.render().rstrip("\n"), ""]
        else:
            out += [render(step.report, "markdown" if md else "table").rstrip("\n"), ""]
    if rep.picks:
        out += ["## picks" if md else "picks:", ""]
        out += [f"- {p.line()}" if md else f"  {p.line()}" for p in rep.picks]
        out += [""]
    if rep.decision is not None:
        out += render_conclusions(rep.hypotheses, rep.decision, md)
    out += _render_findings(rep.findings, md)
    return "\n".join(out).rstrip("\n") + "\n"


def render_findings(rep: InvestigationReport, fmt: str) -> str:
    """`runner explain` on an investigation: every step's findings with their hypotheses (text, markdown
    or json), most important first within each step."""
    if fmt == "json":
        return dump_json({"name": rep.name, "findings": [f.to_dict() for f in rep.findings]})
    md = fmt == "markdown"
    head = [f"# {rep.name}: findings" if md else f"investigation: {rep.name}: findings by step", ""]
    lines = [f"- [{f.step}, {f.hypothesis}] {f.finding.text}" if f.hypothesis else f"- [{f.step}] {f.finding.text}"
             for f in rep.findings]
    return "\n".join(head + (lines or ["no findings (no step has results yet)"])) + "\n"


def _render_findings(findings: list[StepFinding], md: bool) -> list[str]:
    """The most important findings of each step (as `runner explain` orders them), with the hypothesis."""
    if not findings:
        return []
    out = ["", "## findings by step" if md else "findings by step (most important first; all in --format json):", ""]
    shown: dict[str, int] = {}
    for f in findings:
        shown[f.step] = shown.get(f.step, 0) + 1
        if shown[f.step] > FINDINGS_SHOWN_PER_STEP:
            continue
        tag = f"{f.step}, {f.hypothesis}" if f.hypothesis else f.step
        out.append(f"- [{tag}] {f.finding.text}" if md else f"  [{tag}] {f.finding.text}")
    hidden = sum(max(0, n - FINDINGS_SHOWN_PER_STEP) for n in shown.values())
    if hidden:
        out.append(f"  ... and {hidden} more")
    return out
