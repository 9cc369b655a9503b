"""Metric math as CloudWatch checks it in an alarm: a spec's own ``expression`` and ``sample``
(which count ids they read, why they are unusable) and every Expression of a PutMetricAlarm
request, all on `alarms.metric_math`'s tokens, before any AWS call."""
from __future__ import annotations

from collections.abc import Collection

from alarms.metric_math import MetricMathError, Token, tokenize
from pipelines import cloudwatch_rules, metrics


def expression_ids(expression: str) -> tuple[str, ...]:
    """The count ids an expression refers to, in first-use order (validate first)."""
    out: list[str] = []
    for tok in tokenize(expression):
        if tok.kind == "id" and tok.text in metrics.COUNT_IDS and tok.text not in out:
            out.append(tok.text)
    return tuple(out)


def expression_problem(expression: str) -> str | None:
    """Why a user expression is unusable (bad characters, unknown ids, functions or operators,
    parentheses, no count id at all), or None."""
    if not expression.strip():
        return "must not be empty"
    ids = metrics.COUNT_IDS
    problem = math_problem(expression, ids)
    if problem:
        return problem
    if not any(tok.kind == "id" and tok.text in ids for tok in tokenize(expression)):
        return f"must use at least one of the ids {', '.join(ids)}"
    return None


def math_problem(expression: str, ids: Collection[str]) -> str | None:
    """Why CloudWatch would refuse ``expression`` in an alarm whose other queries are ``ids``: a
    bad character, an id not among them, a function or operator CloudWatch does not offer in
    alarms (`pipelines.cloudwatch_rules`), unbalanced parentheses; or None."""
    try:
        tokens = tokenize(expression)
    except MetricMathError as exc:
        return f"{exc.message} at position {exc.position}"
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.text == "(":
            depth += 1
        elif tok.kind == "op" and tok.text == ")":
            depth -= 1
            if depth < 0:
                return "unbalanced parentheses"
        elif (tok.kind == "op" and tok.text not in cloudwatch_rules.MATH_OPERATORS) or (
            tok.kind == "word" and tok.text == "NOT"  # the interpreter's convenience, not CloudWatch's
        ):
            return (
                f"operator {tok.text!r} at position {tok.pos} is not CloudWatch metric math (its logical "
                "operators are AND/&&, OR/||; for NOT x write x == 0)"
            )
        elif tok.kind == "id" and tok.text not in ids:
            return f"unknown id {tok.text!r}; the ids are {', '.join(ids)}"
        elif tok.kind == "word" and _unknown_word(tok):
            allowed = ", ".join(sorted(cloudwatch_rules.ALARM_MATH_FUNCTIONS))
            return (
                f"unknown function {tok.text!r} at position {tok.pos} (ids start with a lower-case letter; "
                f"the functions CloudWatch allows in alarms are {allowed})"
            )
    if depth:
        return "unbalanced parentheses"
    return None


def _unknown_word(tok: Token) -> bool:
    return tok.text not in cloudwatch_rules.ALARM_MATH_FUNCTIONS and tok.text not in cloudwatch_rules.MATH_WORDS
