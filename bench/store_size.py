"""The store's size for N jobs with long answers: what storing the raw response once saves.

Runs an experiment of N jobs against the project's fault server (its own process, zero latency)
scripted to answer every request with the same ~5 KB JSON text, then prints the store's size in
total and per job, and how much of it the text and the raw responses take. Run it with the runner
under test on PYTHONPATH to compare two versions.

Run: .venv/bin/python bench/store_size.py [--jobs 10000] [--answer-bytes 5000] [--folder /tmp/store_size]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

RUNNER = [sys.executable, "-m", "runner.cli"]


def answer(size: int) -> str:
    head = {"valid": True, "confidence": 0.9, "failures": [], "note": ""}
    return json.dumps({**head, "note": "x" * max(0, size - len(json.dumps(head)))})


def write_experiment(folder: Path, url: str, jobs: int) -> Path:
    repeats = 5
    items = jobs // (2 * 2 * repeats)  # 2 prompts x 2 temperatures x 5 repeats
    (folder / "data.jsonl").write_text(
        "".join(f'{{"id": "b{n:05d}", "config": {{"port": {n}}}, "valid": {str(n % 2 == 0).lower()}}}\n'
                for n in range(items)))
    exp = {
        "name": "store_size",
        "backend": {"kind": "openai", "base_url": f"{url}/v1", "concurrency": 16, "max_retries": 0},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"variants": [{"name": "a", "text": "A {{ config | tojson }}"},
                                 {"name": "b", "text": "B {{ config | tojson }}"}]},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": {"temperature": [0.0, 0.5], "seed": 1, "max_tokens": 2048},
        "repeats": repeats,
        "scorers": [{"type": "binary", "field": "valid"}],
    }
    path = folder / "store_size.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--answer-bytes", type=int, default=5000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/store_size"))
    args = parser.parse_args()
    shutil.rmtree(args.folder, ignore_errors=True)
    args.folder.mkdir(parents=True)
    script = json.dumps({"A ": [answer(args.answer_bytes), "stop"], "B ": [answer(args.answer_bytes), "stop"]})
    server = subprocess.Popen([*RUNNER[:1], "-m", "runner.testing.fault_server", "--port", "0", "--script", script],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    try:
        path = write_experiment(args.folder, url, args.jobs)
        started = time.monotonic()
        subprocess.run([*RUNNER, "run", str(path), "--quiet", "--no-report"], check=True, cwd=args.folder)
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait()
    store = args.folder / "results" / "store_size" / "results.sqlite"
    size = sum(p.stat().st_size for p in store.parent.iterdir() if p.name.startswith(store.name))
    with sqlite3.connect(store) as conn:
        jobs, text, raw = conn.execute(
            "SELECT COUNT(*), SUM(length(CAST(text AS BLOB))), SUM(length(CAST(response_json AS BLOB))) FROM jobs"
        ).fetchone()
    mib = 1024 * 1024
    print(f"{jobs} jobs, answers of {args.answer_bytes} bytes: store {size / mib:.1f} MiB "
          f"({size / jobs / 1024:.1f} KiB per job); text {text / mib:.1f} MiB, raw responses {raw / mib:.1f} MiB; "
          f"run {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
