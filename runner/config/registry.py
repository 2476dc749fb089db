"""The scorer registry: each scorer's name, config model and implementation, in one table.

Why the table lives here, in the config stage: validating an experiment needs every scorer's config
model (the `scorers:` list is validated against a union built from this table, and the loader's
hints list its names), and config is the first stage of the flow, so it may not import
`runner.scoring`. The implementation, a `Scorer` class, is therefore held as a "module:attr"
string for built-ins, or as the class itself for scorers registered at run time
(`runner.scoring.registry.register_scorer`) and for plugins; `runner.scoring.registry` resolves
and checks it when scorers are built. Adding a built-in scorer is one config model, one Scorer
class and one `add_scorer` line (in `runner.config.schema`).

Plugins announce scorers in the entry-point group `runner.scorers`: the entry point's name is the
scorer's `type`, its object a Scorer subclass with a `config_model` class attribute. They are
imported only when an experiment names them, or when an unknown name makes the error list them all.
"""

from __future__ import annotations

import contextlib
import functools
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter

from runner.config.imports import SCORER_GROUP, describe_entry_point, entry_point_names, load_entry_point
from runner.errors import UserError

if TYPE_CHECKING:
    from runner.config.scorer_configs import ScorerBase


@dataclass(frozen=True)
class ScorerEntry:
    name: str
    config_model: type[ScorerBase]
    implementation: object  # "module:attr" of the Scorer class, or the class
    origin: str  # where it came from, for messages: "built-in", "register_scorer", an entry point


_ENTRIES: dict[str, ScorerEntry] = {}


def add_scorer(name: str, config_model: type[ScorerBase], implementation: object,
               origin: str = "register_scorer") -> None:
    """Register (or replace) scorer `name`. The config model must be a `ScorerBase` with `type: Literal[name]`."""
    from runner.config.scorer_configs import ScorerBase

    if not (isinstance(config_model, type) and issubclass(config_model, ScorerBase)):
        raise TypeError(f"config model of scorer {name!r} must subclass runner.config.schema.ScorerBase, "
                        f"got {config_model!r}")
    field = config_model.model_fields.get("type")
    tags = typing.get_args(field.annotation) if field is not None else ()
    if tags != (name,):
        raise ValueError(f"config model {config_model.__name__} of scorer {name!r} must declare "
                         f"type: Literal[{name!r}], not {field.annotation if field else 'no type field'}")
    _ENTRIES[name] = ScorerEntry(name, config_model, implementation, origin)


def _builtins_loaded() -> dict[str, ScorerEntry]:
    import runner.config.scorer_configs  # noqa: F401  (registers the built-in scorers on import)

    return _ENTRIES


def scorer_entry(name: str) -> ScorerEntry | None:
    """The entry for `name`, loading a plugin that announces it if needed; None if nothing does."""
    entries = _builtins_loaded()
    if name not in entries:
        _load_plugin(name)
    return entries.get(name)


def known_scorers() -> list[str]:
    """Every scorer name: registered ones in registration order, then plugins' (not imported for this)."""
    names = list(_builtins_loaded())
    return names + [n for n in entry_point_names(SCORER_GROUP) if n not in names]


def registered_config_model(name: str) -> type[ScorerBase] | None:
    """The config model of an already registered scorer; never imports a plugin."""
    entry = _builtins_loaded().get(name)
    return entry.config_model if entry is not None else None


def scorer_adapter(tag: object) -> TypeAdapter[Any]:
    """A validator for one scorer config: the union of registered models, discriminated by `type`.

    `tag` is the `type` the input gives: a plugin announcing it is imported first. When no scorer
    has that name, every plugin is imported, so that the union's error lists all known names.
    """
    if isinstance(tag, str) and scorer_entry(tag) is None:
        for name in entry_point_names(SCORER_GROUP):
            # A broken plugin is reported when an experiment names it, not while listing names for a typo.
            with contextlib.suppress(UserError):
                scorer_entry(name)
    return _adapter(scorer_models())


def scorer_models() -> tuple[type[ScorerBase], ...]:
    """The config models of the registered scorers, in registration order (never imports a plugin)."""
    return tuple(entry.config_model for entry in _builtins_loaded().values())


def scorer_union(models: tuple[type[BaseModel], ...]) -> Any:
    """`models` as one annotation: a union discriminated by `type`."""
    # Union over a runtime tuple: the registry decides the members, so no static annotation can.
    union: Any = Union[models]  # noqa: UP007
    return Annotated[union, Field(discriminator="type")]


@functools.lru_cache(maxsize=32)
def _adapter(models: tuple[type[BaseModel], ...]) -> TypeAdapter[Any]:
    return TypeAdapter(scorer_union(models))


def _load_plugin(name: str) -> None:
    obj = load_entry_point(SCORER_GROUP, name)
    if obj is None:
        return
    where = describe_entry_point(SCORER_GROUP, name)
    model: Any = getattr(obj, "config_model", None)
    try:
        add_scorer(name, model, obj, origin=where)  # checks what the plugin gave
    except (TypeError, ValueError) as exc:
        raise UserError(f"{where} is not a usable scorer: {exc}",
                        fix="point the entry point at a Scorer subclass with a config_model class attribute") from None
