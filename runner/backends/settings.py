"""Each built-in backend's YAML fields, in one light module.

The loader needs a backend's settings model to validate `backend:`; keeping the models apart from
the backends (which import aiohttp, and for llama.cpp the GGUF reader and numpy) lets a YAML error
be reported without loading any engine.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from runner.config.schema import BackendSettings, ModelConfig

_ENDPOINTS_DESCRIPTION = ("Several servers of the same model, instead of base_url: jobs are spread over them with "
                          "`concurrency` requests per endpoint, and a failed endpoint's jobs go to the others.")


class HttpSettings(BackendSettings):
    """What every HTTP backend has: one `base_url`, or a pool of `endpoints` serving the same model."""

    base_url: str = Field(description="The server's API root.")
    endpoints: list[str] | None = Field(None, min_length=1, description=_ENDPOINTS_DESCRIPTION)

    @model_validator(mode="before")
    @classmethod
    def _base_url_or_endpoints(cls, data: Any) -> Any:
        # Exactly one of the two. With endpoints, base_url is the first of them: it names the jobs (their
        # hashes), so a run on one server resumes on a pool that starts with it, and back.
        if not isinstance(data, dict) or data.get("endpoints") is None:
            return data
        if "base_url" in data:
            raise ValueError("gives both base_url and endpoints; give one (endpoints: [URL, ...] for a pool)")
        endpoints = data["endpoints"]
        if endpoints == []:
            raise ValueError("endpoints is empty; list at least one URL, or give base_url")
        if isinstance(endpoints, list) and endpoints and all(isinstance(e, str) for e in endpoints):
            if len({e.rstrip("/") for e in endpoints}) != len(endpoints):
                raise ValueError("endpoints lists one URL twice; list each server once")
            return {**data, "base_url": endpoints[0]}
        return data

    def urls(self) -> list[str]:
        """Every server this backend talks to: the endpoints, or base_url alone."""
        return list(self.endpoints) if self.endpoints else [self.base_url]


class OpenAISettings(HttpSettings):
    kind: str = "openai"
    base_url: str = Field(description="API root including /v1, e.g. http://127.0.0.1:1234/v1.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key itself)."
    )

    @model_validator(mode="after")
    def _one_authorization(self) -> OpenAISettings:
        # Both would be an Authorization header, and aiohttp refuses to send two.
        if self.api_key_env and any("@" in urlsplit(url).netloc for url in self.urls()):
            raise ValueError("base_url has a user and password and api_key_env names a key: only one can be "
                             "sent; remove the user:password@ part or api_key_env")
        return self

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_url": self.base_url.rstrip("/")}


class OllamaSettings(HttpSettings):
    kind: str = "ollama"
    base_url: str = Field("http://127.0.0.1:11434", description="Ollama's root URL (no /v1).")
    num_ctx: int | None = Field(
        None, ge=64, description="Context to allocate per request (options.num_ctx); default: the server's."
    )

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_url": self.base_url.rstrip("/"), "num_ctx": self.num_ctx}


class LMStudioSettings(OpenAISettings):
    kind: str = "lmstudio"
    base_url: str = Field("http://127.0.0.1:1234/v1", description="LM Studio's OpenAI-compatible root.")


class LlamaCppSettings(BackendSettings):
    kind: str = "llamacpp"
    n_ctx: int = Field(4096, ge=64, description="Context window of each request (one slot), in tokens.")
    parallel: int = Field(2, ge=1, le=64, description="Server slots: requests decoded together in a batch.")
    threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores.")
    startup_timeout_s: float = Field(120.0, gt=0, description="How long a model may take to load.")

    def identity(self) -> dict[str, Any]:
        # The per-slot context changes answers (truncation); threads and slots only change speed.
        return {"kind": self.kind, "n_ctx": self.n_ctx}

    def variant_identity(self, model: ModelConfig, quant: str | None) -> str:
        if model.files and quant in model.files:
            return model.files[quant].describe()
        source = model.source.describe() if model.source else model.name
        return f"{source}#{quant.upper() if quant else 'as-is'}"

    def thread_count(self) -> int:
        return self.threads or os.cpu_count() or 1
