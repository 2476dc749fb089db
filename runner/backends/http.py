"""The HTTP client every backend talks through, so that all send JSON and classify failures alike.

Every request goes through `HttpClient._request`, the one place transport errors are caught: plain
http through the lean client (runner/backends/wire.py), https, credentials in the URL and redirects
through aiohttp; what leaves this module is an answer or a `BackendError` (never an aiohttp, wire,
socket or JSON error), with `retryable` saying whether another attempt could help. Connection
errors, timeouts, 429, 5xx and truncated or garbled bodies are retryable; other 4xx, a bad URL, a
bad certificate, too many redirects and a body over `backend.max_response_bytes` are not.

Bodies are read up to that cap and no further (a server in a loop cannot fill memory), and every
message quoting the server is redacted here, where it is built (`runner.errors.redact`): a server
that echoes request headers would otherwise hand the API key to the store and the terminal.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runner.backends import wire
from runner.backends.base import BackendError, ChatRequest, Completion
from runner.config.schema import DEFAULT_MAX_RESPONSE_BYTES
from runner.errors import BackendUnavailable, redact, register_secret

if TYPE_CHECKING:
    # Imported where a request is made: aiohttp costs about 0.2 s to import (it builds its default SSL
    # contexts then), which `runner plan` and the read verbs, sending nothing, need not pay.
    import aiohttp

_READ_CHUNK = 64 * 1024
_JSON_BODY = {"Content-Type": "application/json"}
# Error messages quote this much of a body; the redaction sees a little more, so that a key cut in
# half by the quote is still recognised and replaced whole.
_QUOTED_CHARS = 300
_REDACTED_CHARS = 8192


class MalformedBody(BackendError):
    """An answer whose body is not JSON: truncated or garbled on the way, or another service's page."""


