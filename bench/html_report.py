"""`runner report --format html` on a large store: render time, peak memory, the file's size, and the
time a real headless Chromium takes to load it (offline), beside `--format json` on the same store.

Uses bench/read_path.py's store (N jobs against the fault server, built once and cached in
--folder): 2 prompts x 2 temperatures x 5 repeats over N/20 items, a binary scorer, a threshold.
Each verb runs in its own process, --runs times; the best run is printed (the machine is shared).

Run: .venv/bin/python bench/html_report.py [--jobs 10000] [--folder /tmp/html_report_bench] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from read_path import build_store, timed  # bench/read_path.py: the same store, the same child process

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.testing.browser import BrowserError, Chromium, find_chromium  # noqa: E402 - after the path


def best(args: list[str], output: Path | None, runs: int) -> tuple[float, float]:
    results = [timed(args, output) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def browser_load(page: Path) -> str:
    if find_chromium() is None:
        return "chromium: not installed (scripts/install_chromium.sh), load not measured"
    try:
        with Chromium(timeout_s=120) as browser:
            start = time.perf_counter()
            loaded = browser.load(page)
            load_s = time.perf_counter() - start
            rows = loaded.evaluate("document.querySelectorAll('tr.item').length")
            plots = loaded.evaluate("document.querySelectorAll('svg.plot').length")
            start = time.perf_counter()
            loaded.evaluate("(() => { const f = document.getElementById('filters'); f.elements.right.value = '0'; "
                            "f.dispatchEvent(new Event('change')); })()")
            filter_s = time.perf_counter() - start
    except BrowserError as exc:
        return f"chromium: {exc}"
    errors = f", {len(loaded.errors)} console errors" if loaded.errors else ", no console errors"
    return (f"chromium (offline): loaded in {load_s:.2f} s ({rows} item rows, {plots} plots{errors}); "
            f"one filter change {filter_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/html_report_bench"))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    path = build_store(args.folder, args.jobs)
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "report.html"
        json_s, json_mb = best(["report", str(path), "--format", "json"], None, args.runs)
        html_s, html_mb = best(["report", str(path), "--format", "html", "--output", str(html)], None, args.runs)
        size = html.stat().st_size
        load = browser_load(html)
    print(f"store: {args.jobs} jobs ({args.folder})")
    print(f"report --format json: {json_s:.2f} s, peak RSS {json_mb:.0f} MB (best of {args.runs})")
    print(f"report --format html: {html_s:.2f} s, peak RSS {html_mb:.0f} MB (best of {args.runs}); "
          f"{html_s / json_s:.2f}x the json report's time")
    print(f"html file: {size:,} bytes ({size / args.jobs:.0f} bytes per job)")
    print(load)


if __name__ == "__main__":
    main()
