"""An experiment's HTML report (tables, plots, findings, every answer) and a context-window study's
(its probes against the limit), as whole pages or as sections of an investigation's page."""

from __future__ import annotations

from html import escape

from runner.analysis.results import ResultSet
from runner.capabilities.context_window import ContextStudy
from runner.config.schema import Threshold
from runner.reporting.html import svg
from runner.reporting.html.page import findings_html, page, plots_html, table_html, totals_line
from runner.reporting.html.plots import Plot, plots
from runner.reporting.html.responses import Prompt, browser
from runner.reporting.tables import Report


def experiment_page(report: Report, results: ResultSet, prompts: dict[str, Prompt]) -> str:
    exp = results.plan.experiment
    nav = ("<nav><a href='#tables'>tables</a><a href='#findings'>findings</a><a href='#plots'>plots</a>"
           "<a href='#responses'>responses</a></nav>")
    head = (f"<h1>{escape(report.experiment)}</h1>"
            + (f"<p>{escape(exp.description)}</p>" if exp.description else "")
            + f"<p class='muted'>{escape(totals_line(report))}</p>" + nav)
    return page(report.experiment, head + experiment_sections(report, results, prompts, level=2))


def experiment_sections(report: Report, results: ResultSet, prompts: dict[str, Prompt], level: int,
                        anchor: str = "", filters: bool = True, bar: Threshold | None = None) -> str:
    """Tables, findings, plots and the response browser, with headings at `level`; `bar`: the threshold
    the plots draw, if not the experiment's own (an investigation's)."""
    h, sub = f"h{level}", level + 1
    tables = "".join(table_html(t, sub) for t in report.tables)
    # `report.effect`: the answer to the question the experiment asks, first (the text report ends in it).
    answer = (f"<p class='answer' id='{anchor}answer'><strong>Answer:</strong> {escape(report.effect.sentence())}</p>"
              if report.effect is not None else "")
    findings = findings_html(report.findings, report.no_findings_line) if report.scored else \
        "<p>no scorer: nothing to explain.</p>"
    return (f"{answer}<{h} id='{anchor}tables'>tables</{h}>{tables}"
            f"<{h} id='{anchor}findings'>findings (most important first)</{h}>{findings}"
            f"<{h} id='{anchor}plots'>plots</{h}>{plots_html(plots(results, bar), _no_plots(results))}"
            f"<{h} id='{anchor}responses'>responses</{h}>{browser(results, prompts, filters=filters)}")


def _no_plots(results: ResultSet) -> str:
    return "no plots yet: nothing is stored." if results.scorers else \
        "no plots: the experiment has no scorer (the plots are of scores)."


def study_page(name: str, study: ContextStudy) -> str:
    return page(name, f"<h1>{escape(name)}</h1><p class='muted'>a context-window study</p>" + study_sections(study))


def study_sections(study: ContextStudy) -> str:
    """Per variant: its probes plotted against the limit, and the study's text summary."""
    parts = [plots_html(study_plots(study))]
    parts.append("<pre>" + escape(study.render()) + "</pre>")
    return "".join(parts)


def study_plots(study: ContextStudy) -> list[Plot]:
    out = []
    for r in study.results:
        probes = [(p.sent_tokens, p.read_tokens, p.status) for p in r.probes if p.sent_tokens is not None]
        # Studies stored before every prompt's size was kept have only the prompts over the limit.
        sizes = list(r.prompt_tokens) or [int(i["prompt_tokens"]) for i in r.items_over]
        title = (f"{r.variant}: tokens read against tokens sent per probe; limit "
                 f"{r.limit_tokens if r.limit_tokens is not None else 'none found'}; ticks: the dataset's prompts "
                 f"+ max_tokens {study.max_tokens}")
        chart = svg.context_scatter(title, probes, r.limit_tokens, sizes, study.max_tokens)
        numbers = [["words", "sent", "read", "status"]] + [
            [str(p.words), str(p.sent_tokens), "-" if p.read_tokens is None else str(p.read_tokens), p.status]
            for p in r.probes]
        out.append(Plot("context", title, chart, numbers))
    return out
