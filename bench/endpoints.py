"""Does a pool of endpoints scale? Jobs per second of one run on three servers (`backend.endpoints`)
against one run on one of them (`base_url`), at the same concurrency per endpoint, same jobs.

The servers are the repo's fault server with no faults and a fixed latency per answer (20 ms by
default), each in its own process, so that what is measured is the runner spreading requests, not
three servers sharing one interpreter. Throughput is the run's jobs divided by its wall time, both
read back from the store. The goal is about 3x: three servers, each kept as busy as the one alone.
Run: .venv/bin/python bench/endpoints.py [--items 150] [--concurrency 2] [--latency-s 0.02]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.cli import main as runner_main  # noqa: E402


def start_server(latency_s: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "runner.testing.fault_server", "--port", "0",
                             "--latency-s", str(latency_s)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        sys.exit(f"the fault server did not start: {line!r}")
    return proc, line.removeprefix("listening on ") + "/v1"


def run(folder: Path, name: str, backend: dict[str, Any], items: int, repeats: int) -> tuple[int, float]:
    exp = {
        "name": name,
        "backend": {"kind": "openai", "timeout_s": 30, **backend},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"variants": [{"name": "p", "text": "Is {{ x }} even?"}]},
        "dataset": {"path": "data.jsonl", "label_field": None},
        "sampling": {"temperature": 0.7, "max_tokens": 16},
        "repeats": repeats,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(exp))
    # --no-cache: both runs ask the same requests; without it the second is answered from the
    # response cache and measures nothing (it printed 160x).
    assert runner_main(["run", str(path), "--quiet", "--no-report", "--no-cache"]) == 0
    with sqlite3.connect(folder / "results" / name / "results.sqlite") as conn:
        jobs = conn.execute("SELECT COUNT(*) FROM jobs WHERE status='ok'").fetchone()[0]
        start, end = conn.execute("SELECT started_at, ended_at FROM runs").fetchone()
    assert jobs == items * repeats, f"{name}: {jobs} of {items * repeats} jobs succeeded"
    return int(jobs), end - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight per endpoint")
    parser.add_argument("--latency-s", type=float, default=0.02)
    args = parser.parse_args()
    servers = [start_server(args.latency_s) for _ in range(3)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "data.jsonl").write_text("".join(json.dumps({"id": f"i{n}", "x": n}) + "\n"
                                                       for n in range(args.items)))
            urls = [url for _, url in servers]
            one = run(folder, "one", {"base_url": urls[0], "concurrency": args.concurrency}, args.items, args.repeats)
            pool = run(folder, "three", {"endpoints": urls, "concurrency": args.concurrency}, args.items,
                       args.repeats)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(timeout=10)
    rate_one, rate_pool = one[0] / one[1], pool[0] / pool[1]
    ideal = args.concurrency / args.latency_s
    print(f"latency {args.latency_s * 1000:g} ms per answer, concurrency {args.concurrency} per endpoint, "
          f"{one[0]} jobs per run")
    print(f"one endpoint:    {one[1]:6.2f} s  {rate_one:7.1f} jobs/s  (a server alone allows {ideal:.0f})")
    print(f"three endpoints: {pool[1]:6.2f} s  {rate_pool:7.1f} jobs/s  (three allow {3 * ideal:.0f})")
    print(f"ratio: {rate_pool / rate_one:.2f}x")


if __name__ == "__main__":
    main()
