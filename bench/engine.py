"""The embedded engine's time: the runner's tokens/s next to llama.cpp's own server driven by a bare
client at the same slot count, and the prompt-cache hit share per variant.

Same model (SmolLM2-135M-Instruct, the installed GGUF), same slots (--slots, concurrency equal to it),
same requests (N items x R repeats of one prompt with a long shared system prompt, temperature 0):

- bare, cold: `python -m runner.backends.llamacpp.server` started, an aiohttp loop POSTing the
  runner's own request bodies (with cache_prompt) in plan order, `--slots` at a time, the server
  stopped: the whole job a user without the runner does, timed from start to stop.
- runner (embedded): `runner run` with `kind: llamacpp`, as a whole command (start-up, model load,
  store, scoring, report), against the cold bare client. The ratio is the runner's own cost plus what
  its job order gains (the shared prompt evaluated once for all slots, repeats on the slot holding
  them), which a bare client sending in plan order does not have; against the warm server it is the
  stricter figure (the bare client's server loaded and warmed outside its time).
- bare, warm: the same loop against a server started once and warmed by one request; its time counts
  requests only. runner (openai): `runner run` with `kind: openai` against that same server, as a whole
  command: the runner's own cost on a warm engine.

Tokens/s is completion tokens over wall seconds. The prompt-cache hit share of a run is
1 - sum(timings.prompt_n) / sum(prompt_tokens) over its stored jobs, per model variant: the share of
prompt tokens llama.cpp took from a slot's KV cache instead of evaluating them.
Run: .venv/bin/python bench/engine.py [--items 8] [--repeats 2] [--slots 2] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from concurrency import model_path  # bench/concurrency.py: the installed SmolLM2 file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))




RULES = " ".join(f"Rule {n}: a service named svc{n} must listen on a port above {1000 + n} and log to /var/log/svc{n}."
                 for n in range(16))


def experiment(folder: Path, name: str, backend: dict[str, object], items: int, repeats: int,
               max_tokens: int) -> Path:
    (folder / "data.jsonl").write_text("".join(
        json.dumps({"id": f"c{n}", "config": {"name": f"svc{n}", "port": 900 + 50 * n}, "valid": n % 2 == 0}) + "\n"
        for n in range(items)))
    exp = {
        "name": name, "backend": backend,
        "models": [{"name": "smollm2", **({"source": {"path": str(model_path())}} if backend["kind"] == "llamacpp"
                                          else {"id": "smollm2"})}],
        "prompts": {"system": f"You validate service configs. {RULES}",
                    "variants": [{"name": "p", "text": "Is this config valid? Answer JSON. {{ config | tojson }}"}]},
        "dataset": {"path": "data.jsonl", "label_field": "valid"},
        "sampling": {"temperature": 0.0, "seed": 1, "max_tokens": max_tokens},
        "repeats": repeats,
        "scorers": [{"type": "binary", "field": "valid"}],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def bodies(path: Path) -> list[dict[str, object]]:
    from runner.config.loader import load_experiment
    from runner.plan.planner import build_plan

    plan = build_plan(load_experiment(path))
    return [{"model": "smollm2", "messages": list(j.messages), **j.params, "cache_prompt": True} for j in plan.jobs()]


async def bare_loop(url: str, requests: list[dict[str, object]], concurrency: int) -> tuple[float, int, float]:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    tokens, prompt, evaluated = 0, 0, 0
    async with aiohttp.ClientSession() as session:
        async def one(body: dict[str, object]) -> None:
            nonlocal tokens, prompt, evaluated
            async with sem, session.post(f"{url}/v1/chat/completions", json=body) as resp:
                data = await resp.json()
            tokens += data["usage"]["completion_tokens"]
            prompt += data["usage"]["prompt_tokens"]
            evaluated += data["timings"]["prompt_n"]

        start = time.perf_counter()
        await asyncio.gather(*(one(b) for b in requests))
        elapsed = time.perf_counter() - start
    return elapsed, tokens, 1 - evaluated / prompt if prompt else 0.0


def timed_run(path: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runner.cli", "run", str(path), "--no-cache"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"runner run {path.name} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - start


def stored(path: Path) -> tuple[int, dict[str, float]]:
    """Completion tokens of the run's jobs and the prompt-cache hit share per variant, from its store."""
    store = path.parent / "results" / path.stem / "results.sqlite"
    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT model, quantization, completion_tokens, prompt_tokens, timings_json FROM jobs"
                            " WHERE status='ok'").fetchall()
    tokens = sum(r[2] or 0 for r in rows)
    per: dict[str, list[int]] = {}
    for model, quant, _, prompt, timings in rows:
        label = f"{model}" + (f"@{quant}" if quant else "")
        share = per.setdefault(label, [0, 0])
        share[0] += prompt or 0
        share[1] += (json.loads(timings) or {}).get("prompt_n") or 0
    return tokens, {label: 1 - ev / pr if pr else 0.0 for label, (pr, ev) in per.items()}


