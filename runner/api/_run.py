"""The verbs that write the store: run (a grid or a study) and score."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.api._prepare import Prepared, experiment_hash, open_store, prepare

if TYPE_CHECKING:
    from runner.capabilities.context_window import ContextStudy
    from runner.execution.events import Subscriber
    from runner.execution.executor import RunSummary as ExecutorSummary
    from runner.plan.planner import Stored
    from runner.store import Store


# run


@dataclass
class RunSummary:
    """What `run` did. For a study experiment (a search, not a grid) `study` holds its results and
    the job counts are zero. `stop_signal` is the signal number (SIGINT, SIGTERM) that interrupted it."""

    run_id: int = 0
    planned: int = 0
    resumed: int = 0  # planned jobs already stored by an earlier run
    succeeded: int = 0
    failed: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0
    completion_tokens: int = 0
    study: ContextStudy | None = None
    warnings: list[str] = field(default_factory=list)  # from stored probes: what the server ignores
    stop_signal: int | None = None
    # The experiment as this run prepared it, for the report that follows (`report(summary.prepared)`).
    prepared: Prepared | None = field(default=None, repr=False, compare=False)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @classmethod
    def of(cls, done: ExecutorSummary, warnings: list[str]) -> RunSummary:
        return cls(done.run_id, done.planned, done.resumed, done.succeeded, done.failed, done.interrupted,
                   done.elapsed_s, done.completion_tokens, None, warnings)


def run(path: str | Path, *, limit: int | None = None, fresh: bool = False, concurrency: int | None = None,
        subscribers: Iterable[Subscriber] = (), events_path: str | Path | None = None,
        max_jobs: int | None = None, cache: bool = True, ray: str | None = None) -> RunSummary:
    """Run what is not stored yet (all of it with `fresh`), storing each job as it finishes.

    `ray` runs the embedded backend's model variants side by side on a Ray cluster at that address
    ("" for RAY_ADDRESS or a local Ray instance); this process alone still writes the store.

    `subscribers` receive the run's typed events (`runner.execution.events`); `events_path` appends
    them to a JSON-lines file as well. `max_jobs` overrides the file's limits.max_jobs. Ctrl-C or
    SIGTERM stops the run within a second, whatever a scorer or the backend is doing: what was stored
    stays, the run is marked interrupted, and the result says `interrupted` (and which signal). A
    model variant whose first answers all fail with one client error (a 404 from a wrong base_url)
    stops it with a `UserError` naming what to check; what finished is stored.

    A job whose request another experiment (or an earlier step) already sent is answered from the
    response cache shared across experiments (`runner.store.response_cache`); `cache=False` neither
    reads nor writes it, and `fresh` sends every request (and keeps the answers)."""
    # Checked before the loop starts: this is synchronous work the loop could not interrupt.
    p = prepare(path, limit=limit, max_jobs=max_jobs)
    if ray is not None:
        p = _on_ray(p, ray)
    summary = _own_loop(lambda: _run_prepared(p, limit=limit, fresh=fresh, concurrency=concurrency,
                                              subscribers=subscribers, events_path=events_path, cache=cache))
    summary.prepared = p
    return summary


def _on_ray(p: Prepared, address: str) -> Prepared:
    """The prepared experiment with its embedded backend's variants sent to a Ray cluster."""
    import dataclasses

    from runner.backends.ray_cluster import RayBackend
    from runner.errors import UserError

    kind = p.experiment.backend.kind
    if kind != "llamacpp":
        raise UserError(f"--ray runs the embedded backend's variants on a Ray cluster, and backend.kind is {kind}",
                        file=p.experiment.source_path, key="backend.kind",
                        fix="drop --ray; to spread jobs over several servers, list them in backend.endpoints")
    backend = RayBackend(p.backend, address or None)
    backend.check()
    return dataclasses.replace(p, backend_or_none=backend)


