"""The lean HTTP/1.1 client (runner/backends/wire.py) through HttpClient, against real loopback servers.

A raw asyncio server writes exactly the bytes a test gives (the framings and breakages an inference
server or a proxy can send), an aiohttp server the rest (compression, redirects). What leaves
HttpClient is an answer or a classified BackendError, whichever transport carried it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from conftest import CLOSED_PORT
from runner.backends import wire
from runner.backends.base import BackendError
from runner.backends.http import BodyTooLarge, HttpClient

ANSWER = json.dumps({"ok": True, "text": "x" * 100}).encode()


class RawServer:
    """Answers every request on a connection with the next of `answers` (bytes, or None: close at once).
    It reads a whole request (headers, then Content-Length bytes) before answering, and records them."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()


def ok(body: bytes = ANSWER, *, extra: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


def chunked(body: bytes, size: int = 7) -> bytes:
    parts = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size))
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + parts + b"0\r\n\r\n"


async def answer_of(answers: list[bytes | None], call: Callable[[HttpClient], Any] = lambda c: c.get_json("/a"),
                    **client: Any) -> tuple[Any, RawServer]:
    server = RawServer(answers)
    async with server as url:
        http = HttpClient(url, timeout_s=client.pop("timeout_s", 2.0), **client)
        try:
            return await call(http), server
        finally:
            await http.close()


async def error_of(answers: list[bytes | None], **client: Any) -> BackendError:
    with pytest.raises(BackendError) as info:
        await answer_of(answers, **client)
    return info.value


async def timed_failure(url: str) -> tuple[BackendError, float]:
    """The error a POST to `url` ends in (a 5 s timeout) and the seconds it took to come."""
    http = HttpClient(url, timeout_s=5.0)
    start = time.monotonic()
    try:
        with pytest.raises(BackendError) as info:
            await http.post_json("/x", {})
    finally:
        await http.close()
    return info.value, time.monotonic() - start


@pytest.mark.parametrize("answer", [
    ok(),
    chunked(ANSWER),
    b"HTTP/1.1 100 Continue\r\n\r\n" + ok(),  # an informational answer first: the real one follows
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(),
    ok().replace(b"\r\n", b"\n"),  # bare LF line ends, as small embedded servers send
    ok(extra="X-Long: " + "v" * 9000 + "\r\n"),  # a header longer than one read
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + ANSWER,  # no length: the close ends it
    ok(gzip.compress(ANSWER), extra="Content-Encoding: gzip\r\n"),
    ok(zlib.compress(ANSWER), extra="Content-Encoding: deflate\r\n"),
], ids=["content-length", "chunked", "100-continue", "103-early-hints", "bare-lf", "long-header", "until-close",
        "gzip", "deflate"])
async def test_every_framing_of_a_body_is_read_whole(answer: bytes) -> None:
    data, _ = await answer_of([answer])
    assert data == json.loads(ANSWER)


async def test_connections_are_kept_alive_and_the_request_is_well_formed() -> None:
    async def three(http: HttpClient) -> list[Any]:
        return [await http.get_json("/a"), await http.post_json("/b?x=1", {"q": "é"}), await http.get_json("/c")]

    data, server = await answer_of([ok(), ok(), ok()], three, api_key="sk-test")
    assert data == [json.loads(ANSWER)] * 3 and server.connections == 1
    get, post, _ = server.requests
    assert get.startswith(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:") and b"Authorization: Bearer sk-test\r\n" in get
    assert post.startswith(b"POST /b?x=1 HTTP/1.1\r\n") and post.endswith(json.dumps({"q": "é"}).encode())
    assert b"Content-Type: application/json\r\n" in post and b"Accept-Encoding" not in post


@pytest.mark.parametrize(("answer", "message"), [
    (None, "connection error: ServerDisconnected: the server closed the connection without answering"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n" + ANSWER,
     "truncated response body: TruncatedBody: the connection closed after 124 of the 500 promised bytes of "
     "the body"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "garbled response: GarbledResponse: the connection closed in the middle "
                                      "of the headers"),
    (b"\x00\xffnot an HTTP response\r\n\r\n", "garbled response: GarbledResponse: not an HTTP answer ("),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "garbled response: GarbledResponse: not an "
                                                                    "HTTP answer ("),
    (ok(b"not gzip", extra="Content-Encoding: gzip\r\n"),
     "garbled response: GarbledResponse: a gzip body that does not decompress"),
    (ok(ANSWER, extra="Content-Encoding: br\r\n"), "garbled response: GarbledResponse: unsupported "
                                                   "Content-Encoding 'br'"),
    (b"HTTP/1.1 200 OK\r\nX-Loop: " + b"a" * 200_000, "garbled response: GarbledResponse: headers longer than "
                                                       "65536 bytes"),
], ids=["closed", "short-body", "cut-headers", "not-http", "bad-chunk", "bad-gzip", "brotli", "endless-header"])
async def test_a_broken_answer_is_a_retryable_error_naming_the_breakage(answer: bytes | None, message: str) -> None:
    error = await error_of([answer])
    assert error.retryable and str(error).startswith(message), str(error)


