"""What the similarity measures cost: each library's import in a fresh process, and one call of each
method on a summary-sized pair, as a ratio to rapidfuzz's ratio (the measure the repeat metrics use).

The README says the libraries load only when a measure is used and that ROUGE's import is the heavy
one; this prints the numbers behind that, measured in one run.
Run: .venv/bin/python bench/similarity_cost.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.scoring.similarity import METHODS, measure  # noqa: E402

IMPORTS = {"rapidfuzz": "import rapidfuzz.fuzz, rapidfuzz.distance",
           "sacrebleu (chrF)": "import sacrebleu.metrics.chrf",
           "rouge-score": "import rouge_score.rouge_scorer",
           "runner.analysis.metrics (no library)": "import runner.analysis.metrics"}
ANSWER = "The cache stores recent results in memory, so repeat requests do not hit the database."
REFERENCE = "The cache keeps recent results in memory so repeated requests skip the database."


def import_seconds(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    print("import, in a fresh process:")
    for name, statement in IMPORTS.items():
        print(f"  {name:40s} {import_seconds(statement) * 1000:8.1f} ms")
    per_call: dict[str, float] = {}
    for method in METHODS:
        fn = measure(method)
        start = time.perf_counter()
        for _ in range(args.calls):
            fn(ANSWER, REFERENCE)
        per_call[method] = (time.perf_counter() - start) / args.calls
    print(f"one call on an {len(ANSWER)}-character pair ({args.calls} calls each):")
    for method, seconds in per_call.items():
        print(f"  {method:18s} {seconds * 1e6:9.1f} us  x{seconds / per_call['ratio']:8.1f} of ratio")


if __name__ == "__main__":
    main()