def _own_loop(main: Callable[[], Coroutine[Any, Any, RunSummary]]) -> RunSummary:
    """asyncio.run, but SIGINT and SIGTERM cancel the run, and an interrupted run does not wait.

    This loop is ours (not a caller's), so SIGTERM (a CI timeout, `kill`) may stop it like Ctrl-C.
    asyncio.run would join the loop's default executor on the way out, which waits for any thread in
    it (a model being derived in the backend); after a signal nothing is waited for. The caller's
    own handlers are put back afterwards (run_async leaves them alone altogether)."""
    import asyncio
    import contextlib
    import signal

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}
    loop = asyncio.new_event_loop()
    stopped: list[int] = []
    try:
        task = loop.create_task(main())

        def stop(sig: int) -> None:
            stopped.append(sig)
            task.cancel()

        for sig in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(sig, stop, sig)
        try:
            summary = loop.run_until_complete(task)
        except asyncio.CancelledError:
            if not stopped:
                raise
            summary = RunSummary(interrupted=True)  # stopped before the run began: nothing stored
        if stopped:
            summary.interrupted, summary.stop_signal = True, stopped[0]
        return summary
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            if not stopped:
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()  # removes the loop's handlers (SIG_DFL); then the caller's come back
            for sig, handler in previous.items():
                if handler is not None:
                    with contextlib.suppress(ValueError):
                        signal.signal(sig, handler)


def _cancel_all(loop: Any) -> None:
    """What asyncio.run does with tasks still pending when the main one ends: cancel, then await them."""
    import asyncio

    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


async def run_async(path: str | Path, *, limit: int | None = None, fresh: bool = False,
                    concurrency: int | None = None, subscribers: Iterable[Subscriber] = (),
                    events_path: str | Path | None = None, max_jobs: int | None = None,
                    cache: bool = True) -> RunSummary:
    return await _run_prepared(prepare(path, limit=limit, max_jobs=max_jobs), limit=limit, fresh=fresh,
                               concurrency=concurrency, subscribers=subscribers, events_path=events_path,
                               cache=cache)


async def _run_prepared(p: Prepared, *, limit: int | None, fresh: bool, concurrency: int | None,
                        subscribers: Iterable[Subscriber], events_path: str | Path | None,
                        cache: bool = True) -> RunSummary:
    from runner.execution.events import Events, JsonLinesLog

    events = Events(list(subscribers))
    log = JsonLinesLog(Path(events_path)) if events_path is not None else None
    if log is not None:
        events.subscribers.append(log)
    try:
        if p.experiment.study is not None:
            return RunSummary(study=await _run_study(p, events))
        return await _run_grid(p, events, limit, fresh, concurrency, cache)
    finally:
        if log is not None:
            log.close()


async def _run_grid(p: Prepared, events: Any, limit: int | None, fresh: bool,
                    concurrency: int | None, cache: bool) -> RunSummary:
    import asyncio

    from runner.backends.base import StartContext
    from runner.execution.executor import Executor, RunOptions
    from runner.execution.parallel import ParallelVariants
    from runner.execution.retry import RetryPolicy
    from runner.store import Store
    from runner.store.response_cache import ResponseCache

    settings = p.experiment.backend
    # A pool of endpoints (backend.endpoints) keeps `concurrency` requests in flight on each.
    options = RunOptions(p.backend.workers(concurrency or settings.concurrency), limit, fresh,
                         p.experiment.limits.scorer_timeout_s)
    retry = RetryPolicy(settings.max_retries, settings.retry_backoff_s, settings.retry_max_backoff_s)
    stored = None if fresh else await _stored_jobs(p, limit)
    needed = None if stored is None else p.plan.variants_with_work(stored, limit)
    for scorer in p.scorers:
        scorer.warm()  # libraries imported before the first answer's scorer time limit starts
    # Reachability first, before the store exists: an unreachable server must leave nothing behind.
    await p.backend.start(StartContext(needed=needed, notify=events.note))
    try:
        store = Store.open(p.store_path)
    except BaseException:
        await p.backend.close()
        raise
    warnings = _probe_warnings(p, store)
    responses = ResponseCache.open() if cache else None
    try:
        for warning in warnings:
            events.note(warning, warning=True)
        # A backend that serves each variant on a machine of its own (Ray) runs them side by side.
        kind = ParallelVariants if p.backend.parallel_variants else Executor
        executor = kind(p.plan, store, p.backend, p.scorers, retry, events, responses)
        try:
            summary = await executor.run(options, experiment_hash(p.experiment), stored)
        except asyncio.CancelledError:
            summary = executor.summary(interrupted=True)
        return RunSummary.of(summary, warnings)
    finally:
        await p.backend.close()
        store.close()
        if responses is not None:
            responses.close()


