"""The code sandbox's price per answer: one `run_tests` of a trivial passing solution, in each mode.

Each mode that works here (bwrap, unshare, weak: runner/scoring/sandbox_boundary.py) runs the same
solution and test N times after one warm-up run (which also probes the mode); the median wall time
of a call and its ratio to the weak mode (the audit hook alone, no boundary) are printed.
Run: .venv/bin/python bench/sandbox_start.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.scoring.sandbox import run_tests  # noqa: E402
from runner.scoring.sandbox_boundary import MODES, SandboxUnavailable, boundary  # noqa: E402

CODE = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"


def median_ms(runs: int) -> float:
    result = run_tests(CODE, TESTS)  # warm-up: the probe, the page cache
    assert result.passed == 2, result
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = run_tests(CODE, TESTS)
        times.append(time.perf_counter() - start)
        assert result.passed == 2, result
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    medians: dict[str, float] = {}
    for mode in MODES:
        os.environ["RUNNER_SANDBOX"] = mode
        try:
            boundary()
        except SandboxUnavailable as exc:
            print(f"{mode:8} skipped: {exc.problem}")
            continue
        medians[mode] = median_ms(args.runs)
    weak = medians.get("weak")
    for mode, ms in medians.items():
        ratio = f"  {ms / weak:.2f}x weak" if weak else ""
        print(f"{mode:8} {ms:7.1f} ms per run_tests (median of {args.runs}){ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
