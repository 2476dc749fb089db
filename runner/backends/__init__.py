"""Backends, registered by name. An experiment's `backend.kind` picks one.

A backend is a settings model (its YAML fields) and a `Backend` subclass. Third parties can add
their own with `register_backend`; built-ins register themselves below. Heavy engines (xllamacpp)
are imported only when a backend actually starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.backends.base import (
    Backend,
    BackendError,
    ChatRequest,
    Completion,
    Variant,
    VariantInfo,
)

if TYPE_CHECKING:
    from runner.config.schema import BackendSettings, Experiment


@dataclass(frozen=True)
class _Entry:
    settings: type[BackendSettings]
    backend: type[Backend]


_REGISTRY: dict[str, _Entry] = {}


def register_backend(name: str, settings: type[BackendSettings], backend: type[Backend]) -> None:
    _REGISTRY[name] = _Entry(settings, backend)


def known_backends() -> list[str]:
    return sorted(_REGISTRY)


def backend_settings_model(name: str) -> type[BackendSettings]:
    return _REGISTRY[name].settings


def create_backend(experiment: Experiment) -> Backend:
    entry = _REGISTRY[experiment.backend.kind]
    return entry.backend(experiment.backend, experiment)


def _register_builtins() -> None:
    from runner.backends.llamacpp.backend import LlamaCppBackend, LlamaCppSettings
    from runner.backends.lmstudio import LMStudioBackend, LMStudioSettings
    from runner.backends.ollama import OllamaBackend, OllamaSettings
    from runner.backends.openai import OpenAIBackend, OpenAISettings

    register_backend("llamacpp", LlamaCppSettings, LlamaCppBackend)
    register_backend("lmstudio", LMStudioSettings, LMStudioBackend)
    register_backend("ollama", OllamaSettings, OllamaBackend)
    register_backend("openai", OpenAISettings, OpenAIBackend)


_register_builtins()

__all__ = [
    "Backend",
    "BackendError",
    "ChatRequest",
    "Completion",
    "Variant",
    "VariantInfo",
    "backend_settings_model",
    "create_backend",
    "known_backends",
    "register_backend",
]
