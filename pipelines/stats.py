"""Pure statistics for the gauges: rates, Wilson bounds, percentiles of distributions.

Every function here is total on its documented domain and returns ``None``
where the statistic is undefined (an empty sample), so callers decide what a
missing value means instead of tripping over a ``ZeroDivisionError`` or a NaN.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

#: Two-sided 95 % normal quantile, Φ⁻¹(0.975).
Z_95 = 1.959963984540054


def ratio(num: float, den: float) -> float | None:
    """``num / den``, or ``None`` when ``den == 0`` (no sample, no rate)."""
    if den == 0:
        return None
    return num / den


def wilson_lower_bound(successes: float, n: float, z: float = Z_95) -> float | None:
    """Lower end of the Wilson score interval for a binomial proportion.

    ``(p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = successes/n``
    (Wilson 1927; Newcombe 1998, method 3, no continuity correction).
    Returns ``None`` for ``n == 0``, exactly ``0.0`` for ``successes == 0``, and
    always a value in ``[0, successes/n]``.

    Raises ``ValueError`` unless ``0 <= successes <= n`` and ``z >= 0``.
    """
    if n == 0:
        return None
    if not (0 <= successes <= n) or not math.isfinite(n):
        raise ValueError(f"wilson_lower_bound needs 0 <= successes <= n, got successes={successes}, n={n}")
    if z < 0 or not math.isfinite(z):
        raise ValueError(f"wilson_lower_bound needs a finite z >= 0, got z={z}")
    if successes == 0:
        return 0.0  # exact; the formula's two terms cancel only up to float rounding
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # The bound never exceeds the point estimate; clamp so rounding cannot say otherwise.
    return min(p, max(0.0, (centre - spread) / (1 + z2 / n)))


def percentile_from_distribution(
    values: Sequence[float], counts: Sequence[float], q: float
) -> float | None:
    """The ``q``-th percentile (``q`` in [0, 100]) of a sample given as values/counts.

    Rule: numpy's default ``method="linear"`` (Hyndman & Fan type 7) applied to the
    sample expanded so each value appears ``count`` times: with ``N = sum(counts)``
    and ``h = (N - 1)·q/100``, the answer is ``x[⌊h⌋] + (h - ⌊h⌋)·(x[⌊h⌋+1] - x[⌊h⌋])``
    over the sorted expanded sample ``x``. Without expanding, it walks cumulative
    counts, so it costs O(k log k) in the number of distinct values, not in N.

    Because quantisation is monotone, applying this rule to quantised values gives
    numpy's answer on the raw samples within the quantiser's relative error.

    Returns ``None`` for an empty sample (``N == 0``). Counts may be fractional;
    the rule then interpolates on the continuous cumulative weight.
    Raises ``ValueError`` for mismatched lengths, negative or non-finite counts,
    non-finite values, or ``q`` outside [0, 100].
    """
    if len(values) != len(counts):
        raise ValueError(f"values and counts must have the same length, got {len(values)} and {len(counts)}")
    if not (0.0 <= q <= 100.0):
        raise ValueError(f"percentile q must be in [0, 100], got {q}")
    pairs: list[tuple[float, float]] = []
    for v, c in zip(values, counts):
        if not math.isfinite(v):
            raise ValueError(f"distribution values must be finite, got {v}")
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"distribution counts must be finite and >= 0, got {c}")
        if c > 0:
            pairs.append((v, c))
    if not pairs:
        return None
    pairs.sort()
    total = math.fsum(c for _, c in pairs)
    h = (total - 1.0) * q / 100.0
    if h <= 0.0:
        # N <= 1 (fractional weights) or q == 0: the smallest value.
        return pairs[0][0]
    lo_rank = math.floor(h)
    frac = h - lo_rank
    lo = _value_at_rank(pairs, lo_rank)
    if frac == 0.0:
        return lo
    hi = _value_at_rank(pairs, lo_rank + 1)
    return lo + frac * (hi - lo)


def _value_at_rank(pairs: list[tuple[float, float]], rank: int) -> float:
    """Value at 0-based position ``rank`` of the sorted expanded sample (clamped to the last)."""
    cumulative = 0.0
    for v, c in pairs:
        cumulative += c
        if rank < cumulative:
            return v
    return pairs[-1][0]
