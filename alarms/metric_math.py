"""CloudWatch metric math: a parser and evaluator for the expressions alarms use.

Supported (CloudWatch user guide, "Metric math syntax and functions"):

- numbers, ids (``m1``, ``tp`` — a lowercase letter, then letters, digits, ``_``),
  ``+ - * / ^``, unary minus, parentheses, arrays ``[a, b]``;
- comparisons ``== != < <= > >=`` and logical ``AND``/``&&``, ``OR``/``||``
  (plus ``NOT``/``!``, see below), each returning 1 (true) or 0 (false);
- functions ``IF``, ``ABS``, ``SQRT``, ``MIN``, ``MAX``, ``SUM``, ``AVG``,
  ``CEIL``, ``FLOOR``, ``FILL`` (value, series, ``REPEAT`` or ``LINEAR``) and
  ``TIME_SERIES``.

Semantics, as documented by AWS (quoted where it matters):

- Arithmetic between two series: "Missing values in a time series are treated
  as 0. If the value of a data point causes a function to attempt to divide by
  zero, the data point is dropped." The result covers the union of both
  series' timestamps.
- Comparisons and logical operators between two series: "only one of the time
  series has a value for a particular time stamp, the function treats the
  missing value in the other time series as 0".
- A series combined with a scalar keeps the series' timestamps.
- ``IF(cond, a[, b])``: a condition is true when non-zero; a true point whose
  ``a`` series lacks that timestamp is 0; a false point whose ``b`` is missing
  (or omitted) is dropped; a timestamp missing from the condition series is
  dropped.
- ``MIN``/``MAX``/``SUM``/``AVG`` of one series give a scalar over all its
  points; of an array they give a series (per timestamp). ``AVG`` of an array
  treats missing values as 0 (documented); ``MIN``/``MAX`` use only the values
  present at each timestamp and ``SUM`` adds what is present (missing as 0).

Not documented by AWS and chosen here (say so when it matters):

- ``NOT``/``!`` (1 where the value is 0, else 0) and ``SQRT`` are accepted for
  convenience; they are not CloudWatch's (neither its function list nor its logical
  operators have them), so a spec's expressions and every PutMetricAlarm request refuse
  them (`alarms.spec.expressions`): ``x == 0`` and ``x ^ 0.5`` are the portable forms.
- ``NOT`` binds looser than comparisons (``NOT a > b`` is ``NOT (a > b)``).
- A scalar divided by zero, or a scalar square root of a negative, is an error;
  per-point, such points are dropped like a division by zero.
- ``FILL`` only fills timestamps of the evaluation grid it is given; ``REPEAT``
  leaves a leading gap missing and ``LINEAR`` leaves leading and trailing gaps
  missing (there is nothing to repeat or interpolate from).

Everything here is pure: no clock, no I/O. Timestamps are epoch seconds. :func:`tokenize` is
the one metric math tokenizer: a spec's own expressions are checked on its tokens too
(`alarms.spec.expressions`), against ``pipelines.cloudwatch_rules.ALARM_MATH_FUNCTIONS``.
"""
from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Union

from pipelines import cloudwatch_rules

__all__ = [
    "ID_PATTERN",
    "Array",
    "Binary",
    "Call",
    "Expression",
    "Keyword",
    "MetricMathError",
    "Node",
    "Number",
    "Ref",
    "Series",
    "SeriesArray",
    "Token",
    "Unary",
    "Value",
    "evaluate",
    "parse",
    "resolve",
    "tokenize",
]

#: a metric id: CloudWatch's MetricDataQuery Id pattern
ID_PATTERN = cloudwatch_rules.METRIC_ID_RE


class MetricMathError(ValueError):
    """Bad syntax, an unknown id or function, or an invalid operation, with its place."""

    def __init__(self, message: str, expression: str, position: int) -> None:
        self.message = message
        self.expression = expression
        self.position = position
        super().__init__(f"{message} at position {position} in expression {expression!r}")


