"""Which scorers run on the event loop: the JSON scorers on a short answer with few brackets, nothing else."""

from __future__ import annotations

import asyncio
import threading

import pytest

from conftest import Project, base_experiment
from runner.backends.base import Backend, ChatRequest, Completion
from runner.config.loader import load_experiment
from runner.config.scorer_configs import BinaryScorer, RegexScorer
from runner.execution.executor import Executor, RunOptions
from runner.execution.retry import RetryPolicy
from runner.plan.dataset import Item
from runner.plan.planner import build_plan
from runner.scoring.scorers import BinaryClassification, RegexMatch, Score
from runner.store.database import Store


class Answering(Backend):
    answer = '{"valid": true}'

    async def generate(self, request: ChatRequest) -> Completion:
        return Completion(self.answer, "stop", 5, 3, {}, {})


class SeenBinary(BinaryClassification):
    def __init__(self) -> None:
        super().__init__(BinaryScorer(type="binary", field="valid"), "valid")
        self.threads: set[str] = set()

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        self.threads.add(threading.current_thread().name)
        return super().score(text, finish_reason, item)


class SeenRegex(RegexMatch):
    def __init__(self) -> None:
        super().__init__(RegexScorer(type="regex", pattern="true"), "valid")
        self.threads: set[str] = set()

    def score(self, text: str, finish_reason: str | None, item: Item) -> Score:
        self.threads.add(threading.current_thread().name)
        return super().score(text, finish_reason, item)


@pytest.mark.parametrize(("answer", "on_loop"), [
    ('{"valid": true}', True),
    ("Let me think. " * 40 + '{"valid": false, "reason": "port 0"}', True),
    ('{"valid": true} ' + "[x] " * 400, False),  # 400 brackets: extract_json's worst case is not known small
    ('{"valid": true}' + " " * 20_000, False),  # past the budget, whatever it holds
])
def test_a_json_scorer_runs_on_the_loop_only_where_its_worst_case_is_small(
        project: Project, answer: str, on_loop: bool) -> None:
    exp = load_experiment(project.write(base_experiment()))
    backend = Answering(exp.backend, exp)
    backend.answer = answer
    binary, regex = SeenBinary(), SeenRegex()
    executor = Executor(build_plan(exp), Store.open(exp.store_path()), backend, [binary, regex], RetryPolicy(0, 0, 0))
    summary = asyncio.run(asyncio.wait_for(executor.run(RunOptions(4), "h"), timeout=30))
    assert (summary.succeeded, summary.failed) == (48, 0)
    loop_thread = threading.current_thread().name
    assert binary.threads == ({loop_thread} if on_loop else {"runner-off-loop"})
    assert regex.threads == {"runner-off-loop"}  # a user's pattern never runs on the loop
