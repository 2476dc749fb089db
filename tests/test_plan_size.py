"""A plan's size is counted from its axes before anything is expanded, and refused above max_jobs.

The count must be exactly what the planner makes (matrix.exclude and matrix.include included), or
the limit would refuse plans it should run; a random sample of matrices checks it against
`build_plan`. Every refusal is one line, exit 2, nothing written.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import Project, base_experiment
from runner import ConfigError, build_plan, load_experiment
from runner.cli import main
from runner.testing.fault_server import ThreadedFaultServer

FIX = "narrow the grid, use --limit N, or raise limits.max_jobs (or pass --max-jobs N)"


def _trillion(project: Project) -> Path:
    project.write_dataset([{"id": f"r{n:04d}", "config": {"port": n}, "valid": n % 2 == 0} for n in range(1000)])
    exp = base_experiment()
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:1]
    exp["sampling"] = {"temperature": [n / 1000 for n in range(1000)], "seed": list(range(1000)), "max_tokens": 16}
    exp["repeats"] = 1000
    return project.write(exp)  # 10^6 sampling points x 1,000 items x 1,000 repeats


def test_a_trillion_job_plan_is_refused_at_once_in_little_memory(project: Project) -> None:
    path = _trillion(project)
    # validate, plan and run in one child process, which then reports its peak memory: VmHWM, since
    # ru_maxrss keeps the parent's peak across the exec that started the child.
    code = ("import json\nfrom runner.cli import main\n"
            f"codes = [main([verb, {str(path)!r}]) for verb in ('validate', 'plan', 'run')]\n"
            "peak = next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
            "print(json.dumps([codes, peak]))")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    codes, peak_kib = json.loads(done.stdout)
    line = (f"runner: {path}: the plan has 1,000,000,000,000 jobs (1,000,000 cells x 1,000 items x 1,000 repeats), "
            f"more than max_jobs 100,000; {FIX}")
    assert done.stderr.splitlines() == [line] * 3
    assert codes == [2, 2, 2]
    # Detectors of a blow-up, not targets: planning it took 52 s and 1.3 GB for a tenth of this.
    assert peak_kib < 200 * 1024, f"peak {peak_kib / 1024:.0f} MiB"
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert not (project.root / "results").exists()


def test_max_jobs_from_the_file_from_the_flag_and_under_limit(project: Project, capsys: pytest.CaptureFixture[str],
                                                             fault_server: ThreadedFaultServer) -> None:
    exp = base_experiment(f"{fault_server.url}/v1")  # 4 cells x 6 items x 2 repeats = 48 jobs
    exp["limits"] = {"max_jobs": 47}
    path = project.write(exp)
    refused = f"runner: {path}: the plan has 48 jobs (4 cells x 6 items x 2 repeats), more than max_jobs 47; {FIX}"
    for argv in (["run", str(path)], ["validate", str(path)], ["plan", str(path)], ["report", str(path)]):
        assert main(argv) == 2
        assert capsys.readouterr().err.splitlines() == [refused]
    assert not (project.root / "results").exists()

    assert main(["validate", "--max-jobs", "20", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"runner: {path}: the plan has 48 jobs (4 cells x 6 items x 2 repeats), more than max_jobs 20; {FIX}"]
    assert main(["plan", "--limit", "5", str(path)]) == 0  # 4 x 5 x 2 = 40
    assert "= 40 jobs" in capsys.readouterr().out
    # --max-jobs carries from the run to its report.
    assert main(["run", "--max-jobs", "48", "--quiet", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "run 1: 48 succeeded" in err and "accuracy" in out


def test_one_item_and_one_repeat_are_singular(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.write_dataset([{"id": "only", "config": {}, "valid": True}])
    exp = base_experiment()
    exp["repeats"] = 1
    exp["sampling"]["temperature"] = 0.0
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:1]
    path = project.write(exp)
    assert main(["validate", "--offline", "--max-jobs", "1", str(path)]) == 0
    capsys.readouterr()
    exp["prompts"]["variants"] = base_experiment()["prompts"]["variants"]
    path = project.write(exp)
    assert main(["validate", "--offline", "--max-jobs", "1", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"runner: {path}: the plan has 2 jobs (2 cells x 1 item x 1 repeat), more than max_jobs 1; {FIX}"]


# the count is the planner's


def _random_experiment(rng: random.Random) -> dict[str, Any]:
    exp = base_experiment()
    quantizations = rng.sample(["q4", "q8", "f16"], rng.randint(1, 3))
    exp["models"] = [{"name": "m1", "id": "m1-{quant}", "quantizations": quantizations}]
    if rng.random() < 0.5:
        exp["models"].append({"name": "m2", "id": "m2"})
    exp["prompts"]["variants"] = [{"name": n, "text": f"{n} {{{{ id }}}}"} for n in ["a", "b", "c"][:rng.randint(1, 3)]]
    if rng.random() < 0.5:
        del exp["prompts"]["system"]
        exp["prompts"]["systems"] = [{"name": "s1", "text": "S1"}, {"name": "none"}][:rng.randint(1, 2)]
    sampling: dict[str, Any] = {"temperature": [0.0, 0.5, 1.0][:rng.randint(1, 3)], "seed": 1, "max_tokens": 16}
    if rng.random() < 0.5:
        sampling["top_p"] = [0.9, 1.0]
    if rng.random() < 0.3:
        sampling["response_format"] = [{"name": "free", "value": None},
                                       {"name": "json", "value": {"type": "json_object"}}]
    exp["sampling"] = sampling
    declared: dict[str, list[Any]] = {
        "model": [m["name"] for m in exp["models"]],
        "quantization": list(dict.fromkeys(q for m in exp["models"] for q in m.get("quantizations", [None]))),
        "system": [s["name"] for s in exp["prompts"].get("systems", [{"name": "system"}])],
        "prompt": [v["name"] for v in exp["prompts"]["variants"]],
        "temperature": sampling["temperature"], "top_p": sampling.get("top_p", []),
        "response_format": ["free", "json"] if "response_format" in sampling else []}
    elsewhere = {"model": "m3", "quantization": "q2", "system": "s9", "prompt": "z", "temperature": 2.0,
                 "top_p": 0.1, "response_format": "free"}

    def value(axis: str) -> Any:  # mostly a declared value, sometimes one that matches nothing
        return rng.choice(declared[axis]) if rng.random() < 0.85 else elsewhere[axis]

    usable = [a for a, values in declared.items() if values]
    exclude = [{k: value(k) for k in rng.sample(usable, rng.randint(1, 3))} for _ in range(rng.randint(0, 6))]
    include = []
    for _ in range(rng.randint(0, 3)):
        if rng.random() < 0.5:  # extends what it matches
            entry: dict[str, Any] = {k: value(k) for k in rng.sample(usable, rng.randint(1, 2))}
        else:  # a new combination: every axis with more than one value named, declared where it must be
            entry = {k: rng.choice(declared[k]) for k in usable if len(declared[k]) > 1 or rng.random() < 0.3}
            model = next(m for m in exp["models"] if m["name"] == entry.get("model", "m1"))
            if "quantization" in entry:
                entry["quantization"] = rng.choice(model.get("quantizations", [None]))
            if rng.random() < 0.5:
                entry["temperature"] = 2.0  # a value no cell has
        if rng.random() < 0.5:
            entry["max_tokens"] = 7
        include.append(entry)
    exp["matrix"] = {"exclude": exclude, "include": include}
    return exp


def _planned(path: Path) -> tuple[int, int] | ConfigError:
    try:
        plan = build_plan(load_experiment(path))
    except ConfigError as exc:
        return exc
    return plan.count(), len(plan.cells)


@pytest.mark.parametrize("seed", range(60))
def test_the_count_is_what_the_planner_makes(project: Project, capsys: pytest.CaptureFixture[str], seed: int) -> None:
    path = project.write(_random_experiment(random.Random(seed)))
    planned = _planned(path)
    if isinstance(planned, ConfigError):
        # A matrix the planner refuses is refused with the same line, whatever the limit.
        assert main(["validate", "--offline", "--max-jobs", "1", str(path)]) == 2
        assert capsys.readouterr().err.splitlines() == [f"runner: {planned.line()}"]
        return
    jobs, cells = planned
    assert main(["validate", "--offline", "--max-jobs", str(jobs), str(path)]) == 0
    capsys.readouterr()
    assert main(["validate", "--offline", "--max-jobs", str(jobs - 1), str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"runner: {path}: the plan has {jobs:,} jobs ({cells:,} cell{'s' * (cells != 1)} x 6 items x 2 repeats), "
        f"more than max_jobs "
        f"{jobs - 1:,}; {FIX}"]


def test_overlapping_excludes_are_counted_once(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    exp = base_experiment()
    exp["sampling"]["top_p"] = [0.5, 0.9, 1.0]  # 2 prompts x 2 temperatures x 3 top_p = 12 cells
    exp["matrix"] = {"exclude": [{"prompt": "a"}, {"temperature": 0.0}, {"prompt": "a", "temperature": 0.0},
                                 {"prompt": "a", "top_p": 0.5}, {"temperature": 0.0}]}
    path = project.write(exp)
    assert _planned(path) == (3 * 6 * 2, 3)  # what is left: prompt b at temperature 0.5, three top_p
    assert main(["validate", "--offline", "--max-jobs", "35", str(path)]) == 2
    assert "the plan has 36 jobs (3 cells x 6 items x 2 repeats)" in capsys.readouterr().err


def test_blank_lines_and_carriage_returns_count_as_the_loader_reads_them(project: Project,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.dumps({"id": f"x{n}", "config": {}, "valid": True}) for n in range(5)]
    (project.root / "data.jsonl").write_bytes(
        (rows[0] + "\r\n" + rows[1] + "\r" + rows[2] + "\n\n  \n\u00a0\n".encode().decode() + rows[3] + "\n"
         + rows[4]).encode())
    path = project.write()
    assert build_plan(load_experiment(path)).count() == 4 * 5 * 2
    assert main(["validate", "--offline", "--max-jobs", "39", str(path)]) == 2
    assert "the plan has 40 jobs (4 cells x 5 items x 2 repeats)" in capsys.readouterr().err


def test_limit_renders_only_the_items_it_runs(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    # Planning with --limit N costs N items' templates, not the dataset's (item i1 breaks the template).
    project.write_dataset([{"id": "i0", "extra": 1, "valid": True}, {"id": "i1", "valid": False}])
    exp = base_experiment()
    exp["prompts"]["variants"] = [{"name": "x", "text": "X {{ extra }}"}]
    path = project.write(exp)
    assert main(["plan", "--limit", "1", "--show", "0", str(path)]) == 0
    assert "= 4 jobs" in capsys.readouterr().out
    assert main(["plan", "--show", "0", str(path)]) == 2
    assert "uses an undefined variable for item 'i1'" in capsys.readouterr().err
