"""`runner report --format html`: one self-contained page, loaded in a real headless Chromium from disk
with the network off (runner/testing/browser.py): no console error, no request for anything but the
file, the plots the experiment's axes call for, and a response browser that lists every item of
every cell with the answers the fault server gave (known in advance: scripted for two items, a
function of the request for the rest); its filters are tried in the page. Without a browser
(scripts/install_chromium.sh installs one), those tests skip; the checks on the HTML itself run
anyway."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

import runner
from conftest import ITEMS, Project, base_experiment, step_experiment
from runner.cli import main
from runner.testing.browser import Chromium, find_chromium
from runner.testing.fakes import FakeOllama, ThreadedApp
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path("/tmp/html-shots")
needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium on PATH: scripts/install_chromium.sh installs it (as root)")
# Item i01 answers in prose (no JSON) with markup that would run and fetch if it were not escaped; i03 is
# cut off at max_tokens; in every cell.
HOSTILE = "It looks fine to me.<script>console.error('ran')</script><img src='http://127.0.0.1:9/x.png'>"
SCRIPT = {'"name": "svc1"': (HOSTILE, "stop"), '"name": "svc3"': ('{"valid": tr', "length")}


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    if find_chromium() is None:
        pytest.skip("no chromium on PATH: scripts/install_chromium.sh installs it (as root)")
    with Chromium() as b:
        yield b


def _experiment(project: Project, url: str) -> Path:
    """2 prompts x 2 temperatures x 6 items x 2 repeats = 48 jobs; a binary scorer; a threshold."""
    exp = base_experiment(f"{url}/v1")
    exp["report"] = {"threshold": {"metric": "accuracy", "min": 0.6}}
    return project.write(exp)


@pytest.fixture
def report_html(project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """(experiment file, its HTML report) after a full run against the fault server."""
    with ThreadedFaultServer(FaultPlan(script=SCRIPT)) as server:
        path = _experiment(project, server.url)
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    out = tmp_path / "report.html"
    assert main(["report", str(path), "--format", "html", "--output", str(out)]) == 0
    assert capsys.readouterr().err == f"wrote {out}\n"
    return path, out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_the_page_is_self_contained_and_its_tables_and_findings_are_in_the_html_itself(
        report_html: tuple[Path, Path]) -> None:
    path, out = report_html
    html = out.read_text(encoding="utf-8")
    tags = _tags(html)
    # Nothing loaded from anywhere: no script or style file, no image, no link to a stylesheet.
    assert [t for t, a in tags if t in ("link", "img", "iframe", "object", "embed")] == []
    assert [a for t, a in tags if t == "script" and a.get("src")] == []
    # The report's tables and findings, as `runner report --format json` has them, are there without a script.
    data = json.loads(_cli_json(path))
    for table in data["tables"]:
        assert f">{table['title']}</h3>" in html.replace("—", "\u2014")
    for finding in data["findings"]:
        assert _escaped(finding["text"]) in html
    assert "jobs: 48 planned, 48 succeeded, 0 failed, 0 not run" in html


def _cli_json(path: Path) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", str(path), "--format", "json"]) == 0
    return buf.getvalue()


def _escaped(text: str) -> str:
    from html import escape

    return escape(text)


@needs_chromium
def test_in_a_real_browser_offline_no_errors_the_plots_and_every_item_of_every_cell(
        report_html: tuple[Path, Path], browser: Chromium) -> None:
    path, out = report_html
    page = browser.load(out)
    assert page.errors == []
    assert page.outside_requests == []
    # prompt (categorical): one rate plot; temperature (numeric): one line plot; outcome shares; 4 confusion matrices.
    kinds = page.evaluate("[...document.querySelectorAll('figure')].map(f => f.className + ':' + "
                          "f.querySelectorAll('svg.plot').length)")
    assert kinds == ["plot-rate:1", "plot-lines:1", "plot-outcomes:1"] + ["plot-confusion:1"] * 4
    assert page.evaluate("document.querySelectorAll('svg.plot').length") == 7
    assert page.evaluate("document.querySelectorAll('svg.plot line.threshold').length") == 1
    # Every item of every cell, in dataset order, each with its two repeats.
    cells = page.evaluate("[...document.querySelectorAll('details.cell')].map(c => "
                          "[...c.querySelectorAll('tr.item')].map(r => r.dataset.item + ':' + "
                          "r.querySelectorAll('.answer').length))")
    assert cells == [[f"{i['id']}:2" for i in ITEMS]] * 4
    # The answers are the ones the server gave: what the store holds, repeat by repeat.
    results = runner.results(path)
    stored = [[r.record.text for r in c.results] for c in results.cells]  # type: ignore[union-attr]
    shown = page.evaluate("[...document.querySelectorAll('details.cell')].map(c => "
                          "[...c.querySelectorAll('.answer pre')].map(p => p.textContent))")
    assert shown == stored
    assert sum(text == HOSTILE for cell in shown for text in cell) == 4 * 2  # shown as text, run nowhere
    assert page.screenshot(SHOTS / "test_experiment.png", full_page=True) > 10_000
    assert (SHOTS / "test_experiment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_the_filters_in_the_page_keep_the_rows_asked_for(report_html: tuple[Path, Path], browser: Chromium) -> None:
    path, out = report_html
    page = browser.load(out)

    def shown(outcome: str = "", right: str = "", flips: bool = False, everywhere: bool = False) -> list[str]:
        return page.evaluate(  # type: ignore[no-any-return]
            f"(() => {{ const f = document.getElementById('filters'); f.elements.outcome.value = {outcome!r}; "
            f"f.elements.right.value = {right!r}; f.elements.flips.checked = {str(flips).lower()}; "
            f"f.elements.everywhere.checked = {str(everywhere).lower()}; f.dispatchEvent(new Event('change')); "
            "return [...document.querySelectorAll('tr.item')].filter(r => !r.hidden).map(r => r.dataset.item); })()")

    assert page.evaluate("document.getElementById('filters').hidden") is False
    assert shown("no_json") == ["i01"] * 4
    assert shown("truncated") == ["i03"] * 4
    results = runner.results(path)
    expected_right, expected_flips = [], []
    for c in results.cells:
        stats = results.stats(c, 0)
        for item in ITEMS:
            answers = [s for r, s in zip(c.results, c.scores[0], strict=True) if r.job.item.id == item["id"]]
            if any(s is not None and s.correct for s in answers):
                expected_right.append(item["id"])
            if len(set(stats.answers[(c.cell.key(), item["id"])])) > 1:
                expected_flips.append(item["id"])
    assert 0 < len(expected_flips) < len(expected_right) < 4 * len(ITEMS)  # each filter has something to leave out
    assert shown(right="1") == expected_right
    assert shown(flips=True) == expected_flips
    # i01 and i03 are wrong in every answer of every cell; the others are right somewhere.
    assert shown(everywhere=True) == sorted({"i01", "i03"} | {i["id"] for i in ITEMS if i["id"] not in expected_right},
                                            key=lambda i: int(i[1:])) * 4
    assert page.errors == []


@needs_chromium
def test_a_context_window_study_plots_its_probes_against_the_limit(
        project: Project, tmp_path: Path, browser: Chromium, capsys: pytest.CaptureFixture[str]) -> None:
    exp = base_experiment()
    exp.update(study={"kind": "context_window"}, models=[{"name": "smollm2", "id": "smollm2:135m-instruct-q4_K_M"}],
               prompts={"variants": [{"name": "p", "text": "Is this config valid? {{ config | tojson }}"}]},
               sampling={"temperature": 0.0, "max_tokens": 96}, repeats=1)
    fake = FakeOllama()
    fake.default_num_ctx = 700
    with ThreadedApp(fake.app) as server:
        exp["backend"] = {"kind": "ollama", "base_url": server.url, "concurrency": 1}
        path = project.write(exp, name="study.yaml")
        assert main(["run", str(path)]) == 0
    out = tmp_path / "study.html"
    assert main(["report", str(path), "--format", "html", "--output", str(out)]) == 0
    capsys.readouterr()
    page = browser.load(out)
    assert page.errors == [] and page.outside_requests == []
    assert page.evaluate("document.querySelectorAll('svg.plot').length") == 1
    assert page.evaluate("document.querySelector('svg.plot line.limit title').textContent") == "limit 700 tokens"
    # One tick per dataset prompt (every one checked against the limit), one dot per probe.
    assert page.evaluate("document.querySelectorAll('svg.plot line.mark').length") == len(ITEMS)
    probes = page.evaluate("document.querySelectorAll('svg.plot circle.mark').length")
    assert probes == page.evaluate("document.querySelectorAll('table.numbers tbody tr').length") > 3


@needs_chromium
def test_an_investigation_page_has_the_decision_the_hypotheses_the_picks_and_each_step(
        project: Project, tmp_path: Path, browser: Chromium, capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadedFaultServer(FaultPlan(script=SCRIPT)) as server:
        prompts = step_experiment(server.url, "prompts", [{"name": "a", "text": "A {{ config | tojson }}"},
                                                          {"name": "b", "text": "B {{ config | tojson }}"}], 16)
        final = step_experiment(server.url, "final", [{"name": "own", "text": "OWN {{ config | tojson }}"}], 24,
                                repeats=2)
        (project.root / "prompts.yaml").write_text(yaml.safe_dump(prompts))
        (project.root / "final.yaml").write_text(yaml.safe_dump(final))
        inv: dict[str, Any] = {"name": "inv", "question": "Viable at 60%?", "threshold": {"min": 0.6}, "steps": [
            {"name": "prompts", "experiment": "prompts.yaml", "hypothesis": "H1"},
            {"name": "final", "experiment": "final.yaml", "use": {"prompt": {"from": "prompts"}}}]}
        path = project.root / "inv.yaml"
        path.write_text(yaml.safe_dump(inv))
        assert main(["run", str(path), "--quiet", "--no-report"]) == 0
    out = tmp_path / "inv.html"
    assert main(["report", str(path), "--format", "html", "--output", str(out)]) == 0
    capsys.readouterr()
    page = browser.load(out)
    assert page.errors == [] and page.outside_requests == []
    headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
    assert headings[:4] == ["decision", "hypotheses", "picks", "findings by step (most important first within each)"]
    # The steps name no task: the matrix section says so instead of drawing an empty grid.
    assert headings[4:] == ["model-selection matrix", "step 1 prompts (H1)", "step 2 final"]
    assert page.evaluate("document.querySelector('#matrix ~ p:not(.muted)').textContent") == (
        "no experiment here names a task: nothing to put in the grid.")
    rep = runner.api.report_investigation(path)
    assert rep.decision is not None
    assert page.evaluate("document.querySelector('#decision + p .verdict').textContent") == rep.decision.verdict
    verdicts = page.evaluate("[...document.querySelectorAll('#hypotheses + div tbody tr')].map(r => "
                             "r.cells[0].textContent + ' ' + r.cells[7].textContent)")
    assert verdicts == [f"{h.id} {h.verdict}" for h in rep.hypotheses]
    assert page.evaluate("document.querySelectorAll('#picks + table tbody tr').length") == len(rep.picks) == 1
    # Both steps' answers in one browser with one filter form: 2 cells x 6 items, then 1 cell x 6 items.
    assert page.evaluate("document.querySelectorAll('form.filters').length") == 1
    assert page.evaluate("[...document.querySelectorAll('details.cell')].map(c => "
                         "c.querySelectorAll('tr.item').length)") == [6, 6, 6]
    # prompts: rate + outcomes + 2 confusion; final: rate (one model) + outcomes + 1 confusion.
    assert page.evaluate("document.querySelectorAll('svg.plot').length") == 7
    # The steps' experiments have no threshold of their own: each rate plot draws the investigation's.
    assert page.evaluate("[...document.querySelectorAll('svg.plot line.threshold title')].map(t => t.textContent)"
                         ) == ["threshold 0.6"] * 2


def test_html_with_a_verdict_flag_is_refused_before_anything_is_read(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = _experiment(project, "http://127.0.0.1:9")
    out = project.root / "r.html"
    assert main(["report", str(path), "--format", "html", "--fail-on-verdict", "--output", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"runner: {path}: --fail-on-verdict and --junit judge the report; --format html only draws it; "
        "run `runner report` once with --format html, once with the flag\n")
    assert not out.exists()


def test_html_before_any_run_is_the_usual_user_error_and_writes_nothing(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = _experiment(project, "http://127.0.0.1:9")
    out = project.root / "r.html"
    assert main(["report", str(path), "--format", "html", "--output", str(out)]) == 2
    assert capsys.readouterr().err == f"runner: {path}: no results yet; run `runner run {path}` first\n"
    assert not out.exists()


def test_view_serves_the_same_page_on_loopback_until_stopped(report_html: tuple[Path, Path]) -> None:
    path, out = report_html
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "view", str(path), "--no-open"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.fullmatch(rf"serving {re.escape(str(path))} on (http://127\.0\.0\.1:\d+/) \(rendered again on "
                             r"every reload\); Ctrl-C stops\n", line)
        assert match, line
        with urllib.request.urlopen(match.group(1), timeout=30) as reply:
            assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
            assert reply.read().decode("utf-8") == out.read_text(encoding="utf-8")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(match.group(1) + "elsewhere", timeout=30)
        assert missing.value.code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM


def test_an_investigation_as_csv_points_at_the_formats_it_has_html_included(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    path = project.root / "inv.yaml"
    path.write_text(yaml.safe_dump({"name": "inv", "question": "q?", "threshold": {"min": 0.6},
                                    "steps": [{"name": "s", "experiment": "exp.yaml"}]}))
    assert main(["report", str(path), "--format", "csv"]) == 2
    assert capsys.readouterr().err == (f"runner: {path}: an investigation's report is several tables, not one; "
                                       "use --format table, markdown, json or html\n")


@needs_chromium
def test_with_javascript_off_the_tables_findings_plots_and_answers_are_all_there(
        report_html: tuple[Path, Path], browser: Chromium) -> None:
    _, out = report_html
    page = browser.load(out, scripts=False)
    assert page.errors == [] and page.outside_requests == []
    # The script never ran: the filter form it would show is still hidden; everything else is drawn.
    assert page.evaluate("document.getElementById('filters').hidden") is True
    assert page.evaluate("document.querySelector('table.report').getBoundingClientRect().height") > 50
    assert page.evaluate("document.querySelectorAll('ol.findings li').length") > 0
    assert page.evaluate("[...document.querySelectorAll('svg.plot')].filter(s => s.getBoundingClientRect().width"
                         " > 100).length") == 7
    assert page.evaluate("document.querySelectorAll('tr.item').length") == 4 * len(ITEMS)
