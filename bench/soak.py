"""Soak: N jobs against a server with 30% faults, K SIGKILLs at random moments, then the checks.

Two copies of one experiment run against the project's fault server (its own process, every fault
kind it knows, 30% of requests in all):

- `whole` runs to completion without interruption (`runner run` again while jobs failed: a failed job
  is retried on the next run);
- `killed` is SIGKILLed K times at random moments and resumed each time, then run to completion.

Then: every planned job is stored exactly once, every stored answer is the one the server gives for
that job's request, the count of stored answers never went down across a kill (nothing finished was
lost), and `runner report --format json` of the two copies is byte-identical.
Run: .venv/bin/python bench/soak.py [--jobs 10000] [--kills 10] [--seed 1] [--latency-s 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.testing.fault_server import answer_text, request_key  # noqa: E402

# 30% in all, over every kind the fault server knows.
FAULTS = {"rate-429": 0.05, "rate-500": 0.04, "rate-503": 0.04, "rate-reset": 0.04, "rate-hang": 0.02,
          "rate-malformed": 0.03, "rate-empty-choices": 0.03, "rate-truncated": 0.03, "rate-garbage": 0.02}
JOBS_PER_ITEM = 8  # 2 prompts x 2 temperatures x 2 repeats


def start_server(seed: int, latency_s: float) -> tuple[subprocess.Popen[str], str]:
    flags = [f"--{k}={v}" for k, v in FAULTS.items()] + ["--hang-s=1", "--retry-after-s=0", f"--seed={seed}",
                                                         f"--latency-s={latency_s}"]
    proc = subprocess.Popen([sys.executable, "-m", "runner.testing.fault_server", "--port", "0", *flags],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        raise SystemExit(f"fault server did not start: {line!r}")
    return proc, line.split()[-1]


def write_project(folder: Path, url: str, items: int) -> tuple[Path, Path]:
    (folder / "templates").mkdir()
    (folder / "templates" / "a.j2").write_text("Validate: {{ config | tojson }}")
    rows = [{"id": f"s{n:05d}", "config": {"port": n}, "valid": n % 3 == 0} for n in range(items)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths = []
    for name in ("whole", "killed"):
        exp = {
            "name": "soak",
            "backend": {"kind": "openai", "base_url": f"{url}/v1", "concurrency": 32, "timeout_s": 0.5,
                        "max_retries": 3, "retry_backoff_s": 0, "retry_max_backoff_s": 0},
            "models": [{"name": "fake", "id": "fake-model"}],
            "prompts": {"directory": "templates", "system": "You validate configs.",
                        "variants": [{"name": "a", "file": "a.j2"}, {"name": "b", "text": "B {{ config | tojson }}"}]},
            "dataset": {"path": "data.jsonl", "label_field": "valid"},
            "sampling": {"temperature": [0.0, 0.5], "seed": 1, "max_tokens": 16},
            "repeats": 2,
            "scorers": [{"type": "binary", "field": "valid"}],
        }
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(exp, sort_keys=False))
        paths.append(path)
    return paths[0], paths[1]


def runner(verb: str, path: Path, *flags: str) -> subprocess.Popen[bytes]:
    # --no-cache: the two copies ask the same requests, and the store's own resume is what is soaked here
    # (with the response cache the killed copy would take the answers of the open batch from it).
    if verb == "run":
        flags = (*flags, "--no-cache")
    return subprocess.Popen([sys.executable, "-m", "runner.cli", verb, str(path), *flags],
                            cwd=path.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def store_rows(path: Path) -> list[tuple[str, str, str | None, str | None]]:
    store = path.parent / "results" / path.stem / "results.sqlite"
    if not store.is_file():
        return []
    with sqlite3.connect(store, timeout=30) as conn:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name='jobs'").fetchone() is None:
            return []
        return conn.execute("SELECT job_id, status, text, request_json FROM jobs").fetchall()


def ok_count(path: Path) -> int:
    return sum(1 for r in store_rows(path) if r[1] == "ok")


def run_to_completion(path: Path, planned: int, max_rounds: int = 20) -> int:
    """`runner run` until every planned job is stored ok; returns the number of runs it took."""
    for round_ in range(1, max_rounds + 1):
        proc = runner("run", path, "--quiet", "--no-report")
        _, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{path.name}: runner run exited {proc.returncode}: {err.decode()[-500:]}")
        if ok_count(path) == planned:
            return round_
    raise SystemExit(f"{path.name}: not complete after {max_rounds} runs")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    # Server-side delay per answer: long enough a run that every kill lands in the middle of one (at
    # zero latency the runner sends 10,000 jobs in a few seconds and the later kills find nothing left).
    parser.add_argument("--latency-s", type=float, default=0.05)
    args = parser.parse_args()
    items = max(1, args.jobs // JOBS_PER_ITEM)
    planned = items * JOBS_PER_ITEM
    rng = random.Random(args.seed)
    server, url = start_server(args.seed, args.latency_s)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            whole, killed = write_project(Path(tmp), url, items)
            rounds = run_to_completion(whole, planned)
            print(f"whole: {planned} jobs complete after {rounds} run(s), {time.monotonic() - started:.0f} s")

            stored_before_kill: list[int] = []
            lost = 0
            for _ in range(args.kills):
                if ok_count(killed) == planned:
                    break
                before = ok_count(killed)
                proc = runner("run", killed, "--quiet", "--no-report")
                time.sleep(rng.uniform(0.3, 3.0))
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                after = ok_count(killed)
                lost += max(0, before - after)
                stored_before_kill.append(after)
            print(f"killed: {len(stored_before_kill)} SIGKILLs; answers stored after each: {stored_before_kill}")
            rounds = run_to_completion(killed, planned)

            problems = []
            duplicates = 0
            for path in (whole, killed):
                rows = store_rows(path)
                ids = [r[0] for r in rows]
                duplicates += len(ids) - len(set(ids))
                if len(ids) != planned or len(set(ids)) != planned:
                    problems.append(f"{path.name}: {len(ids)} rows, {len(set(ids))} distinct, {planned} planned")
                wrong = [r[0] for r in rows
                         if r[1] == "ok" and r[2] != answer_text(request_key(json.loads(r[3] or "{}")))]
                if wrong:
                    problems.append(f"{path.name}: {len(wrong)} answers differ from the server's")
            if lost:
                problems.append(f"killed: {lost} stored answers disappeared after a kill")
            reports = []
            for path in (whole, killed):
                proc = runner("report", path, "--format", "json")
                out, err = proc.communicate(timeout=600)
                if proc.returncode != 0:
                    problems.append(f"{path.name}: report exited {proc.returncode}: {err.decode()[-300:]}")
                reports.append(out.replace(path.stem.encode(), b"<name>"))
            identical = reports[0] == reports[1]
            if not identical:
                problems.append("the two reports differ")
            print(f"jobs {planned}; lost {lost}; stored twice {duplicates}; reports byte-identical: "
                  f"{identical} ({len(reports[0])} bytes); killed copy completed in {rounds} more run(s); "
                  f"{time.monotonic() - started:.0f} s in all")
            for problem in problems:
                print("PROBLEM:", problem)
            return 1 if problems else 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
