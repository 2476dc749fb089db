"""OpenAI-compatible chat completions: LM Studio, llama.cpp's server, vLLM, Ollama's /v1, OpenAI."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Completion, StartContext, Variant, VariantInfo
from runner.backends.http import HttpClient, MalformedBody
from runner.backends.llamacpp import api
from runner.backends.llamacpp.api import apply_template, count_prompt_tokens
from runner.backends.sampler import from_llamacpp_props
from runner.backends.settings import OpenAISettings
from runner.errors import ConfigError


class OpenAIBackend(Backend):
    settings: OpenAISettings
    client: HttpClient
    health_path = "/models"  # what a pool asks a failed endpoint before sending it jobs again

    def check(self) -> None:
        env = self.settings.api_key_env
        if env and not os.environ.get(env):
            raise ConfigError(f"environment variable {env} is not set", file=self.experiment.source_path,
                              key="backend.api_key_env", fix=f"export {env}=... or remove api_key_env")
        if env and any(c in os.environ[env] for c in "\r\n"):  # a key read from a file with its newline
            raise ConfigError(f"environment variable {env} holds a line break, which cannot be sent in a header",
                              file=self.experiment.source_path, key="backend.api_key_env",
                              fix=f"export {env} without it: export {env}=\"$(tr -d '\\r\\n' < keyfile)\"")

    async def start(self, context: StartContext | None = None) -> None:
        await super().start(context)
        env = self.settings.api_key_env
        self.client = HttpClient(self.settings.base_url, timeout_s=self.settings.timeout_s,
                                 api_key=os.environ.get(env) if env else None,
                                 connections=self.settings.concurrency,
                                 max_response_bytes=self.settings.max_response_bytes)
        self.models = await self.client.first_contact(
            "/models", what=self.settings.base_url, config_file=self.experiment.source_path,
            fix="start the server or correct base_url",
            fix_not_json="point base_url at the API root (it usually ends in /v1)")

    @asynccontextmanager
    async def serve(self, variant: Variant) -> AsyncIterator[VariantInfo]:
        yield VariantInfo({**self.describe_model(variant.model_id), **await self.sampler_defaults()})

    async def sampler_defaults(self) -> dict[str, Any]:
        """llama.cpp's server says its sampler defaults at /props; other servers have no such page (asked once)."""
        if getattr(self, "_no_props", False):
            return {}
        root = self._llamacpp_root()
        try:
            props = await self.client.get_json(f"{root}/props", timeout_s=min(5.0, self.settings.timeout_s))
        except BackendError as exc:
            if exc.status is None and not isinstance(exc, MalformedBody):
                return {}  # no answer this time: ask again for the next variant
            props = None
        details = from_llamacpp_props(props)
        self._no_props = not details
        return details

    def describe_model(self, model_id: str) -> dict[str, Any]:
        """What /v1/models says of the model (llama.cpp's server adds n_ctx, size and file type)."""
        entries = self.models.get("data", []) if isinstance(self.models, dict) else []
        entry = next((e for e in entries if isinstance(e, dict) and e.get("id") == model_id), None)
        if entry is None:
            return {"model_id": model_id, "listed": False}
        meta = entry.get("meta") or {}
        n_params = meta.get("n_params")  # llama.cpp's server: the loaded model's parameter count
        counted = {"parameters": n_params, "parameters_source": "/v1/models meta.n_params"} \
            if isinstance(n_params, int) and not isinstance(n_params, bool) and n_params > 0 else {}
        return {"model_id": model_id, "listed": True, "n_ctx_per_slot": meta.get("n_ctx"),
                "n_ctx_train": meta.get("n_ctx_train"), "size_bytes": meta.get("size"),
                "quantization": meta.get("ftype"), **counted}

    async def generate(self, request: ChatRequest) -> Completion:
        return await self.client.chat(request)

    rendered_by = "llama.cpp /apply-template"

    async def render_prompt(self, messages: list[dict[str, str]]) -> str | None:
        """llama.cpp's server renders with the model's template; other servers cannot say (asked once)."""
        if getattr(self, "_no_templates", False):
            return None
        prompt = await apply_template(self.client, self._llamacpp_root(), messages)
        self._no_templates = prompt is None
        return prompt

    async def count_tokens(self, messages: list[dict[str, str]]) -> int | None:
        """llama.cpp's server can count; other OpenAI-compatible servers cannot (asked once)."""
        if getattr(self, "_no_tokenizer", False):
            return None
        count = await count_prompt_tokens(self.client, self._llamacpp_root(), messages)
        self._no_tokenizer = count is None
        return count

    async def tokenize(self, text: str) -> list[int] | None:
        return await api.tokenize(self.client, self._llamacpp_root(), text)

    def _llamacpp_root(self) -> str:
        """Where llama.cpp's own endpoints are, if this is its server: beside /v1."""
        return self.settings.base_url.rstrip("/").removesuffix("/v1")
