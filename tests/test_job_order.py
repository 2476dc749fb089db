"""The order jobs go to the engine in (runner.execution.ordering): a prompt's repeats travel together.

The reuse itself is measured on the real engine in tests/test_prompt_cache.py; here, through the
planner, that bundles hold one prompt's repeats only, in plan order, and are capped so that a plan
with few prompts still keeps every worker busy.
"""

from __future__ import annotations

from conftest import Project, base_experiment
from runner.config.loader import load_experiment
from runner.execution.ordering import bundle_cap, bundles
from runner.plan.planner import build_plan


def _plan(project: Project, repeats: int, items: int) -> list:  # type: ignore[type-arg]
    exp = base_experiment()
    exp.update(repeats=repeats, sampling={"temperature": 0.0, "max_tokens": 4})
    exp["prompts"]["variants"] = exp["prompts"]["variants"][:1]
    project.write_dataset([{"id": f"i{n}", "config": {"port": n}, "valid": True} for n in range(items)])
    return list(build_plan(load_experiment(project.write(exp))).jobs())


def test_a_bundle_is_one_prompts_repeats_in_plan_order(project: Project) -> None:
    jobs = _plan(project, repeats=3, items=4)
    grouped = list(bundles(iter(jobs), bundle_cap(len(jobs), 1)))
    assert [[(j.item.id, j.repeat) for j in b] for b in grouped] == [
        [(f"i{n}", 0), (f"i{n}", 1), (f"i{n}", 2)] for n in range(4)]
    assert [j for b in grouped for j in b] == jobs  # nothing lost, nothing reordered


def test_few_prompts_with_many_repeats_are_split_so_every_worker_has_work(project: Project) -> None:
    jobs = _plan(project, repeats=8, items=2)
    grouped = list(bundles(iter(jobs), bundle_cap(len(jobs), 2)))
    # Half a worker's share each: when one worker has taken the last bundle, the other is not idle for long.
    assert [[(j.item.id, j.repeat) for j in b] for b in grouped] == [
        [(item, r) for r in range(start, start + 4)] for item in ("i0", "i1") for start in (0, 4)]
    assert [j for b in grouped for j in b] == jobs
    assert bundle_cap(3, 8) == 1  # fewer jobs than workers: one each