class BodyTooLarge(BackendError):
    """An answer larger than `backend.max_response_bytes`: asking again gets the same."""


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; HTTP dates are rare from inference servers and are ignored."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HttpClient:
    """Requests to an API root, with failures classified as retryable or not: plain-HTTP URLs through
    the lean client (runner/backends/wire.py), the rest (https, credentials in the URL, redirects)
    through an aiohttp session."""

    def __init__(self, base_url: str, *, timeout_s: float, api_key: str | None = None,
                 connections: int = 100, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        register_secret(api_key)  # before any request, so nothing the server says back can carry it
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        if api_key and any(c in api_key for c in "\r\n"):  # backends refuse such a key in check(), with the fix
            raise ValueError("an API key with a line break would be a second header on the wire")
        self._wire: wire.WireClient | None = wire.WireClient({"User-Agent": "llm-runner", **self._headers})
        self._targets: dict[str, tuple[str, int, str] | None] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            # No cap here: the executor's workers bound concurrency (--concurrency may exceed the YAML's),
            # and waiting for a pooled connection would count against the request timeout.
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(headers=self._headers, connector=connector)
        return self._session

    async def close(self) -> None:
        if self._wire is not None:
            await self._wire.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, path: str) -> str:
        """A path under the API root, or an absolute URL (llama.cpp's /props sits above /v1)."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def get_json(self, path: str, timeout_s: float = 10.0) -> Any:
        """GET JSON; every failure is a classified BackendError (MalformedBody for a non-JSON body)."""
        return await self._request("GET", self.url(path), None, timeout_s)

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """POST JSON, return the decoded answer; every failure is a classified BackendError."""
        return await self._request("POST", self.url(path), body, self.timeout_s)

    async def first_contact(self, path: str, *, what: str, config_file: Path, fix: str, fix_not_json: str) -> Any:
        """GET `path` to show the server is there; on failure close the session and raise a user error."""
        try:
            return await self.get_json(path)
        except MalformedBody:  # a web page or another service on that port: it answers, but not with JSON
            await self.close()
            raise BackendUnavailable(f"{self.url(path)} answers, but not with JSON", file=config_file,
                                     key="backend.base_url", fix=fix_not_json) from None
        except BackendError as exc:
            await self.close()
            raise BackendUnavailable(f"cannot reach {what} ({failure_name(exc)})", file=config_file,
                                     key="backend.base_url", fix=fix) from None
        except asyncio.CancelledError:  # a signal while the server is silent: no "Unclosed client session"
            await self.close()
            raise

    async def _request(self, method: str, url: str, body: dict[str, Any] | bytes | None, timeout_s: float) -> Any:
        """The boundary: one request and its JSON answer, or a BackendError for every way it can fail.
        `body`: a value to send as JSON, or JSON already encoded."""
        target = self._wire_target(url)
        if target is not None:
            raw = await self._wire_request(method, url, target, body, timeout_s)
            if raw is not None:
                return _decode_json(raw)
        return _decode_json(await self._aiohttp_request(method, url, body, timeout_s))

    def _wire_target(self, url: str) -> tuple[str, int, str] | None:
        """(host, port, request target) where the lean client can send to `url`, else None."""
        if url in self._targets:
            return self._targets[url]
        target: tuple[str, int, str] | None = None
        try:
            parts = urlsplit(url)
            port = parts.port or 80
        except ValueError:  # a port out of range: aiohttp says so, classified as the request's fault
            parts, port = None, 0
        if (self._wire is not None and parts is not None and parts.scheme == "http" and parts.hostname
                and not parts.username and not parts.password and url.isascii() and " " not in url):
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            target = (parts.hostname, port, path) if _resolvable(parts.hostname) else None
        if len(self._targets) < 1024:  # a handful of URLs per backend; never a growing table
            self._targets[url] = target
        return target

    async def _wire_request(self, method: str, url: str, target: tuple[str, int, str],
                            body: dict[str, Any] | bytes | None, timeout_s: float) -> bytes | None:
        """The answer's body through the lean client; None for a redirect, which aiohttp follows."""
        assert self._wire is not None
        host, port, path = target
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        try:
            response = await self._wire.request(method, host, port, path, data, timeout_s=timeout_s,
                                                cap=self.max_response_bytes, error_cap=_REDACTED_CHARS)
        except TimeoutError as exc:
            raise BackendError(f"timed out after {timeout_s:g} s", retryable=True) from exc
        except wire.BodyOverCap as exc:
            raise BodyTooLarge(f"response body larger than {format_size(self.max_response_bytes)} "
                               "(backend.max_response_bytes); raise it or lower max_tokens",
                               retryable=False, url=redact(url)) from exc
        except wire.TruncatedBody as exc:
            raise BackendError(f"truncated response body: TruncatedBody: {exc}", retryable=True) from exc
        except wire.GarbledResponse as exc:
            raise BackendError(redact(f"garbled response: GarbledResponse: {exc}")[:_QUOTED_CHARS],
                               retryable=True) from exc
        except (wire.WireError, OSError) as exc:  # ServerDisconnected, and refused/unreachable connects
            raise _connection_error(exc) from exc
        if 300 <= response.status < 400:
            return None
        if response.status != 200:
            raise _status_error(response.status, response.body, response.headers.get("retry-after"), url)
        return response.body

    async def _aiohttp_request(self, method: str, url: str, body: dict[str, Any] | bytes | None,
                               timeout_s: float) -> bytes:
        import aiohttp

        timeout = self._timeouts.get(timeout_s)
        if timeout is None:
            timeout = self._timeouts[timeout_s] = aiohttp.ClientTimeout(total=timeout_s)
        try:
            request = self.session.request(method, url, data=body, headers=_JSON_BODY, timeout=timeout) \
                if isinstance(body, bytes) else self.session.request(method, url, json=body, timeout=timeout)
            async with request as resp:
                if resp.status != 200:
                    # Only the start is quoted: a 500's 10 MB error page is still a (retryable) 500.
                    head = await _read_prefix(resp, _REDACTED_CHARS)
                    raise _status_error(resp.status, head, resp.headers.get("Retry-After"), url)
                raw = await self._read_capped(resp)
        except BackendError:
            raise
        except TimeoutError as exc:
            # First: aiohttp's ServerTimeoutError is a ClientError too. (asyncio.TimeoutError is TimeoutError.)
            raise BackendError(f"timed out after {timeout_s:g} s", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise _client_error(exc) from exc
        except OSError as exc:  # ConnectionError and other socket errors aiohttp did not wrap
            raise _connection_error(exc) from exc
        except UnicodeError as exc:  # a host name IDNA cannot encode (a label over 63 characters)
            raise BackendError(redact(f"request error: the host name cannot be looked up ({exc})"),
                               retryable=False) from exc
        return raw

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        """The body, read chunk by chunk and never more than the cap (plus one chunk) into memory."""
        cap = self.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > cap:
                # Leaving the `async with` closes the connection rather than draining the rest.
                raise BodyTooLarge(f"response body larger than {format_size(cap)} (backend.max_response_bytes); "
                                   "raise it or lower max_tokens", retryable=False, url=str(resp.url))
            chunks.append(chunk)
        return b"".join(chunks)

    async def chat(self, request: ChatRequest) -> Completion:
        """An OpenAI chat completion. The body is encoded once, here: the same text is sent and stored."""
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, **request.params}
        text = json.dumps(body, ensure_ascii=False)
        encoded: str | None = text
        try:
            sent = text.encode()
        except UnicodeEncodeError:  # a lone surrogate in a dataset's text: sent \u-escaped, as aiohttp would
            encoded, sent = None, json.dumps(body).encode()
        completion = _parse_completion(body, await self._request("POST", self.url("/chat/completions"), sent,
                                                                 self.timeout_s))
        completion.request_json = encoded
        return completion


