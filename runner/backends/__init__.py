"""Backends, registered by name. An experiment's `backend.kind` picks one.

A backend is a settings model (its YAML fields) and a `Backend` subclass. Third parties can add
their own with `register_backend`; built-ins register themselves below. Heavy engines (xllamacpp)
are imported only when a backend actually starts.
"""

from __future__ import annotations

import importlib
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
    backend: type[Backend] | str  # a class, or "module:Class" imported when the backend is created


_REGISTRY: dict[str, _Entry] = {}


def register_backend(name: str, settings: type[BackendSettings], backend: type[Backend] | str) -> None:
    _REGISTRY[name] = _Entry(settings, backend)


def known_backends() -> list[str]:
    return sorted(_REGISTRY)


def backend_settings_model(name: str) -> type[BackendSettings]:
    return _REGISTRY[name].settings


def create_backend(experiment: Experiment) -> Backend:
    entry = _REGISTRY[experiment.backend.kind]
    backend = entry.backend
    if isinstance(backend, str):
        module, _, name = backend.partition(":")
        backend = getattr(importlib.import_module(module), name)
        assert isinstance(backend, type) and issubclass(backend, Backend)
    return backend(experiment.backend, experiment)


def _register_builtins() -> None:
    # Settings now (the loader validates with them), engines when a backend is created.
    from runner.backends.settings import LlamaCppSettings, LMStudioSettings, OllamaSettings, OpenAISettings

    register_backend("llamacpp", LlamaCppSettings, "runner.backends.llamacpp.backend:LlamaCppBackend")
    register_backend("lmstudio", LMStudioSettings, "runner.backends.lmstudio:LMStudioBackend")
    register_backend("ollama", OllamaSettings, "runner.backends.ollama:OllamaBackend")
    register_backend("openai", OpenAISettings, "runner.backends.openai:OpenAIBackend")


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
