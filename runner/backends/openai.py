"""OpenAI-compatible chat completions over aiohttp: LM Studio, llama.cpp's server, vLLM, OpenAI.

Also the HTTP client the embedded llama.cpp backend talks through (`OpenAIClient`), so both send
the same bodies and classify failures the same way.
"""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp
from pydantic import Field

from runner.backends.base import Backend, BackendError, ChatRequest, Completion
from runner.config import BackendSettings
from runner.errors import BackendUnavailable, ConfigError


class OpenAISettings(BackendSettings):
    kind: str = "openai"
    base_url: str = Field(description="API root including /v1, e.g. http://127.0.0.1:1234/v1.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key itself)."
    )

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_url": self.base_url.rstrip("/")}


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds; HTTP dates are rare from inference servers and are ignored."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class OpenAIClient:
    """One aiohttp session against an OpenAI-compatible API root."""

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
            connector = aiohttp.TCPConnector(limit=self._connections)
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

    async def chat(self, request: ChatRequest) -> Completion:
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, **request.params}
        url = f"{self.base_url}/chat/completions"
        try:
            async with self.session.post(
                url, json=body, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _status_error(resp.status, raw, resp.headers.get("Retry-After"))
        except TimeoutError:
            raise BackendError(f"timed out after {self.timeout_s:g} s", retryable=True) from None
        except aiohttp.ClientError as exc:
            raise BackendError(f"connection error: {type(exc).__name__}: {exc}", retryable=True) from None
        return _parse_completion(body, raw)


def _status_error(status: int, raw: bytes, retry_after: str | None) -> BackendError:
    snippet = raw[:300].decode("utf-8", "replace").strip()
    retryable = status == 429 or status >= 500
    return BackendError(f"HTTP {status}: {snippet}", retryable=retryable,
                        retry_after=parse_retry_after(retry_after), status=status)


def _parse_completion(body: dict[str, Any], raw: bytes) -> Completion:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        # A truncated body is what a proxy or a crashing server sends; another attempt may succeed.
        raise BackendError(f"malformed response body: {raw[:80]!r}", retryable=True) from None
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


class OpenAIBackend(Backend):
    settings: OpenAISettings

    def check(self) -> None:
        env = self.settings.api_key_env
        if env and not os.environ.get(env):
            raise ConfigError(f"environment variable {env} is not set", file=self.experiment.source_path,
                              key="backend.api_key_env", fix=f"export {env}=... or remove api_key_env")

    def _client(self) -> OpenAIClient:
        env = self.settings.api_key_env
        return OpenAIClient(self.settings.base_url, timeout_s=self.settings.timeout_s,
                            api_key=os.environ.get(env) if env else None,
                            connections=self.settings.concurrency)

    async def start(self) -> None:
        self.client = self._client()
        try:
            await self.client.get_json("/models")
        except (aiohttp.ClientError, TimeoutError) as exc:
            await self.client.close()
            raise BackendUnavailable(
                f"cannot reach {self.settings.base_url} ({type(exc).__name__})",
                file=self.experiment.source_path, key="backend.base_url",
                fix="start the server or correct base_url",
            ) from None

    async def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            await client.close()

    async def generate(self, request: ChatRequest) -> Completion:
        return await self.client.chat(request)
