"""Scale: `runner plan` of a 1,000,000-job experiment with a store present, and a finished 100,000-job
experiment re-run (report included), reported and explained; wall time and peak RSS of each command.

Builds once (kept in --folder) a finished store of 100,000 jobs by running `small.yaml` (5,000 items x
2 prompts x 2 temperatures x 5 repeats) against the project's fault server (its own process, zero
latency). `big.yaml` is the same experiment with 50 repeats: 1,000,000 jobs whose first 100,000 (repeats
0-4) are the ones stored, in the same store (same name). Then, each command in its own process:

- `runner plan big.yaml`            goal < 5 s and < 200 MB
- `runner run small.yaml`           0 requests (the server counts them), goal < 5 s, report included
- `runner report` + `runner explain` of small.yaml (--format json), goal < 10 s together and < 300 MB;
  their outputs (and, not timed, the text forms of both) are compared with the previous run's, kept in
  the folder (same store, other code)

Run: .venv/bin/python bench/scale.py [--folder /tmp/scale] [--items 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from fake_experiment import fake_experiment  # bench/fake_experiment.py

ROOT = Path(__file__).resolve().parent.parent
RUNNER = [sys.executable, "-m", "runner.cli"]


def write_experiments(folder: Path, url: str, items: int) -> tuple[Path, Path]:
    (folder / "data.jsonl").write_text(
        "".join(f'{{"id": "s{n:06d}", "config": {{"port": {n}}}, "valid": {str(n % 2 == 0).lower()}}}\n'
                for n in range(items)))
    paths = []
    for name, repeats in (("small", 5), ("big", 50)):
        # One store for both: big's first repeats are small's jobs (the default folder is the file's stem).
        exp = fake_experiment("scale", url, concurrency=64, max_retries=2, repeats=repeats,
                              backend={"retry_backoff_s": 0, "retry_max_backoff_s": 0},
                              limits={"max_jobs": 1_000_000}, results_dir="results/small")
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(exp))
        paths.append(path)
    return paths[0], paths[1]


_CHILD = ("import resource, sys\n"
          "from runner.cli import main\n"
          "code = main(sys.argv[1:])\n"
          "u = resource.getrusage(resource.RUSAGE_SELF)\n"
          "print(u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr)\n"
          "sys.exit(code)\n")


def timed(args: list[str]) -> tuple[str, float, str]:
    """Wall and CPU seconds (as text), peak RSS (MB) and stdout of one CLI call, in a child process of
    its own. The CPU time is what the command cost, whatever else the machine was doing."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=ROOT, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    rss, cpu = done.stderr.strip().splitlines()[-1].split()
    return f"{elapsed:.2f} s (CPU {float(cpu):.2f} s)", int(rss) / 1024, done.stdout


def requests_served(url: str) -> int:
    with urllib.request.urlopen(f"{url}/_stats") as resp:
        return int(json.load(resp)["requests"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, default=Path("/tmp/scale"))
    parser.add_argument("--items", type=int, default=5000)
    args = parser.parse_args()
    folder: Path = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    # The server's URL is part of every job's hash (backend identity): the store built once is only
    # "finished" against the same port, kept in the folder.
    port_file = folder / "port"
    port = port_file.read_text().strip() if port_file.exists() else "0"
    server = subprocess.Popen([sys.executable, "-m", "runner.testing.fault_server", "--port", port],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    port_file.write_text(url.rsplit(":", 1)[-1])
    try:
        small, big = write_experiments(folder, url, args.items)
        # A response cache of the bench's own: the user's is not filled with 100,000 fake answers, and a
        # store deleted from the folder is built again by requests, not answered from a cache
        # (which printed "0 requests" for a re-run that was no re-run at all).
        os.environ["RUNNER_RESPONSE_CACHE"] = str(folder / "responses.sqlite")
        marker = folder / f"built-{args.items}"
        store = folder / "results" / "small" / "results.sqlite"
        if not marker.exists() or not store.exists():
            start = time.perf_counter()
            subprocess.run([*RUNNER, "run", str(small), "--quiet", "--no-report"], check=True, cwd=ROOT)
            marker.write_text("")
            print(f"built the store: {args.items * 20} jobs in {time.perf_counter() - start:.1f} s")
        size_mb = sum(p.stat().st_size for p in store.parent.glob("results.sqlite*")) / 1e6
        print(f"store: {size_mb:.1f} MB ({store})")

        plan_s, plan_mb, out = timed(["plan", str(big)])
        done_line = next(line for line in out.splitlines() if line.startswith("store:"))
        print(f"runner plan big.yaml ({args.items * 200} jobs): {plan_s}, peak {plan_mb:.0f} MB "
              f"(goal < 5 s, < 200 MB); {done_line.split(': ', 2)[-1]}")
        before = requests_served(url)
        run_s, run_mb, _ = timed(["run", str(small)])
        sent = requests_served(url) - before
        print(f"runner run small.yaml, finished ({args.items * 20} jobs), report included: {run_s}, "
              f"peak {run_mb:.0f} MB, {sent} requests (goal 0 requests, < 5 s)")
        report_s, report_mb, report_out = timed(["report", str(small), "--format", "json"])
        explain_s, explain_mb, explain_out = timed(["explain", str(small), "--format", "json"])
        print(f"runner report: {report_s}, peak {report_mb:.0f} MB; runner explain: {explain_s}, "
              f"peak {explain_mb:.0f} MB (goal together < 10 s, < 300 MB)")
        # The text forms too (not timed: the same work, another rendering).
        report_text = timed(["report", str(small)])[2]
        explain_text = timed(["explain", str(small)])[2]
        # A speed-up must not change a number: the outputs are kept in the folder, and the next run of the
        # bench (on other code, over the same store) says whether they are byte-identical.
        for name, out in (("report.json", report_out), ("explain.json", explain_out), ("report.txt", report_text),
                          ("explain.txt", explain_text)):
            kept = folder / name
            if kept.exists():
                same = kept.read_text() == out
                print(f"{name}: {'byte-identical to' if same else 'DIFFERENT from'} the previous run's")
            kept.write_text(out)
    finally:
        server.terminate()
        server.wait()
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
