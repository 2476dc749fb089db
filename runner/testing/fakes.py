"""Recorded-protocol fakes of Ollama and LM Studio, served by aiohttp on 127.0.0.1.

Built from the servers' documented request and response shapes (Ollama: /api/tags, /api/show,
/api/show with the Modelfile's `parameters` as text, /api/chat with options.num_ctx, seed, format,
prompt_eval_count, done_reason; LM Studio: /api/v0/models with quantization, max_context_length and
state, and no sampler settings, plus its OpenAI-compatible /v1/chat/completions), with the
behaviours that matter to the runner:

- Ollama keeps only the last num_ctx tokens of a prompt that is too long, silently (the reported
  prompt_eval_count is what it kept); its default num_ctx is 2048.
- LM Studio refuses a prompt longer than the loaded context with HTTP 400.
- Ollama's defaults for options a request leaves out are the Modelfile's parameters, then its own
  (temperature 0.8); only the Modelfile's are reported.

Tokens are whitespace-separated words (plus a few per message for the chat template). A model
"answers" deterministically: it repeats the word after `MARKER:` if the marker survived truncation,
returns schema-shaped JSON when asked for JSON, and otherwise a JSON verdict derived from the
prompt's hash; a seed makes sampled answers repeatable, no seed at temperature > 0 does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

TEMPLATE_TOKENS_PER_MESSAGE = 4
_MARKER = re.compile(r"MARKER:\s*(\w+)")


@dataclass
class FakeModel:
    name: str
    quantization: str
    context_length: int
    family: str = "llama"
    parameter_size: str = "135M"
    parameter_count: int | None = None  # /api/show's model_info general.parameter_count, where set
    # Ollama's Modelfile PARAMETER lines, (name, value as written); stop values keep their quotes.
    parameters: tuple[tuple[str, str], ...] = (
        ("stop", '"<|im_start|>"'), ("stop", '"<|im_end|>"'), ("temperature", "0.7"), ("top_k", "40"))

    def parameters_text(self) -> str:
        """/api/show's `parameters`: one line per parameter, the name padded to a column as Ollama does."""
        return "\n".join(f"{name:<30} {value}" for name, value in self.parameters)

    def parameter(self, name: str) -> str | None:
        return next((value for key, value in self.parameters if key == name), None)