def start_server(slots: int, n_ctx: int) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "runner.backends.llamacpp.server", "--model", str(model_path()),
         "--n-ctx", str(n_ctx * slots), "--parallel", str(slots), "--threads", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    assert server.stdout is not None
    return server, json.loads(server.stdout.readline())["url"]


def stop_server(server: subprocess.Popen[str]) -> None:
    server.terminate()
    server.wait()


def bare_cold(requests: list[dict[str, object]], slots: int, n_ctx: int) -> tuple[float, int, float]:
    """A bare client's whole job as the runner's embedded run does it: start llama.cpp's server, send
    the requests (plan order, `slots` at a time), stop it."""
    start = time.perf_counter()
    server, url = start_server(slots, n_ctx)
    try:
        _, tokens, hit = asyncio.run(bare_loop(url, requests, slots))
    finally:
        stop_server(server)
    return time.perf_counter() - start, tokens, hit


def middle(runs: list[tuple[float, int, float]]) -> tuple[float, int, float]:
    """The bare trials' median as the runner's is taken (statistics.median of the seconds: the mean of the
    middle two for an even count), with the tokens and hit share of the trial nearest to it."""
    seconds = statistics.median(r[0] for r in runs)
    nearest = min(runs, key=lambda r: abs(r[0] - seconds))
    return seconds, nearest[1], nearest[2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    n_ctx = 2048
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        common = {"concurrency": args.slots, "timeout_s": 600, "max_retries": 0}
        embedded = experiment(folder, "engine_embedded", {"kind": "llamacpp", "n_ctx": n_ctx,
                                                          "parallel": args.slots, "threads": 2, **common},
                              args.items, args.repeats, args.max_tokens)
        server, url = start_server(args.slots, n_ctx)
        try:
            over_http = experiment(folder, "engine_openai", {"kind": "openai", "base_url": f"{url}/v1", **common},
                                   args.items, args.repeats, args.max_tokens)
            requests = bodies(over_http)
            asyncio.run(bare_loop(url, requests[:1], 1))  # warm-up: the first request pays the graph's set-up
            # Alternated, medians: on a shared machine the load moves between the two otherwise.
            bare_runs, http_runs = [], []
            for _ in range(args.trials):
                bare_runs.append(asyncio.run(bare_loop(url, requests, args.slots)))
                shutil.rmtree(folder / "results", ignore_errors=True)
                http_runs.append(timed_run(over_http, env))
            bare_s, bare_tokens, bare_hit = middle(bare_runs)
            http_s = statistics.median(http_runs)
            http_tokens, http_hits = stored(over_http)
        finally:
            stop_server(server)
        cold_runs, embedded_runs = [], []
        for _ in range(args.trials):
            cold_runs.append(bare_cold(requests, args.slots, n_ctx))
            shutil.rmtree(folder / "results", ignore_errors=True)
            embedded_runs.append(timed_run(embedded, env))
        cold_s, cold_tokens, cold_hit = middle(cold_runs)
        embedded_s = statistics.median(embedded_runs)
        embedded_tokens, embedded_hits = stored(embedded)
    n = len(requests)

    def ratio(seconds: float, tokens: int, against_s: float, against_tokens: int) -> float:
        return (tokens / seconds) / (against_tokens / against_s)

    print(f"{n} requests ({args.items} items x {args.repeats} repeats, a ~570-token shared system prompt), "
          f"{args.slots} slots, max_tokens {args.max_tokens}, SmolLM2-135M-Instruct Q4_1; medians of {args.trials} "
          "alternated trials")
    print(f"  bare client, llama.cpp's server started for it (start, requests in plan order, stop; no slot copy, "
          f"repeats side by side): {cold_s:6.2f} s  "
          f"{cold_tokens / cold_s:7.1f} tokens/s  prompt-cache hit share {cold_hit:.2f}")
    print(f"  runner run, kind llamacpp, embedded (whole command, model load included): {embedded_s:6.2f} s  "
          f"{embedded_tokens / embedded_s:7.1f} tokens/s  "
          f"ratio {ratio(embedded_s, embedded_tokens, cold_s, cold_tokens):.2f}"
          "  hit share " + ", ".join(f"{k} {v:.2f}" for k, v in embedded_hits.items()))
    print(f"  bare client on a warm server (requests only): {bare_s:6.2f} s  {bare_tokens / bare_s:7.1f} tokens/s  "
          f"prompt-cache hit share {bare_hit:.2f}; the embedded run's ratio to it "
          f"{ratio(embedded_s, embedded_tokens, bare_s, bare_tokens):.2f}")
    print(f"  runner run, kind openai, same warm server (whole command): {http_s:6.2f} s  {http_tokens / http_s:7.1f} "
          f"tokens/s  ratio {ratio(http_s, http_tokens, bare_s, bare_tokens):.2f}  hit share "
          + ", ".join(f"{k} {v:.2f}" for k, v in http_hits.items()))
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