# --- values ------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One time series: epoch-second timestamp -> value, read-only, sorted by time."""

    points: Mapping[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copy and freeze so a caller's dict can't change a value behind our back.
        frozen = MappingProxyType({int(t): float(v) for t, v in sorted(self.points.items())})
        object.__setattr__(self, "points", frozen)

    @classmethod
    def of(cls, pairs: Mapping[int, float] | Iterable[tuple[int, float]]) -> Series:
        """A series from a mapping or from (timestamp, value) pairs."""
        return cls(dict(pairs.items()) if isinstance(pairs, Mapping) else dict(pairs))

    def get(self, timestamp: int) -> float | None:
        """The value at ``timestamp``, or None where the series has no point."""
        return self.points.get(timestamp)

    @property
    def timestamps(self) -> tuple[int, ...]:
        return tuple(self.points)

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return iter(self.points.items())


@dataclass(frozen=True)
class SeriesArray:
    """An array of time series (CloudWatch's ``TS[]``), e.g. ``[m1, m2]``."""

    items: tuple[Series, ...]


Value = Union[float, Series, SeriesArray]


# --- syntax tree -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    pos: int


@dataclass(frozen=True, slots=True)
class Ref:
    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Keyword:
    """``REPEAT`` or ``LINEAR``: only valid as FILL's second argument."""

    name: str
    pos: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "NOT"
    operand: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / ^ == != < <= > >= AND OR
    left: Node
    right: Node
    pos: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Node, ...]
    pos: int


Node = Union[Number, Ref, Keyword, Unary, Binary, Call, Array]

# name -> (min args, max args): the functions this interpreter runs, all of them CloudWatch's
# (pipelines.cloudwatch_rules.ALARM_MATH_FUNCTIONS) except SQRT
FUNCTIONS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        "IF": (2, 3),
        "ABS": (1, 1),
        "SQRT": (1, 1),
        "MIN": (1, 1),
        "MAX": (1, 1),
        "SUM": (1, 1),
        "AVG": (1, 1),
        "CEIL": (1, 1),
        "FLOOR": (1, 1),
        "FILL": (2, 2),
        "TIME_SERIES": (1, 1),
    }
)
KEYWORDS = frozenset({"REPEAT", "LINEAR"})


# --- tokens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One token; ``word`` is an upper-case name (a function, AND/OR/NOT, REPEAT/LINEAR)."""

    kind: str  # num, id, word, op, end
    text: str
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<id>[a-z][A-Za-z0-9_]*)
  | (?P<word>[A-Z][A-Za-z0-9_]*)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/^()\[\],<>!])
    """,
    re.VERBOSE,
)


def tokenize(expression: str) -> list[Token]:
    """The tokens of ``expression``, ending with an ``end`` token; MetricMathError at a bad character."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(expression):
        match = _TOKEN_RE.match(expression, pos)
        if match is None:
            raise MetricMathError(f"unexpected character {expression[pos]!r}", expression, pos)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(expression)))
    return tokens


# --- parser ------------------------------------------------------------------

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})