def _tokens(messages: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for m in messages:
        out.extend(["<|im_start|>", str(m.get("role", "user"))])
        out.extend(str(m.get("content", "")).split())
        out.extend(["<|im_end|>", "\n"])
    return out


def _schema_shaped(schema: Any, verdict: bool) -> str:
    """JSON that follows the schema's properties (what grammar-constrained decoding guarantees)."""
    if not isinstance(schema, dict) or "properties" not in schema:
        return json.dumps({"valid": verdict, "confidence": 0.8, "failures": []})
    by_type = {"boolean": verdict, "number": 0.8, "integer": 1, "array": [], "string": "ok", "object": {}}
    return json.dumps({k: by_type.get(v.get("type")) for k, v in schema["properties"].items()})


def _answer(kept: list[str], temperature: float, seed: int | None, schema: Any, limit: int) -> tuple[str, str]:
    """(text, finish reason) for the prompt tokens the server kept; schema None means free text."""
    text_in = " ".join(kept)
    marker = _MARKER.search(text_in)
    digest = hashlib.sha256(text_in.encode()).hexdigest()
    if temperature > 0:
        # Sampling: repeatable only with a seed, as on the real servers.
        noise = random.Random(seed).random() if seed is not None else random.random()
        digest = hashlib.sha256(f"{digest}{noise}".encode()).hexdigest()
    wants_json = schema is not None
    if marker and not wants_json:
        words = [marker.group(1)]
    elif wants_json:
        words = [_schema_shaped(schema, int(digest[:8], 16) % 2 == 0)]
    else:
        words = f"Verdict {digest[:6]}: the config looks {'valid' if int(digest[:2], 16) % 2 else 'invalid'}".split()
    if len(words) > limit:
        return " ".join(words[:limit]), "length"
    return " ".join(words), "stop"


class FakeOllama:
    default_num_ctx = 2048

    def __init__(self, models: list[FakeModel] | None = None) -> None:
        self.models = {m.name: m for m in models or [
            FakeModel("smollm2:135m-instruct-q4_K_M", "Q4_K_M", 8192),
            FakeModel("smollm2:135m-instruct-q8_0", "Q8_0", 8192),
        ]}
        self.requests: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_post("/api/chat", self._chat)
        app.router.add_get("/api/version", self._version)
        return app

    async def _version(self, _: web.Request) -> web.Response:
        return _json({"version": "0.12.0-fake"})

    async def _tags(self, _: web.Request) -> web.Response:
        return _json({"models": [
            {"name": m.name, "model": m.name, "size": 100_000_000,
             "digest": hashlib.sha256(m.name.encode()).hexdigest(),
             "details": {"format": "gguf", "family": m.family, "parameter_size": m.parameter_size,
                         "quantization_level": m.quantization}} for m in self.models.values()]})

    async def _show(self, request: web.Request) -> web.Response:
        body = await request.json()
        model = self.models.get(body.get("model") or body.get("name", ""))
        if model is None:
            return _json({"error": f"model '{body.get('model')}' not found"}, status=404)
        return _json({
            "details": {"format": "gguf", "family": model.family, "parameter_size": model.parameter_size,
                        "quantization_level": model.quantization},
            "model_info": {"general.architecture": model.family,
                           f"{model.family}.context_length": model.context_length,
                           **({"general.parameter_count": model.parameter_count} if model.parameter_count else {})},
            "capabilities": ["completion"],
            **({"parameters": model.parameters_text()} if model.parameters else {}),  # omitted when empty
        })

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        model = self.models.get(body.get("model", ""))
        if model is None:
            return _json({"error": f"model '{body.get('model')}' not found, try pulling it first"}, status=404)
        options = body.get("options") or {}
        num_ctx = int(options.get("num_ctx") or self.default_num_ctx)
        tokens = _tokens(body.get("messages", []))
        kept = tokens[-num_ctx:]  # Ollama's silent truncation: the start of the prompt is dropped
        limit = int(options.get("num_predict") or 128)
        temperature = options.get("temperature", model.parameter("temperature") or 0.8)
        text, reason = _answer(kept, float(temperature), options.get("seed"),
                               body.get("format"), limit)
        return _json({
            "model": model.name, "created_at": "2026-11-25T00:00:00Z",
            "message": {"role": "assistant", "content": text}, "done": True, "done_reason": reason,
            "total_duration": 1_000_000, "load_duration": 1000, "prompt_eval_count": len(kept),
            "prompt_eval_duration": 500_000, "eval_count": len(text.split()), "eval_duration": 400_000,
        })


class FakeLMStudio:
    def __init__(self, models: list[FakeModel] | None = None, loaded_context: int = 4096) -> None:
        self.models = {m.name: m for m in models or [
            FakeModel("smollm2-135m-instruct@q4_k_m", "Q4_K_M", 8192),
            FakeModel("smollm2-135m-instruct@q8_0", "Q8_0", 8192),
        ]}
        self.loaded_context = loaded_context
        self.requests: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v0/models", self._models_v0)
        app.router.add_get("/v1/models", self._models_v1)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _models_v0(self, _: web.Request) -> web.Response:
        return _json({"object": "list", "data": [
            {"id": m.name, "object": "model", "type": "llm", "publisher": "fake", "arch": m.family,
             "compatibility_type": "gguf", "quantization": m.quantization, "state": "loaded",
             "max_context_length": m.context_length, "loaded_context_length": self.loaded_context}
            for m in self.models.values()]})

    async def _models_v1(self, _: web.Request) -> web.Response:
        return _json({"object": "list",
                      "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models]})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if body.get("model") not in self.models:
            return _json({"error": f"Model {body.get('model')!r} not found"}, status=404)
        tokens = _tokens(body.get("messages", []))
        if len(tokens) > self.loaded_context:
            return _json({"error": f"Trying to keep the first {len(tokens)} tokens when context the overflows. "
                                   f"However, the model is loaded with context length of only {self.loaded_context} "
                                   "tokens, which is not enough."}, status=400)
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema", "json") if fmt.get("type") in (
            "json_schema", "json_object") else None
        text, reason = _answer(tokens, float(body.get("temperature", 0.8)), body.get("seed"), schema,
                               int(body.get("max_tokens") or 128))
        return _json({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}],
            "usage": {"prompt_tokens": len(tokens), "completion_tokens": len(text.split()),
                      "total_tokens": len(tokens) + len(text.split())},
        })


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


@dataclass
class ThreadedApp:
    """An aiohttp app on 127.0.0.1 in a daemon thread, for synchronous tests: `with ThreadedApp(app) as s`."""

    make_app: Callable[[], web.Application]
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _runner: web.AppRunner | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __enter__(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        future: Future[str] = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.url = future.result(10)
        return self

    async def _start(self) -> str:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._loop is not None and self._thread is not None
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
