"""The one YAML reader for every YAML file the runner reads (experiments, YAML context files).

On top of `yaml.SafeLoader` it refuses what PyYAML silently accepts:
- a key given twice in one mapping (PyYAML keeps the last, so a second `sampling:` would win);
- aliases that expand to a huge document (billion laughs): anchors are allowed, people use them for
  shared defaults, but the document as the program will see it, every alias expanded, must stay under
  `MAX_EXPANDED_NODES`. The check runs on the composed node graph, where an alias is the anchored
  node itself, counting with memoised sizes, so it takes time linear in the file, not in the expansion;
- a cycle (`&a [*a]`), which no JSON request can carry;
- nesting too deep for the parser, as a one-line error.
Size is bounded before parsing, by `runner.config.text_files.read_text` with `MAX_YAML_BYTES`.

Parsing uses libyaml (yaml.CSafeLoader, in PyYAML's wheels) when it is there: PyYAML's pure-Python
parser needs about 20 s and 400 MB per MiB of dense YAML (`[1,1,1,...]`), libyaml about 2 s and 190 MB.
Its syntax errors read worse ("did not find expected ','"), so a small file with a syntax error is
parsed again by the pure-Python parser for its message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from runner.errors import ConfigError

# A million nodes is far more than any experiment spells out (the largest in experiments/ has a few
# hundred) and still only tens of MB once Python builds it.
MAX_EXPANDED_NODES = 1_000_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


# Far above any experiment file (the largest in experiments/ is 3 KB) or YAML few-shot file; with
# libyaml the densest YAML of this size parses in about 2 s and 190 MB. Larger data belongs in JSON.
MAX_YAML_BYTES = 2**20
# Syntax errors in files up to this size get the pure-Python parser's clearer message (< 1 s).
_REPARSE_BYTES = 64 * 1024


class _PureLoader(yaml.SafeLoader):
    """Subclasses, so that nothing registered on them leaks into PyYAML's own loaders."""


_FastBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _FastLoader(_FastBase):  # type: ignore[valid-type,misc]
    pass


def load_yaml(text: str, *, file: Path | str) -> Any:
    """Parse one YAML document; every problem is a `ConfigError` at `file: line N: ...`."""
    loader = _FastLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node, file)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _syntax_error(_clearer(exc, text), file) from None
    except RecursionError:  # the pure-Python parser recurses per level; libyaml stops at 1000 levels itself
        raise ConfigError("YAML nested too deeply to read", file=file,
                          fix="nest lists and mappings less deeply") from None
    finally:
        loader.dispose()


def _clearer(exc: yaml.YAMLError, text: str) -> yaml.YAMLError:
    if _FastBase is yaml.SafeLoader or len(text) > _REPARSE_BYTES:
        return exc
    loader = _PureLoader(text)
    try:
        loader.get_single_node()
    except yaml.YAMLError as pure:
        return pure
    except RecursionError:
        return exc
    finally:
        loader.dispose()
    return exc


def _syntax_error(exc: yaml.YAMLError, file: Path | str) -> ConfigError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    if "maximum nesting depth" in str(problem):  # libyaml's own limit
        return ConfigError("YAML nested too deeply to read", file=file, fix="nest lists and mappings less deeply")
    return ConfigError(f"YAML syntax error: {problem}", file=file, key=where, fix="fix the YAML syntax at that place")


def _line(node: Node) -> str:
    return f"line {node.start_mark.line + 1}"


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_graph(root: Node, file: Path | str) -> None:
    """Duplicate keys, cycles and the expanded size, in one pass over each distinct node.

    Iterative (an explicit stack), so a deep document cannot overflow Python's stack here. Scalars
    count 1 and are never stacked: they are most of a document's nodes."""
    size: dict[int, int] = {}  # id(list or mapping node) -> nodes in its expansion, capped above the limit
    on_path: set[int] = set()
    shared = False  # a list or mapping reached twice: only such aliases multiply the document
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            total = 1 + sum(1 if type(c) is ScalarNode else size[id(c)] for c in _children(node))
            size[key] = min(total, MAX_EXPANDED_NODES + 1)
            continue
        if key in size:
            shared = True
            continue
        if key in on_path:  # reached again while still inside itself: an alias to an enclosing node
            raise ConfigError("a YAML alias refers to a node that contains it (a cycle)", file=file,
                              key=_line(node), fix="remove that alias or point it at a node outside")
        if isinstance(node, MappingNode):
            _refuse_duplicate_keys(node, file)
        on_path.add(key)
        stack.append((node, True))
        for child in reversed(_children(node)):
            if type(child) is not ScalarNode:
                stack.append((child, False))
    if shared and size.get(id(root), 1) > MAX_EXPANDED_NODES:
        raise ConfigError(f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes", file=file,
                          key=_line(_where_it_grows(root, size)),
                          fix="use fewer or smaller aliases, or write the data out")


def _where_it_grows(root: Node, size: dict[int, int]) -> Node:
    """The innermost node whose expansion is over the limit: the anchor that multiplies the others."""
    node = root
    while True:
        big = [c for c in _children(node) if size.get(id(c), 1) > MAX_EXPANDED_NODES]
        if not big:
            return node
        node = big[0]


def _refuse_duplicate_keys(node: MappingNode, file: Path | str) -> None:
    first: dict[tuple[str, str], ScalarNode] = {}
    for key_node, _ in node.value:
        # `<<: *defaults` merges keys that the mapping's own keys may override: that is no duplicate.
        if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        ident = (key_node.tag, key_node.value)
        if ident in first:
            raise ConfigError(f"duplicate key {key_node.value!r} (first at {_line(first[ident])})", file=file,
                              key=_line(key_node), fix="remove one of them")
        first[ident] = key_node
