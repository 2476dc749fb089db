"""Child process that serves one GGUF file with llama.cpp's server (xllamacpp) on loopback.

Run as `python -m runner.backends.llamacpp.server --model PATH ...`. It prints one JSON line
(`{"url": "http://127.0.0.1:PORT"}`) once the server listens, then serves until its standard
input closes or it gets SIGTERM. One engine per process because a second `xllamacpp.Server` in the
same process hung in its destructor (see shared/LOCAL_MODELS.md); watching stdin means the server
goes away with its parent even if the parent is SIGKILLed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from runner.config.imports import require
from runner.errors import UserError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--n-ctx", type=int, required=True, help="total context, shared by the slots")
    parser.add_argument("--parallel", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--slot-save-path", default=None,
                        help="a folder for slot KV files: enables /slots save and restore (prompt-cache sharing)")
    args = parser.parse_args()

    def leave(*_: object) -> None:
        # _exit: the engine's destructor can block; the process is going away anyway.
        os._exit(0)

    # Before the model loads: a parent SIGKILLed during a slow load must not leave a server behind.
    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)

    def watch_parent() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or died
        leave()

    threading.Thread(target=watch_parent, daemon=True).start()

    try:
        xllamacpp = require("xllamacpp", "xllamacpp", "llama.cpp's server")
    except UserError as exc:
        # The parent shows the last line of this process's stderr: make it the one-line error.
        print(exc.line(), file=sys.stderr, flush=True)
        sys.exit(2)

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_ctx = args.n_ctx
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.port = 0  # a free port, chosen by the server
    if args.slot_save_path:
        # /slots?action=save|restore: the parent copies one slot's KV cache into the others (a shared
        # system prompt evaluated once for all slots). The server refuses file names with paths in them.
        # llama.cpp joins this and the file name as strings, and only its own argument parser adds the
        # separator: without it the file would land beside the folder, not in it.
        params.slot_save_path = os.path.join(args.slot_save_path, "")
        params.endpoint_slots = True
    server = xllamacpp.Server(params)
    try:
        sys.stdout.write(json.dumps({"url": server.listening_address}) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        leave()
    # The parent reads one line only: anything later on stdout must not fill the pipe and stall us.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    threading.Event().wait()


if __name__ == "__main__":
    main()
