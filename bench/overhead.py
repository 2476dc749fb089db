"""Runner overhead: `runner run FILE` as a whole command vs a bare aiohttp loop, same requests.

Both are timed as whole commands (a subprocess each: interpreter start-up, imports, and for the
runner planning, the store, scoring, the progress line and the final report) sending the same N chat
requests at the same concurrency to the project's fault server, in its own process, no faults, with
`--latency-s` of server-side delay (0: zero latency). The bare loop only POSTs and reads the JSON.
A second bare loop does the same through the runner's own transport (runner/backends/wire.py, not
aiohttp's client): the goal is against the aiohttp loop; the second ratio shows what the runner's
other work (store, scoring, planning, report, imports) costs over its transport.
With two cores or more the server is pinned to the first and both clients to the second
(`os.sched_setaffinity`), so the client's cost is what is measured. Every trial alternates the two
and the ratio of their medians is printed (goal: 0.9 at concurrency 64, zero latency).

On a machine shared with other work the bare loop's own time varies from trial to trial, so
`--baseline DIR` times another checkout's `runner run` (e.g. `git worktree add /tmp/before HEAD~3`)
in the same trials (in turn before and after the runner's): the two codes' ratios then come from the
same conditions.
Each line also gives the median CPU time (user + system) of the command, which the load moves less.

Run: .venv/bin/python bench/overhead.py [--jobs 5000] [--concurrency 64] [--trials 3] [--latency-s 0]
     .venv/bin/python bench/overhead.py --scaling   # 20 ms latency, concurrency 8, 32, 64
     .venv/bin/python bench/overhead.py --trials 7 --baseline /tmp/before
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from fake_experiment import fake_experiment  # bench/fake_experiment.py

ROOT = Path(__file__).resolve().parent.parent

BARE = """
import asyncio, json, sys, aiohttp
url, path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
bodies = [json.loads(line) for line in open(path)]
async def main():
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(body):
            async with sem, session.post(url + "/v1/chat/completions", json=body) as resp:
                await resp.json()
        await asyncio.gather(*(one(b) for b in bodies))
asyncio.run(main())
"""

# The same loop on the runner's own transport (runner/backends/wire.py, which `runner run` sends
# plain-http requests through): what is left of the runner's cost when the transport is taken out.
BARE_WIRE = """
import asyncio, importlib.util, json, sys
from urllib.parse import urlsplit
url, path, concurrency, module = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
spec = importlib.util.spec_from_file_location("wire", module)  # the file alone, not runner.backends
wire = sys.modules["wire"] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
spec.loader.exec_module(wire)
WireClient = wire.WireClient
parts = urlsplit(url)
bodies = [json.loads(line) for line in open(path)]
async def main():
    sem = asyncio.Semaphore(concurrency)
    client = WireClient({})
    async def one(body):
        async with sem:
            resp = await client.request("POST", parts.hostname, parts.port, "/v1/chat/completions",
                                        json.dumps(body).encode(), timeout_s=60, cap=1 << 22, error_cap=8192)
            json.loads(resp.body)
    await asyncio.gather(*(one(b) for b in bodies))
    await client.close()