async def _stored_jobs(p: Prepared, limit: int | None) -> Stored | None:
    """Which planned jobs an existing store holds (None: no store yet), read without creating one.

    Every planned job is hashed to know, so that walk runs off the event loop: a signal still stops it."""
    from runner.execution.off_loop import OffLoop
    from runner.store import Store

    store = Store.open_readonly(p.store_path)
    if store is None:
        return None
    try:
        done = store.succeeded_ids()
    finally:
        store.close()
    return await OffLoop().call(lambda: p.plan.stored(done, limit), None)


def _probe_warnings(p: Prepared, store: Store) -> list[str]:
    from runner.capabilities.probe import warnings_for

    identity = json.dumps(p.experiment.backend.identity(), sort_keys=True)
    out = []
    for variant in p.plan.variants():
        results = store.latest_probe(identity, variant.identity)
        if results is not None:
            out.extend(warnings_for(p.experiment, results, variant))
    return out


async def _run_study(p: Prepared, events: Any) -> ContextStudy:
    from runner.backends.base import StartContext
    from runner.capabilities.context_window import ContextStudy, check_dataset, find_limit
    from runner.capabilities.reference_tokenizer import configured_references, served_reference
    from runner.capabilities.tokenizer_parity import probe_tokenizer, sample_prompts
    from runner.store import Store

    study = p.experiment.study
    assert study is not None
    budget = p.experiment.sampling.first("max_tokens") or 0
    references = configured_references(p.experiment)  # a broken tokenizer file stops here, before any model
    await p.backend.start(StartContext(notify=events.note))
    results = []
    try:
        for variant in p.plan.variants():
            async with p.backend.serve(variant) as info:
                result = await find_limit(p.backend, variant, study)
                await check_dataset(p.backend, p.plan, result, variant, budget)
                # The tokenizer check of H3: the limit and the prompt sizes are the server's counts, so
                # they are only as right as its tokenizer (the same check as `runner probe`).
                reference = references.get(variant.model) or served_reference(
                    p.experiment, variant.model, info.details.get("file"))
                check = await probe_tokenizer(p.backend, sample_prompts(p.plan, variant), reference)
                result.tokenizer = check.to_dict()
            events.note(f"{result.variant}: limit {result.limit_tokens} tokens after {result.requests} requests")
            results.append(result)
    finally:
        await p.backend.close()
    done = ContextStudy(results, budget)
    store = Store.open(p.store_path)
    try:
        store.save_study(ContextStudy.KIND, experiment_hash(p.experiment), done.to_dict())
    finally:
        store.close()
    return done


# score


@dataclass
class ScoreSummary:
    jobs: int  # stored answers scored
    rescored: int  # of those, scores that were missing or stale and were computed now


def score(path: str | Path, *, limit: int | None = None, max_jobs: int | None = None) -> ScoreSummary:
    """Score every stored answer with the experiment's scorers as they are now, and store the scores
    that were missing or stale (after a scorer or a label changed), like `inspect score`."""
    from runner.analysis.results import load_results

    p = prepare(path, for_reading=True, limit=limit, max_jobs=max_jobs)
    store = open_store(p, path, write=True)
    try:
        results = load_results(p.plan, store, p.scorers, limit)
        if results.fresh:
            store.save_scores(results.fresh)
        return ScoreSummary(results.totals["ok"], len(results.fresh))
    finally:
        store.close()


async def score_async(path: str | Path, *, limit: int | None = None) -> ScoreSummary:
    import asyncio

    return await asyncio.to_thread(score, path, limit=limit)
