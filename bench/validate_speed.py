"""`runner validate` of a broken file against importing its three base libraries, same run.

Target: the validate call costs no more than 2.5x `python -c "import yaml, pydantic, jinja2"`.
Each command runs N times, alternating, and the medians are compared.
Run: .venv/bin/python bench/validate_speed.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 2.5


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp) / "broken.yaml"
        broken.write_text("name: x\nsampling: {temperature: hot}\n")
        base = [sys.executable, "-c", "import yaml, pydantic, jinja2"]
        validate = [sys.executable, "-m", "runner.cli", "validate", str(broken)]
        done = subprocess.run(validate, capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        base_s, validate_s = [], []
        for _ in range(args.runs):
            base_s.append(_time(base))
            validate_s.append(_time(validate))
    b, v = statistics.median(base_s), statistics.median(validate_s)
    print(f"import yaml, pydantic, jinja2: median {b * 1000:.0f} ms over {args.runs} runs")
    print(f"runner validate (broken file): median {v * 1000:.0f} ms; {done.stderr.strip()}")
    print(f"ratio {v / b:.2f}x (target <= {TARGET}x)")


if __name__ == "__main__":
    main()
