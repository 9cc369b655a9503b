"""Metric math as text: numbers, and the rates of `pipelines.metrics` over count ids.

A rate part is a coefficient map over count ids; as text it is a template such as
``2*{tp}+{fp}+{fn}`` (coefficient 1 left out, the map's order), which the alarms fill with
``FILL(tp,0)`` and the dashboard with its own query ids.
"""
from __future__ import annotations

from collections.abc import Mapping

from pipelines import metrics


def number(x: float) -> str:
    """A number as metric math text: integers without '.0', others exact (repr)."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(float(x))


def template(part: Mapping[str, float]) -> str:
    """``{"tp": 2, "fp": 1}`` -> ``"2*{tp}+{fp}"``: a sum over count ids, to ``str.format``."""
    return "+".join("{" + cid + "}" if coef == 1 else f"{number(coef)}*{{{cid}}}" for cid, coef in part.items())


def rate_ids(rate: metrics.Rate) -> list[str]:
    """The count ids a published rate reads, in `pipelines.metrics.COUNT_IDS` order."""
    used = rate.ids()
    return [cid for cid in metrics.COUNT_IDS if cid in used]


def filled(part: Mapping[str, float]) -> str:
    """The sum with every count wrapped in ``FILL(id,0)``: a period without that count reads 0."""
    return template(part).format(**{cid: f"FILL({cid},0)" for cid in part})


def guard(n: str, min_samples: int, value: str, safe: float) -> str:
    """The sample-size guard: ``value`` when ``n >= min_samples``, else ``safe``."""
    return f"IF({n} >= {min_samples}, {value}, {number(safe)})"
