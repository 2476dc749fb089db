"""The HTTP client every backend talks through, so that all send JSON and classify failures alike.

Connection errors, timeouts, 429, 5xx and truncated bodies are retryable; other 4xx are not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from runner.backends.base import BackendError, ChatRequest, Completion
from runner.errors import BackendUnavailable


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; HTTP dates are rare from inference servers and are ignored."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HttpClient:
    """One aiohttp session against an API root, with failures classified as retryable or not."""

    def __init__(self, base_url: str, *, timeout_s: float, api_key: str | None = None,
                 connections: int = 100) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No cap here: the executor's workers bound concurrency (--concurrency may exceed the YAML's),
            # and waiting for a pooled connection would count against the request timeout.
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(headers=self._headers, connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(self, path: str, timeout_s: float = 10.0) -> Any:
        """GET a path under the API root, or an absolute URL (llama.cpp's /props sits above /v1)."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def first_contact(self, path: str, *, what: str, config_file: Path, fix: str, fix_not_json: str) -> Any:
        """GET `path` to show the server is there; on failure close the session and raise a user error."""
        try:
            return await self.get_json(path)
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self.close()
            raise BackendUnavailable(f"cannot reach {what} ({type(exc).__name__})", file=config_file,
                                     key="backend.base_url", fix=fix) from None
        except ValueError:  # a web page or another service on that port: it answers, but not with JSON
            await self.close()
            raise BackendUnavailable(f"{self.base_url}{path} answers, but not with JSON", file=config_file,
                                     key="backend.base_url", fix=fix_not_json) from None

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """POST JSON, return the decoded answer; every failure becomes a classified BackendError."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        try:
            async with self.session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _status_error(resp.status, raw, resp.headers.get("Retry-After"))
        except TimeoutError:
            raise BackendError(f"timed out after {self.timeout_s:g} s", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise BackendError(f"connection error: {type(exc).__name__}: {exc}", retryable=True) from None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            # A truncated body is what a proxy or a crashing server sends; another attempt may succeed.
            raise BackendError(f"malformed response body: {raw[:80]!r}", retryable=True) from None

    async def chat(self, request: ChatRequest) -> Completion:
        """An OpenAI chat completion."""
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, **request.params}
        return _parse_completion(body, await self.post_json("/chat/completions", body))


def _status_error(status: int, raw: bytes, retry_after: str | None) -> BackendError:
    snippet = raw[:300].decode("utf-8", "replace").strip()
    retryable = status == 429 or status >= 500
    return BackendError(f"HTTP {status}: {snippet}", retryable=retryable,
                        retry_after=parse_retry_after(retry_after), status=status)


def _parse_completion(body: dict[str, Any], data: Any) -> Completion:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices:
        # Servers answer with no choices for filtered or rejected prompts; repeating will not help.
        raise BackendError("response had no choices", retryable=False)
    choice = choices[0]
    message = choice.get("message") or {}
    text = message.get("content")
    if text is None:
        text = choice.get("text", "")
    usage = data.get("usage") or {}
    return Completion(
        text=str(text),
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        request=body,
        response=data,
        timings=data.get("timings"),
    )
