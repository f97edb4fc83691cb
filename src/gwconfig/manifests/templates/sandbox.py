"""A Jinja2 sandbox whose every operation is metered by a :class:`Budget`.

Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` keeps templates away from
attributes and mutation; this subclass also bounds what they cost:

* nothing is folded at compile time (``{{ 10**(10**8) }}`` would be computed by the compiler):
  the optimizer is off, every arithmetic operator is intercepted (intercepted operators are never
  folded) and output expressions are never turned into constants;
* every operator, call, filter, list/tuple/dict literal and ``~`` checks its result (and, for
  the operations that can multiply their input, its operands first:
  :mod:`~gwconfig.manifests.templates.checks`);
* every ``{% for %}`` counts its iterations and every written piece of text counts towards the
  output limit, including text captured by macros, ``{% set %}`` and ``{% filter %}`` blocks.

The template context is exactly ``env``, ``vars``, ``range`` (bounded) and ``namespace``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.parser import Parser
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import Namespace, _PassArg
from markupsafe import Markup

import gwconfig.manifests.templates.checks as checks
from gwconfig.manifests.templates.limits import Budget, TemplateLimitError


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja2's code generator with a hook of the environment around each costly construct."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        if not isinstance(node, nodes.TemplateData):  # never evaluate template code here
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)

    def _output_const_repr(self, group: Any) -> str:
        return f"environment.gw_write({super()._output_const_repr(group)})"

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.gw_write(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")

    def _checked(self, visit: Callable[[Any, Frame], None], node: Any, frame: Frame) -> None:
        self.write("environment.gw_value(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":
            self._checked(super().visit_Tuple, node, frame)
        else:  # an assignment target
            super().visit_Tuple(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.gw_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _BoundedFormatting:
    """``str.format`` fields checked before they are formatted, and their total counted."""

    budget: Budget
    _total = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        checks.format_spec(self.budget, format_spec)
        text = super().format_field(value, format_spec)  # type: ignore[misc]
        self._total += len(text)
        if self._total > self.budget.limits.value_size:
            raise self.budget.too_big("a formatted string")
        return text


class _Formatter(_BoundedFormatting, SandboxedFormatter):
    """``str.format`` in templates, bounded."""


class _EscapeFormatter(_BoundedFormatting, SandboxedEscapeFormatter):
    """``str.format`` on markup-safe strings in templates, bounded."""


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The environment of one render: strict, sandboxed, immutable, metered by ``budget``."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def __init__(self, budget: Budget) -> None:
        super().__init__(
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
            loader=None,
            optimized=False,
            finalize=self._finalize,
        )
        self.budget = budget
        self.globals.clear()
        self.globals.update(range=self._range, namespace=Namespace)
        self.filters = {
            name: self._guard(name, func)
            for name, func in self.filters.items()
            if name not in checks.DROPPED_FILTERS
        }

    # --- compile --------------------------------------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        parser = Parser(self, source, name, filename)
        try:
            tree = parser.parse()
        except RecursionError:
            raise TemplateLimitError(
                "expression nested too deeply to parse", parser.stream.current.lineno
            ) from None
        # every loop iterates through gw_iterate (see call())
        for loop in tree.find_all(nodes.For):
            hook = nodes.EnvironmentAttribute("gw_iterate", lineno=loop.iter.lineno)
            loop.iter = nodes.Call(hook, [loop.iter], [], None, None, lineno=loop.iter.lineno)
        return tree

    # --- hooks called by compiled templates ----------------------------------------------------

    def gw_write(self, text: str) -> str:
        """Count written text."""
        return self.budget.write(text)

    def gw_value(self, value: Any) -> Any:
        """Check a value built by a literal."""
        return self.budget.check(value)

    def gw_iterate(self, iterable: Any) -> Iterator[Any]:
        """Meter a loop."""
        return self.budget.iterate_over(iterable)

    def gw_concat(self, parts: tuple[Any, ...]) -> str:
        """``a ~ b ~ ...``, checked before the string is built."""
        texts = [str(p) for p in parts]
        size = sum(len(t) for t in texts)
        if size > self.budget.limits.value_size:
            raise self.budget.too_big("a ~ concatenation", size)
        self.budget.tick()
        return "".join(texts)

    def _finalize(self, value: Any) -> Any:
        # printed values are measured before str() turns them into text
        if not self.budget.is_known(value):
            self.budget.check(value)
        return value

    def _range(self, *args: Any) -> range:
        result = range(*args)
        try:
            length = len(result)
        except OverflowError:
            length = self.budget.limits.iterations + 1
        if length > self.budget.limits.iterations:
            raise TemplateLimitError(
                f"range() of {length:,} items; at most {self.budget.limits.iterations:,} (the "
                "template limit)"
            )
        return result

    # --- sandbox overrides -----------------------------------------------------------------------

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """An arithmetic operator, checked before (when it can multiply) and after."""
        budget = self.budget
        budget.tick()
        if operator == "*":
            if isinstance(left, int) and isinstance(right, int):
                checks.product(budget, left, right)
            elif isinstance(right, int) and not isinstance(left, int | float):
                checks.repetition(budget, left, right)
            elif isinstance(left, int) and not isinstance(right, int | float):
                checks.repetition(budget, right, left)
        elif operator == "**":
            checks.power(budget, left, right)
        elif operator == "%" and isinstance(left, str):
            checks.percent(budget, left, right)
        elif operator == "+" and isinstance(left, str | bytes | list | tuple):
            size = budget.size(left) + budget.size(right)
            if size > budget.limits.value_size:
                raise budget.too_big("a + concatenation", size)
        return budget.check(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """A call from a template: functions, methods, macros, ``loop(...)``."""
        budget = __self.budget
        budget.tick()
        if __obj == __self.gw_iterate:  # a {% for %}: count iterations, not item sizes
            return __self.gw_iterate(*args)
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's next level
            args = (budget.iterate_over(args[0]), *args[1:])
        args, kwargs = checks.method_call(budget, __obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(__obj, Macro):  # its text was counted as it was written
            return result
        return budget.check(result)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format`` / ``format_map`` through a sandboxed formatter with bounded fields."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner = value.__self__
        is_map = value.__name__ == "format_map"
        formatter: _Formatter | _EscapeFormatter
        if isinstance(owner, Markup):
            formatter = _EscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _Formatter(self)
        formatter.budget = self.budget

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                mapping: Any = args[0]
                args, kwargs = (), mapping
            return str(type(owner)(formatter.vformat(owner, args, kwargs)))

        return functools.update_wrapper(bounded, value)

    # --- filters ---------------------------------------------------------------------------------

    def _guard(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        skip = 0 if _PassArg.from_obj(func) is None else 1
        check = checks.FILTER_CHECKS.get(name)
        budget = self.budget

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            budget.tick()
            if check is not None and len(args) > skip:
                rest, kwargs = check(budget, args[skip:], kwargs)
                args = (*args[:skip], *rest)
            return budget.check(func(*args, **kwargs))

        return guarded
