"""A spec's own metric math (``expression`` and ``sample``): which count ids it reads and why
it is unusable, checked on `alarms.metric_math`'s tokens before any AWS call."""
from __future__ import annotations

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
    """Why a user expression is unusable (bad characters, unknown ids or functions, parentheses), or None."""
    if not expression.strip():
        return "must not be empty"
    try:
        tokens = tokenize(expression)
    except MetricMathError as exc:
        return f"{exc.message} at position {exc.position}"
    ids = metrics.COUNT_IDS
    depth = 0
    for tok in tokens:
        if tok.kind == "op" and tok.text == "(":
            depth += 1
        elif tok.kind == "op" and tok.text == ")":
            depth -= 1
            if depth < 0:
                return "unbalanced parentheses"
        elif tok.kind == "id" and tok.text not in ids:
            return f"unknown id {tok.text!r}; the ids are {', '.join(ids)}"
        elif tok.kind == "word" and _unknown_function(tok):
            allowed = ", ".join(sorted(cloudwatch_rules.ALARM_MATH_FUNCTIONS))
            return (
                f"unknown function {tok.text!r} at position {tok.pos} (ids start with a lower-case letter; "
                f"the functions CloudWatch allows in alarms are {allowed})"
            )
    if depth:
        return "unbalanced parentheses"
    if not any(tok.kind == "id" and tok.text in ids for tok in tokens):
        return f"must use at least one of the ids {', '.join(ids)}"
    return None


def _unknown_function(tok: Token) -> bool:
    return tok.text not in cloudwatch_rules.ALARM_MATH_FUNCTIONS and tok.text not in cloudwatch_rules.MATH_WORDS
