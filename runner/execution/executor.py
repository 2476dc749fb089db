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
run (`ScorersStuck`). The exception: a scorer that knows its worst case on this answer is well under
a millisecond (`Scorer.cheap_on`: binary, exact, json_field on a short answer with few brackets) runs on
the loop, since the thread hop costs more than it does; code tests, regex and plugins never do.

Errors: a backend's own `BackendError` (after its retries) and a scorer's own `ScorerError` fail
that job, which is stored as failed with the reason and retried by the next run. Anything else is
a bug, not data: it stops the run (the CLI shows the traceback under --debug).

A variant whose first answers all fail with one client error (a 404 from a wrong base_url) stops the
run with a user error (`runner.execution.early_stop`); what finished stays stored.

Cancellation (Ctrl-C, SIGTERM) stops the workers at once, whatever a scorer is doing; what was
stored stays, what was in flight is simply not stored, and the next run picks it up.

Finished jobs are written in batches: one transaction for every `BATCH_JOBS` jobs, and at the
latest `BATCH_S` after the first job of a batch finished (a timer on the loop), at the end of each
variant and of the run, on a stop verdict and on Ctrl-C or SIGTERM. One commit per job cost 190 us
on the event loop, a quarter of the request phase at 64 jobs in flight; a batch of 64 about 22 us a
job, of 256 about 16 (most of a commit is rewriting the job-id index pages the batch touched, as
many for 64 random ids as for 256). So a SIGKILL (or a power cut) loses exactly the requests in
flight and the finished jobs of the open batch: fewer than `BATCH_JOBS`, all finished within the
last `BATCH_S` (256 jobs fill a batch within `BATCH_S` only above 2,560 jobs/s). The next run sends
those again, and nothing is stored twice (a job's row is keyed by its content hash). The response
cache (another file) gets the answers of stored jobs in larger batches, checked at each commit
(`CACHE_BATCH_JOBS`, `CACHE_BATCH_S`): a SIGKILL may also lose those answers to the cache, never to the store.
"""

from __future__ import annotations

import asyncio
import itertools
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
from runner.execution.ordering import bundle_cap, bundles
from runner.execution.retry import RetryPolicy, call_with_retries
from runner.plan.planner import Job, Plan, Stored, canonical_json, request_scope
from runner.scoring.base import Score
from runner.scoring.errors import ScorerError
from runner.scoring.scorers import Scorer
from runner.store import JobRow, JobStatus, Store
from runner.store.database import encode_exchange
from runner.store.response_cache import CachedAnswer, ResponseCache

BATCH_JOBS = 256  # finished jobs per store transaction at most
FILL_TRIES = 4  # jobs sent alone, at most, for one to succeed and fill the other slots (`_fill_slots`)
FILL_HELD = 1024  # jobs the response cache answers, at most, held back meanwhile
BATCH_S = 0.1  # and no finished job waits longer than this for its commit
# The response cache's own commit (another file) cost as much again per batch; its answers are written
# after their jobs' batch, in larger batches: SIGKILL then loses up to this many answers to the cache
# (never to the store: the same experiment's next run finds those jobs stored; another experiment
# asking the same requests sends them again).
CACHE_BATCH_JOBS = 1024
CACHE_BATCH_S = 1.0


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
    read_cache: bool = True  # answer a job from the response cache where it holds the request (not with fresh)


class Executor:
    def __init__(self, plan: Plan, store: Store, backend: Backend, scorers: list[Scorer],
                 retry: RetryPolicy, events: Events | None = None, cache: ResponseCache | None = None) -> None:
        self.plan = plan
        self.store = store
        self.backend = backend
        self.scorers = scorers
        self.retry = retry
        self.events = events or Events()
        self.counts = RunCounts()
        self._rendered: dict[tuple[Any, Any, str], str | None] = {}
        self._first = FirstAnswers()
        self.run_id = 0
        self.started = time.monotonic()
        self._off_loop = OffLoop()
        self._scorer_timeout_s = 30.0
        self._unsaved: list[JobRow] = []  # finished jobs of the open batch, oldest first
        self._flush_timer: asyncio.TimerHandle | None = None
        self._write_error: BaseException | None = None  # a commit the timer made failed: the run stops
        self._cache_due = 0.0  # when the cache's oldest unwritten answer is due (0: none waiting)
        self.cache = cache  # answers shared across experiments (None: --no-cache)
        self._read_cache = False
        self._cache_scope = ""  # the variant's scope in the cache (backend identity and variant)
        self._ask_cache = False  # whether to ask the cache for each job of the variant

    async def run(self, options: RunOptions, experiment_hash: str, stored: Stored | None = None) -> RunSummary:
        """Run the jobs not in `stored` (read from the store here when not given; ignored with fresh)."""
        limit = options.limit_items
        self._scorer_timeout_s = options.scorer_timeout_s
        self._read_cache = self.cache is not None and options.read_cache and not options.fresh
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
            jobs = self.plan.jobs(limit, skip=stored, request_keys=self.cache is not None)
            await self._run_variants(itertools.groupby(jobs, key=lambda j: j.cell.variant), run_id,
                                     options.concurrency)
            status = "finished"
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        finally:
            try:
                self._flush()  # the open batch: whatever stopped the run, what finished is stored
            except BaseException:
                status = "failed"  # a store that cannot write (a full disk): the run did not finish
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
            if self.cache is not None:
                # Asked once here: where the cache holds nothing for this variant, no job needs a SELECT.
                self._cache_scope = request_scope(canonical_json(self.plan.experiment.backend.identity()),
                                                  canonical_json(variant.identity))
                self._ask_cache = self._read_cache and self.cache.holds(self._cache_scope)
            try:
                await self._drain(pending, run_id, details, concurrency)
            finally:
                # Before the next variant loads (which may take minutes), and whatever stops this one: a
                # side-by-side variant (runner.execution.parallel) keeps a batch of its own.
                self._flush()
            self._first_answers_done(variant)

    def _size(self, variant: Variant, details: dict[str, Any]) -> dict[str, Any]:
        """The parameter count and size class stored with every job: what the backend read, else the YAML's."""
        model = next((m for m in self.plan.experiment.models if m.name == variant.model), None)
        reported = details.get("parameters")
        return size_details(reported if isinstance(reported, int) else None, details.get("parameters_source"),
                            model.params if model is not None else None)

    def _save(self, row: JobRow) -> None:
        """Add a finished job to the open batch; commit it when full (and within BATCH_S anyway)."""
        if self._write_error is not None:
            raise self._write_error
        self._unsaved.append(row)
        if len(self._unsaved) >= BATCH_JOBS:
            self._flush(cache_too=False)
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(BATCH_S, self._flush_on_timer)

    def _flush_on_timer(self) -> None:
        self._flush_timer = None
        try:
            self._flush(cache_too=False)
        except Exception as exc:  # a full disk: kept for the next job to raise, as a commit in a worker would
            self._write_error = exc

    def _flush(self, *, cache_too: bool = True) -> None:
        """Commit the open batch in one transaction (kept, to be tried again, if the commit fails), then
        the response cache's answers of the jobs stored: all of them (`cache_too`: the end of a variant or
        of the run, a stop), else once CACHE_BATCH_JOBS are waiting or CACHE_BATCH_S after the first
        commit that found some waiting."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._unsaved:
            self.store.save_jobs(self._unsaved)
            self._unsaved = []
        cache = self.cache
        if cache is None or not cache.pending:
            return
        now = time.monotonic()
        if not self._cache_due:
            self._cache_due = now + CACHE_BATCH_S
        if cache_too or cache.pending >= CACHE_BATCH_JOBS or now >= self._cache_due:
            cache.flush()
            self._cache_due = 0.0

    def summary(self, *, interrupted: bool) -> RunSummary:
        c = self.counts
        return RunSummary(self.run_id, c.planned, c.resumed, c.succeeded, c.failed, interrupted,
                          time.monotonic() - self.started, c.completion_tokens)

    async def _drain(self, jobs: Iterator[Job], run_id: int, variant_details: dict[str, Any],
                     concurrency: int) -> None:
        if concurrency > 1 and self.backend.shares_prompt_cache:
            jobs = await self._fill_slots(jobs, run_id, variant_details)
        # A bounded queue keeps memory flat however many jobs the variant has. The TaskGroup cancels
        # the producer (which may be blocked on a full queue) as soon as any worker fails, so an
        # unexpected error (a full disk, a bug) stops the run instead of hanging it. Its entries are
        # bundles: a prompt's repeats, sent one after another to reuse their slot's prompt cache.
        queue: asyncio.Queue[list[Job] | None] = asyncio.Queue(maxsize=concurrency * 2)
        left = (self.counts.planned - self.counts.resumed) // max(1, len(self.plan.variants()))
        cap = bundle_cap(left, concurrency)

        async def worker(index: int) -> None:
            # A stop verdict cancels the workers, but only on the loop's next turn: send nothing new meanwhile.
            while (bundle := await queue.get()) is not None:
                for job in bundle:
                    if self._first.verdict is not None:
                        return
                    await self._run_job(job, run_id, variant_details, worker=index)

        async def produce() -> None:
            for bundle in bundles(jobs, cap):
                await queue.put(bundle)
            for _ in range(concurrency):
                await queue.put(None)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                for index in range(concurrency):
                    group.create_task(worker(index))
        except* UserError as stopped:  # early_stop's verdict or ScorersStuck: the one line it is, not a group
            raise stopped.exceptions[0] from None

    async def _fill_slots(self, jobs: Iterator[Job], run_id: int, variant_details: dict[str, Any]) -> Iterator[Job]:
        """Send the variant's first jobs alone until one succeeds, then copy its slot's prompt cache into the
        others (runner.execution.ordering); return the jobs left, for the workers. Jobs the response cache
        answers fill no slot: they are handed on unrun (up to FILL_HELD of them), and so, after
        FILL_TRIES failed sends, is everything else (the shared prompt is then evaluated once per slot)."""
        held: list[Job] = []
        tries = 0
        for job in jobs:
            if self._ask_cache and job.request_key and self.cache is not None and self.cache.get(job.request_key):
                held.append(job)
                if len(held) < FILL_HELD:
                    continue
                break
            succeeded = self.counts.succeeded
            await self._run_job(job, run_id, variant_details)
            tries += 1
            if self.counts.succeeded > succeeded:
                await self.backend.share_prompt_cache()
                break
            if tries >= FILL_TRIES:
                break
        return itertools.chain(held, jobs)

    async def _run_job(self, job: Job, run_id: int, variant_details: dict[str, Any], worker: int | None = None) -> None:
        request = ChatRequest(job.cell.variant.model_id, list(job.messages), job.params, worker)
        attempts = 1

        def on_retry(attempt: int, error: BaseException) -> None:
            nonlocal attempts
            self.counts.retries += 1
            if attempts == 1:
                self.counts.retrying += 1
            self.events.emit(JobRetrying(job.job_id, attempts, str(error)))
            attempts += 1

        self.events.emit(JobStarted(job.job_id))
        hit = self.cache.get(job.request_key) if self._ask_cache and job.request_key and self.cache else None
        if hit is not None:
            await self._run_cached(job, run_id, variant_details, hit)
            return
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

    async def _run_cached(self, job: Job, run_id: int, variant_details: dict[str, Any], hit: CachedAnswer) -> None:
        """A job whose request the response cache holds: scored and stored like a sent one, with no
        request (attempts 0) and the latency and timings of when it was sent."""
        completion = Completion(hit.text, hit.finish_reason, hit.prompt_tokens, hit.completion_tokens, hit.request,
                                hit.response, hit.timings)
        try:
            rendered = await self._render(job)
            scores = await self._score(job, completion)
        except (BackendError, ScorerError) as exc:
            self._save_failed(job, run_id, variant_details, str(exc), 0)
            self._first_answer(job.cell.variant, exc)
            return
        self._save_ok(job, run_id, variant_details, completion, 0, hit.latency_s, scores, rendered, from_cache=True)
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
        # A job's messages are its cell's templates applied to its item: that names them without
        # encoding them (repeats and cells differing only in sampling share them).
        key = (job.cell.system, job.cell.prompt, job.item.id)
        if key not in self._rendered:
            self._rendered[key] = await self.backend.render_prompt(list(job.messages))
        return self._rendered[key]

    async def _score(self, job: Job, c: Completion) -> dict[str, dict[str, Any]]:
        scores = {}
        for index, scorer in enumerate(self.scorers):
            scores[scorer.key] = (await self._score_one(index, scorer, job, c)).to_dict()
        return scores

    async def _score_one(self, index: int, scorer: Scorer, job: Job, c: Completion) -> Score:
        if scorer.cheap_on(c.text):
            # Known to take well under a millisecond (a JSON field read from a short answer): on the loop,
            # where the hop to a thread and back cost more than the scoring (see Scorer.cheap_on).
            return scorer.score(c.text, c.finish_reason, job.item)
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
                 attempts: int, latency_s: float | None, scores: dict[str, dict[str, Any]], rendered: str | None,
                 *, from_cache: bool = False) -> None:
        # Encoded once, here, for the store's row and the response cache's (they keep the same JSON).
        encoded = encode_exchange(c.request, c.response, c.text, c.timings, c.request_json)
        self._save(self._row(
            job, run_id, variant_details, status=JobStatus.OK, attempts=attempts, request=c.request,
            response=c.response, text=c.text, finish_reason=c.finish_reason, prompt_tokens=c.prompt_tokens,
            completion_tokens=c.completion_tokens, latency_s=latency_s, timings=c.timings, scores=scores,
            rendered_prompt=rendered, rendered_by=self.backend.rendered_by if rendered is not None else None,
            from_cache=from_cache, encoded=encoded))
        if not from_cache:  # tokens/s of this run: what the server generated now
            self.counts.completion_tokens += c.completion_tokens or 0
            if self.cache is not None and job.request_key:
                # With the job's own row (the same batch): a job stopped before it was stored (a signal
                # while its scorer ran) is asked again, not answered from the cache.
                request_json, response_json, timings_json = encoded
                if request_json is not None and response_json is not None:
                    self.cache.add(job.request_key, request_json, response_json, c.text, c.finish_reason,
                                   c.prompt_tokens, c.completion_tokens, latency_s, timings_json, self._cache_scope)
        self.counts.succeeded += 1
        self.events.emit(JobFinished(job.job_id, job.cell.variant.label, job.item.id, job.repeat, True, attempts,
                                     latency_s))

    def _save_failed(self, job: Job, run_id: int, variant_details: dict[str, Any], error: str,
                     attempts: int, endpoint: str | None = None) -> None:
        request = {"model": job.cell.variant.model_id, "messages": list(job.messages), **job.params}
        # Which endpoint of a pool failed it, where the timings of an answered job would say which answered.
        self._save(self._row(job, run_id, variant_details, status=JobStatus.FAILED, attempts=attempts,
                             error=error, request=request, timings={"endpoint": endpoint} if endpoint else None))
        self.counts.failed += 1
        self.events.emit(JobFinished(job.job_id, job.cell.variant.label, job.item.id, job.repeat, False, attempts,
                                     None, error))
