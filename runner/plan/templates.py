"""Jinja2 prompt templates: sandboxed, strict about undefined variables, compiled once.

Sandboxed because templates are shared like code but should never be able to reach Python
internals; StrictUndefined because a misspelt variable must stop the run, not become "".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from runner.config.schema import TemplateRef
from runner.errors import ConfigError

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class CompiledTemplate:
    name: str
    origin: str  # file path or "inline", for messages
    template: jinja2.Template
    key: str  # YAML key that declared it, for messages

    def render(self, context: dict[str, Any], *, config_file: Path, item_id: str | None = None) -> str:
        try:
            return self.template.render(context).strip()
        except jinja2.UndefinedError as exc:
            where = f" for item {item_id!r}" if item_id is not None else ""
            raise ConfigError(
                f"template {self.origin} uses an undefined variable{where}: {exc.message}",
                file=config_file, key=self.key,
                fix="use a dataset field, `item`, or a name from prompts.context",
            ) from None
        except jinja2.TemplateError as exc:
            raise ConfigError(f"template {self.origin} failed to render: {exc}", file=config_file,
                              key=self.key, fix="fix the template") from None


def compile_template(ref: TemplateRef, *, directory: Path, config_file: Path, key: str) -> CompiledTemplate:
    if ref.file is not None:
        path = ref.file if ref.file.is_absolute() else directory / ref.file
        if not path.is_file():
            raise ConfigError(f"template file {path} not found", file=config_file, key=key,
                              fix="correct the path (relative to prompts.directory or the experiment)")
        source, origin = path.read_text(encoding="utf-8"), str(path)
    else:
        source, origin = ref.text or "", "inline"
    try:
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template {origin} line {exc.lineno}: syntax error: {exc.message}",
                          file=config_file, key=key, fix="fix the Jinja2 syntax") from None
    return CompiledTemplate(ref.name, origin, template, key)
