"""Constraint expressions of sweep files, parsed and evaluated without Python's ``eval``.

The language is deliberately tiny: names (scenario keys and output leaves, dotted for nested
keys: ``slo.ttft_s``), numbers, quoted strings, ``true``/``false``, the arithmetic operators
``+ - * / // %``, comparisons ``== != < <= > >=`` (chained as in Python: ``1 <= tp <= 8``),
``and``/``or``/``not`` and parentheses. There are no calls, attribute access, subscripts,
lambdas or any other Python: a character outside the language is a ConfigError, and a name
part that starts with an underscore is refused, so a constraint can only read the values it
is given. Examples: ``tp * pp * dp == gpus``, ``fits_in_memory``, ``mfu > 0.3 and not pd``.

The grammar (precedence from low to high) follows Python's, so what a user expects from
Python is what happens (https://docs.python.org/3/reference/expressions.html#operator-precedence)::

    or_expr  := and_expr ("or" and_expr)*
    and_expr := not_expr ("and" not_expr)*
    not_expr := "not" not_expr | compare
    compare  := sum (("==" | "!=" | "<" | "<=" | ">" | ">=") sum)*
    sum      := term (("+" | "-") term)*
    term     := unary (("*" | "/" | "//" | "%") unary)*
    unary    := ("-" | "+") unary | atom
    atom     := NUMBER | STRING | NAME | "true" | "false" | "(" or_expr ")"
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aifabric.errors import ConfigError

__all__ = ["EvaluationError", "Expression", "parse_expression"]

MAX_LENGTH = 1000  # characters of one expression
MAX_DEPTH = 50  # nesting of parentheses / unary operators

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<string>'[^'\\]*'|"[^"\\]*")
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<op>==|!=|<=|>=|//|[<>+\-*/%()])
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "true", "false", "True", "False"}
_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod,
}  # fmt: skip
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}  # fmt: skip


class EvaluationError(ValueError):
    """A constraint could not be evaluated on a point (unknown name, bad operand, 1/0)."""


# A node is a tuple: ("num", v) ("str", v) ("name", n) ("neg", x) ("not", x)
# ("and", a, b) ("or", a, b) ("arith", op, a, b) ("cmp", [ops], [operands]).
Node = tuple[Any, ...]


@dataclass(frozen=True)
class Expression:
    """A parsed constraint: its text, syntax tree and the names it reads."""

    text: str
    tree: Node = field(repr=False)
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        """The constraint's truth on ``values`` (name -> number, string, bool or None).

        Raises:
            EvaluationError: a name not in ``values``, an operand of the wrong type,
                division by zero, or a result that is not a boolean.
        """
        result = _eval(self.tree, values)
        if not isinstance(result, bool):
            raise EvaluationError(
                f"constraint {self.text!r} gives {result!r}, not true or false: compare it"
            )
        return result


def parse_expression(text: str, *, where: str = "constraint") -> Expression:
    """Parse ``text``; ConfigError (one line naming ``where`` and the problem) if invalid."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}: expected a non-empty expression string, got {text!r}")
    if len(text) > MAX_LENGTH:
        raise ConfigError(f"{where}: expression longer than {MAX_LENGTH} characters")
    tokens = _tokenize(text, where)
    parser = _Parser(tokens, text, where)
    tree = parser.or_expr()
    if parser.pos != len(tokens):
        raise ConfigError(f"{where}: {text!r}: unexpected {tokens[parser.pos][1]!r}")
    return Expression(text, tree, frozenset(_names(tree)))