@pytest.mark.parametrize("answer", [ok(b"y" * 5000), chunked(b"y" * 5000, size=1000),
                                    ok(gzip.compress(b"y" * 5000), extra="Content-Encoding: gzip\r\n")],
                         ids=["content-length", "chunked", "gzip-bomb"])
async def test_a_body_over_the_cap_is_final_and_stops_the_read(answer: bytes) -> None:
    error = await error_of([answer], max_response_bytes=4096)
    assert isinstance(error, BodyTooLarge) and not error.retryable
    assert str(error) == "response body larger than 4 KiB (backend.max_response_bytes); raise it or lower max_tokens"


async def test_an_error_page_is_quoted_from_its_start_and_the_rest_never_read() -> None:
    page = b"overloaded " + b"z" * 100_000
    error = await error_of([b"HTTP/1.1 503 Busy\r\nRetry-After: 2\r\nContent-Length: %d\r\n\r\n" % len(page) + page])
    assert error.retryable and (error.status, error.retry_after) == (503, 2.0)
    assert str(error).startswith("HTTP 503: overloaded zzz") and len(str(error)) < 400


async def test_an_error_page_says_its_status_whatever_its_encoding_and_in_one_line() -> None:
    bomb = gzip.compress(b"busy " * 100_000)  # inflates far past the cap
    error = await error_of([b"HTTP/1.1 503 Busy\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb)
                            + bomb], max_response_bytes=4096)
    assert error.retryable and error.status == 503 and str(error).startswith("HTTP 503: busy busy")
    page = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\r\n</html>\r\n"
    error = await error_of([b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n\r\n" % len(page) + page])
    assert str(error) == "HTTP 502: <html> <head><title>502 Bad Gateway</title></head> <body>nginx</body> </html>"


async def test_a_second_answer_in_the_same_read_is_never_taken_for_the_next_request() -> None:
    # A server (or proxy) answering one request twice, both in one write: the second answer must not be
    # read as the next request's; that request goes on a new connection and gets its own.
    first, duplicate, own = (json.dumps({"answer": n}).encode() for n in ("first", "duplicate", "own"))

    async def two(http: HttpClient) -> list[Any]:
        return [await http.get_json("/a"), await http.get_json("/b")]

    data, server = await answer_of([ok(first) + ok(duplicate), ok(own)], two)
    assert data == [{"answer": "first"}, {"answer": "own"}] and server.connections == 2


@pytest.mark.parametrize("banner", [b"", b"SSH-2.0-OpenSSH_9.6\r\n"], ids=["closes", "speaks-first"])
async def test_a_port_that_accepts_and_closes_fails_at_once_not_at_the_timeout(banner: bytes) -> None:
    # What ssh -L, socat or kubectl port-forward do with nothing behind them, or another protocol that
    # speaks first: in a thread, so that the close can reach the client before the request is written.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)

    def accept_and_close() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if banner:
                conn.sendall(banner)
            conn.close()

    threading.Thread(target=accept_and_close, daemon=True).start()
    try:
        for _ in range(20):  # the race goes both ways: each way must fail at once
            error, seconds = await timed_failure(f"http://127.0.0.1:{listener.getsockname()[1]}/v1")
            assert seconds < 2.0 and error.retryable
            assert str(error).startswith("garbled response" if banner else "connection error"), str(error)
    finally:
        listener.close()


async def test_a_body_of_tiny_chunks_costs_about_its_size_in_memory() -> None:
    body = json.dumps({"text": "y" * 1_000_000}).encode()
    answer = chunked(body, size=2)
    tracemalloc.start()
    try:
        data, _ = await answer_of([answer], timeout_s=30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data["text"]) == 1_000_000
    assert peak < 8 * len(body), peak  # a bytes object kept per 2-byte chunk was ~67x


async def test_an_endless_error_page_is_quoted_at_once_not_read_to_its_end() -> None:
    # A 503 that says it is 10 GB and never stops coming: only its start is read, then the connection
    # is dropped (read whole, this would run into the timeout instead).
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 10000000000\r\n\r\n")
        try:
            while True:
                writer.write(b"overloaded " * 10_000)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client closed it, as it should

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    try:
        error, seconds = await timed_failure(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    finally:
        server.close()
        await server.wait_closed()
    assert error.status == 503 and error.retryable and seconds < 2.0


async def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * 200_000_000)  # ~200 KB, under the cap, that would be 200 MB
    answer = ok(bomb, extra="Content-Encoding: gzip\r\n")
    tracemalloc.start()
    try:
        error = await error_of([answer], max_response_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, BodyTooLarge)
    assert peak < 8 << 20, peak  # the compressed body and a cap's worth, not the 200 MB


async def test_bytes_a_server_sends_to_an_idle_connection_retire_it() -> None:
    # Stray bytes after a complete answer, in a later write (a server answering twice, late): the
    # connection's state is unknown, so the next request goes on a new one and gets its own answer.
    async def late_duplicate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(ok(json.dumps({"answer": "first"}).encode()))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(ok(json.dumps({"answer": "duplicate"}).encode()))
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")  # never comes on this connection
            writer.write(ok(json.dumps({"answer": "wrong connection"}).encode()))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        if len(connections) == 1:
            await late_duplicate(reader, writer)
        else:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(ok(json.dumps({"answer": "own"}).encode()))
            await writer.drain()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    http = HttpClient(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout_s=2.0)
    try:
        first = await http.get_json("/a")
        await asyncio.sleep(0.2)  # the duplicate arrives while the connection sits in the pool
        second = await http.get_json("/b")
    finally:
        await http.close()
        server.close()
        await server.wait_closed()
    assert (first, second, len(connections)) == ({"answer": "first"}, {"answer": "own"}, 2)


async def test_a_server_silent_past_the_timeout_is_a_timeout_and_the_connection_is_not_reused() -> None:
    async def twice(http: HttpClient) -> Any:
        with pytest.raises(BackendError, match=r"^timed out after 0.3 s$"):
            await http.post_json("/a", {})
        return await http.post_json("/b", {})

    # The first answer comes after the client gave up (stalled mid-body); the second request must not
    # read it as its own: it goes on a new connection.
    stalled = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER[:10]
    data, server = await answer_of([stalled, ok()], twice, timeout_s=0.3)
    assert data == json.loads(ANSWER) and server.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_picked() -> None:
    # One answer per connection: the server closes after the first; the second request needs a new one.
    server = RawServer([ok()])
    async with server as url:
        http = HttpClient(url, timeout_s=2.0)
        try:
            first = await http.get_json("/a")
            await asyncio.sleep(0.1)
            server.answers.append(ok())
            second = await http.get_json("/b")
        finally:
            await http.close()
    assert first == second == json.loads(ANSWER) and server.connections == 2


@pytest.fixture
async def redirecting() -> AsyncIterator[str]:
    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/v1/here")

    async def here(_: web.Request) -> web.Response:
        return web.json_response({"moved": True})

    app = web.Application()
    app.router.add_get("/v1/there", moved)
    app.router.add_get("/v1/here", here)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/v1"))
    await server.close()


async def test_a_redirect_is_followed_through_aiohttp(redirecting: str) -> None:
    http = HttpClient(redirecting, timeout_s=2.0)
    try:
        assert await http.get_json("/there") == {"moved": True}
        assert http._session is not None  # the lean client handed the redirect over
        assert await http.get_json("/here") == {"moved": True}
    finally:
        await http.close()


async def test_https_and_credentials_in_the_url_go_through_aiohttp() -> None:
    for url in (f"https://127.0.0.1:{CLOSED_PORT}/v1", f"http://user:pw@127.0.0.1:{CLOSED_PORT}/v1"):
        http = HttpClient(url, timeout_s=2.0)
        try:
            with pytest.raises(BackendError, match=r"^connection error: ClientConnectorError"):
                await http.get_json("/models")
        finally:
            await http.close()


def test_a_key_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    # Backends refuse such a key with a line naming the file and the fix (tests/test_bad_input.py).
    with pytest.raises(ValueError, match=r"^an API key with a line break would be a second header on the wire$"):
        HttpClient("http://127.0.0.1:1/v1", timeout_s=1.0, api_key="sk-1\r\nX-Evil: 1")


async def test_a_key_outside_latin_1_is_sent_as_utf_8() -> None:
    _, server = await answer_of([ok()], api_key="sk-abc\u201d")
    assert b"Authorization: Bearer sk-abc\xe2\x80\x9d\r\n" in server.requests[0]


async def test_the_wire_client_alone_raises_only_its_own_errors_oserror_and_timeout() -> None:
    client = wire.WireClient({})
    try:
        with pytest.raises(ConnectionRefusedError):
            await client.request("GET", "127.0.0.1", CLOSED_PORT, "/", None, timeout_s=1.0, cap=100, error_cap=100)
    finally:
        await client.close()
