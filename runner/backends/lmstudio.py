"""LM Studio: its OpenAI-compatible API for chat, and its own model listing for what it serves.

/api/v0/models says, per model, the quantization, the maximum context length, the context it was
loaded with and whether it is loaded; that is recorded with every job, and a model id it does not
list stops the run before the first request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from runner.backends.base import BackendError, Variant, VariantInfo
from runner.backends.http import MalformedBody, failure_name
from runner.backends.openai import OpenAIBackend
from runner.backends.settings import LMStudioSettings
from runner.errors import BackendUnavailable


class LMStudioBackend(OpenAIBackend):
    settings: LMStudioSettings

    @property
    def root(self) -> str:
        return self.settings.base_url.rstrip("/").removesuffix("/v1")

    @asynccontextmanager
    async def serve(self, variant: Variant) -> AsyncIterator[VariantInfo]:
        try:
            listing = await self.client.get_json(f"{self.root}/api/v0/models")
        except BackendError as exc:
            if exc.status is None and not isinstance(exc, MalformedBody):
                raise BackendUnavailable(f"LM Studio stopped answering at {self.root} ({failure_name(exc)})",
                                         file=self.experiment.source_path, key="backend.base_url",
                                         fix="check that LM Studio's server is running") from None
            # It answers, but has no /api/v0 (an older LM Studio): use what /v1/models said.
            yield VariantInfo(self.describe_model(variant.model_id))
            return
        entries = {e.get("id"): e for e in listing.get("data", []) if isinstance(e, dict)}
        entry = entries.get(variant.model_id)
        if entry is None:
            raise BackendUnavailable(f"LM Studio does not list model {variant.model_id!r}",
                                     file=self.experiment.source_path, key="models",
                                     fix=f"use one of: {', '.join(sorted(map(str, entries)))}")
        yield VariantInfo(describe(entry))


def describe(entry: dict[str, Any]) -> dict[str, Any]:
    return {"model_id": entry.get("id"), "quantization": entry.get("quantization"),
            "n_ctx_train": entry.get("max_context_length"),
            "n_ctx_per_slot": entry.get("loaded_context_length") or entry.get("max_context_length"),
            "state": entry.get("state"), "arch": entry.get("arch"), "format": entry.get("compatibility_type")}