class _Parser:
    """Recursive descent; precedence low to high: OR, AND, NOT, comparison, + -, * /, unary -, ^."""

    def __init__(self, expression: str, known_ids: Collection[str] | None) -> None:
        self.expression = expression
        self.tokens = tokenize(expression)
        self.index = 0
        self.known_ids = known_ids

    def error(self, message: str, pos: int) -> MetricMathError:
        return MetricMathError(message, self.expression, pos)

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.current
        return token.kind in ("op", "word") and token.text in texts

    def expect(self, text: str) -> Token:
        if not self.at(text):
            found = self.current.text or "end of expression"
            raise self.error(f"expected {text!r}, found {found!r}", self.current.pos)
        return self.advance()

    def parse(self) -> Node:
        if self.current.kind == "end":
            raise self.error("empty expression", 0)
        node = self.or_expr()
        if self.current.kind != "end":
            raise self.error(f"unexpected {self.current.text!r}", self.current.pos)
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at("OR", "||"):
            token = self.advance()
            node = Binary("OR", node, self.and_expr(), token.pos)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at("AND", "&&"):
            token = self.advance()
            node = Binary("AND", node, self.not_expr(), token.pos)
        return node

    def not_expr(self) -> Node:
        if self.at("NOT", "!"):
            token = self.advance()
            return Unary("NOT", self.not_expr(), token.pos)
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        if self.current.kind == "op" and self.current.text in _COMPARISONS:
            token = self.advance()
            node = Binary(token.text, node, self.additive(), token.pos)
            # Chained comparisons (a < b < c) read as maths but would compute (a < b) < c.
            if self.current.kind == "op" and self.current.text in _COMPARISONS:
                raise self.error("comparisons can't be chained; use AND", self.current.pos)
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.at("+", "-"):
            token = self.advance()
            node = Binary(token.text, node, self.multiplicative(), token.pos)
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.at("*", "/"):
            token = self.advance()
            node = Binary(token.text, node, self.unary(), token.pos)
        return node

    def unary(self) -> Node:
        if self.at("-"):
            token = self.advance()
            return Unary("-", self.unary(), token.pos)
        if self.at("+"):
            self.advance()
            return self.unary()
        return self.power()

    def power(self) -> Node:
        node = self.primary()
        if self.at("^"):
            token = self.advance()
            # Right-associative, and binds tighter than a unary minus on its left: -2^2 == -4.
            node = Binary("^", node, self.unary(), token.pos)
        return node

    def primary(self) -> Node:
        token = self.current
        if token.kind == "num":
            self.advance()
            return Number(float(token.text), token.pos)
        if token.kind == "id":
            self.advance()
            if self.known_ids is not None and token.text not in self.known_ids:
                known = ", ".join(sorted(self.known_ids)) or "none"
                raise self.error(f"unknown id {token.text!r} (known ids: {known})", token.pos)
            return Ref(token.text, token.pos)
        if token.kind == "word":
            return self.word()
        if self.at("("):
            self.advance()
            node = self.or_expr()
            self.expect(")")
            return node
        if self.at("["):
            return self.array()
        found = token.text or "end of expression"
        raise self.error(f"expected a number, an id, a function or '(', found {found!r}", token.pos)

    def word(self) -> Node:
        token = self.advance()
        name = token.text
        if name in KEYWORDS:
            raise self.error(f"{name} is only valid as the second argument of FILL", token.pos)
        if name not in FUNCTIONS:
            raise self.error(
                f"unknown function {name!r} (functions are upper case; ids start with a lowercase letter)",
                token.pos,
            )
        if not self.at("("):
            raise self.error(f"{name} must be called with arguments, as {name}(...)", self.current.pos)
        self.advance()
        args: list[Node] = []
        if not self.at(")"):
            args.append(self.argument(name, 0))
            while self.at(","):
                self.advance()
                args.append(self.argument(name, len(args)))
        self.expect(")")
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise self.error(f"{name} takes {wanted} arguments, got {len(args)}", token.pos)
        return Call(name, tuple(args), token.pos)

    def argument(self, function: str, index: int) -> Node:
        token = self.current
        if function == "FILL" and index == 1 and token.kind == "word" and token.text in KEYWORDS:
            self.advance()
            return Keyword(token.text, token.pos)
        return self.or_expr()

    def array(self) -> Node:
        start = self.expect("[")
        items = [self.or_expr()]
        while self.at(","):
            self.advance()
            items.append(self.or_expr())
        self.expect("]")
        return Array(tuple(items), start.pos)


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its source text and syntax tree."""

    source: str
    root: Node

    def ids(self) -> frozenset[str]:
        """Every id the expression refers to."""
        return frozenset(_ids(self.root))

    def evaluate(self, env: Mapping[str, Value], grid: Sequence[int]) -> Value:
        """Evaluate over ``grid`` (the timestamps of the queried periods), ids looked up in ``env``."""
        return _Evaluator(self.source, env, tuple(grid)).eval(self.root)


def _ids(node: Node) -> Iterator[str]:
    if isinstance(node, Ref):
        yield node.name
    elif isinstance(node, Unary):
        yield from _ids(node.operand)
    elif isinstance(node, Binary):
        yield from _ids(node.left)
        yield from _ids(node.right)
    elif isinstance(node, (Call, Array)):
        for child in node.args if isinstance(node, Call) else node.items:
            yield from _ids(child)


def parse(expression: str, known_ids: Collection[str] | None = None) -> Expression:
    """Parse ``expression``; with ``known_ids``, an id outside it is an error.

    Raises MetricMathError naming the expression and the position of the problem.
    """
    return Expression(expression, _Parser(expression, known_ids).parse())


# --- evaluation --------------------------------------------------------------


def _truth(value: float) -> bool:
    return value != 0.0


def _safe(fn: Callable[[float, float], float]) -> Callable[[float, float], float | None]:
    """Wrap a binary function so an invalid point (x/0, complex power) becomes None: dropped."""

    def wrapped(a: float, b: float) -> float | None:
        try:
            result = fn(a, b)
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
        if isinstance(result, complex) or not math.isfinite(result):
            return None
        return result

    return wrapped


def _power(a: float, b: float) -> float:
    result = a**b
    if isinstance(result, complex):
        raise ValueError("complex result")
    return float(result)


_ARITHMETIC: Mapping[str, Callable[[float, float], float | None]] = MappingProxyType(
    {
        "+": _safe(operator.add),
        "-": _safe(operator.sub),
        "*": _safe(operator.mul),
        "/": _safe(operator.truediv),
        "^": _safe(_power),
    }
)
_LOGIC: Mapping[str, Callable[[float, float], float]] = MappingProxyType(
    {
        "==": lambda a, b: float(a == b),
        "!=": lambda a, b: float(a != b),
        "<": lambda a, b: float(a < b),
        "<=": lambda a, b: float(a <= b),
        ">": lambda a, b: float(a > b),
        ">=": lambda a, b: float(a >= b),
        "AND": lambda a, b: float(_truth(a) and _truth(b)),
        "OR": lambda a, b: float(_truth(a) or _truth(b)),
    }
)


_ROUNDING: Mapping[str, Callable[[float], float]] = MappingProxyType(
    {"ABS": abs, "CEIL": lambda v: float(math.ceil(v)), "FLOOR": lambda v: float(math.floor(v))}
)


class _Evaluator:
    def __init__(self, source: str, env: Mapping[str, Value], grid: tuple[int, ...]) -> None:
        self.source = source
        self.env = env
        self.grid = grid

    def error(self, message: str, node: Node) -> MetricMathError:
        return MetricMathError(message, self.source, node.pos)

    def eval(self, node: Node) -> Value:
        if isinstance(node, Number):
            return node.value
        if isinstance(node, Ref):
            if node.name not in self.env:
                raise self.error(f"unknown id {node.name!r}", node)
            return self.env[node.name]
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Array):
            return self.array(node)
        raise self.error(f"{node.name} is only valid as the second argument of FILL", node)

    def unary(self, node: Unary) -> Value:
        operand = self.eval(node.operand)
        if node.op == "-":
            return _pointwise(operand, lambda v: -v)
        return _pointwise(operand, lambda v: float(not _truth(v)))

    def binary(self, node: Binary) -> Value:
        left, right = self.eval(node.left), self.eval(node.right)
        if node.op in _ARITHMETIC:
            fn = _ARITHMETIC[node.op]
            if isinstance(left, float) and isinstance(right, float):
                result = fn(left, right)
                if result is None:
                    raise self.error(f"invalid scalar operation {left:g} {node.op} {right:g}", node)
                return result
            return _combine(left, right, fn)
        logic = _LOGIC[node.op]
        return _combine(left, right, logic)

    def array(self, node: Array) -> Value:
        items: list[Series] = []
        for child in node.items:
            value = self.eval(child)
            if isinstance(value, Series):
                items.append(value)
            elif isinstance(value, SeriesArray):
                items.extend(value.items)
            else:
                raise self.error("array elements must be time series (use TIME_SERIES(x) for a constant)", child)
        return SeriesArray(tuple(items))

    def call(self, node: Call) -> Value:
        name = node.name
        if name == "IF":
            return self.if_(node)
        if name == "FILL":
            return self.fill(node)
        arg = self.eval(node.args[0])
        if name == "TIME_SERIES":
            if not isinstance(arg, float):
                raise self.error("TIME_SERIES takes a scalar", node)
            return Series({t: arg for t in self.grid})
        if name in ("ABS", "CEIL", "FLOOR"):
            return _pointwise(arg, _ROUNDING[name])
        if name == "SQRT":
            if isinstance(arg, float):
                if arg < 0:
                    raise self.error(f"SQRT of a negative scalar ({arg:g})", node)
                return math.sqrt(arg)
            return _pointwise(arg, lambda v: math.sqrt(v) if v >= 0 else None)
        return self.reduce(name, arg, node)

    def reduce(self, name: str, arg: Value, node: Call) -> Value:
        """MIN/MAX/SUM/AVG: of one series a scalar, of an array a series."""
        if isinstance(arg, float):
            raise self.error(f"{name} takes a time series or an array of time series, not a scalar", node)
        if isinstance(arg, Series):
            values = list(arg.points.values())
            if not values:
                return math.nan  # no value: anything combined with it is dropped
            if name == "MIN":
                return min(values)
            if name == "MAX":
                return max(values)
            total = math.fsum(values)
            return total if name == "SUM" else total / len(values)
        stamps = sorted({t for s in arg.items for t in s.points})
        out: dict[int, float] = {}
        for t in stamps:
            present = [v for s in arg.items if (v := s.get(t)) is not None]
            if name == "MIN":
                out[t] = min(present)
            elif name == "MAX":
                out[t] = max(present)
            elif name == "SUM":
                out[t] = math.fsum(present)
            else:  # AVG of an array: "Missing values are treated as 0."
                out[t] = math.fsum(present) / len(arg.items)
        return Series(out)

    def if_(self, node: Call) -> Value:
        cond = self.eval(node.args[0])
        if isinstance(cond, SeriesArray):
            raise self.error("IF condition must be a time series or a scalar, not an array", node.args[0])
        then = self.branch(node.args[1])
        other = self.branch(node.args[2]) if len(node.args) == 3 else None
        if isinstance(cond, float):
            chosen = then if _truth(cond) else other
            # documented: an empty time series when the false branch is chosen but omitted
            return Series() if chosen is None else chosen
        out: dict[int, float] = {}
        for t, c in cond:
            picked = _point(then, t, missing=0.0) if _truth(c) else _point(other, t, missing=None)
            if picked is not None:
                out[t] = picked
        return Series(out)

    def branch(self, node: Node) -> float | Series:
        value = self.eval(node)
        if isinstance(value, SeriesArray):
            raise self.error("IF branches must be a time series or a scalar, not an array", node)
        return value

    def fill(self, node: Call) -> Value:
        target = self.eval(node.args[0])
        filler_node = node.args[1]
        if isinstance(target, float):
            raise self.error("FILL takes a time series or an array of time series, not a scalar", node)
        if isinstance(filler_node, Keyword):
            how = filler_node.name
            gap_fill = _fill_repeat if how == "REPEAT" else _fill_linear
            fill_one: Callable[[Series], Series] = lambda s: gap_fill(s, self.grid)
        else:
            filler = self.eval(filler_node)
            if isinstance(filler, SeriesArray):
                raise self.error("FILL's filler must be a scalar, a time series, REPEAT or LINEAR", filler_node)
            fill_one = lambda s: _fill_with(s, filler, self.grid)
        if isinstance(target, SeriesArray):
            return SeriesArray(tuple(fill_one(s) for s in target.items))
        return fill_one(target)


def _point(branch: float | Series | None, timestamp: int, missing: float | None) -> float | None:
    """An IF branch's value at ``timestamp``: documented as 0 for a missing true-branch point,
    dropped (None) for a missing or omitted false branch."""
    if branch is None:
        return None
    if isinstance(branch, float):
        return branch
    found = branch.get(timestamp)
    return missing if found is None else found


def _pointwise(value: Value, fn: Callable[[float], float | None]) -> Value:
    """Apply ``fn`` pointwise; a None result drops the point (a scalar keeps NaN as 'no value')."""
    if isinstance(value, float):
        result = fn(value) if not math.isnan(value) else None
        return math.nan if result is None else result
    if isinstance(value, SeriesArray):
        return SeriesArray(tuple(_map_series(s, fn) for s in value.items))
    return _map_series(value, fn)


def _map_series(series: Series, fn: Callable[[float], float | None]) -> Series:
    out: dict[int, float] = {}
    for t, v in series:
        r = fn(v)
        if r is not None:
            out[t] = r
    return Series(out)


def _combine(left: Value, right: Value, fn: Callable[[float, float], float | None]) -> Value:
    """Broadcast a binary function over scalars, series and arrays with CloudWatch's rules."""
    if isinstance(left, SeriesArray):
        return SeriesArray(tuple(_as_series(_combine(s, right, fn)) for s in left.items))
    if isinstance(right, SeriesArray):
        return SeriesArray(tuple(_as_series(_combine(left, s, fn)) for s in right.items))
    if isinstance(left, float) and isinstance(right, float):
        if math.isnan(left) or math.isnan(right):
            return math.nan
        result = fn(left, right)
        return math.nan if result is None else result
    if isinstance(left, float):
        assert isinstance(right, Series)
        if math.isnan(left):
            return Series()
        return _map_series(right, lambda v: fn(left, v))
    if isinstance(right, float):
        if math.isnan(right):
            return Series()
        return _map_series(left, lambda v: fn(v, right))
    out: dict[int, float] = {}
    # Union of timestamps, a missing side as 0: the documented rule for operators on two series.
    for t in sorted(set(left.points) | set(right.points)):
        a, b = left.get(t), right.get(t)
        r = fn(0.0 if a is None else a, 0.0 if b is None else b)
        if r is not None:
            out[t] = r
    return Series(out)


