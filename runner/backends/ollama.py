"""Ollama through its native API, because its /v1 route ignores num_ctx.

/api/chat honours options.num_ctx (the context to allocate), seed, num_predict and `format` (a JSON
schema), and reports prompt_eval_count: what it actually read, which is less than what was sent
when it silently drops the start of a prompt that does not fit. /api/show gives the quantization
level, the model's own context length and its Modelfile's sampler parameters (the defaults for
what a request leaves out), recorded with every job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from runner.backends.base import Backend, BackendError, ChatRequest, Completion, StartContext, Variant, VariantInfo
from runner.backends.http import HttpClient, missing_content
from runner.backends.sampler import from_ollama_show
from runner.backends.settings import OllamaSettings
from runner.config.size_class import parse_params
from runner.errors import BackendUnavailable

# OpenAI-style sampling names -> Ollama option names.
_OPTIONS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed",
            "max_tokens": "num_predict", "stop": "stop"}


class OllamaBackend(Backend):
    settings: OllamaSettings
    client: HttpClient
    health_path = "/api/tags"  # what a pool asks a failed endpoint before sending it jobs again

    async def start(self, context: StartContext | None = None) -> None:
        await super().start(context)
        self.client = HttpClient(self.settings.base_url, timeout_s=self.settings.timeout_s,
                                 connections=self.settings.concurrency,
                                 max_response_bytes=self.settings.max_response_bytes)
        self.tags = await self.client.first_contact(
            "/api/tags", what=f"Ollama at {self.settings.base_url}", config_file=self.experiment.source_path,
            fix="start `ollama serve` or correct base_url",
            fix_not_json="point base_url at Ollama's root, e.g. http://127.0.0.1:11434")

    @asynccontextmanager
    async def serve(self, variant: Variant) -> AsyncIterator[VariantInfo]:
        try:
            show = await self.client.post_json("/api/show", {"model": variant.model_id})
        except BackendError as exc:
            raise BackendUnavailable(f"Ollama does not have model {variant.model_id!r} ({exc})",
                                     file=self.experiment.source_path, key="models",
                                     fix=f"ollama pull {variant.model_id}, or correct the id") from None
        yield VariantInfo(self.describe(variant.model_id, show))

    def describe(self, model_id: str, show: dict[str, Any]) -> dict[str, Any]:
        details = show.get("details") or {}
        info = show.get("model_info") or {}
        context = next((v for k, v in info.items() if k.endswith(".context_length")), None)
        digest = next((m.get("digest") for m in self.tags.get("models", []) if m.get("name") == model_id), None)
        return {"model_id": model_id, "quantization": details.get("quantization_level"),
                "parameter_size": details.get("parameter_size"), "family": details.get("family"),
                "n_ctx_train": context, "n_ctx_per_slot": self.settings.num_ctx, "digest": digest,
                **_parameters(info, details), **from_ollama_show(show)}

    def requested_context(self) -> int | None:
        return self.settings.num_ctx

    async def generate(self, request: ChatRequest) -> Completion:
        options = {_OPTIONS[k]: v for k, v in request.params.items() if k in _OPTIONS}
        if self.settings.num_ctx:
            options["num_ctx"] = self.settings.num_ctx
        body: dict[str, Any] = {"model": request.model, "messages": request.messages, "stream": False,
                                "options": options}
        fmt = request.params.get("response_format")
        if isinstance(fmt, dict):
            schema = (fmt.get("json_schema") or {}).get("schema")
            body["format"] = schema if schema else "json"
        data = await self.client.post_json("/api/chat", body)
        if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
            raise BackendError("response had no message", retryable=False)
        try:
            return self._completion(body, data)
        except (TypeError, ValueError, ZeroDivisionError) as exc:  # counts that are not numbers: the server's fault
            raise BackendError(f"response has malformed counts ({type(exc).__name__}: {exc})", retryable=False) from exc

    def _completion(self, body: dict[str, Any], data: dict[str, Any]) -> Completion:
        evals, eval_ns = data.get("eval_count"), data.get("eval_duration")
        prompt_n, prompt_ns = data.get("prompt_eval_count"), data.get("prompt_eval_duration")
        timings = {
            "predicted_n": evals, "prompt_n": prompt_n,
            "predicted_per_second": evals / (eval_ns / 1e9) if evals and eval_ns else None,
            "prompt_per_second": prompt_n / (prompt_ns / 1e9) if prompt_n and prompt_ns else None,
        }
        message = data["message"]
        text = message.get("content")
        if text is None:  # Ollama sends "" for an empty answer: null or no key is not an answer
            text = missing_content(message, "message.content")
        return Completion(text=str(text),
                          finish_reason=data.get("done_reason"), prompt_tokens=prompt_n, completion_tokens=evals,
                          request=body, response=data, timings=timings)


def _parameters(info: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    """The exact count where /api/show gives one (model_info's general.parameter_count), else its rounded
    parameter_size ("1.7B"); nothing where it says neither."""
    count = info.get("general.parameter_count")
    if isinstance(count, int) and not isinstance(count, bool) and count > 0:
        return {"parameters": count, "parameters_source": "Ollama /api/show general.parameter_count"}
    try:
        size = parse_params(details["parameter_size"])
    except (KeyError, ValueError):
        return {}
    return {"parameters": size, "parameters_source": "Ollama /api/show parameter_size"}
