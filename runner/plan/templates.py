"""Jinja2 prompt templates: sandboxed, bounded, strict about undefined variables, compiled once.

Sandboxed because templates are shared like code but should never be able to reach Python
internals; bounded (`runner.plan.template_limits`) so that no template can exhaust memory or loop for
hours; StrictUndefined because a misspelt variable must stop the run, not become "".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from runner.config.paths import PathGuard
from runner.config.schema import TemplateRef
from runner.config.text_files import read_text
from runner.errors import ConfigError
from runner.plan.template_limits import LimitedEnvironment, TemplateLimit, render_limited

_ENV = LimitedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class CompiledTemplate:
    name: str
    origin: str  # file path or "inline", for messages
    template: jinja2.Template
    key: str  # YAML key that declared it, for messages

    def render(self, context: dict[str, Any], *, config_file: Path, item_id: str | None = None) -> str:
        where = f" for item {item_id!r}" if item_id is not None else ""

        def error(problem: str, fix: str) -> ConfigError:
            return ConfigError(f"template {self.origin} {problem}", file=config_file, key=self.key, fix=fix)

        try:
            return render_limited(self.template, context).strip()
        except TemplateLimit as exc:
            raise error(f"{exc.problem}{where}", exc.fix) from None
        except jinja2.UndefinedError as exc:
            raise error(f"uses an undefined variable{where}: {exc.message}",
                        "use a dataset field, `item`, or a name from prompts.context") from None
        except jinja2.TemplateError as exc:
            raise error(f"failed to render: {exc}", "fix the template") from None
        except MemoryError:
            raise error(f"ran out of memory{where}", "make it build smaller values") from None
        except RecursionError:
            raise error(f"recursed too deeply{where}", "make its macros and recursive loops shallower") from None
        except Exception as exc:  # the template's own mistake: 1/0, 'a' + 1, int('x'), {% include %}
            text = " ".join(str(exc).split())
            raise error(f"failed to render{where}: {type(exc).__name__}: {text}", "fix the template") from None


def compile_template(ref: TemplateRef, *, directory: Path, config_file: Path, key: str,
                     guard: PathGuard) -> CompiledTemplate:
    if ref.file is not None:
        path = guard.check(ref.file, ref.file if ref.file.is_absolute() else directory / ref.file, f"{key}.file")
        if not path.is_file():
            raise ConfigError(f"template file {path} not found", file=config_file, key=key,
                              fix="correct the path (relative to prompts.directory or the experiment)")
        source = read_text(path, what="template file", config_file=config_file, key=f"{key}.file")
        origin = str(path)
    else:
        source, origin = ref.text or "", "inline"
    try:
        template = _ENV.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"template {origin} line {exc.lineno}: syntax error: {exc.message}",
                          file=config_file, key=key, fix="fix the Jinja2 syntax") from None
    except RecursionError:  # Jinja's parser recurses once per nested bracket
        raise ConfigError(f"template {origin} is nested too deeply to compile", file=config_file, key=key,
                          fix="nest its expressions and blocks less deeply") from None
    return CompiledTemplate(ref.name, origin, template, key)