def _as_series(value: Value) -> Series:
    assert isinstance(value, Series)
    return value


def _fill_with(series: Series, filler: float | Series, grid: tuple[int, ...]) -> Series:
    out = dict(series.points)
    for t in grid:
        if t in out:
            continue
        if isinstance(filler, Series):
            v = filler.get(t)
            if v is not None:
                out[t] = v
        elif not math.isnan(filler):
            out[t] = filler
    return Series(out)


def _fill_repeat(series: Series, grid: tuple[int, ...]) -> Series:
    out = dict(series.points)
    last: float | None = None
    for t in sorted(set(grid) | set(out)):
        if t in out:
            last = out[t]
        elif last is not None:
            out[t] = last
    return Series(out)


def _fill_linear(series: Series, grid: tuple[int, ...]) -> Series:
    """Interpolate interior gaps on the grid; leading and trailing gaps stay missing."""
    out = dict(series.points)
    known = sorted(out)
    for t in grid:
        if t in out or not known or t < known[0] or t > known[-1]:
            continue
        # the nearest known points on either side
        lo = max(k for k in known if k < t)
        hi = min(k for k in known if k > t)
        frac = (t - lo) / (hi - lo)
        out[t] = series.points[lo] + frac * (series.points[hi] - series.points[lo])
    return Series(out)


