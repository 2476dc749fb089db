"""How to run a plan: concurrent requests, retries, and a store write the moment each job ends.

Jobs stream from the planner one model variant at a time. For each variant with work left, the
backend serves it (the embedded backend loads the model here), a fixed pool of workers drains a
bounded queue, and the variant is released before the next one is loaded. Variants whose jobs are
all stored already are never loaded, which is why a resumed run costs seconds.

Cancellation (Ctrl-C, SIGTERM) stops the workers; what was stored stays, what was in flight is
simply not stored, and the next run picks it up.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Completion
from runner.plan.planner import Job, Plan
from runner.run.progress import Progress
from runner.run.retry import RetryPolicy, call_with_retries
from runner.scoring.scorers import Scorer
from runner.store.database import Store


@dataclass
class RunSummary:
    run_id: int
    planned: int
    resumed: int
    succeeded: int
    failed: int
    interrupted: bool
    elapsed_s: float
    completion_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class RunOptions:
    concurrency: int
    limit_items: int | None = None
    fresh: bool = False


class Executor:
    def __init__(self, plan: Plan, store: Store, backend: Backend, scorers: list[Scorer],
                 retry: RetryPolicy, progress: Progress) -> None:
        self.plan = plan
        self.store = store
        self.backend = backend
        self.scorers = scorers
        self.retry = retry
        self.progress = progress
        self.completion_tokens = 0
        self.run_id = 0
        self.started = time.monotonic()

    async def run(self, options: RunOptions, experiment_hash: str) -> RunSummary:
        done = set() if options.fresh else self.store.succeeded_ids()
        planned = self.plan.count(options.limit_items)
        self.run_id = run_id = self.store.start_run(
            name=self.plan.experiment.name, experiment_hash=experiment_hash,
            experiment_path=self.plan.experiment.source_path, planned=planned,
            args={"concurrency": options.concurrency, "limit_items": options.limit_items,
                  "fresh": options.fresh},
        )
        self.started = time.monotonic()
        status = "failed"
        try:
            for variant, group in itertools.groupby(self.plan.jobs(options.limit_items),
                                                    key=lambda j: j.cell.variant):
                pending = self._pending(group, done)
                first = next(pending, None)
                if first is None:
                    continue
                label = variant.label
                self.progress.set_label(label)
                async with self.backend.serve(variant) as info:
                    await self._drain(itertools.chain([first], pending), run_id, info.details,
                                      options.concurrency)
            status = "finished"
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        finally:
            self.progress.close()
            self.store.finish_run(run_id, status=status, succeeded=self.progress.done,
                                  failed=self.progress.failed)
        return self.summary(planned, interrupted=status != "finished")

    def summary(self, planned: int, *, interrupted: bool) -> RunSummary:
        return RunSummary(self.run_id, planned, self.progress.skipped, self.progress.done, self.progress.failed,
                          interrupted, time.monotonic() - self.started, self.completion_tokens)

    def _pending(self, jobs: Iterator[Job], done: set[str]) -> Iterator[Job]:
        for job in jobs:
            if job.job_id in done:
                self.progress.skip()
            else:
                yield job

    async def _drain(self, jobs: Iterator[Job], run_id: int, variant_details: dict[str, Any],
                     concurrency: int) -> None:
        # A bounded queue keeps memory flat however many jobs the variant has. The TaskGroup cancels
        # the producer (which may be blocked on a full queue) as soon as any worker fails, so an
        # unexpected error (a full disk, a bug) stops the run instead of hanging it.
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=concurrency * 2)

        async def worker() -> None:
            while (job := await queue.get()) is not None:
                await self._run_job(job, run_id, variant_details)

        async def produce() -> None:
            for job in jobs:
                await queue.put(job)
            for _ in range(concurrency):
                await queue.put(None)

        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            for _ in range(concurrency):
                group.create_task(worker())

    async def _run_job(self, job: Job, run_id: int, variant_details: dict[str, Any]) -> None:
        request = ChatRequest(job.cell.variant.model_id, list(job.messages), job.params)
        attempts = 1

        def on_retry(_attempt: int, _error: BaseException) -> None:
            nonlocal attempts
            self.progress.retries += 1
            if attempts == 1:
                self.progress.retrying += 1
            attempts += 1

        self.progress.job_started()  # the rate is measured from the first request, not from model loading
        started = time.monotonic()
        try:
            completion, attempts = await call_with_retries(
                lambda: self.backend.generate(request), self.retry, on_retry=on_retry
            )
            latency = time.monotonic() - started
            if any(s.blocking for s in self.scorers):
                # Off the event loop: the code scorer runs a sandboxed child process per answer.
                scores = await asyncio.to_thread(self._score, job, completion)
            else:
                scores = self._score(job, completion)
        except BackendError as exc:
            self._save_failed(job, run_id, variant_details, str(exc), attempts)
            return
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as exc:
            # An answer the backend or a scorer could not handle: this job fails, the run goes on.
            self._save_failed(job, run_id, variant_details, f"internal error: {exc!r}", attempts)
            return
        finally:
            if attempts > 1:
                self.progress.retrying -= 1
        self._save_ok(job, run_id, variant_details, completion, attempts, latency, scores)

    def _score(self, job: Job, c: Completion) -> dict[str, dict[str, Any]]:
        return {s.key: s.score(c.text, c.finish_reason, job.item).to_dict() for s in self.scorers}

    def _common(self, job: Job, run_id: int, variant_details: dict[str, Any]) -> dict[str, Any]:
        return {"job_id": job.job_id, "run_id": run_id, "cell_key": job.cell.key(),
                "model": job.cell.variant.model, "quantization": job.cell.variant.quantization,
                "item_id": job.item.id, "repeat": job.repeat, "variant": variant_details or None}

    def _save_ok(self, job: Job, run_id: int, variant_details: dict[str, Any], c: Completion,
                 attempts: int, latency_s: float, scores: dict[str, dict[str, Any]]) -> None:
        self.store.save_job(
            **self._common(job, run_id, variant_details), status="ok", attempts=attempts,
            request=c.request, response=c.response, text=c.text, finish_reason=c.finish_reason,
            prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens, latency_s=latency_s,
            timings=c.timings, scores=scores,
        )
        self.completion_tokens += c.completion_tokens or 0
        self.progress.finished(ok=True)

    def _save_failed(self, job: Job, run_id: int, variant_details: dict[str, Any], error: str,
                     attempts: int) -> None:
        self.store.save_job(**self._common(job, run_id, variant_details), status="failed",
                            attempts=attempts, error=error,
                            request={"model": job.cell.variant.model_id, "messages": list(job.messages),
                                     **job.params})
        self.progress.finished(ok=False)
