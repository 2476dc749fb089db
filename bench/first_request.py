"""Time to the first request of a resumed run: a 100,000-job plan whose store holds 50,000 of them.

The plan is 1,000 items x 2 prompts x 50 temperatures (one repeat); the store holds its first
50,000 jobs (as a run stopped half way leaves it), written straight into it. `runner run` then has
to find what is left before it sends anything. The bench times, from starting the process, the
first request the fault server sees, and `runner plan` (which counts what is stored), then stops
the run. Pass `--code DIR` to time another checkout of the runner (e.g. the main branch) on the
same files.
Run: .venv/bin/python bench/first_request.py [--code DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.config.loader import load_experiment  # noqa: E402
from runner.plan.planner import build_plan  # noqa: E402
from runner.store import Store  # noqa: E402
from runner.testing.fault_server import FaultPlan, ThreadedFaultServer  # noqa: E402

ITEMS, TEMPERATURES, DONE = 1000, 50, 50_000


def write_experiment(folder: Path, url: str) -> Path:
    (folder / "data.jsonl").write_text(
        "".join(f'{{"id": "b{n}", "config": {{"port": {n}}}, "valid": {str(n % 2 == 0).lower()}}}\n'
                for n in range(ITEMS)))
    exp = {
        "name": "first", "backend": {"kind": "openai", "base_url": f"{url}/v1", "concurrency": 4, "max_retries": 0},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"system": "You validate configs.",
                    "variants": [{"name": "a", "text": "A {{ config | tojson }}"},
                                 {"name": "b", "text": "B {{ config | tojson }}"}]},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": {"temperature": [round(t / 100, 2) for t in range(TEMPERATURES)], "max_tokens": 16},
        "scorers": [{"type": "binary", "field": "valid"}],
    }
    path = folder / "first.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def fill_store(path: Path) -> None:
    plan = build_plan(load_experiment(path))
    store = Store.open(plan.experiment.store_path())
    try:
        run_id = store.start_run(name="first", experiment_hash="-", experiment_path=path, planned=DONE, args={})
        with store.conn:  # one transaction, not one per job as a run commits them: this is set-up
            store.conn.execute("BEGIN")
            store.conn.executemany(
                "INSERT INTO jobs (job_id, run_id, cell_key, model, item_id, repeat, status, attempts, text, "
                "finish_reason, finished_at) VALUES (?, ?, ?, ?, ?, ?, 'ok', 1, '{\"valid\": true}', 'stop', ?)",
                ((job.job_id, run_id, job.cell.key(), job.cell.variant.model, job.item.id, job.repeat, time.time())
                 for job in itertools.islice(plan.jobs(), DONE)))
        store.finish_run(run_id, status="interrupted", succeeded=DONE, failed=0)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", type=Path, default=ROOT, help="the runner checkout to time (default: this one)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.code.resolve())}
    with tempfile.TemporaryDirectory() as tmp, ThreadedFaultServer(FaultPlan()) as server:
        folder = Path(tmp)
        path = write_experiment(folder, server.url)
        fill_store(path)
        cli = [sys.executable, "-m", "runner.cli"]

        started = time.monotonic()
        planned = subprocess.run([*cli, "plan", str(path), "--show", "0"], env=env, cwd=folder,
                                 capture_output=True, text=True)
        plan_s = time.monotonic() - started
        store_line = next(line for line in planned.stdout.splitlines() if line.startswith("store:"))

        started = time.monotonic()
        proc = subprocess.Popen([*cli, "run", str(path), "--quiet", "--no-report", "--no-cache"], env=env, cwd=folder,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while server.stats()["requests"] == 0:
                if proc.poll() is not None:
                    raise SystemExit(f"the run ended first: {proc.communicate()[1]}")
                time.sleep(0.005)
            first_s = time.monotonic() - started
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            stop_s = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    print(f"code: {args.code}")
    print(f"plan: {ITEMS * 2 * TEMPERATURES:,} jobs, {DONE:,} stored (the first ones)")
    print(f"runner plan: {plan_s:.2f} s ({store_line.split(': ', 2)[-1]})")
    print(f"runner run: first request after {first_s:.2f} s (process start included); SIGTERM -> exit "
          f"{proc.returncode} in {stop_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