def _connection_error(exc: Exception) -> BackendError:
    """A socket-level failure of either transport, on one line, redacted (it may quote the URL)."""
    return BackendError(redact(f"connection error: {type(exc).__name__}: {' '.join(str(exc).split())}")
                        [:_QUOTED_CHARS], retryable=True)


def _resolvable(host: str) -> bool:
    """A name the resolver can take (`localhost..` or a 64-character label fail IDNA, raising a bare
    UnicodeError from connect): left to aiohttp, which says so as a connection error."""
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, absurd nesting
        # A truncated body is what a proxy or a crashing server sends; another attempt may succeed.
        quoted = redact(raw[:_REDACTED_CHARS].decode("utf-8", "replace"))[:80].encode()
        raise MalformedBody(f"malformed response body: {quoted!r}", retryable=True) from exc


async def _read_prefix(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to `limit` bytes from the start of the body; the rest is never read."""
    data = b""
    async for chunk in resp.content.iter_chunked(_READ_CHUNK):
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit]


def format_size(n: int) -> str:
    """Bytes as people write them: 4 MiB, 64 KiB, 1536 bytes."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def failure_name(exc: BackendError) -> str:
    """A short name for what went wrong: `HTTP 404`, or the transport error's type (ClientConnectorError)."""
    if exc.status is not None:
        return f"HTTP {exc.status}"
    return type(exc.__cause__).__name__ if exc.__cause__ is not None else type(exc).__name__


# Requests that no retry can help: a bad or non-HTTP URL, a redirect loop, a certificate that does not
# verify. (NonHttpUrlClientError is aiohttp 3.10+; before it such URLs raised InvalidURL.)
def _final() -> tuple[type[Exception], ...]:
    import aiohttp

    return (aiohttp.InvalidURL, aiohttp.TooManyRedirects, aiohttp.ClientConnectorCertificateError,
            *(getattr(aiohttp, name) for name in ("NonHttpUrlClientError",) if hasattr(aiohttp, name)))


def _client_error(exc: aiohttp.ClientError) -> BackendError:
    """aiohttp's errors, classified: the request's own fault is final, the transport's is worth a retry."""
    import aiohttp

    # One line, for the store and reports; aiohttp quotes the URL, which may carry a password.
    name = redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}")[:_QUOTED_CHARS]
    if isinstance(exc, _final()):
        return BackendError(f"request error: {name}", retryable=False)
    if isinstance(exc, aiohttp.ClientPayloadError):  # cut off mid-body, or a broken chunked/compressed encoding
        return BackendError(f"truncated response body: {name}", retryable=True)
    if isinstance(exc, aiohttp.ClientResponseError):  # not HTTP at all: garbled status line or headers
        return BackendError(f"garbled response: {name}", retryable=True)
    return BackendError(f"connection error: {name}", retryable=True)


def _status_error(status: int, raw: bytes, retry_after: str | None, url: str) -> BackendError:
    # One line: an HTML error page (a proxy's 502) has many.
    snippet = " ".join(redact(raw[:_REDACTED_CHARS].decode("utf-8", "replace")).split())[:_QUOTED_CHARS].strip()
    retryable = status == 429 or status >= 500
    return BackendError(f"HTTP {status}: {snippet}", retryable=retryable,
                        retry_after=parse_retry_after(retry_after), status=status, url=redact(url))


def missing_content(message: dict[str, Any], where: str) -> str:
    """The text of an answer whose content is null or missing: "" where the model did answer in
    another way, else a retryable BackendError, because then the server sent nothing at all.

    - tool calls (or the older function_call) or a refusal: the model chose not to write text. That
      is its answer, however poor (no tools are offered); asking again would only repeat it, and
      the scorers judge the empty text as they would any unparseable answer.
    - reasoning only (reasoning_content, reasoning, Ollama's thinking): the model spent max_tokens
      thinking and finish_reason says "length"; the scorers see a cut-off, as they should.
    - nothing at all: a server fault (seen from proxies and from servers under memory pressure);
      stored as a successful empty answer it would count as the model's mistake.
    """
    answered_otherwise = ("tool_calls", "function_call", "refusal", "reasoning_content", "reasoning", "thinking")
    if any(message.get(key) for key in answered_otherwise):
        return ""
    state = "null" if "content" in message else "missing"
    raise BackendError(f"response has no answer: {where} is {state}", retryable=True)


def _parse_completion(body: dict[str, Any], data: Any) -> Completion:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices:
        # Servers answer with no choices for filtered or rejected prompts; repeating will not help.
        raise BackendError("response had no choices", retryable=False)
    choice = choices[0] if isinstance(choices, list) else None
    message = (choice.get("message") or {}) if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise BackendError(f"response is not a chat completion: {str(data)[:120]}", retryable=False)
    text = message.get("content")
    if text is None:
        text = choice.get("text")  # a completions-style choice
    if text is None:
        text = missing_content(message, "message.content")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return Completion(
        text=str(text),
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        request=body,
        response=data,
        timings=data.get("timings"),
    )
