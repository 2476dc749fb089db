"""Model variants side by side: the executor for a backend that serves each variant on its own machine
(`runner run --ray`, `runner.backends.ray_cluster`).

The local executor loads one variant after another, because one machine holds one model at a time.
On a cluster each variant is loaded on a node of its own, so all of them run at once; the cluster
queues those it has no room for. Everything else is the local executor's: this process alone
scores and writes the store, one job at a time as it finishes, so resuming and the no-duplicate
guarantee are the same. Each variant gets its own copy of the executor's per-variant state (its
rendered prompts, its first answers); the run's counts, the store and the events are shared.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator

from runner.backends.base import Variant
from runner.errors import UserError
from runner.execution.executor import Executor
from runner.plan.planner import Job


class ParallelVariants(Executor):
    async def _run_variants(self, groups: Iterator[tuple[Variant, Iterator[Job]]], run_id: int,
                            concurrency: int) -> None:
        # The plan yields jobs variant after variant; to run them together each variant's are listed first.
        listed = [(variant, list(jobs)) for variant, jobs in groups]
        try:
            async with asyncio.TaskGroup() as group:
                for variant, jobs in listed:
                    # A shallow copy: its own per-variant state, the same counts, store, backend and events.
                    group.create_task(copy.copy(self)._run_variant(variant, iter(jobs), run_id, concurrency))
        except* UserError as stopped:  # one variant's one-line error, not a group of them
            raise stopped.exceptions[0] from None