# --- resolving a set of named expressions ------------------------------------


def resolve(
    expressions: Mapping[str, Expression],
    inputs: Mapping[str, Series],
    grid: Sequence[int],
) -> dict[str, Value]:
    """Evaluate every named expression; expressions may refer to inputs and to each other.

    Raises MetricMathError for an unknown id or a cycle (naming the expression).
    """
    grid_t = tuple(grid)
    values: dict[str, Value] = dict(inputs)
    visiting: list[str] = []

    def visit(name: str) -> Value:
        if name in values:
            return values[name]
        expression = expressions[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise MetricMathError(f"expressions refer to each other in a cycle ({cycle})", expression.source, 0)
        visiting.append(name)
        for ref in sorted(expression.ids()):
            if ref not in values and ref not in expressions:
                raise MetricMathError(f"unknown id {ref!r}", expression.source, _first_pos(expression.root, ref))
            if ref not in values:
                visit(ref)
        visiting.pop()
        values[name] = expression.evaluate(values, grid_t)
        return values[name]

    for name in expressions:
        visit(name)
    return values


def _first_pos(node: Node, name: str) -> int:
    if isinstance(node, Ref):
        return node.pos if node.name == name else -1
    children: tuple[Node, ...] = ()
    if isinstance(node, Unary):
        children = (node.operand,)
    elif isinstance(node, Binary):
        children = (node.left, node.right)
    elif isinstance(node, Call):
        children = node.args
    elif isinstance(node, Array):
        children = node.items
    for child in children:
        pos = _first_pos(child, name)
        if pos >= 0:
            return pos
    return -1


def evaluate(expression: str, env: Mapping[str, Value], grid: Sequence[int]) -> Value:
    """Parse and evaluate in one step (ids must be in ``env``)."""
    return parse(expression, known_ids=set(env)).evaluate(env, grid)
