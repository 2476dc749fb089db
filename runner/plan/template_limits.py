"""A Jinja2 sandbox with bounded work and size, so that no template can exhaust memory or hang a run.

The stock sandbox keeps templates away from Python internals but not from resources: nested
`range(100000)` loops, `'x' * 10**10` or a doubling `{% set %}` in a loop reach gigabytes. Here one
render has a budget (`render_limited`):
- steps: loop iterations, calls, filters and intercepted operators, at most `MAX_STEPS`;
- one value a template builds (string, list, mapping, counted with nested values expanded), at most
  `MAX_VALUE_CHARS` characters or items, checked *before* the amplifying operations (`*`, `**`, `+`,
  `%` and `format` (every field, as often as it appears), width arguments, `expandtabs`, `replace`,
  `join`, `indent`, `~`, on str and bytes) allocate, and after every other operation,
  filter, call and list or mapping literal;
- everything built in one render (including what `append`/`update` add), at most `MAX_BUILT_CHARS`;
- the rendered text, at most `MAX_OUTPUT_CHARS`, counted while `generate()` streams it.
Past a limit the render stops with `TemplateLimit`, which says what to change.

Loops, `~` and literals have no sandbox hook, so templates are rewritten when compiled: every `for`
iterates through the `runner_loop` filter, every `a ~ b` goes through `runner_concat` and every list,
tuple or mapping literal through `runner_built`.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import string
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

# No model takes a prompt of a million characters (~250k tokens, beyond the context window of every
# local model), so a template that renders more is a mistake, not a prompt.
MAX_OUTPUT_CHARS = 1_000_000
MAX_VALUE_CHARS = MAX_OUTPUT_CHARS
MAX_BUILT_CHARS = 10 * MAX_OUTPUT_CHARS
# A loop iteration or a call costs Jinja 1-10 µs: a render stays well under a second per item. Prompts
# loop over a few hundred few-shot examples at most.
MAX_STEPS = 100_000


class TemplateLimit(Exception):
    """A render went past one of the limits; `problem` and `fix` complete `template X ...`."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}; {fix}")


def _too_big() -> TemplateLimit:
    return TemplateLimit(f"builds a value of more than {MAX_VALUE_CHARS:,} characters",
                         "build smaller strings and lists")


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.built = 0

    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise TemplateLimit(f"runs more than {MAX_STEPS:,} loop iterations and calls",
                                "make its loops shorter and its recursion shallower")

    def planned(self, size: int) -> None:
        """Refuse an operation whose result would be too big, before it allocates."""
        if size > MAX_VALUE_CHARS:
            raise _too_big()

    def built_value(self, value: Any) -> Any:
        size = expanded_size(value)
        self.planned(size)
        self.built += size
        if self.built > MAX_BUILT_CHARS:
            raise TemplateLimit(f"builds more than {MAX_BUILT_CHARS:,} characters of values",
                                "build fewer or smaller strings and lists")
        return value


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("runner_template_budget", default=None)


def _budget() -> _Budget:
    # Outside `render_limited` (nobody in the runner does that) each operation still has its own limits.
    return _BUDGET.get() or _Budget()


def expanded_size(value: Any) -> int:
    """Characters of a string, or items of a container with nested containers and strings expanded:
    `[a] * 1000` counts a's size a thousand times, as `tojson` would write it. Stops just past the limit."""
    memo: dict[int, int] = {}

    def size(v: Any) -> int:
        if isinstance(v, str | bytes):
            return len(v)
        if not isinstance(v, list | tuple | dict | set | frozenset):
            return 1
        key = id(v)
        if key in memo:
            return memo[key]
        memo[key] = 0  # a container inside itself counts once
        parts: Iterable[Any] = (x for kv in v.items() for x in kv) if isinstance(v, dict) else v
        total = len(v)
        for part in parts:
            total += size(part) if isinstance(part, str | bytes | list | tuple | dict | set | frozenset) else 0
            if total > MAX_VALUE_CHARS:
                break
        memo[key] = total
        return total

    return size(value)


# what an operation will build, before it runs

# One printf conversion: an optional (key), flags, width, precision, length modifier and type.
_PRINTF_SPEC = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?[hlL]?(.)", re.DOTALL)


def _ints(values: Iterable[Any]) -> list[int]:
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _check_counts(values: Iterable[Any]) -> None:
    """A width, count or size argument above the limit would build at least that much."""
    for n in _ints(values):
        if n > MAX_VALUE_CHARS:
            raise _too_big()


def _field_size(value: Any, *numbers: Any) -> int:
    """At least what one conversion writes: its value's size, or a width or precision wider than that."""
    sized = expanded_size(value) if isinstance(value, str | bytes | list | tuple | dict | set | frozenset) else 1
    return max([sized, *_ints(numbers)])


