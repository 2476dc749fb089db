"""One self-contained HTML page: styles and the one small script inlined, no external resource at all,
so the file opens offline from disk. Tables, findings, plots and answers are plain HTML and SVG,
readable without the script; the script only adds the response browser's filters."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from runner import __version__
from runner.diagnosis.findings import Finding
from runner.reporting.html.plots import Plot
from runner.reporting.tables import Report, Table

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px 40px;color:#222}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#666;font-size:12px}nav a{margin-right:12px}
table{border-collapse:collapse;margin:6px 0 10px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;
vertical-align:top}th{background:#f4f4f4}table.report td{white-space:nowrap}
.scroll{overflow-x:auto}figure{margin:10px 0 18px}figcaption{font-weight:600;margin-bottom:4px}
.chart{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}table.numbers{font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:4px}
ol.findings li,ul.notes li{margin:3px 0}.answer{border-left:4px solid #bbb;padding:2px 8px;margin:4px 0}
.answer.right{border-color:#009E73}.answer.wrong{border-color:#D55E00}.answer.failed{border-color:#000}
pre{white-space:pre-wrap;word-break:break-word;margin:2px 0;max-height:16em;overflow:auto;background:#fafafa;
font-size:12px}.mark{display:inline-block;border-radius:3px;padding:0 5px;margin:1px;font-size:12px;color:#fff}
.mark.flips{background:#0072B2}.mark.everywhere{background:#D55E00}.score.right{color:#007a55}
.score.wrong{color:#b34400}.outcome{font-size:12px;background:#eee;border-radius:3px;padding:0 4px}
details.cell{border:1px solid #ddd;margin:6px 0;padding:2px 8px}details.cell>summary{cursor:pointer;
font-weight:600}td.id{font-family:monospace}table.items{width:100%}
.filters{position:sticky;top:0;background:#fff;padding:6px 0;
border-bottom:1px solid #ddd;z-index:1}.filters label{margin-right:12px}
.verdict{font-weight:600;border-radius:3px;padding:0 5px}.v-supported,.v-viable{background:#cdeedd}
.v-refuted,.v-inadequate,.v-not-viable{background:#fbd9c9}.v-inconclusive,.v-not-decidable,
.v-not-shown-viable{background:#eee}.v-not-tested,.v-not-judged{background:#f7f7f7}
/* The model-selection grid: Okabe-Ito hues made light enough for black text; the verdict is written in
   every cell too, so nothing rests on colour alone. */
table.matrix td.m-cell{min-width:9em}table.matrix th.m-class{text-align:center}
.m-yes{background:#bfe8d5}.m-maybe{background:#fbe7a8}.m-no{background:#f6c4a8}
.m-not-run{background:repeating-linear-gradient(45deg,#f2f2f2,#f2f2f2 6px,#e4e4e4 6px,#e4e4e4 12px)}
.m-no-experiment{background:#fff;color:#888}.m-no-bar{background:#cfe3f3}.m-not-judged{background:#e8e8e8}
.m-verdict{font-weight:700}.m-rate,.m-n{font-variant-numeric:tabular-nums}.m-source{display:block;
font-size:11px;color:#555;overflow-wrap:anywhere}.m-legend span{display:inline-block;padding:1px 8px;margin:2px;
border:1px solid #ddd;border-radius:3px;font-size:12px}
"""

# Filters for the response browser: a row stays when one of its answers matches the outcome and
# right/wrong chosen, and the marks asked for. Plain DOM, no library; nothing runs without a form.
SCRIPT = """
(function () {
  var form = document.getElementById('filters');
  if (!form) { return; }
  form.hidden = false;
  function apply() {
    var outcome = form.elements.outcome.value, right = form.elements.right.value;
    var flips = form.elements.flips.checked, everywhere = form.elements.everywhere.checked;
    var rows = document.querySelectorAll('tr.item'), shown = 0;
    rows.forEach(function (row) {
      var any = false;
      row.querySelectorAll('.answer').forEach(function (a) {
        var ok = (!outcome || a.dataset.outcome === outcome) && (!right || a.dataset.right === right);
        a.hidden = !ok;
        any = any || ok;
      });
      var keep = any && (!flips || row.dataset.flips === '1') && (!everywhere || row.dataset.everywhere === '1');
      row.hidden = !keep;
      if (keep) { shown += 1; }
    });
    form.elements.shown.value = shown + ' of ' + rows.length + ' item rows shown';
  }
  form.addEventListener('change', apply);
  apply();
})();
"""


def page(title: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}"
            f"<footer class='muted'>runner {escape(__version__)}</footer><script>{SCRIPT}</script></body></html>\n")


def table_html(t: Table, level: int = 3) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in t.headers)
    rows = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in t.rows)
    notes = notes_html(t.notes)
    return (f"<h{level}>{escape(t.title)}</h{level}><div class='scroll'><table class='report'><thead><tr>{head}"
            f"</tr></thead><tbody>{rows}</tbody></table></div>{notes}")


def notes_html(notes: Iterable[str]) -> str:
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return f"<ul class='notes'>{items}</ul>" if items else ""


def findings_html(findings: list[Finding], none_line: str) -> str:
    if not findings:
        return f"<p>{escape(none_line)}</p>"
    return "<ol class='findings'>" + "".join(
        f"<li>{escape(f.text)}" + (f" <span class='muted'>({escape(f.hypothesis)})</span>" if f.hypothesis else "")
        + "</li>" for f in findings) + "</ol>"


def plots_html(plots: list[Plot], none: str = "no plots yet: nothing is scored.") -> str:
    """Plots in order; the confusion matrices (one per cell) side by side."""
    out, grid = [], []
    for p in plots:
        if p.kind == "confusion":
            grid.append(p.html())
        else:
            out.append(p.html())
    if grid:
        out.append("<h3>confusion matrices, per cell</h3><div class='grid'>" + "".join(grid) + "</div>")
    return "".join(out) if out else f"<p>{escape(none)}</p>"


def totals_line(report: Report) -> str:
    t = report.totals
    line = f"jobs: {t['planned']} planned, {t['ok']} succeeded, {t['failed']} failed, {t['missing']} not run"
    if report.from_cache:
        line += f"; {report.from_cache} answers from the response cache"
    if report.prompt_cache:  # the engine's work: how much of the prompts its KV cache spared it
        line += "; prompt tokens taken from the KV cache: " + ", ".join(
            f"{s.variant} {s.hit_share:.2f} of {s.prompt_tokens:,}" for s in report.prompt_cache)
    return line


def verdict_badge(verdict: str) -> str:
    return f"<span class='verdict v-{escape(verdict.replace(' ', '-'))}'>{escape(verdict)}</span>"
