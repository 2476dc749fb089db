"""A lean HTTP/1.1 client for plain `http://` servers: what the runner sends its jobs through.

Why not aiohttp's client for these: at zero server latency its own work per request (request and
response objects, the streams, the timer context, the cookie jar) is about 0.17 ms of the client's
one core, twice what this does; a bare aiohttp loop is the wire the runner is measured against, and
the runner does more than POST (store, scoring, progress), so the transport must cost less than
aiohttp's (bench/overhead.py). aiohttp stays for everything else: https, URLs with credentials,
redirects (a 3xx answer here is handed back, and `HttpClient` asks aiohttp, which follows it).

What it does and no more: keep-alive connections pooled per host (no cap: the executor's workers
bound concurrency), a request's whole time bounded by one deadline (connect included), the body
capped while it arrives (a server in a loop cannot fill memory), Content-Length, chunked and
read-until-close bodies, gzip/deflate answers. Parsing is llhttp's (Node's parser, through
httptools): what a crashing server or another protocol sends is caught there, not by hand-written
code. A pooled connection the server closes while idle is dropped when it closes; every failure is
raised, classified by type, for `HttpClient` to turn into a BackendError.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httptools

if TYPE_CHECKING:
    from collections.abc import Mapping


class WireError(Exception):
    """Every way a request fails here, but for OSError from connecting and TimeoutError."""


class ServerDisconnected(WireError):
    """The connection closed before the answer began: a server that crashed, restarted or reset it."""


class TruncatedBody(WireError):
    """The headers came, the body stopped short of what they promised."""


class GarbledResponse(WireError):
    """Bytes that are not an HTTP answer: another protocol on the port, or a mangling proxy."""


class BodyOverCap(WireError):
    """More body than the request allowed; the connection is closed rather than drained."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes  # at most the request's cap for a 200; an error answer's first `error_cap` bytes (the rest never read)


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request written, its answer parsed as it arrives."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.pool_key = ("", 0)
        self._poll: select.poll | None = None
        self._parser = httptools.HttpResponseParser(self)
        # Bare LF line endings: seen from small embedded servers; aiohttp reads them too.
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        self._waiter: asyncio.Future[Response] | None = None
        self._spoke_first = False
        self._answered = False
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunks = bytearray()
        self._size = 0
        self._cap = 0
        self._error_cap = 0
        self._received = 0
        self._headers_done = False
        self._until_close = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)

    def has_input(self) -> bool:
        """Whether the idle socket has something to read: the server's close (or stray bytes), which
        the loop learns of only a turn or two later; a connection picked then would fail its request."""
        return self._poll is not None and bool(self._poll.poll(0))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self._spoke_first = self._spoke_first or not self._answered
            self._abort()  # bytes nobody asked for: the connection's state is unknown, never reuse it
            return
        self._received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(GarbledResponse("the server switched protocols"))
        except httptools.HttpParserError as exc:
            if not isinstance(exc.__context__, WireError):  # a callback's own failure is already set
                self._fail(GarbledResponse(f"not an HTTP answer ({' '.join(str(exc).split())})"))
            return
        if not self._headers_done and self._received > _MAX_HEAD:  # httptools buffers a header whole
            self._fail(GarbledResponse(f"headers longer than {_MAX_HEAD} bytes"))

    def eof_received(self) -> bool | None:
        self.closed = True  # now, not a loop turn later in connection_lost: the pool must not pick it
        return None  # the transport closes; connection_lost settles an answer still awaited

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and self._until_close:
            self._complete(keep_alive=False)  # no length given: the close is the end of the body
        elif self._headers_done:
            promised = self._headers.get("content-length")
            of = f" of the {promised} promised" if promised is not None else ""
            waiter.set_exception(TruncatedBody(f"the connection closed after {self._size}{of} bytes of the body"))
        elif self._received:
            waiter.set_exception(GarbledResponse("the connection closed in the middle of the headers"))
        else:
            waiter.set_exception(ServerDisconnected("the server closed the connection without answering"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None:  # a second answer in the same read as the first: never reuse the connection
            self._abort()
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        # httptools hands each header over whole, however many reads it took (capped by _MAX_HEAD).
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        headers = self._headers
        self._until_close = ("content-length" not in headers and "chunked" not in
                             headers.get("transfer-encoding", "").lower() and self._status not in (204, 304))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._status != 200 and self._size >= self._error_cap:
            # Only the start of an error page is wanted: the rest is never read.
            self._chunks += body
            self._complete(keep_alive=False)
            raise _Stop
        if self._size > self._cap:
            self._fail(BodyOverCap(f"the body is larger than {self._cap} bytes"))
            raise _Stop
        self._chunks += body

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self._status, self._headers, self._headers_done = 0, {}, False
            return
        self._answered = True
        self._complete(keep_alive=self._parser.should_keep_alive())

    # requests

    def send(self, data: bytes, waiter: asyncio.Future[Response], cap: int, error_cap: int) -> None:
        assert self.transport is not None
        self._reset()
        self._waiter, self._cap, self._error_cap = waiter, cap, error_cap
        if self.closed:  # closed, or spoke, before the request was written: nothing will settle the waiter
            self._fail(GarbledResponse("the server spoke before the request") if self._spoke_first
                       else ServerDisconnected("the server closed the connection without answering"))
            return
        self.transport.write(data)

    def _complete(self, *, keep_alive: bool) -> None:
        waiter, self._waiter = self._waiter, None
        if not keep_alive:
            self._abort()
        if waiter is None or waiter.done():
            return
        body = bytes(self._chunks)
        encoding = self._headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "") and self._status != 200:
            # An error page: its status decides, whatever its encoding; quoted inflated where that works.
            with contextlib.suppress(WireError):  # else the raw bytes are quoted
                body = _decode(body, encoding, self._error_cap, truncate=True)
        elif encoding not in ("identity", ""):
            try:
                body = _decode(body, encoding, self._cap)
            except WireError as exc:
                self._abort()
                waiter.set_exception(exc)
                return
        waiter.set_result(Response(self._status, self._headers, body))

    def _fail(self, exc: WireError) -> None:
        waiter, self._waiter = self._waiter, None
        self._abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


_MAX_HEAD = 64 * 1024


class _Stop(WireError):
    """Raised from a callback to make llhttp stop parsing; the waiter already has its outcome."""


def _decode(body: bytes, encoding: str, cap: int, *, truncate: bool = False) -> bytes:
    """gzip or deflate, never inflated past the cap (a small bomb cannot fill memory): past it,
    BodyOverCap, or with `truncate` the first `cap` bytes."""
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise GarbledResponse(f"unsupported Content-Encoding {encoding!r}")
    wbits = 31 if "gzip" in encoding else 15
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, cap + 1)
    except zlib.error:
        if encoding != "deflate":
            raise GarbledResponse("a gzip body that does not decompress") from None
        try:  # "deflate" is sent raw as often as zlib-wrapped
            inflater = zlib.decompressobj(-15)
            out = inflater.decompress(body, cap + 1)
        except zlib.error:
            raise GarbledResponse("a deflate body that does not decompress") from None
    if len(out) > cap:
        if truncate:
            return out[:cap]
        raise BodyOverCap(f"the body is larger than {cap} bytes")
    return out


