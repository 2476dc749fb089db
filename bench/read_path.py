"""The read verbs on a large store: `runner report` plus `runner explain`, time and peak memory.

Builds (once, cached in --folder) a store of N jobs by running an experiment against the project's
fault server (its own process, zero latency, a few 500s so some jobs fail), then times each read
verb in its own process and reads its peak RSS. Prints the store's size beside the figures, and
the ratio of the verbs' combined time to the target. With --save-output DIR, the report (JSON)
and the findings (JSON) are written there so two versions of the runner can be compared on the
same store.

Run: .venv/bin/python bench/read_path.py [--jobs 10000] [--folder /tmp/read_path]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml
from fake_experiment import fake_experiment  # bench/fake_experiment.py

ROOT = Path(__file__).resolve().parent.parent
RUNNER = [sys.executable, "-m", "runner.cli"]
TARGET_S = 3.0
TARGET_MB = 300.0


def write_experiment(folder: Path, url: str, jobs: int) -> Path:
    repeats = 5
    items = jobs // (2 * 2 * repeats)  # 2 prompts x 2 temperatures x 5 repeats
    (folder / "data.jsonl").write_text(
        "".join(f'{{"id": "b{n:05d}", "config": {{"port": {n}}}, "valid": {str(n % 2 == 0).lower()}}}\n'
                for n in range(items)))
    exp = fake_experiment("read_path", url, concurrency=16, repeats=repeats, scorer={"confidence_field": "confidence"},
                          report={"threshold": {"metric": "accuracy", "min": 0.6}})
    path = folder / "read_path.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def build_store(folder: Path, jobs: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"built-{jobs}"
    path = folder / "read_path.yaml"
    if marker.exists():
        # A store kept from an older runner may hold scores of an older scoring version: bring them up
        # to date first (a fresh `runner run` stores current scores), so the read verbs are timed as a
        # user meets them after a run, not re-scoring 10,000 answers in memory.
        subprocess.run([*RUNNER, "score", str(path)], check=True, cwd=ROOT, capture_output=True)
        return path
    server = subprocess.Popen([sys.executable, "-m", "runner.testing.fault_server", "--port", "0",
                               "--rate-500", "0.02", "--seed", "7"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    try:
        path = write_experiment(folder, url, jobs)
        subprocess.run([*RUNNER, "run", str(path), "--quiet", "--no-report"], check=True, cwd=ROOT)
    finally:
        server.terminate()
        server.wait()
    marker.write_text("")
    return path


# The verb runs in a child that reports its own peak RSS on its last stderr line once it is done.
_CHILD = ("import resource, sys\n"
          "from runner.cli import main\n"
          "code = main(sys.argv[1:])\n"
          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
          "sys.exit(code)\n")


def timed(args: list[str], output: Path | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one CLI call, in a child process of its own."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    if output is not None:
        output.write_text(done.stdout)
    return elapsed, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/read_path"))
    parser.add_argument("--save-output", type=Path, help="write report.json and explain.json here")
    args = parser.parse_args()
    path = build_store(args.folder, args.jobs)
    store = args.folder / "results" / "read_path" / "results.sqlite"
    size_mb = sum(p.stat().st_size for p in store.parent.glob("results.sqlite*")) / 1e6
    out = args.save_output
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    report_s, report_mb = timed(["report", str(path), "--format", "json"], out / "report.json" if out else None)
    explain_s, explain_mb = timed(["explain", str(path), "--format", "json"], out / "explain.json" if out else None)
    total = report_s + explain_s
    peak = max(report_mb, explain_mb)
    print(f"store: {args.jobs} jobs, {size_mb:.1f} MB on disk ({store})")
    print(f"report:  {report_s:.2f} s, peak RSS {report_mb:.0f} MB")
    print(f"explain: {explain_s:.2f} s, peak RSS {explain_mb:.0f} MB")
    print(f"together: {total:.2f} s ({total / TARGET_S:.2f}x the {TARGET_S:.0f} s target), "
          f"peak {peak:.0f} MB ({peak / TARGET_MB:.2f}x the {TARGET_MB:.0f} MB target)")


if __name__ == "__main__":
    main()
