"""The `--ray ADDRESS` check: is the address well formed, and does a Ray head answer there, in seconds.

Ray itself, given an address where nothing listens (or something that is not Ray), retries for
minutes before it gives up; the runner must not hang on a typo. So before any model loads the
driver parses HOST:PORT, connects to the port Ray would dial with a short timeout, and sends the
HTTP/2 preface: a head's GCS port is a gRPC server and answers with a SETTINGS frame at once,
where a dashboard (HTTP/1.1) or any other service does not. Each failure is one line naming the
address and what to give instead.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from runner.errors import BackendUnavailable

# A live head answers a connect on its own network in milliseconds; a few seconds allows for a slow link.
REACH_TIMEOUT_S = 3.0
# A head's GCS port speaks gRPC, that is HTTP/2: its first frame back is SETTINGS (type 4).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_SETTINGS_FRAME = 4
_CLIENT_SCHEME = "ray://"
_FORM = ("give the head node's HOST:PORT (the GCS port `ray start --head` printed, 6379 unless --port "
         "changed it), e.g. --ray 127.0.0.1:6379, or ray://HOST:10001 for Ray Client")


def split_address(address: str, *, where: str, file: Path | str | None) -> tuple[str, int]:
    """HOST and PORT of a Ray address (`host:port`, `[v6]:port`, `ray://host:port`), or a one-line error."""
    bare = address[len(_CLIENT_SCHEME):] if address.startswith(_CLIENT_SCHEME) else address
    host, sep, port = bare.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or "/" in bare or (":" in host and "[" not in bare) or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise BackendUnavailable(f"{where}{address!r} is not a Ray address", file=file, key="--ray", fix=_FORM)
    return host, int(port)


def check_head(address: str, *, where: str, file: Path | str | None, dials: Callable[[str], str]) -> None:
    """Raise `BackendUnavailable` (one line) unless a gRPC server (a Ray head) answers at `address`.

    `where` names the address's source in the message ("" for --ray itself, "RAY_ADDRESS "); `dials` maps the
    given host to the one Ray connects to (Ray replaces 127.0.0.1 and localhost by the node's own IP),
    so the check goes where `ray.init` will go."""
    host, port = split_address(address, where=where, file=file)
    target = host if address.startswith(_CLIENT_SCHEME) else dials(host)
    shown = f"{where}{address}"
    via = "" if target == host else f"Ray dials {target}:{port}: "
    fix = f"start the head there (ray start --head --port {port}) or correct the address"
    try:
        conn = socket.create_connection((target, port), timeout=REACH_TIMEOUT_S)
    except socket.gaierror:
        raise BackendUnavailable(f"unknown host {target} in {shown}", file=file, key="--ray",
                                 fix="correct the address") from None
    except ConnectionRefusedError:
        raise BackendUnavailable(f"nothing listens at {shown} ({via}connection refused)", file=file,
                                 key="--ray", fix=fix) from None
    except TimeoutError:
        raise BackendUnavailable(f"no answer from {shown} ({via}none within {REACH_TIMEOUT_S:g} s)", file=file,
                                 key="--ray", fix=fix) from None
    except OSError as exc:
        raise BackendUnavailable(f"cannot connect to {shown} ({via}{exc.strerror or exc})", file=file,
                                 key="--ray", fix=fix) from None
    with conn:
        try:
            conn.sendall(_HTTP2_PREFACE)
            first = _read(conn, 9)
        except OSError:  # silent (a timeout) or reset: either way not a gRPC server
            first = b""
    if len(first) < 9 or first[3] != _SETTINGS_FRAME:
        raise BackendUnavailable(f"{shown} is no Ray head ({via}it takes connections but gives no gRPC answer)",
                                 file=file, key="--ray", fix=_FORM)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:  # closed: an HTTP/1.1 server says 400 and hangs up, others just hang up
            break
        data += chunk
    return data