def _tokenize(text: str, where: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            char = text[pos:].lstrip()[:1]
            raise ConfigError(
                f"{where}: {text!r}: {char!r} is not allowed (names, numbers, strings, "
                "+ - * / // %, comparisons, and/or/not and parentheses only)"
            )
        kind = m.lastgroup or "op"
        value = m.group(kind)
        if kind == "name" and any(part.startswith("_") for part in value.split(".")):
            raise ConfigError(f"{where}: {text!r}: name {value!r} may not start with '_'")
        tokens.append((kind, value))
        pos = m.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str, where: str) -> None:
        self.tokens, self.text, self.where, self.pos, self.depth = tokens, text, where, 0, 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _is(self, *values: str) -> str | None:
        tok = self._peek()
        if tok is not None and tok[0] in ("op", "name") and tok[1] in values:
            self.pos += 1
            return tok[1]
        return None

    def _fail(self, what: str) -> ConfigError:
        return ConfigError(f"{self.where}: {self.text!r}: {what}")

    def _deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._fail(f"nested deeper than {MAX_DEPTH}")

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self._is("or"):
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self._is("and"):
            node = ("and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self._is("not"):
            self._deeper()
            node = ("not", self.not_expr())
            self.depth -= 1
            return node
        return self.compare()

    def compare(self) -> Node:
        first = self.sum()
        ops: list[str] = []
        operands = [first]
        while (op := self._is(*_COMPARE)) is not None:
            ops.append(op)
            operands.append(self.sum())
        return ("cmp", ops, operands) if ops else first

    def sum(self) -> Node:
        node = self.term()
        while (op := self._is("+", "-")) is not None:
            node = ("arith", op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while (op := self._is("*", "/", "//", "%")) is not None:
            node = ("arith", op, node, self.unary())
        return node

    def unary(self) -> Node:
        if (op := self._is("-", "+")) is not None:
            self._deeper()
            inner = self.unary()
            self.depth -= 1
            return ("neg", inner) if op == "-" else ("pos", inner)
        return self.atom()

    def atom(self) -> Node:
        tok = self._peek()
        if tok is None:
            raise self._fail("ends too early")
        kind, value = tok
        self.pos += 1
        if kind == "number":
            number = float(value)
            return ("num", int(value) if number.is_integer() and value.isdigit() else number)
        if kind == "string":
            return ("str", value[1:-1])
        if kind == "name":
            if value in ("true", "True"):
                return ("num", True)
            if value in ("false", "False"):
                return ("num", False)
            if value in _KEYWORDS:
                raise self._fail(f"unexpected {value!r}")
            nxt = self._peek()
            if nxt == ("op", "("):
                raise self._fail(f"calls are not allowed ({value}(...))")
            return ("name", value)
        if value == "(":
            self._deeper()
            node = self.or_expr()
            self.depth -= 1
            if not self._is(")"):
                raise self._fail("missing ')'")
            return node
        raise self._fail(f"unexpected {value!r}")


def _names(node: Node) -> set[str]:
    kind = node[0]
    if kind == "name":
        return {node[1]}
    if kind in ("num", "str"):
        return set()
    if kind in ("neg", "pos", "not"):
        return _names(node[1])
    if kind in ("and", "or"):
        return _names(node[1]) | _names(node[2])
    if kind == "arith":
        return _names(node[2]) | _names(node[3])
    return set().union(*(_names(n) for n in node[2]))  # cmp


def _number(value: Any, what: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EvaluationError(f"{what} needs numbers, got {value!r}")
    return value


def _eval(node: Node, values: Mapping[str, Any]) -> Any:
    kind = node[0]
    if kind in ("num", "str"):
        return node[1]
    if kind == "name":
        if node[1] not in values:
            raise EvaluationError(f"unknown name {node[1]!r}")
        return values[node[1]]
    if kind == "not":
        return not _truth(_eval(node[1], values))
    if kind == "and":
        return _truth(_eval(node[1], values)) and _truth(_eval(node[2], values))
    if kind == "or":
        return _truth(_eval(node[1], values)) or _truth(_eval(node[2], values))
    if kind in ("neg", "pos"):
        value = _number(_eval(node[1], values), f"unary {'-' if kind == 'neg' else '+'}")
        return -value if kind == "neg" else value
    if kind == "arith":
        op = node[1]
        a = _number(_eval(node[2], values), f"'{op}'")
        b = _number(_eval(node[3], values), f"'{op}'")
        if op in ("/", "//", "%") and b == 0:
            raise EvaluationError("division by zero")
        result = _ARITH[op](a, b)
        if isinstance(result, float) and not math.isfinite(result):
            raise EvaluationError(f"'{op}' overflows")
        return result
    ops, operands = node[1], node[2]
    left = _eval(operands[0], values)
    for op, operand in zip(ops, operands[1:], strict=True):
        right = _eval(operand, values)
        if op not in ("==", "!=") and not (
            (isinstance(left, str) and isinstance(right, str)) or (_is_num(left) and _is_num(right))
        ):
            raise EvaluationError(f"'{op}' cannot order {left!r} and {right!r}")
        if not _COMPARE[op](left, right):
            return False
        left = right
    return True


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise EvaluationError(f"and/or/not need true or false, got {value!r}")
    return value