class WireClient:
    """Pooled keep-alive connections to plain-HTTP servers; `request` is the one way in."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        # UTF-8, as aiohttp sends a value outside latin-1 (a key pasted with a curly quote).
        self._extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._busy: set[_Connection] = set()

    async def request(self, method: str, host: str, port: int, target: str, body: bytes | None, *,
                      timeout_s: float, cap: int, error_cap: int) -> Response:
        """One request and its answer; raises TimeoutError, OSError (connecting) or a WireError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        authority = host if port == 80 else f"{host}:{port}"
        if ":" in host:
            authority = f"[{host}]" if port == 80 else f"[{host}]:{port}"
        head = f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\n".encode("latin-1") + self._extra
        data = head + (b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
                       if body is not None else b"\r\n")
        # No quiet second try when a reused connection turns out closed (the server's keep-alive timeout
        # racing the request): it is raised like any disconnect, so every attempt is one the retry
        # layer sees and logs. A connection the server closed while idle is noticed and never reused.
        connection = await self._connection(host, port, deadline)
        return await self._exchange(connection, data, deadline, cap, error_cap)

    async def _connection(self, host: str, port: int, deadline: float) -> _Connection:
        idle = self._idle.get((host, port))
        while idle:
            connection = idle.pop()
            if not connection.closed and not connection.has_input():
                return connection
            connection._abort()
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        _, connection = await asyncio.wait_for(loop.create_connection(_Connection, host, port), remaining)
        connection.pool_key = (host, port)
        return connection

    async def _exchange(self, connection: _Connection, data: bytes, deadline: float, cap: int,
                        error_cap: int) -> Response:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        timer = loop.call_at(deadline, _expire, waiter)
        self._busy.add(connection)
        try:
            connection.send(data, waiter, cap, error_cap)
            response = await waiter
        except BaseException:
            connection._abort()  # timed out, failed or cancelled mid-answer: the connection is spent
            raise
        finally:
            timer.cancel()
            self._busy.discard(connection)
        if not connection.closed:
            self._idle.setdefault(connection.pool_key, []).append(connection)
        return response

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection._abort()
        for connection in self._busy:
            connection._abort()
        self._idle.clear()
        self._busy.clear()


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
