"""The verbs behind `runner` (see the package docstring): each `cmd_X(args)` over the application
layer (`runner.api`), printing what it returns; the exit codes and the stop on SIGTERM."""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from runner import api
from runner.errors import UserError

EXIT_BUG = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # SIGINT; any other signal is 128 + its number (SIGTERM: 143)
FORMATS = ("table", "markdown", "csv", "json", "html")
INTERRUPTED = "interrupted: finished jobs are stored; run the same command again to resume"


class Terminated(BaseException):
    """SIGTERM outside the run's event loop (which handles it itself): stop like Ctrl-C does."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def cmd_validate(args: argparse.Namespace) -> int:
    if api.is_investigation(args.file):
        steps = api.validate_investigation(args.file, offline=args.offline, max_jobs=args.max_jobs)
        print(f"ok: {args.file}: {len(steps)} steps")
        for name, p in steps:
            what = (f"a {p.experiment.study.kind} study" if p.experiment.study is not None else
                    f"{p.plan.count()} jobs = {len(p.plan.cells)} cells x {len(p.plan.items)} items x "
                    f"{p.plan.repeats} repeats")
            print(f"  {name}: {p.experiment.source_path}: {what}")
        return 0
    plan = api.validate(args.file, offline=args.offline, max_jobs=args.max_jobs).plan
    print(f"ok: {args.file}: {plan.count()} jobs = {len(plan.cells)} cells x {len(plan.items)} items x "
          f"{plan.repeats} repeats")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    status = api.plan_status(args.file, limit=args.limit, max_jobs=args.max_jobs)
    p = status.prepared
    plan = p.plan
    print(f"experiment: {p.experiment.name}")
    print("axes:")
    for axis, values in plan.axes.items():
        print(f"  {axis}: {', '.join('-' if v is None else json.dumps(v) for v in values)}")
    total = status.total
    print(f"matrix: {len(plan.cells)} cells x {len(plan.item_subset(args.limit))} items x {plan.repeats} "
          f"repeats = {total} jobs")
    if status.done is not None:
        print(f"store: {p.store_path}: {status.done} of {total} done, {total - status.done} to run")
    else:
        print(f"store: {p.store_path} (none yet): {total} to run")
    jobs = plan.jobs(args.limit)
    for job in jobs if args.all else itertools.islice(jobs, args.show):
        cell = ", ".join(f"{k}={v}" for k, v in job.cell.values if v is not None)
        print(f"\njob {job.job_id} [{cell}] item={job.item.id} repeat={job.repeat}")
        # As the request carries them (matrix.include applied; a named null is not sent, so not shown).
        print(f"  params: {json.dumps(dict(sorted(job.params.items())), ensure_ascii=False)}")
        for m in job.messages:
            print(f"  {m['role']}: {_clip(m['content'], args.chars)}")
        rendered = p.backend.render_offline(job.cell.variant, list(job.messages))
        if rendered is not None:
            # What the model receives: the chat template applied, with any system prompt it inserts.
            print(f"  rendered ({rendered[1]}): {_clip(rendered[0], args.chars)}")
    if not args.all and args.show < total:
        print(f"\n{min(args.show, total)} of {total} jobs shown; --show N or --all for more")
    return 0


def _clip(text: str, chars: int) -> str:
    one_line = text.replace("\n", "\\n")
    return one_line if len(one_line) <= chars else one_line[:chars] + f"... ({len(text)} chars)"


def _check_verdict_flags(args: argparse.Namespace) -> None:
    """--fail-on-verdict and --junit need a bar to judge by: say so before anything runs."""
    if not (args.fail_on_verdict or args.junit):
        return
    p = api.prepare(args.file, for_reading=True, limit=args.limit, max_jobs=args.max_jobs)
    flag = "--fail-on-verdict" if args.fail_on_verdict else "--junit"
    if p.experiment.study is not None:
        raise UserError(f"{flag} judges rows against report.threshold; a study has none", file=args.file,
                        key="study", fix=f"drop {flag} for this file")
    if p.experiment.report.threshold is None:
        raise UserError(f"{flag} needs a threshold to judge rows against", file=args.file, key="report.threshold",
                        fix="add report: {threshold: {metric: accuracy, min: 0.6}}")


def _judge(args: argparse.Namespace, report: Any) -> int:
    if args.junit:
        _write_atomically(Path(args.junit), api.junit(report))
    return api.verdict_exit_code(report, args.file) if args.fail_on_verdict else 0


def _judge_investigation(args: argparse.Namespace, report: Any) -> int:
    """--junit writes the decision and the hypotheses as test cases; --fail-on-verdict exits 3 unless viable."""
    if args.junit:
        _write_atomically(Path(args.junit), api.investigation_junit(report))
    return api.decision_exit_code(report) if args.fail_on_verdict else 0


def _interrupted(summary: Any) -> int:
    """A run stopped by Ctrl-C or a signal: say so; the status of a process that signal stopped."""
    print(INTERRUPTED, file=sys.stderr)
    code: int = 128 + summary.stop_signal if summary.stop_signal else EXIT_INTERRUPTED
    _exit_now_if_something_would_hold_the_exit(code)
    return code


def _wants_report(args: argparse.Namespace) -> bool:
    """After a run: the report is built to print it, or to judge it (--fail-on-verdict, --junit)."""
    return not args.no_report or bool(args.fail_on_verdict or args.junit)


def cmd_run_investigation(args: argparse.Namespace) -> int:
    if getattr(args, "ray", None) is not None:
        raise UserError("--ray is not available for an investigation yet (it runs one experiment's variants)",
                        file=args.file, fix="drop --ray, or give it one step's experiment file")

    def start(index: int, name: str, experiment: Path, uses: dict[str, Any]) -> None:
        taken = ", ".join(f"{a}={v}" for a, v in uses.items())
        print(f"step {index + 1} {name}: {experiment}" + (f" with {taken}" if taken else ""), file=sys.stderr)

    def finished(step: api.StepRun) -> None:
        summary = step.summary
        if summary.run_id:
            print(f"run {summary.run_id}: {summary.succeeded} succeeded, {summary.failed} failed, "
                  f"{summary.resumed} resumed from the store, {summary.elapsed_s:.1f} s", file=sys.stderr)
        if step.report is not None and not args.no_report:
            sys.stdout.write(api.render(step.report, "table"))
        for record in step.picks:
            print(record.line())
        sys.stdout.flush()

    steps = api.run_investigation(args.file, limit=args.limit, fresh=args.fresh, concurrency=args.concurrency,
                                  subscribers=[api.progress_line(enabled=not args.quiet)], events_path=args.events,
                                  max_jobs=args.max_jobs, on_step_start=start, on_step=finished,
                                  cache=not args.no_cache)
    last = steps[-1].summary if steps else None
    if last is not None and last.interrupted:
        return _interrupted(last)
    if not _wants_report(args):
        return 0
    report = api.report_investigation(args.file, limit=args.limit, max_jobs=args.max_jobs)
    if not args.no_report:
        sys.stdout.write("\n" + api.render_investigation(report, "table", conclusion_only=True))
    return _judge_investigation(args, report)


def cmd_run(args: argparse.Namespace) -> int:
    if api.is_investigation(args.file):
        return cmd_run_investigation(args)
    _check_verdict_flags(args)
    _fewer_collections()
    summary = api.run(args.file, limit=args.limit, fresh=args.fresh, concurrency=args.concurrency,
                      subscribers=[api.progress_line(enabled=not args.quiet)], events_path=args.events,
                      max_jobs=args.max_jobs, cache=not args.no_cache, ray=args.ray)
    if summary.study is not None:
        sys.stdout.write(api.render(summary.study))
        return 0
    if summary.run_id:  # 0: stopped before the run began
        print(f"run {summary.run_id}: {summary.succeeded} succeeded, {summary.failed} failed, "
              f"{summary.resumed} resumed from the store, {summary.elapsed_s:.1f} s", file=sys.stderr)
    if summary.interrupted:
        return _interrupted(summary)
    if not _wants_report(args):
        return 0
    # The run's own prepared experiment: loaded, planned and rendered once for both.
    report = api.report(summary.prepared or args.file, limit=args.limit, max_jobs=args.max_jobs)
    if not args.no_report:
        sys.stdout.write(api.render(report, "table"))
    return _judge(args, report)


def _fewer_collections() -> None:
    """A run allocates a few dozen short-lived containers per job (requests, responses, rows, scores),
    so the cyclic collector's youngest generation filled every ~700 of them: 350 collections and 3 full
    ones at 5,000 jobs, 0.16 s of a 2.3 s command. The modules and the experiment loaded so far live
    as long as the process: frozen out of the collector's walks, and the youngest generation larger
    (9 collections, 0.03 s; memory: at most ~20,000 unreachable cycles more before one). `report` and
    `explain` too: they build a few objects per stored job (a record, a result, counts), all kept to
    the end; at 100,000 jobs 0.3-0.7 s of CPU went to collections that found nothing to free."""
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def _exit_now_if_something_would_hold_the_exit(code: int) -> None:
    """After a signal, exit at once even if a thread that the interpreter joins on exit is still busy
    (a model being derived, a scorer's own thread): the signal asked to stop, not to wait. Everything
    the run stored is committed and the store is closed by now."""
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def cmd_score(args: argparse.Namespace) -> int:
    summary = api.score(args.file, limit=args.limit, max_jobs=args.max_jobs)
    print(f"scored {summary.jobs} stored answers; {summary.rescored} scores were missing or stale and are "
          "stored now", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    chunks = api.export(args.file, fmt=args.format, limit=args.limit, max_jobs=args.max_jobs)
    if args.output is None:
        for chunk in chunks:
            sys.stdout.write(chunk)
        return 0
    _write_atomically(Path(args.output), "".join(chunks))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    _fewer_collections()
    if api.is_investigation(args.file):
        rep = api.report_investigation(args.file, limit=args.limit, max_jobs=args.max_jobs)
        sys.stdout.write(api.render_investigation_findings(rep, args.format))
        return 0
    findings = api.explain(args.file, limit=args.limit, max_jobs=args.max_jobs)
    name = api.experiment_name(args.file)
    sys.stdout.write(api.render_findings(name, findings, args.format))
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    for v in api.probe(args.file):
        print(f"{v.variant} ({v.backend}; {v.details.get('quantization') or 'quantization ?'}, "
              f"context {v.details.get('n_ctx_per_slot') or '?'}):")
        for r in v.results:
            print(f"  {r.line()}")
        for warning in v.warnings:
            print(f"  warning: {warning}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    _fewer_collections()
    if api.is_investigation(args.file):
        if args.format == "csv":
            raise UserError("an investigation's report is several tables, not one", file=args.file,
                            fix="use --format table, markdown, json or html")
        if args.format == "html":
            html, investigation = api.investigation_html(args.file, limit=args.limit, max_jobs=args.max_jobs)
            _emit(args, html)
        else:
            investigation = api.report_investigation(args.file, limit=args.limit, max_jobs=args.max_jobs)
            _emit(args, api.render_investigation(investigation, args.format))
        return _judge_investigation(args, investigation)
    if args.format == "html":
        if args.fail_on_verdict or args.junit:
            raise UserError("--fail-on-verdict and --junit judge the report; --format html only draws it",
                            file=args.file, fix="run `runner report` once with --format html, once with the flag")
        _emit(args, api.report_html(args.file, limit=args.limit, max_jobs=args.max_jobs))
        return 0
    _check_verdict_flags(args)
    report = api.report(args.file, limit=args.limit, max_jobs=args.max_jobs)
    _emit(args, api.render(report, args.format))
    return _judge(args, report)


def cmd_view(args: argparse.Namespace) -> int:
    server = api.html_server(args.file, port=args.port, limit=args.limit, max_jobs=args.max_jobs)
    url = f"http://127.0.0.1:{server.server_address[1]}/"  # it binds only loopback
    print(f"serving {args.file} on {url} (rendered again on every reload); Ctrl-C stops", file=sys.stderr,
          flush=True)
    if not args.no_open:
        import webbrowser

        webbrowser.open(url)
    # Stopping is the only way out, and nothing is lost by it: the exit status says which signal.
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Terminated:
        return 128 + signal.SIGTERM
    finally:
        server.server_close()
    return 0


def _emit(args: argparse.Namespace, text: str) -> None:
    """To stdout, or to --output whole (written then renamed)."""
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(Path(args.output), text)


def _write_atomically(target: Path, text: str) -> None:
    api.write_atomically(target, text)
    print(f"wrote {target}", file=sys.stderr)


def cmd_matrix(args: argparse.Namespace) -> int:
    m = api.matrix(args.files, limit=args.limit, max_jobs=args.max_jobs)
    _emit(args, api.render_matrix(m, args.format))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(api.schema())
    return 0
