"""How to run a plan: concurrent requests, retries, and a store write the moment each job ends.

Jobs stream from the planner one model variant at a time. For each variant with work left, the
backend serves it (the embedded backend loads the model here), a fixed pool of workers drains a
bounded queue, and the variant is released before the next one is loaded. Variants whose jobs are
all stored already are never loaded, which is why a resumed run costs seconds.

The executor owns the run's counts (`RunCounts`) and says what happens through typed events
(`runner.execution.events`); the progress line and the `--events` log are subscribers.

Scorers run off the event loop, in daemon threads, each call with a time limit
(`limits.scorer_timeout_s`; `runner.execution.off_loop`), so no scorer can freeze the run or keep a
signal from stopping it. A call past its limit fails its job; four such calls still running stop the
run (`ScorersStuck`).

Errors: a backend's own `BackendError` (after its retries) and a scorer's own `ScorerError` fail
that job, which is stored as failed with the reason and retried by the next run. Anything else is
a bug, not data: it stops the run (the CLI shows the traceback under --debug).

A variant whose first answers all fail with one client error (a 404 from a wrong base_url) stops the
run with a user error (`runner.execution.early_stop`); what finished stays stored.

Cancellation (Ctrl-C, SIGTERM) stops the workers at once, whatever a scorer is doing; what was
stored stays, what was in flight is simply not stored, and the next run picks it up.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Completion, Variant, injected_system_prompt
from runner.config.size_class import size_details
from runner.errors import UserError
from runner.execution.early_stop import FirstAnswers, stop_error
from runner.execution.events import (
    Events,
    JobFinished,
    JobRetrying,
    JobStarted,
    RunCounts,
    RunFinished,
    RunStarted,
    VariantLoading,
)
from runner.execution.off_loop import CallTimedOut, OffLoop, TooManyStuck
from runner.execution.retry import RetryPolicy, call_with_retries
from runner.plan.planner import Job, Plan, Stored
from runner.scoring.base import Score
from runner.scoring.errors import ScorerError
from runner.scoring.scorers import Scorer
from runner.store import JobRow, JobStatus, Store


class ScorersStuck(UserError):
    """Too many scorer calls are still running past their time limit: the run stops."""


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
    scorer_timeout_s: float = 30.0  # limits.scorer_timeout_s: one scorer on one answer


class Executor:
    def __init__(self, plan: Plan, store: Store, backend: Backend, scorers: list[Scorer],
                 retry: RetryPolicy, events: Events | None = None) -> None:
        self.plan = plan
        self.store = store
        self.backend = backend
        self.scorers = scorers
        self.retry = retry
        self.events = events or Events()
        self.counts = RunCounts()
        self._rendered: dict[str, str | None] = {}
        self._first = FirstAnswers()
        self.run_id = 0
        self.started = time.monotonic()
        self._off_loop = OffLoop()
        self._scorer_timeout_s = 30.0

    async def run(self, options: RunOptions, experiment_hash: str, stored: Stored | None = None) -> RunSummary:
        """Run the jobs not in `stored` (read from the store here when not given; ignored with fresh)."""
        limit = options.limit_items
        self._scorer_timeout_s = options.scorer_timeout_s
        if options.fresh:
            stored = None
        elif stored is None:
            done = self.store.succeeded_ids()
            stored = await self._off_loop.call(lambda: self.plan.stored(done, limit), None)
        self.counts = RunCounts(planned=self.plan.count(limit))
        self.run_id = run_id = self.store.start_run(
            name=self.plan.experiment.name, experiment_hash=experiment_hash,
            experiment_path=self.plan.experiment.source_path, planned=self.counts.planned,
            args={"concurrency": options.concurrency, "limit_items": options.limit_items,
                  "fresh": options.fresh},
        )
        self.counts.resumed = stored.count if stored is not None else 0
        self.started = time.monotonic()
        self.events.emit(RunStarted(run_id, self.counts.planned, self.counts.resumed))
        status: Any = "failed"
        try:
            # Stored jobs are skipped by position, unrendered; a variant with none left never loads.
            await self._run_variants(itertools.groupby(self.plan.jobs(limit, skip=stored),
                                                       key=lambda j: j.cell.variant), run_id, options.concurrency)
            status = "finished"
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        finally:
            c = self.counts
            self.store.finish_run(run_id, status=status, succeeded=c.succeeded, failed=c.failed)
            self.events.emit(RunFinished(run_id, status, c.succeeded, c.failed, c.resumed,
                                         time.monotonic() - self.started))
        return self.summary(interrupted=False)

    async def _run_variants(self, groups: Iterator[tuple[Variant, Iterator[Job]]], run_id: int,
                            concurrency: int) -> None:
        """Each variant's jobs, one variant after another: the machine holds one model at a time.
        (`runner.execution.parallel` runs them side by side, on a cluster.)"""
        for variant, pending in groups:
            await self._run_variant(variant, pending, run_id, concurrency)

    async def _run_variant(self, variant: Variant, pending: Iterator[Job], run_id: int, concurrency: int) -> None:
        self.events.emit(VariantLoading(variant.label))
        async with self.backend.serve(variant) as info:
            self._rendered = {}  # rendered prompts are the variant's chat template's: per variant
            details = {**info.details, **self._size(variant, info.details)}
            if any(c.system is None for c in self.plan.cells if c.variant == variant):
                # Some cells send no system message: record what the template puts in its place.
                injected = await injected_system_prompt(self.backend)
                if injected is not None:
                    details["injected_system"] = {"text": injected.text, "tokens": injected.tokens}
            self._first = FirstAnswers()
            await self._drain(pending, run_id, details, concurrency)
            self._first_answers_done(variant)

    def _size(self, variant: Variant, details: dict[str, Any]) -> dict[str, Any]:
        """The parameter count and size class stored with every job: what the backend read, else the YAML's."""
        model = next((m for m in self.plan.experiment.models if m.name == variant.model), None)
        reported = details.get("parameters")
        return size_details(reported if isinstance(reported, int) else None, details.get("parameters_source"),
                            model.params if model is not None else None)

    def summary(self, *, interrupted: bool) -> RunSummary:
        c = self.counts
        return RunSummary(self.run_id, c.planned, c.resumed, c.succeeded, c.failed, interrupted,
                          time.monotonic() - self.started, c.completion_tokens)

    async def _drain(self, jobs: Iterator[Job], run_id: int, variant_details: dict[str, Any],
                     concurrency: int) -> None:
        # A bounded queue keeps memory flat however many jobs the variant has. The TaskGroup cancels
        # the producer (which may be blocked on a full queue) as soon as any worker fails, so an
        # unexpected error (a full disk, a bug) stops the run instead of hanging it.
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=concurrency * 2)

        async def worker() -> None:
            # A stop verdict cancels the workers, but only on the loop's next turn: send nothing new meanwhile.
            while (job := await queue.get()) is not None and self._first.verdict is None:
                await self._run_job(job, run_id, variant_details)

        async def produce() -> None:
            for job in jobs:
                await queue.put(job)
            for _ in range(concurrency):
                await queue.put(None)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for _ in range(concurrency):
                    group.create_task(worker())
        except* UserError as stopped:  # early_stop's verdict or ScorersStuck: the one line it is, not a group
            raise stopped.exceptions[0] from None

    async def _run_job(self, job: Job, run_id: int, variant_details: dict[str, Any]) -> None:
        request = ChatRequest(job.cell.variant.model_id, list(job.messages), job.params)
        attempts = 1

        def on_retry(attempt: int, error: BaseException) -> None:
            nonlocal attempts
            self.counts.retries += 1
            if attempts == 1:
                self.counts.retrying += 1
            self.events.emit(JobRetrying(job.job_id, attempts, str(error)))
            attempts += 1

        self.events.emit(JobStarted(job.job_id))
        started = time.monotonic()
        try:
            completion, attempts = await call_with_retries(
                lambda: self.backend.generate(request), self.retry, on_retry=on_retry
            )
            latency = time.monotonic() - started
            rendered = await self._render(job)
            scores = await self._score(job, completion)
        except (BackendError, ScorerError) as exc:
            self._save_failed(job, run_id, variant_details, str(exc), attempts, getattr(exc, "endpoint", None))
            self._first_answer(job.cell.variant, exc)
            return
        finally:
            if attempts > 1:
                self.counts.retrying -= 1
        self._save_ok(job, run_id, variant_details, completion, attempts, latency, scores, rendered)
        self._first_answer(job.cell.variant, None)

    def _first_answer(self, variant: Variant, error: BaseException | None) -> None:
        """Count a finished job (its error, None if it succeeded) towards the variant's first answers;
        stop the run once they have all failed with one client error."""
        common = self._first.add(error)
        if common is not None:
            raise stop_error(self.plan.experiment, variant, common, self._first.n)

    def _first_answers_done(self, variant: Variant) -> None:
        """After a variant with fewer jobs than `FirstAnswers.n`: stop if all of them failed alike."""
        first = self._first
        common = first.common() if len(first.outcomes) < first.n else None
        if common is not None:
            raise stop_error(self.plan.experiment, variant, common, len(first.outcomes))

    async def _render(self, job: Job) -> str | None:
        """The prompt as the server's chat template renders this job's messages, asked once per
        distinct message list (repeats share it); None where the server cannot say."""
        key = json.dumps(job.messages, sort_keys=True)
        if key not in self._rendered:
            self._rendered[key] = await self.backend.render_prompt(list(job.messages))
        return self._rendered[key]

    async def _score(self, job: Job, c: Completion) -> dict[str, dict[str, Any]]:
        scores = {}
        for index, scorer in enumerate(self.scorers):
            scores[scorer.key] = (await self._score_one(index, scorer, job, c)).to_dict()
        return scores

    async def _score_one(self, index: int, scorer: Scorer, job: Job, c: Completion) -> Score:
        limit = self._scorer_timeout_s
        try:
            return await self._off_loop.call(lambda: scorer.score(c.text, c.finish_reason, job.item), limit)
        except CallTimedOut:
            raise ScorerError(f"scorer {scorer.name!r} did not finish within {limit:g} s on item {job.item.id!r}",
                              fix="fix the scorer or raise limits.scorer_timeout_s") from None
        except TooManyStuck as exc:
            raise ScorersStuck(
                f"{exc.stuck} scorer calls are still running after the {limit:g} s limit, so the run stops here "
                "(finished jobs are stored)", file=self.plan.experiment.source_path, key=f"scorers[{index}]",
                fix=f"fix scorer {scorer.name!r} or raise limits.scorer_timeout_s") from None

    def _row(self, job: Job, run_id: int, variant_details: dict[str, Any], **fields: Any) -> JobRow:
        return JobRow(job_id=job.job_id, run_id=run_id, cell_key=job.cell.key(), model=job.cell.variant.model,
                      quantization=job.cell.variant.quantization, item_id=job.item.id, repeat=job.repeat,
                      variant=variant_details or None, **fields)

    def _save_ok(self, job: Job, run_id: int, variant_details: dict[str, Any], c: Completion,
                 attempts: int, latency_s: float, scores: dict[str, dict[str, Any]], rendered: str | None) -> None:
        self.store.save_job(self._row(
            job, run_id, variant_details, status=JobStatus.OK, attempts=attempts, request=c.request,
            response=c.response, text=c.text, finish_reason=c.finish_reason, prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens, latency_s=latency_s, timings=c.timings, scores=scores,
            rendered_prompt=rendered, rendered_by=self.backend.rendered_by if rendered is not None else None))
        self.counts.completion_tokens += c.completion_tokens or 0
        self.counts.succeeded += 1
        self.events.emit(JobFinished(job.job_id, job.cell.variant.label, job.item.id, job.repeat, True, attempts,
                                     latency_s))

    def _save_failed(self, job: Job, run_id: int, variant_details: dict[str, Any], error: str,
                     attempts: int, endpoint: str | None = None) -> None:
        request = {"model": job.cell.variant.model_id, "messages": list(job.messages), **job.params}
        # Which endpoint of a pool failed it, where the timings of an answered job would say which answered.
        self.store.save_job(self._row(job, run_id, variant_details, status=JobStatus.FAILED, attempts=attempts,
                                      error=error, request=request,
                                      timings={"endpoint": endpoint} if endpoint else None))
        self.counts.failed += 1
        self.events.emit(JobFinished(job.job_id, job.cell.variant.label, job.item.id, job.repeat, False, attempts,
                                     None, error))
