"""Backends, registered by name. An experiment's `backend.kind` picks one.

A backend is a settings model (its YAML fields) and a `Backend` subclass. Third parties can add
their own with `register_backend`, or from an installed package through the entry-point group
`runner.backends`: the entry point's name is the `kind`, its object a Backend subclass with a
`settings_model` class attribute (a BackendSettings subclass). A plugin is imported only when an
experiment asks for its kind. Built-ins register themselves below. Heavy engines (xllamacpp) are
imported only when a backend actually starts.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.backends.base import (
    Backend,
    BackendError,
    ChatRequest,
    Completion,
    Variant,
    VariantInfo,
)
from runner.backends.settings import HttpSettings
from runner.config.imports import BACKEND_GROUP, describe_entry_point, entry_point_names, load_entry_point
from runner.config.schema import BackendSettings
from runner.errors import UserError

if TYPE_CHECKING:
    from runner.config.schema import Experiment


@dataclass(frozen=True)
class _Entry:
    settings: type[BackendSettings]
    backend: type[Backend] | str  # a class, or "module:Class" imported when the backend is created


_REGISTRY: dict[str, _Entry] = {}


def register_backend(name: str, settings: type[BackendSettings], backend: type[Backend] | str) -> None:
    _REGISTRY[name] = _Entry(settings, backend)


def known_backends() -> list[str]:
    """Registered kinds and those installed packages announce (read without importing them)."""
    return sorted(set(_REGISTRY) | set(entry_point_names(BACKEND_GROUP)))


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        _load_plugin(name)
    return _REGISTRY[name]  # KeyError: no such kind


def backend_settings_model(name: str) -> type[BackendSettings]:
    return _entry(name).settings


def create_backend(experiment: Experiment) -> Backend:
    entry = _entry(experiment.backend.kind)
    backend = entry.backend
    if isinstance(backend, str):
        module, _, name = backend.partition(":")
        backend = getattr(importlib.import_module(module), name)
        assert isinstance(backend, type) and issubclass(backend, Backend)
    settings = experiment.backend
    if isinstance(settings, HttpSettings) and settings.endpoints:
        from runner.backends.pool import EndpointPool

        return EndpointPool(settings, experiment, backend)
    return backend(settings, experiment)


def _load_plugin(name: str) -> None:
    obj = load_entry_point(BACKEND_GROUP, name)
    if obj is None:
        return
    settings: Any = getattr(obj, "settings_model", None)
    if not (isinstance(obj, type) and issubclass(obj, Backend)
            and isinstance(settings, type) and issubclass(settings, BackendSettings)):
        raise UserError(f"{describe_entry_point(BACKEND_GROUP, name)} is not a usable backend: it names {obj!r}",
                        fix="point the entry point at a Backend subclass with a settings_model class attribute "
                            "(a BackendSettings subclass)")
    register_backend(name, settings, obj)


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
