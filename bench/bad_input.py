"""What hostile input costs `runner validate`: wall time, peak memory (ru_maxrss) and the line it prints.

Each case is a real `runner validate --offline` process on a file built here: billion laughs in
`sampling.response_format` and in a context file, template bombs, and the densest files the size
limits let through (the worst case those limits allow). `--runner DIR` measures another checkout
instead (e.g. before the fix); every child runs under an address-space cap and a SIGKILL timeout, so a
checkout without the limits is stopped rather than left to take the machine.
Run: .venv/bin/python bench/bad_input.py [--runner /path/to/checkout] [--cap-mb 3000] [--timeout 30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHILD = "import sys; from runner.cli import main; sys.exit(main(sys.argv[1:]))"


def laughs(indent: str) -> str:
    lines = [f"{indent}a: &a [{', '.join(['lol'] * 10)}]"]
    lines += [f"{indent}{n}: &{n} [{', '.join([f'*{p}'] * 10)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)]
    return "\n".join(lines) + "\n"


def base(folder: Path) -> dict[str, Any]:
    (folder / "data.jsonl").write_text("".join(json.dumps({"id": f"i{n}", "x": n}) + "\n" for n in range(3)))
    return {"name": "bench", "backend": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
            "models": [{"name": "m"}], "prompts": {"variants": [{"name": "p", "text": "x {{ x }}"}]},
            "dataset": {"path": "data.jsonl", "label_field": None}}


def write(folder: Path, exp: dict[str, Any], head: str = "") -> Path:
    path = folder / "exp.yaml"
    path.write_text(head + yaml.safe_dump(exp, sort_keys=False))
    return path


def laughs_in_response_format(folder: Path) -> Path:
    return write(folder, base(folder), "sampling:\n  response_format:\n" + laughs("    "))


def laughs_in_context_file(folder: Path) -> Path:
    (folder / "ctx.yaml").write_text(laughs(""))
    exp = base(folder)
    exp["prompts"]["context"] = {"lol": "ctx.yaml"}
    return write(folder, exp)


def template(text: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        exp = base(folder)
        exp["prompts"]["variants"][0]["text"] = text
        return write(folder, exp)
    return build


def dense_yaml_context(folder: Path) -> Path:
    """Just under the 1 MiB YAML limit, all tiny nodes: the most work a YAML file may cause."""
    (folder / "ctx.yaml").write_text("[" + "1," * (2**19 - 2) + "1]\n")
    exp = base(folder)
    exp["prompts"]["context"] = {"n": "ctx.yaml"}
    return write(folder, exp)


def dense_json_context(folder: Path) -> Path:
    """Just under the 4 MiB limit of other documents: 1.4 million empty lists."""
    (folder / "ctx.json").write_text("[" + ",".join(["[]"] * (4 * 2**20 // 3 - 1)) + "]")
    exp = base(folder)
    exp["prompts"]["context"] = {"n": "ctx.json"}
    return write(folder, exp)


CASES: dict[str, Callable[[Path], Path]] = {
    "billion laughs in sampling.response_format": laughs_in_response_format,
    "billion laughs in a context file": laughs_in_context_file,
    "nested range(100000) loops": template("{% for i in range(100000) %}{% for j in range(100000) %}x"
                                           "{% endfor %}{% endfor %}"),
    "'x' * 10**10": template("{{ 'x' * 10**10 }}"),
    "doubling a string 64 times": template("{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
                                           "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"),
    "densest 1 MiB YAML context file (accepted)": dense_yaml_context,
    "densest 4 MiB JSON context file (accepted)": dense_json_context,
}


def run(path: Path, checkout: Path, cap_mb: int, timeout: float) -> tuple[float, float, int | str, str]:
    """Wall time, the child's own peak RSS (os.wait4's rusage), its exit and its last stderr line."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap_mb * 2**20, cap_mb * 2**20))

    env = {**os.environ, "PYTHONPATH": str(checkout)}
    with tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, "validate", "--offline", str(path)], cwd=checkout,
                                env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit)
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()  # SIGKILL: a run stuck in a render does not heed SIGTERM
                killed = True
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        lines = err.read().strip().splitlines()
    code: int | str = f"killed after {timeout:g} s" if killed else proc.returncode
    return elapsed, usage.ru_maxrss / 1024, code, (lines or [""])[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runner", type=Path, default=ROOT, help="checkout whose runner/ to measure")
    parser.add_argument("--cap-mb", type=int, default=3000, help="address-space cap of each child")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    print(f"runner from {args.runner}; each child capped at {args.cap_mb} MB of address space")
    for name, build in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            path = build(Path(tmp))
            elapsed, peak_mb, code, line = run(path, args.runner, args.cap_mb, args.timeout)
        shown = line.replace(str(path.parent), "$ROOT")
        print(f"{name}: {elapsed:.2f} s, peak RSS {peak_mb:.0f} MB, exit {code}\n    {shown[:200]}")


if __name__ == "__main__":
    main()
