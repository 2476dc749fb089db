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


class OpenAISettings(BackendSettings):
    kind: str = "openai"
    base_url: str = Field(description="API root including /v1, e.g. http://127.0.0.1:1234/v1.")
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (never the key itself)."
    )

    @model_validator(mode="after")
    def _one_authorization(self) -> OpenAISettings:
        # Both would be an Authorization header, and aiohttp refuses to send two.
        if self.api_key_env and "@" in urlsplit(self.base_url).netloc:
            raise ValueError("base_url has a user and password and api_key_env names a key: only one can be "
                             "sent; remove the user:password@ part or api_key_env")
        return self

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "base_url": self.base_url.rstrip("/")}


class OllamaSettings(BackendSettings):
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
