"""Stored templates rendered in a Jinja2 sandbox with bounded time and output size."""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import StrictUndefined, Template, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from services.common.header_text import unsafe_text
from services.common.reasons import Reason

_GUARD_ITER = "_mailstream_guard_iter"
_GUARD_SIZE = "_mailstream_guard_size"
_MAX_POW_BITS = 1 << 16
_COMPILED_MAX = 1024
# Matched only at a position the scanner chose, so neither can backtrack across the string.
_PERCENT_TAIL = re.compile(r"[-#0 +]*(\d*|\*)(?:\.(\d*|\*))?")
_BRACE_FIELD = re.compile(r"\{([^{}]*)\}")


class RenderError(Exception):
    """A template that cannot be rendered for this request: a domain result, never a crash."""

    def __init__(self, reason: Reason, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


class TemplateSource(Protocol):
    @property
    def subject(self) -> str: ...
    @property
    def text(self) -> str | None: ...
    @property
    def html(self) -> str | None: ...
    @property
    def required(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class RenderLimits:
    max_time_ms: int = 200
    max_part_chars: int = 512 * 1024


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str | None
    html: str | None


class RenderLimitExceeded(Exception):
    """Raised from inside the sandbox; an Exception so Jinja's constant folding skips it."""


class RenderTimeExceeded(RenderLimitExceeded):
    """The CPU budget ran out: the one limit a legitimate template can hit by bad luck (a
    full garbage collection landing inside its render), so it gets one more try."""


# Guarded steps (operations, loop steps, output chunks) between two readings of the clock:
# reading it is a system call (1-2 us), and a 4 KB template has a couple of hundred steps.
# Every step is bounded in size before it runs, so 32 of them overrun the limit by little.
_TICKS_PER_CHECK = 32


class _Budget:
    # On the rendering thread's own CPU clock (time.thread_time): a render waiting for the GIL
    # or a core while the router is busy must not fail a legitimate template, and a sandboxed
    # template cannot block without burning CPU, so CPU time is what the limit is about.
    __slots__ = ("_ticks", "deadline", "max_chars")

    def __init__(self, deadline: float, max_chars: int) -> None:
        self.deadline = deadline
        self.max_chars = max_chars
        self._ticks = 0

    def tick(self) -> None:
        """One guarded step; every _TICKS_PER_CHECK of them, the deadline is checked."""
        self._ticks += 1
        if self._ticks % _TICKS_PER_CHECK == 0 and time.thread_time() > self.deadline:
            raise RenderTimeExceeded("render time limit exceeded")


# The budget of the render running in this context; None while compiling (no deadline).
_BUDGET: ContextVar[_Budget | None] = ContextVar("mailstream_render_budget", default=None)
_DEFAULT_MAX_CHARS = RenderLimits().max_part_chars


def _max_chars() -> int:
    budget = _BUDGET.get()
    return budget.max_chars if budget else _DEFAULT_MAX_CHARS


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _check_size(size: int, what: str) -> None:
    if size > _max_chars():
        raise RenderLimitExceeded(f"{what} would exceed {_max_chars()} characters")


def _size(value: Any, depth: int = 0) -> int:
    """A cheap upper-ish estimate of the characters a value renders to."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        if len(value) > _max_chars() or depth > 2:
            return len(value) * 8
        items: Iterable[Any] = (
            (k for pair in value.items() for k in pair) if isinstance(value, dict) else value
        )
        return len(value) + sum(_size(v, depth + 1) for v in items)
    return 8


def _spec_width(fmt: str) -> int:
    """The widths and precisions named in %-style and {}-style format specs, in one linear
    pass: format strings come from request data, so a quadratic scan would be a ReDoS."""
    return _percent_width(fmt) + _brace_width(fmt)


def _percent_width(fmt: str) -> int:
    total, i = 0, 0
    while (i := fmt.find("%", i) + 1) > 0:
        if fmt.startswith("%", i):  # "%%" is a literal percent sign
            i += 1
            continue
        if fmt.startswith("(", i):
            close = fmt.find(")", i)
            if close < 0:
                return total  # an unclosed key: formatting fails anyway
            i = close + 1
        tail = _PERCENT_TAIL.match(fmt, i)
        assert tail is not None  # every group is optional
        total += sum(int(g) for g in tail.groups() if g and g.isdigit())
        i = tail.end()
    return total


def _brace_width(fmt: str) -> int:
    total = 0
    for field_match in _BRACE_FIELD.finditer(fmt):
        spec = field_match.group(1).partition(":")[2]
        total += sum(int(d) for d in re.findall(r"\d+", spec))
    return total


def _ints(args: Iterable[Any]) -> list[int]:
    return [abs(a) for a in args if isinstance(a, int) and not isinstance(a, bool)]


def _predicted(name: str, receiver: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> int:
    """The output size of a string-growing method or filter, before it runs (0 if unknown)."""
    every = [*args, *kwargs.values()]
    if name == "join":  # receiver is the separator (str.join) or the items (|join)
        items, sep = (
            (args[0] if args else (), receiver)
            if isinstance(receiver, str)
            else (
                receiver,
                args[0] if args else "",
            )
        )
        if isinstance(items, list | tuple | set | frozenset | dict):
            return _size(items) + _size(sep) * len(items)
        return 0
    if name == "slice":
        return max(_ints(every), default=0)
    if not isinstance(receiver, str):
        return 0
    widest = max(_ints(every), default=0)
    if name in ("center", "ljust", "rjust", "zfill"):
        return len(receiver) + widest
    if name in ("indent", "expandtabs"):
        width = widest if _ints(every) else 8
        if any(isinstance(a, str) for a in every):
            width = max(width, *(len(a) for a in every if isinstance(a, str)))
        return len(receiver) + (receiver.count("\n") + receiver.count("\t") + 1) * width
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = receiver.count(old) if old else len(receiver) + 1
        return len(receiver) + hits * len(new)
    if name in ("format", "format_map"):
        return (
            len(receiver)
            + _spec_width(receiver)
            + sum(_size(a) for a in every)
            + widest * ("*" in receiver or "{:{" in receiver)
        )
    return 0


def _guard_call(name: str, receiver: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> None:
    _tick()
    _check_size(_predicted(name, receiver, args, kwargs), name)


def _guard_result(name: str, value: Any) -> Any:
    if isinstance(value, str):
        _check_size(len(value), name)
    return value


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    pass_arg = getattr(func, "jinja_pass_arg", None)

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        rest = args[1:] if pass_arg is not None else args
        if rest:
            _guard_call(name, rest[0], rest[1:], kwargs)
        return _guard_result(name, func(*args, **kwargs))

    return guarded


def _guard_iter(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _tick()
        yield item


def _guard_size(value: Any) -> Any:
    _tick()
    return _guard_result("concatenation", value)


def _guarded_concat(parts: Iterable[str]) -> str:
    buffer = list(parts)
    _tick()
    _check_size(sum(len(p) for p in buffer), "block")
    return "".join(buffer)


class _GuardLoops(NodeTransformer):
    """Every `for` iterates through a deadline check; every `~` result is size-checked."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _GUARD_ITER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, _GUARD_SIZE, [], [], None, None, lineno=node.lineno)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus a deadline checked on every call, attribute access, operator
    and loop step, and sizes predicted before any string-growing operation runs: Python cannot
    interrupt a running expression, so nothing may be allowed to start a huge one."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=StrictUndefined)
        self.globals.pop("lipsum", None)  # generates megabytes from a single small argument
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}
        self.filters[_GUARD_ITER] = _guard_iter
        self.filters[_GUARD_SIZE] = _guard_size
        self.concat = _guarded_concat  # type: ignore[method-assign]

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        _GuardLoops().visit(tree)
        return tree

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(n, int) and not isinstance(seq, int | float):
                    _check_size(_size(seq) * max(n, 0), "repetition")
        elif operator == "+" and not isinstance(left, int | float):
            _check_size(_size(left) + _size(right), "addition")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right > 0 and abs(left).bit_length() * right > _MAX_POW_BITS:
                raise RenderLimitExceeded("power too large")
        elif operator == "%" and isinstance(left, str):
            args = right if isinstance(right, tuple) else (right,)
            _check_size(_predicted("format", left, args, {}), "formatting")
        return _guard_result(operator, super().call_binop(context, operator, left, right))

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        name = getattr(target, "__name__", "")
        _guard_call(name, getattr(target, "__self__", None), args, kwargs)
        return _guard_result("call", super().call(context, obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)


class _Compiler:
    """Compiled templates, cached by source: a template is compiled once per process."""

    def __init__(self, *, max_entries: int = _COMPILED_MAX) -> None:
        self._plain = BoundedSandbox(autoescape=False)
        self._html = BoundedSandbox(autoescape=True)
        self._cache: OrderedDict[tuple[bool, str], Template] = OrderedDict()
        self._max = max_entries
        # The router renders on worker threads: the LRU bookkeeping must not interleave.
        self._lock = threading.Lock()

    def get(self, source: str, *, html: bool) -> Template:
        key = (html, source)
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is not None:
                self._cache.move_to_end(key)
                return compiled
        compiled = (self._html if html else self._plain).from_string(source)
        with self._lock:
            self._cache[key] = compiled
            if len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return compiled


# Process-wide on purpose: compiled code is pure and immutable, and compiling is the cost.
_COMPILER = _Compiler()


def check_syntax(source: str, *, html: bool = False) -> None:
    """Raises RenderError(render_failed) if the source does not compile (used at apply time)."""
    try:
        _COMPILER.get(source, html=html)
    except Exception as exc:
        raise RenderError(Reason.RENDER_FAILED, f"{type(exc).__name__}: {exc}") from None


def parse_data(data_json: str | None, required: Sequence[str]) -> dict[str, Any]:
    try:
        data = json.loads(data_json) if data_json else {}
    except (ValueError, RecursionError) as exc:
        raise RenderError(Reason.TEMPLATE_DATA_INVALID, f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RenderError(Reason.TEMPLATE_DATA_INVALID, "template data must be a JSON object")
    missing = [name for name in required if data.get(name) is None]
    if missing:
        raise RenderError(Reason.TEMPLATE_DATA_MISSING, f"missing variables: {', '.join(missing)}")
    return data


def _render_part(source: str, data: dict[str, Any], *, html: bool, budget: _Budget) -> str:
    compiled = _COMPILER.get(source, html=html)
    size = 0
    chunks = []
    for chunk in compiled.generate(data):
        size += len(chunk)
        if size > budget.max_chars:
            raise RenderLimitExceeded(f"output exceeds {budget.max_chars} characters")
        budget.tick()
        chunks.append(chunk)
    return "".join(chunks)


def render(template: TemplateSource, data_json: str | None, *, limits: RenderLimits) -> Rendered:
    """Renders subject, text and html within the limits. Out of time, it tries once more
    with a fresh budget: the throughput benchmark saw 4 of 50,000 ordinary receipts run out
    (a collection of the router's whole heap inside the render), while a hostile template
    fails again and costs twice the limit."""
    data = parse_data(data_json, template.required)
    try:
        return _render_once(template, data, limits=limits)
    except RenderTimeExceeded:
        pass
    try:
        return _render_once(template, data, limits=limits)
    except RenderTimeExceeded as exc:
        raise RenderError(Reason.RENDER_FAILED, f"{type(exc).__name__}: {exc}") from None


def _render_once(
    template: TemplateSource, data: dict[str, Any], *, limits: RenderLimits
) -> Rendered:
    budget = _Budget(time.thread_time() + limits.max_time_ms / 1000, limits.max_part_chars)
    token = _BUDGET.set(budget)
    try:
        subject = _render_part(template.subject, data, html=False, budget=budget).strip()
        text = (
            _render_part(template.text, data, html=False, budget=budget)
            if template.text is not None
            else None
        )
        html = (
            _render_part(template.html, data, html=True, budget=budget)
            if template.html is not None
            else None
        )
    except (RenderError, RenderTimeExceeded):
        raise
    except Exception as exc:  # SecurityError, UndefinedError, limits, anything a template does
        raise RenderError(Reason.RENDER_FAILED, f"{type(exc).__name__}: {str(exc)[:300]}") from None
    finally:
        _BUDGET.reset(token)
    if unsafe_text(subject):  # encoded words too: CVE-2024-6923 on this Python
        raise RenderError(Reason.RENDER_FAILED, "rendered subject contains a line break")
    return Rendered(subject=subject, text=text, html=html)