def _printf_size(fmt: str, right: Any) -> int:
    """What `fmt % right` writes, counted before it runs: every conversion's width, precision and value,
    each time it appears (`%(a)s%(a)s` writes `a` twice)."""
    args = list(right) if isinstance(right, tuple) else [right]
    position = 0

    def take() -> Any:
        nonlocal position
        position += 1
        return args[position - 1] if position <= len(args) else None

    total = len(fmt)
    for m in _PRINTF_SPEC.finditer(fmt):
        key, width, precision, kind = m.groups()
        if kind == "%":
            continue
        numbers = [take() if part == "*" else int(part) for part in (width, precision) if part]
        keyed = right.get(key) if isinstance(right, dict) else None
        value = take() if key is None else keyed
        total += _field_size(value, *numbers)
        if total > MAX_VALUE_CHARS:
            break
    return total


def _format_size(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """What `fmt.format(*args, **kwargs)` writes, counted the same way; 0 if Python would refuse `fmt`."""
    try:
        fields = list(_FORMATTER.parse(fmt))
    except ValueError:
        return 0
    auto = 0
    total = 0
    for literal, name, spec, _ in fields:
        total += len(literal)
        if name is None:
            continue
        first = re.match(r"[^.\[]*", name)
        head = first.group(0) if first else ""
        if head == "":
            head, auto = str(auto), auto + 1
        value = (args[int(head)] if int(head) < len(args) else None) if head.isdigit() else kwargs.get(head)
        # A width from a nested field (`{:{w}}`) is one of the arguments.
        nested = _ints((*args, *kwargs.values())) if spec and "{" in spec else []
        widths = [int(w) for w in re.findall(r"\d+", spec or "")]
        total += _field_size(value, *widths, *nested)
        if total > MAX_VALUE_CHARS:
            break
    return total


_FORMATTER = string.Formatter()


def _joined_size(parts: Any, sep: str | bytes) -> int:
    if not isinstance(parts, list | tuple):
        return 0
    return sum(len(p) if isinstance(p, str | bytes) else 1 for p in parts) + len(sep) * max(len(parts) - 1, 0)


def _replaced_size(s: Any, old: Any, new: Any, count: Any = -1) -> int:
    same = all(isinstance(x, str) for x in (s, old, new)) or all(isinstance(x, bytes) for x in (s, old, new))
    if not same or len(new) <= len(old):
        return 0
    hits = len(s) + 1 if not old else s.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * (len(new) - len(old))


def _check_binop(operator: str, left: Any, right: Any) -> None:
    budget = _budget()
    sized = (str, bytes, list, tuple)
    if operator == "*" and _ints([left]) and _ints([right]):  # digits of the product
        budget.planned((abs(left).bit_length() + abs(right).bit_length()) * 3 // 10)
    elif operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, sized) and isinstance(n, int) and not isinstance(n, bool):
                budget.planned(expanded_size(seq) * max(n, 0))
    elif operator == "+" and isinstance(left, sized) and isinstance(right, sized):
        budget.planned(expanded_size(left) + expanded_size(right))
    elif operator == "**" and _ints([left]) and _ints([right]):
        if abs(left) > 1 and right > 0:  # digits of the result
            budget.planned(math.ceil(right * math.log10(abs(left))))
    elif operator == "%" and isinstance(left, str | bytes):
        budget.planned(_printf_size(left.decode("latin-1") if isinstance(left, bytes) else left, right))


_WIDTH_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_WIDTH_FILTERS = frozenset({"center", "indent", "batch", "slice"})  # batch and slice pad with fill_with
_GROWING_METHODS = frozenset({"append", "extend", "insert", "update", "setdefault", "add"})


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format in a function
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    budget = _budget()
    if target is generate_lorem_ipsum:
        n = args[0] if args else kwargs.get("n", 5)
        longest = args[3] if len(args) > 3 else kwargs.get("max", 100)
        if _ints([n]) and _ints([longest]):
            budget.planned(max(n, 0) * max(longest, 0) * 12)  # words of at most ~12 characters
    elif isinstance(owner, list | dict | set) and name in _GROWING_METHODS:
        # What a template adds to a container counts as built: a list that grows by appending is
        # bounded like one built with `+`.
        for arg in (*args, *kwargs.values()):
            budget.built_value(arg)
    elif not isinstance(owner, str | bytes):  # bytes have the same widening methods
        return
    elif name == "format" and isinstance(owner, str):
        budget.planned(_format_size(owner, args, kwargs))
    elif name == "format_map" and isinstance(owner, str) and args and isinstance(args[0], dict):
        budget.planned(_format_size(owner, (), args[0]))
    elif name == "expandtabs":  # every tab may become `tabsize` characters
        size = args[0] if args else kwargs.get("tabsize", 8)
        if _ints([size]):
            tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
            budget.planned(len(owner) + tabs * max(size, 0))
    elif name in _WIDTH_METHODS:
        _check_counts((*args, *kwargs.values()))
    elif name == "replace" and len(args) >= 2:
        budget.planned(_replaced_size(owner, *args[:3]))
    elif name == "join" and args:
        budget.planned(_joined_size(args[0], owner))


def _check_filter(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    budget = _budget()
    if name in _WIDTH_FILTERS:
        _check_counts((*args, *kwargs.values()))
    if name == "replace" and len(args) >= 2:
        budget.planned(_replaced_size(str(value), str(args[0]), str(args[1]), *args[2:3]))
    elif name == "join":
        budget.planned(_joined_size(value, str(args[0]) if args else str(kwargs.get("d", ""))))
    elif name == "indent" and isinstance(value, str):
        width = args[0] if args else kwargs.get("width", 4)
        per_line = len(width) if isinstance(width, str) else width if _ints([width]) else 0
        budget.planned(len(value) + value.count("\n") * per_line)
    elif name == "format" and isinstance(value, str):  # Jinja's format filter: `value % (kwargs or args)`
        budget.planned(_printf_size(value, kwargs or args))


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # A filter marked pass_context/pass_environment/pass_eval_context takes that first, then the value.
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja passes the same arguments
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if len(args) >= skip:
            _check_filter(name, args[skip - 1], args[skip:], kwargs)
        return budget.built_value(func(*args, **kwargs))

    return guarded


# what the rewritten templates call

def _loop(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _concat(parts: list[Any]) -> str:
    texts = [str(p) for p in parts]  # str(), as Jinja's own `~` does (an undefined value raises here)
    budget = _budget()
    budget.planned(sum(len(t) for t in texts))
    return str(budget.built_value("".join(texts)))


def _built(value: Any) -> Any:
    return _budget().built_value(value)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_STEPS:
        raise TemplateLimit(f"asks for range() of {len(numbers):,} numbers, more than the {MAX_STEPS:,} loop "
                            "iterations a render may run", "make the range smaller")
    return numbers


class _Rewrite(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "runner_loop", [], [], None, None, lineno=node.lineno)
        return node

    def _built(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, "runner_built", [], [], None, None, lineno=node.lineno)

    # Literals need no operator to nest what exists: `{% set ns.x = [ns.x, ns.x] %}` doubles each time.
    def visit_List(self, node: nodes.List) -> nodes.Node:
        return self._built(node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        return self._built(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        if node.ctx != "load":  # `{% for k, v in ... %}` assigns to a tuple
            self.generic_visit(node)
            return node
        return self._built(node)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(list(node.nodes), lineno=node.lineno)
        return nodes.Filter(parts, "runner_concat", [], [], None, None, lineno=node.lineno)


class LimitedEnvironment(SandboxedEnvironment):
    """The sandbox with the budget above; render its templates with `render_limited`."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters["runner_loop"] = _loop
        self.filters["runner_concat"] = _concat
        self.filters["runner_built"] = _built
        self.globals["range"] = _range

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one dict, not Jinja's ChainMap over the environment's: every render
        copies them into its context, and copying a ChainMap walks it in Python (5 of a render's 13 us).
        The same names and values, since nothing changes this environment's globals once it is built."""
        return {**self.globals, **(d or {})}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Environment._parse is where from_string and compile turn source into a tree, before the
        # code generator runs: the one place to rewrite loops and `~` for every way of compiling.
        tree = super()._parse(source, name, filename)
        rewritten = _Rewrite().visit(tree)
        assert isinstance(rewritten, nodes.Template)
        return rewritten

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        _check_binop(operator, left, right)
        return budget.built_value(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        _check_call(__obj, args, kwargs)
        return budget.built_value(super().call(__context, __obj, *args, **kwargs))

    def concat(self, parts: Iterable[str]) -> str:
        """Joins the output of macros, `{% set %}` blocks and filter blocks: bounded like `~`."""
        texts = list(parts)
        budget = _budget()
        budget.planned(sum(len(t) for t in texts))
        return str(budget.built_value("".join(texts)))


def render_limited(template: Any, context: dict[str, Any]) -> str:
    """Render with a fresh budget, streaming the output and stopping once it is too long."""
    token = _BUDGET.set(_Budget())
    try:
        parts: list[str] = []
        total = 0
        for chunk in template.generate(context):
            total += len(chunk)
            if total > MAX_OUTPUT_CHARS:
                raise TemplateLimit(f"renders more than {MAX_OUTPUT_CHARS:,} characters",
                                    "make it shorter: no model takes a prompt that long")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _BUDGET.reset(token)
