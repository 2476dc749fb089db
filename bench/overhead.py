"""Runner overhead: jobs per second through `runner run` vs a bare aiohttp loop, same requests.

Both send the same N chat requests at the same concurrency to the project's fault server (in its
own process, zero latency, no faults). The bare loop does nothing but POST and read; `runner run`
also plans, renders templates, hashes, retries, scores and commits every job to SQLite. The ratio
is the price of that bookkeeping. Run: .venv/bin/python bench/overhead.py [--jobs 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.cli import main as runner_main  # noqa: E402
from runner.config.loader import load_experiment  # noqa: E402
from runner.plan.planner import build_plan  # noqa: E402


def write_experiment(folder: Path, url: str, jobs: int, concurrency: int) -> Path:
    items = jobs // 4  # 2 prompts x 2 temperatures
    (folder / "data.jsonl").write_text(
        "".join(f'{{"id": "b{n}", "config": {{"port": {n}}}, "valid": {str(n % 2 == 0).lower()}}}\n'
                for n in range(items)))
    exp = {
        "name": "overhead",
        "backend": {"kind": "openai", "base_url": f"{url}/v1", "concurrency": concurrency, "max_retries": 0},
        "models": [{"name": "fake", "id": "fake-model"}],
        "prompts": {"variants": [{"name": "a", "text": "A {{ config | tojson }}"},
                                 {"name": "b", "text": "B {{ config | tojson }}"}]},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": {"temperature": [0.0, 0.5], "max_tokens": 16},
        "scorers": [{"type": "binary", "field": "valid"}],
    }
    path = folder / "overhead.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


async def bare_loop(url: str, bodies: list[dict[str, object]], concurrency: int) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(body: dict[str, object]) -> None:
            async with sem, session.post(f"{url}/v1/chat/completions", json=body) as resp:
                await resp.json()

        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    server = subprocess.Popen([sys.executable, "-m", "runner.testing.fault_server", "--port", "0"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = write_experiment(Path(tmp), url, args.jobs, args.concurrency)
            plan = build_plan(load_experiment(path))
            bodies = [{"model": j.cell.variant.model_id, "messages": list(j.messages), **j.params}
                      for j in plan.jobs()]
            bare_s = asyncio.run(bare_loop(url, bodies, args.concurrency))
            start = time.perf_counter()
            code = runner_main(["run", str(path), "--quiet", "--no-report"])
            runner_s = time.perf_counter() - start
            assert code == 0
    finally:
        server.terminate()
        server.wait()
    n = len(bodies)
    print(f"jobs: {n}, concurrency: {args.concurrency}")
    print(f"bare aiohttp loop: {bare_s:6.2f} s  {n / bare_s:8.1f} jobs/s")
    print(f"runner run:        {runner_s:6.2f} s  {n / runner_s:8.1f} jobs/s  (plan, render, hash, score, store)")
    print(f"ratio runner/bare throughput: {bare_s / runner_s:.2f}")


if __name__ == "__main__":
    main()
