"""The `runner` command: argument parsing and rendering over the application layer (`runner.api`).

Exit status: 0 done; 1 a bug (one line naming it; the traceback under --debug); 2 a user error,
printed as one line (`runner: FILE: KEY: problem; fix`); 3 with --fail-on-verdict, a row judged
against `report.threshold` not shown to meet it (an investigation: its decision not viable); 130
interrupted by Ctrl-C (SIGINT), 143 by SIGTERM (128 + the signal, as a shell reports a process the
signal killed), 141 when the reader of the output went away (SIGPIPE: `runner plan FILE | head`).
Everything that can be checked without a request is checked before the store is opened, so a bad
experiment leaves nothing behind.
"""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

import runner
from runner import api
from runner.cli.commands import (
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    FORMATS,
    INTERRUPTED,
    Terminated,
    _on_sigterm,
    cmd_explain,
    cmd_export,
    cmd_matrix,
    cmd_plan,
    cmd_probe,
    cmd_report,
    cmd_run,
    cmd_schema,
    cmd_score,
    cmd_validate,
    cmd_view,
)
from runner.errors import UserError, redact


class _Version(argparse.Action):
    """--version, with the version looked up only when asked for (runner.__version__ is lazy)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"runner {runner.__version__}\n")  # on stdout, as argparse's own version action
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runner", description="Declarative experiments for local LLMs.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    sub = parser.add_subparsers(dest="verb", required=True)

    v = sub.add_parser("validate", help="check an experiment without running it")
    v.add_argument("file")
    v.add_argument("--offline", action="store_true", help="do not contact the backend")
    _max_jobs_flag(v)
    v.set_defaults(func=cmd_validate)

    pl = sub.add_parser("plan", help="show axes, matrix size, first jobs and what is already done")
    pl.add_argument("file")
    pl.add_argument("--limit", type=_positive, help="only the first N dataset items")
    shown = pl.add_mutually_exclusive_group()
    shown.add_argument("--show", type=_at_least_zero, default=3, metavar="N",
                       help="print the first N jobs: messages and params as sent (default 3)")
    shown.add_argument("--all", action="store_true", help="print every job")
    pl.add_argument("--chars", type=int, default=160, help="characters of each message to print")
    _max_jobs_flag(pl)
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser("run", help="run what is not done yet, then print the report")
    r.add_argument("file")
    r.add_argument("--fresh", action="store_true", help="ignore earlier results and run every job")
    r.add_argument("--concurrency", type=_positive, help="requests in flight (default: backend.concurrency)")
    r.add_argument("--limit", type=_positive, help="only the first N dataset items, for a quick trial")
    r.add_argument("--quiet", action="store_true", help="no progress line")
    r.add_argument("--no-report", action="store_true", help="do not print the report at the end")
    r.add_argument("--no-cache", action="store_true",
                   help="send every request: neither read nor write the response cache shared across experiments")
    r.add_argument("--events", metavar="PATH", help="append the run's events to PATH as JSON lines")
    r.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the embedded backend's model variants side by side on a Ray cluster (ADDRESS, "
                        "else RAY_ADDRESS or a local Ray); needs pip install 'llm-runner[ray]'")
    _max_jobs_flag(r)
    _verdict_flags(r)
    r.set_defaults(func=cmd_run)

    sc = sub.add_parser("score", help="re-score stored answers with the scorers as they are now")
    sc.add_argument("file")
    sc.add_argument("--limit", type=_positive, help="only the first N dataset items")
    _max_jobs_flag(sc)
    sc.set_defaults(func=cmd_score)

    exp = sub.add_parser("export", help="one record per job: axes, request, rendered prompt, answer, scores")
    exp.add_argument("file")
    exp.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    exp.add_argument("--output", help="write to this file instead of standard output")
    exp.add_argument("--limit", type=_positive, help="only the first N dataset items")
    _max_jobs_flag(exp)
    exp.set_defaults(func=cmd_export)

    ex = sub.add_parser("explain", help="findings: why the scores are what they are, in sentences")
    ex.add_argument("file")
    ex.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    ex.add_argument("--limit", type=_positive, help="only the first N dataset items")
    _max_jobs_flag(ex)
    ex.set_defaults(func=cmd_explain)

    pr = sub.add_parser("probe", help="measure what the server honours: seed, JSON schema, token counts, context, "
                                      "an injected system prompt, the tokenizer")
    pr.add_argument("file")
    pr.set_defaults(func=cmd_probe)

    sch = sub.add_parser("schema", help="print the experiment file's JSON Schema, for editors")
    sch.set_defaults(func=cmd_schema)

    rep = sub.add_parser("report", help="render tables from the store")
    rep.add_argument("file")
    rep.add_argument("--format", choices=FORMATS, default="table")
    rep.add_argument("--output", help="write to this file instead of standard output")
    rep.add_argument("--limit", type=_positive, help="only the first N dataset items")
    _max_jobs_flag(rep)
    _verdict_flags(rep)
    rep.set_defaults(func=cmd_report)

    mx = sub.add_parser("matrix", help="task x model (by size class): each cell's verdict against its experiment's "
                                       "threshold, with its interval and n")
    mx.add_argument("files", nargs="+", metavar="FILE", help="experiments or investigations")
    mx.add_argument("--format", choices=("table", "markdown", "json", "html"), default="table")
    mx.add_argument("--output", help="write to this file instead of standard output")
    mx.add_argument("--limit", type=_positive, help="only the first N dataset items")
    _max_jobs_flag(mx)
    mx.set_defaults(func=cmd_matrix)
    vw = sub.add_parser("view", help="serve the HTML report on 127.0.0.1 and open it in the browser")
    vw.add_argument("file")
    vw.add_argument("--port", type=_at_least_zero, default=0, help="port to listen on (default: any free one)")
    vw.add_argument("--no-open", action="store_true", help="only print the address; do not open a browser")
    vw.add_argument("--limit", type=_positive, help="only the first N dataset items")
    _max_jobs_flag(vw)
    vw.set_defaults(func=cmd_view)
    return parser


def _max_jobs_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-jobs", type=_positive, metavar="N",
                        help="refuse a plan of more than N jobs (default: limits.max_jobs, 100,000)")


def _verdict_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fail-on-verdict", action="store_true",
                        help=f"exit {api.VERDICT_NOT_MET} unless every row is shown to meet report.threshold "
                             "(an investigation: unless its decision is viable)")
    parser.add_argument("--junit", metavar="PATH", help="write a JUnit XML file: one test case per judged row")


def _at_least_zero(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM stops any verb as Ctrl-C does, with its own exit code; a run's event loop takes it over
    # while it runs (runner.api.run) and gives it back.
    previous = _handle_sigterm()
    try:
        code: int = args.func(args)
        return code
    except UserError as exc:
        if args.debug:
            raise
        print(f"runner: {exc.line()}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        # The reader went away (`runner plan FILE | head`): stop quietly, as a shell tool does, with the
        # status of a process SIGPIPE killed; stdout goes to /dev/null so the exit flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt:
        print("\n" + INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        print("\n" + INTERRUPTED, file=sys.stderr)
        return 128 + signal.SIGTERM
    except Exception as exc:  # a bug (ours or a plugin's), not the user's input: stop, say so, exit 1
        if args.debug:
            raise
        cause = _first_leaf(exc)
        text = redact(" ".join(str(cause).split()))
        print(f"runner: internal error: {type(cause).__name__}: {text}; this is a bug, not your input; "
              "finished jobs are stored; run again with --debug for the traceback", file=sys.stderr)
        return EXIT_BUG
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def console() -> NoReturn:
    """The `runner` command (`python -m runner.cli`, the installed script): `main`, then `exit_now`."""
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """Exit with `code` without the interpreter's teardown, which frees every module and object one by
    one for a process about to end (~0.05 s after a run). Only when it would finish nothing: stdout and
    stderr flushed, no thread left that the interpreter would join, no Ray driver to disconnect;
    otherwise an ordinary exit. Everything a verb writes is committed and closed before it returns; the
    atexit handlers (logging's, a plugin's) still run."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away with output still buffered (`runner plan FILE | head`): the status of a
        # process SIGPIPE killed, as `main` gives when the verb itself hit the closed pipe, and no
        # second failed flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        code = 128 + signal.SIGPIPE if code == 0 else code
    except (OSError, ValueError):
        sys.exit(code)
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if "ray" in sys.modules or any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)  # a profiler or coverage writes its results at the ordinary exit (python -m cProfile)
    atexit._run_exitfuncs()  # what was registered to run at exit runs; only the module teardown is skipped
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a handler's output to a closed pipe: nothing left to tell anyone
    os._exit(code)


def _handle_sigterm() -> Any:
    """Install the SIGTERM handler (main thread only); the one it replaces, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside an ExceptionGroup (a TaskGroup wraps the worker's error)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
