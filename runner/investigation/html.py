"""An investigation's HTML report: the question and the decision first, then the hypotheses table with
its verdicts, the picks with their reasons, the findings by step, and each step's own report (tables,
plots, findings, answers; a study: its probes against the limit), on one self-contained page."""

from __future__ import annotations

from html import escape

from runner.capabilities.context_window import ContextStudy
from runner.investigation.report import FINDINGS_SHOWN_PER_STEP, InvestigationReport
from runner.reporting.html.experiment import experiment_sections, study_sections
from runner.reporting.html.matrix import matrix_section
from runner.reporting.html.page import page, verdict_badge
from runner.reporting.html.responses import Prompt
from runner.reporting.matrix import Matrix
from runner.reporting.tables import Report


def investigation_page(rep: InvestigationReport, prompts: dict[str, dict[str, Prompt]],
                       matrix: Matrix | None = None) -> str:
    """`prompts`: step name -> that step's rendered prompts (job id -> prompt), as the browser takes them;
    `matrix`: the steps' model-selection matrix (`runner matrix` of the investigation), drawn as a grid."""
    t = rep.threshold
    nav = "<nav><a href='#decision'>decision</a><a href='#hypotheses'>hypotheses</a><a href='#picks'>picks</a>" \
          "<a href='#findings'>findings</a>" + ("<a href='#matrix'>matrix</a>" if matrix is not None else "") \
          + "".join(f"<a href='#step-{i}'>{escape(s.name)}</a>" for i, s in enumerate(rep.steps, 1)) + "</nav>"
    body = [f"<h1>{escape(rep.name)}</h1><p><b>question:</b> {escape(rep.question)} "
            f"({escape(t.metric)} &ge; {t.min:g})</p>{nav}", _decision(rep), _hypotheses(rep), _picks(rep),
            _findings(rep)]
    if matrix is not None:
        body.append(matrix_section(matrix, level=2))
    filters = True
    for i, step in enumerate(rep.steps, 1):
        hyp = f" ({escape(step.hypothesis)})" if step.hypothesis else ""
        uses = ", ".join(f"{a}={'-' if v is None else v}" for a, v in step.uses.items())
        body.append(f"<h2 id='step-{i}'>step {i} {escape(step.name)}{hyp}</h2><p class='muted'>"
                    f"{escape(str(step.experiment))}" + (f" with {escape(uses)}" if uses else "")
                    + f"; {escape(step.status)}</p>")
        if isinstance(step.report, ContextStudy):
            body.append(study_sections(step.report))
        elif isinstance(step.report, Report) and step.results is not None:
            body.append(experiment_sections(step.report, step.results, prompts.get(step.name, {}), level=3,
                                            anchor=f"s{i}-", filters=filters, bar=rep.threshold))
            filters = False  # one filter form per page: it filters every step's answers
    return page(rep.name, "".join(body))


def _decision(rep: InvestigationReport) -> str:
    d = rep.decision
    if d is None:
        return "<h2 id='decision'>decision</h2><p>no decision yet.</p>"
    return f"<h2 id='decision'>decision</h2><p>{verdict_badge(d.verdict)} {escape(d.sentence)}</p>"


def _hypotheses(rep: InvestigationReport) -> str:
    head = ["", "hypothesis", "step", "what was tested", "effect [95% interval]", "p (Holm)", "items", "verdict",
            "items to decide", "why"]
    rows = []
    for h in rep.hypotheses:
        effect = "-" if h.effect is None else f"{h.effect:+.2f}"
        if h.interval is not None:
            effect += f" [{h.interval[0]:+.2f}, {h.interval[1]:+.2f}]"
        cells = [escape(h.id), escape(h.name), escape(h.step or "-"), escape(h.tested), escape(effect),
                 "-" if h.p is None else f"{h.p:.2g}", str(h.n_items), verdict_badge(h.verdict),
                 "-" if h.items_to_decide is None else str(h.items_to_decide), escape(h.why)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = ("<div class='scroll'><table><thead><tr>" + "".join(f"<th>{escape(x)}</th>" for x in head)
             + f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>") if rows else "<p>none yet.</p>"
    return f"<h2 id='hypotheses'>hypotheses</h2>{table}"


def _picks(rep: InvestigationReport) -> str:
    if not rep.picks:
        return "<h2 id='picks'>picks</h2><p>none yet.</p>"
    rows = "".join(f"<tr><td>{escape(p.step)}</td><td>{escape(p.pick.axis)}</td><td>{escape(str(p.pick.value))}</td>"
                   f"<td>{escape(p.source)}</td><td>{escape(p.pick.why)}</td></tr>" for p in rep.picks)
    return ("<h2 id='picks'>picks</h2><table><thead><tr><th>step</th><th>axis</th><th>value</th><th>picked over</th>"
            f"<th>why</th></tr></thead><tbody>{rows}</tbody></table>")


def _findings(rep: InvestigationReport) -> str:
    """The most important findings of each step in view (as many as the text report shows), the rest
    one click away."""
    if not rep.findings:
        return "<h2 id='findings'>findings by step</h2><p>no findings (no step has results yet).</p>"
    shown: list[str] = []
    rest: list[str] = []
    count: dict[str, int] = {}
    for f in rep.findings:
        count[f.step] = count.get(f.step, 0) + 1
        line = (f"<li><b>{escape(f.step)}</b>" + (f" <span class='muted'>{escape(f.hypothesis)}</span>"
                                                  if f.hypothesis else "") + f": {escape(f.finding.text)}</li>")
        (shown if count[f.step] <= FINDINGS_SHOWN_PER_STEP else rest).append(line)
    more = (f"<details><summary>{len(rest)} more</summary><ul>{''.join(rest)}</ul></details>" if rest else "")
    return (f"<h2 id='findings'>findings by step (most important first within each)</h2><ul>{''.join(shown)}</ul>"
            f"{more}")
