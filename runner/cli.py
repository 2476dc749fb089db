"""The `runner` command: validate, plan, run, report.

User errors print one line (`runner: FILE: KEY: problem; fix`) and exit 2, with no traceback
unless --debug. Everything that can be checked without a request is checked before the store is
opened, so a bad experiment leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from runner.backends import Backend, Variant, create_backend
from runner.backends.llamacpp.backend import LlamaCppBackend
from runner.capabilities.context_window import ContextResult, Probe, check_dataset, find_limit
from runner.capabilities.context_window import render as render_context
from runner.capabilities.probe import probe_variant, warnings_for
from runner.config.loader import load_experiment
from runner.config.schema import Experiment
from runner.diagnosis.diagnose import diagnose
from runner.errors import UserError
from runner.plan.planner import Job, Plan, build_plan, canonical_hash
from runner.report.tables import FORMATS, build_report, render, render_findings
from runner.run.executor import Executor, RunOptions, RunSummary
from runner.run.progress import Progress
from runner.run.retry import RetryPolicy
from runner.scoring.scorers import Scorer, build_scorers, check_scorers
from runner.store.database import Store

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


@dataclass
class Prepared:
    experiment: Experiment
    plan: Plan
    backend: Backend
    scorers: list[Scorer]


def prepare(path: str) -> Prepared:
    """Everything that needs no request: schema, dataset, templates, scorers, backend files."""
    experiment = load_experiment(path)
    plan = build_plan(experiment)
    plan.check_templates()
    scorers = build_scorers(list(experiment.scorers), experiment.dataset.label_field)
    check_scorers(scorers, plan.items, experiment.source_path)
    backend = create_backend(experiment)
    backend.check()
    return Prepared(experiment, plan, backend, scorers)


def experiment_hash(experiment: Experiment) -> str:
    return canonical_hash(experiment.model_dump(mode="json"))


# verbs


def cmd_validate(args: argparse.Namespace) -> int:
    p = prepare(args.file)
    if not args.offline:
        asyncio.run(p.backend.probe())
    plan = p.plan
    print(f"ok: {args.file}: {plan.count()} jobs = {len(plan.cells)} cells x {len(plan.items)} items x "
          f"{plan.repeats} repeats")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    p = prepare(args.file)
    plan = p.plan
    print(f"experiment: {p.experiment.name}")
    print("axes:")
    for axis, values in plan.axes.items():
        print(f"  {axis}: {', '.join('-' if v is None else json.dumps(v) for v in values)}")
    total = plan.count(args.limit)
    print(f"matrix: {len(plan.cells)} cells x {len(plan.item_subset(args.limit))} items x {plan.repeats} "
          f"repeats = {total} jobs")
    store = Store.open_existing(p.experiment.store_path())
    if store is not None:
        done_ids = store.succeeded_ids()
        store.close()
        done = sum(1 for job in plan.jobs(args.limit) if job.job_id in done_ids)
        print(f"store: {p.experiment.store_path()}: {done} of {total} done, {total - done} to run")
    else:
        print(f"store: {p.experiment.store_path()} (none yet): {total} to run")
    for job in _first(plan, args.limit, args.show):
        cell = ", ".join(f"{k}={v}" for k, v in job.cell.values if v is not None)
        print(f"\njob {job.job_id} [{cell}] item={job.item.id} repeat={job.repeat} params={job.params}")
        for m in job.messages:
            print(f"  {m['role']}: {_clip(m['content'], args.chars)}")
    return 0


def _first(plan: Plan, limit: int | None, n: int) -> list[Job]:
    return list(itertools.islice(plan.jobs(limit), n))


def _clip(text: str, chars: int) -> str:
    one_line = text.replace("\n", "\\n")
    return one_line if len(one_line) <= chars else one_line[:chars] + f"... ({len(text)} chars)"


def cmd_run(args: argparse.Namespace) -> int:
    p = prepare(args.file)
    if p.experiment.study is not None:
        return _run_study(p)
    settings = p.experiment.backend
    concurrency = args.concurrency or settings.concurrency
    retry = RetryPolicy(settings.max_retries, settings.retry_backoff_s, settings.retry_max_backoff_s)
    progress = Progress(p.plan.count(args.limit), enabled=not args.quiet)
    if isinstance(p.backend, LlamaCppBackend):
        p.backend.notify = progress.note  # model fetching, deriving and loading, above the progress line
    summary = asyncio.run(_run(p, RunOptions(concurrency, args.limit, args.fresh), retry, progress))
    print(f"run {summary.run_id}: {summary.succeeded} succeeded, {summary.failed} failed, "
          f"{summary.resumed} resumed from the store, {summary.elapsed_s:.1f} s", file=sys.stderr)
    if summary.interrupted:
        print("interrupted: finished jobs are stored; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.no_report:
        _print_report(p, args.limit, "table", None)
    return 0


async def _run(p: Prepared, options: RunOptions, retry: RetryPolicy, progress: Progress) -> RunSummary:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        # SIGTERM (a CI timeout, `kill`) stops like Ctrl-C: cancel, keep what is stored.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    p.backend.needed = None if options.fresh else _variants_with_work(p, options.limit_items)
    # Reachability first, before the store exists: an unreachable server must leave nothing behind.
    await p.backend.start()
    try:
        store = Store.open(p.experiment.store_path())
    except BaseException:
        await p.backend.close()
        raise
    try:
        for warning in _probe_warnings(p, store):
            # Not progress.note: --quiet hides the progress line, never a warning.
            print(f"warning: {warning}", file=sys.stderr)
        executor = Executor(p.plan, store, p.backend, p.scorers, retry, progress)
        try:
            return await executor.run(options, experiment_hash(p.experiment))
        except asyncio.CancelledError:
            return executor.summary(p.plan.count(options.limit_items), interrupted=True)
    finally:
        await p.backend.close()
        store.close()


def cmd_explain(args: argparse.Namespace) -> int:
    p = prepare(args.file)
    path = p.experiment.store_path()
    if not path.is_file():
        raise UserError("no results yet", file=args.file, fix=f"run `runner run {args.file}` first")
    store = Store.open(path)
    try:
        findings = diagnose(p.plan, store, p.scorers, limit_items=args.limit)
    finally:
        store.close()
    sys.stdout.write(render_findings(p.plan, findings, args.format))
    return 0


def _variants_with_work(p: Prepared, limit_items: int | None) -> set[Variant] | None:
    """Variants with a job not yet stored, read from an existing store without creating one."""
    store = Store.open_existing(p.experiment.store_path())
    if store is None:
        return None
    try:
        done = store.succeeded_ids()
    finally:
        store.close()
    return {job.cell.variant for job in p.plan.jobs(limit_items) if job.job_id not in done}


def _study_path(p: Prepared) -> Path:
    return p.experiment.store_path().parent / "context_window.json"


def _run_study(p: Prepared) -> int:
    max_tokens = p.experiment.sampling.max_tokens
    budget = (max_tokens[0] if isinstance(max_tokens, list) else max_tokens) or 0
    results = asyncio.run(_study_all(p, budget))
    path = _study_path(p)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"max_tokens": budget, "results": [r.to_dict() for r in results]}, indent=1))
    os.replace(tmp, path)
    sys.stdout.write(render_context(results, budget))
    return 0


async def _study_all(p: Prepared, max_tokens: int) -> list[ContextResult]:
    study = p.experiment.study
    assert study is not None
    await p.backend.start()
    results = []
    try:
        for variant in p.plan.variants():
            async with p.backend.serve(variant):
                result = await find_limit(p.backend, variant, study)
                await check_dataset(p.backend, p.plan, result, variant, max_tokens)
            print(f"{result.variant}: limit {result.limit_tokens} tokens after {result.requests} requests",
                  file=sys.stderr)
            results.append(result)
    finally:
        await p.backend.close()
    return results


def _probe_warnings(p: Prepared, store: Store) -> list[str]:
    identity = json.dumps(p.experiment.backend.identity(), sort_keys=True)
    out = []
    for variant in p.plan.variants():
        results = store.latest_probe(identity, variant.identity)
        if results is not None:
            out.extend(warnings_for(p.experiment, results, variant))
    return out


def cmd_probe(args: argparse.Namespace) -> int:
    p = prepare(args.file)
    asyncio.run(_probe_all(p))
    return 0


async def _probe_all(p: Prepared) -> None:
    await p.backend.start()
    identity = json.dumps(p.experiment.backend.identity(), sort_keys=True)
    try:
        store = Store.open(p.experiment.store_path())
        try:
            for variant in p.plan.variants():
                async with p.backend.serve(variant) as info:
                    results = await probe_variant(p.backend, variant)
                store.save_probe(identity, variant.identity, [r.to_dict() for r in results])
                label = variant.label
                print(f"{label} ({p.experiment.backend.kind}; {info.details.get('quantization') or 'quantization ?'}"
                      f", context {info.details.get('n_ctx_per_slot') or '?'}):")
                for r in results:
                    print(f"  {r.line()}")
                for warning in warnings_for(p.experiment, [r.to_dict() for r in results], variant):
                    print(f"  warning: {warning}")
        finally:
            store.close()
    finally:
        await p.backend.close()


def cmd_report(args: argparse.Namespace) -> int:
    p = prepare(args.file)
    if p.experiment.study is not None:
        if not _study_path(p).is_file():
            raise UserError("no results yet", file=args.file, fix=f"run `runner run {args.file}` first")
        try:
            data = json.loads(_study_path(p).read_text())
            results = [ContextResult(**{**r, "probes": [Probe(**x) for x in r["probes"]]}) for r in data["results"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"stored study results are unreadable ({type(exc).__name__})", file=_study_path(p),
                            fix=f"run `runner run {args.file}` again") from None
        sys.stdout.write(render_context(results, data["max_tokens"]))
        return 0
    path = p.experiment.store_path()
    if not path.is_file():
        raise UserError("no results yet", file=args.file, fix=f"run `runner run {args.file}` first")
    _print_report(p, args.limit, args.format, args.output)
    return 0


def _print_report(p: Prepared, limit: int | None, fmt: str, output: str | None) -> None:
    store = Store.open_existing(p.experiment.store_path())
    try:
        text = render(build_report(p.plan, store, p.scorers, limit), fmt)
    finally:
        if store is not None:
            store.close()
    if output is None:
        sys.stdout.write(text)
        return
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so an interrupted report never leaves half a file where a good one was.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, target)
    print(f"wrote {target}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runner", description="Declarative experiments for local LLMs.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="verb", required=True)

    v = sub.add_parser("validate", help="check an experiment without running it")
    v.add_argument("file")
    v.add_argument("--offline", action="store_true", help="do not contact the backend")
    v.set_defaults(func=cmd_validate)

    pl = sub.add_parser("plan", help="show axes, matrix size, first jobs and what is already done")
    pl.add_argument("file")
    pl.add_argument("--limit", type=_positive, help="only the first N dataset items")
    pl.add_argument("--show", type=int, default=3, help="how many jobs to print (default 3)")
    pl.add_argument("--chars", type=int, default=160, help="characters of each message to print")
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser("run", help="run what is not done yet, then print the report")
    r.add_argument("file")
    r.add_argument("--fresh", action="store_true", help="ignore earlier results and run every job")
    r.add_argument("--concurrency", type=_positive, help="requests in flight (default: backend.concurrency)")
    r.add_argument("--limit", type=_positive, help="only the first N dataset items, for a quick trial")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.add_argument("--no-report", action="store_true", help="do not print the report at the end")
    r.set_defaults(func=cmd_run)

    ex = sub.add_parser("explain", help="findings: why the scores are what they are, in sentences")
    ex.add_argument("file")
    ex.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    ex.add_argument("--limit", type=_positive, help="only the first N dataset items")
    ex.set_defaults(func=cmd_explain)

    pr = sub.add_parser("probe", help="measure what the server honours (seed, JSON schema, token counts, context)")
    pr.add_argument("file")
    pr.set_defaults(func=cmd_probe)

    rep = sub.add_parser("report", help="render tables from the store")
    rep.add_argument("file")
    rep.add_argument("--format", choices=FORMATS, default="table")
    rep.add_argument("--output", help="write to this file instead of standard output")
    rep.add_argument("--limit", type=_positive, help="only the first N dataset items")
    rep.set_defaults(func=cmd_report)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except UserError as exc:
        if args.debug:
            raise
        print(f"runner: {exc.line()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: finished jobs are stored; run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
