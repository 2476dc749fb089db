"""Where the files an experiment reads and sends may live: inside its project, unless it says otherwise.

A template, context file or dataset is read and its text sent to the server, so a shared experiment
file with `file: ../../../etc/passwd` (or an absolute path, or a symlink out) would send that file.
Such paths are refused unless the experiment sets `allow_outside_paths: true`.

The allowed root is the experiment's project: the nearest folder at or above the experiment file that
has a pyproject.toml or .git (the experiments in experiments/ read ../datasets and ../prompt_templates),
else the experiment file's own folder. Paths are compared after resolving symlinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runner.errors import ConfigError

PROJECT_MARKERS = ("pyproject.toml", ".git")
OPT_IN = "allow_outside_paths"


@dataclass(frozen=True)
class PathGuard:
    root: Path  # resolved
    label: str  # how messages name the root
    allow_outside: bool
    config_file: Path

    def check(self, written: Path | str, path: Path, key: str, *, what: str = "the file") -> Path:
        """`path` (what `written` resolves to) if it is inside the root; else a one-line error at `key`."""
        if self.allow_outside or path.resolve().is_relative_to(self.root):
            return path
        raise ConfigError(f"{written} is outside {self.label}", file=self.config_file, key=key,
                          fix=f"move {what} under it or set {OPT_IN}: true")


def path_guard(config_file: Path, *, allow_outside: bool) -> PathGuard:
    folder = config_file.absolute().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / m).exists() for m in PROJECT_MARKERS):
            root = candidate.resolve()
            label = f"the project folder ({root}, the nearest folder above the experiment with pyproject.toml or .git)"
            return PathGuard(root, label, allow_outside, config_file)
    root = folder.resolve()
    return PathGuard(root, f"the experiment's folder ({root})", allow_outside, config_file)
