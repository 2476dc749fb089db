"""A soak against the fault server: every fault kind at once, an API key the server echoes back.

Runs N jobs (default 2000) at concurrency 32 against the project's fault server in its own process,
with ~35% of requests faulted across all its kinds (rate limits, 5xx, resets, hangs past the
timeout, cut-off, garbled and empty answers, header echoes, 404s, null content, bodies over the
cap), then prints what the store says: jobs stored ok and failed (by reason), attempts, the run's
status, the time taken, and whether the key's bytes appear anywhere in the results folder.

Run: .venv/bin/python bench/fault_soak.py [--jobs 2000] [--folder /tmp/fault_soak]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

RATES = {"429": 0.05, "500": 0.04, "503": 0.04, "reset": 0.04, "hang": 0.01, "malformed": 0.03,
         "empty-choices": 0.02, "truncated": 0.02, "garbage": 0.02, "echo-headers": 0.03, "404": 0.01,
         "null-content": 0.03, "huge": 0.01}
KEY = "sk-soak-0123456789abcdef"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/fault_soak"))
    args = parser.parse_args()
    shutil.rmtree(args.folder, ignore_errors=True)
    args.folder.mkdir(parents=True)
    flags = [f"--rate-{kind}={rate}" for kind, rate in RATES.items()]
    server = subprocess.Popen([sys.executable, "-m", "runner.testing.fault_server", "--port", "0", "--seed", "7",
                               "--hang-s", "1", "--huge-bytes", str(128 * 1024), *flags],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    items = args.jobs // 8  # 2 prompts x 2 temperatures x 2 repeats
    (args.folder / "data.jsonl").write_text("".join(
        f'{{"id": "s{n:05d}", "config": {{"port": {n}}}, "valid": {str(n % 3 == 0).lower()}}}\n' for n in range(items)))
    exp = {
        "name": "fault_soak",
        "backend": {"kind": "openai", "base_url": f"{url}/v1", "api_key_env": "SOAK_KEY", "concurrency": 32,
                    "timeout_s": 0.3, "max_retries": 3, "retry_backoff_s": 0, "retry_max_backoff_s": 0,
                    "max_response_bytes": 64 * 1024},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"variants": [{"name": "a", "text": "A {{ config | tojson }}"},
                                 {"name": "b", "text": "B {{ config | tojson }}"}]},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": {"temperature": [0.0, 0.5], "seed": 1, "max_tokens": 16},
        "repeats": 2,
        "scorers": [{"type": "binary", "field": "valid"}],
    }
    path = args.folder / "fault_soak.yaml"
    path.write_text(yaml.safe_dump(exp))
    try:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(path), "--quiet", "--no-report",
                               "--no-cache"],
                              env={**os.environ, "SOAK_KEY": KEY}, capture_output=True, text=True)
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        server.wait()
    store = args.folder / "results" / "fault_soak" / "results.sqlite"
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT status, attempts, error FROM jobs").fetchall()
        runs = [r[0] for r in conn.execute("SELECT status FROM runs")]
    failed = collections.Counter((e or "").split(":")[0] for s, _, e in rows if s == "failed")
    leaked = any(KEY.encode() in p.read_bytes() for p in (args.folder / "results").rglob("*") if p.is_file())
    leaked = leaked or KEY in done.stdout + done.stderr
    print(f"{len(rows)} of {args.jobs} jobs stored in {elapsed:.1f} s (exit {done.returncode}, run {runs}): "
          f"{sum(s == 'ok' for s, _, _ in rows)} ok, {sum(failed.values())} failed, "
          f"{sum(a for _, a, _ in rows)} attempts; key in results or output: {leaked}")
    for reason, n in failed.most_common():
        print(f"  failed {n:4d}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
