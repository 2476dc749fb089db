"""SIGTERM to exit: how long `runner run` takes to stop while something is stuck.

Three ways to be stuck, each in its own `runner run` child process against the project's fault
server on loopback (concurrency 1, so six jobs are stored first):

- spin:    a `python` scorer in `while True` (pure Python: it holds the GIL in turns);
- regex:   the regex scorer backtracking on `^(a|a)*$` with a ten-minute timeout_s (C code);
- request: the server holding the request of the seventh job, never answering.

Each trial waits until the run is stuck there, sends SIGTERM, and times it until the process has
exited (exit code 143 expected, the six stored jobs checked). Target: every trial under 1 s.
Run: .venv/bin/python bench/sigterm.py [--trials 5]
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.testing.fault_server import FaultPlan, ThreadedFaultServer  # noqa: E402

TARGET_S = 1.0
SPIN = '''
from pathlib import Path

def score(text, finish_reason, fields):
    if fields["id"] == "i03":
        Path(__file__).with_name("spinning").touch()
        while True:
            pass
    return True
'''


def _experiment(folder: Path, url: str, scorers: list[dict[str, Any]]) -> Path:
    (folder / "data.jsonl").write_text("".join(f'{{"id": "i{n:02d}", "valid": true}}\n' for n in range(8)))
    (folder / "spin.py").write_text(SPIN)
    exp = {"name": "sigterm", "backend": {"kind": "openai", "base_url": f"{url}/v1", "concurrency": 1,
                                          "timeout_s": 600, "max_retries": 0},
           "models": [{"name": "fake", "id": "fake-model"}],
           "prompts": {"variants": [{"name": "a", "text": "item {{ id }}"}]},
           "dataset": {"path": "data.jsonl", "label_field": "valid"},
           "repeats": 2, "scorers": scorers, "limits": {"scorer_timeout_s": 600}}
    path = folder / "sigterm.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def _stored(folder: Path) -> int:
    store = folder / "results" / "sigterm" / "results.sqlite"
    if not store.is_file():
        return 0
    with sqlite3.connect(store, timeout=10) as conn:
        has_jobs = conn.execute("SELECT 1 FROM sqlite_master WHERE name='jobs'").fetchone()
        return conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] if has_jobs else 0


def trial(scenario: str) -> float:
    scorers: list[dict[str, Any]] = {
        "spin": [{"type": "python", "function": "spin:score"}],
        "regex": [{"type": "regex", "pattern": "^(a|a)*$", "timeout_s": 600}],
        "request": [{"type": "exact"}],
    }[scenario]
    plan = {"spin": FaultPlan(), "regex": FaultPlan(script={"item i03": ("a" * 40 + "!", "stop")}),
            "request": FaultPlan(hold_after=6)}[scenario]
    with tempfile.TemporaryDirectory() as tmp, ThreadedFaultServer(plan) as server:
        folder = Path(tmp)
        path = _experiment(folder, server.url, scorers)
        proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "run", str(path), "--quiet", "--no-report",
                                 "--no-cache"],
                                cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            stuck: Callable[[], bool] = {
                "spin": (folder / "spinning").exists,
                "regex": lambda: server.stats()["requests"] >= 7,
                "request": lambda: server.stats()["held"] >= 1,
            }[scenario]
            deadline = time.monotonic() + 30
            while not stuck():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{scenario}: the run ended or never got stuck: {proc.communicate()[1]}")
                time.sleep(0.01)
            time.sleep(0.3)  # well inside the scorer / the request by now
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            latency = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        if proc.returncode != 143 or _stored(folder) != 6:
            raise SystemExit(f"{scenario}: exit {proc.returncode}, {_stored(folder)} jobs stored (expected 143, 6)")
    return latency


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5, help="trials per scenario")
    args = parser.parse_args()
    worst = 0.0
    for scenario in ("spin", "regex", "request"):
        latencies = [trial(scenario) for _ in range(args.trials)]
        worst = max(worst, *latencies)
        shown = ", ".join(f"{s * 1000:.0f}" for s in latencies)
        print(f"{scenario:8} SIGTERM -> exit 143 in ms: {shown}  (max {max(latencies) * 1000:.0f})")
    verdict = "met" if worst < TARGET_S else "NOT met"
    print(f"max {worst * 1000:.0f} ms over {3 * args.trials} trials; target < {TARGET_S * 1000:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