asyncio.run(main())
"""


def write_experiment(folder: Path, url: str, jobs: int, concurrency: int) -> Path:
    items = jobs // 4  # 2 prompts x 2 temperatures
    (folder / "data.jsonl").write_text(
        "".join(f'{{"id": "b{n}", "config": {{"port": {n}}}, "valid": {str(n % 2 == 0).lower()}}}\n'
                for n in range(items)))
    exp = fake_experiment("overhead", url, concurrency=concurrency, seed=None)
    path = folder / "overhead.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def write_bodies(path: Path, out: Path) -> int:
    """The requests the runner will send, as JSON lines, for the bare loop."""
    sys.path.insert(0, str(ROOT))
    from runner.config.loader import load_experiment
    from runner.plan.planner import build_plan

    plan = build_plan(load_experiment(path))
    n = 0
    with out.open("w") as f:
        for j in plan.jobs():
            f.write(json.dumps({"model": j.cell.variant.model_id, "messages": list(j.messages), **j.params}) + "\n")
            n += 1
    return n


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _cpus() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


def _timed(cmd: list[str], cpu: int | None, env: dict[str, str], cwd: Path = ROOT) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env,
                          preexec_fn=(lambda: _pin(cpu)))
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


Times = dict[str, list[tuple[float, float]]]  # command -> (wall, CPU) per trial


def measure(jobs: int, concurrency: int, latency_s: float, trials: int,
            baseline: Path | None = None) -> tuple[int, Times]:
    server_cpu, client_cpu = _cpus()
    server = subprocess.Popen([sys.executable, "-m", "runner.testing.fault_server", "--port", "0",
                               "--latency-s", str(latency_s)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=(lambda: _pin(server_cpu)))
    assert server.stdout is not None
    url = server.stdout.readline().split()[-1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's install runs: bytecode cached
    times: Times = {"bare": [], "bare_wire": [], "runner": [], **({"baseline": []} if baseline is not None else {})}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            path = write_experiment(folder, url, jobs, concurrency)
            n = write_bodies(path, folder / "bodies.jsonl")
            bare = [sys.executable, "-c", BARE, url, str(folder / "bodies.jsonl"), str(concurrency)]
            bare_wire = [sys.executable, "-c", BARE_WIRE, url, str(folder / "bodies.jsonl"), str(concurrency),
                         str(ROOT / "runner" / "backends" / "wire.py")]
            run = [sys.executable, "-m", "runner.cli", "run", str(path)]
            for trial in range(trials):
                times["bare"].append(_timed(bare, client_cpu, env))
                times["bare_wire"].append(_timed(bare_wire, client_cpu, env))
                order = [("runner", ROOT), ("baseline", baseline)]
                for name, tree in order if trial % 2 == 0 else order[::-1]:  # neither always goes first
                    if tree is None:
                        continue
                    shutil.rmtree(folder / "results", ignore_errors=True)  # a fresh store: every job is sent
                    # and a fresh response cache (written as a user's run writes it, never read from)
                    trial_env = {**env, "PYTHONPATH": str(tree),
                                 "RUNNER_RESPONSE_CACHE": str(folder / f"responses-{name}-{trial}.sqlite")}
                    times[name].append(_timed(run, client_cpu, trial_env, tree))
    finally:
        server.terminate()
        server.wait()
    return n, times


def report(n: int, concurrency: int, latency_s: float, times: Times) -> float:
    def line(label: str, runs: list[tuple[float, float]]) -> float:
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"  {label:31s}{wall:6.2f} s  {n / wall:8.1f} requests/s  CPU {cpu:5.2f} s  "
              f"(all: {', '.join(f'{w:.2f}' for w, _ in runs)})")
        return wall

    print(f"{n} requests, concurrency {concurrency}, server latency {latency_s * 1000:g} ms, "
          f"medians of {len(times['bare'])} trials (whole commands)")
    b = line("bare aiohttp loop:", times["bare"])
    w = line("bare loop, runner's transport:", times["bare_wire"])
    r = line("runner run FILE:", times["runner"])
    if "baseline" in times:
        base = line("baseline's run:", times["baseline"])
        print(f"  ratio baseline/bare throughput: {b / base:.2f}")
    print(f"  ratio runner/bare throughput: {b / r:.2f} (the goal: against the bare aiohttp loop)")
    print(f"  ratio runner/bare loop on the runner's transport: {w / r:.2f} (what the rest of the runner costs)")
    return b / r


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--scaling", action="store_true", help="20 ms latency at concurrency 8, 32 and 64")
    parser.add_argument("--baseline", type=Path, help="another checkout whose `runner run` is timed in the same trials")
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    if args.scaling:
        latency = args.latency_s or 0.02
        for c in (8, 32, 64):
            n, times = measure(args.jobs, c, latency, args.trials, args.baseline)
            report(n, c, latency, times)
    else:
        n, times = measure(args.jobs, args.concurrency, args.latency_s, args.trials, args.baseline)
        report(n, args.concurrency, args.latency_s, times)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
