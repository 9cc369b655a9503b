"""Rates, Wilson bounds and distribution percentiles against independent references."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.stats import Z_95, percentile_from_distribution, ratio, wilson_lower_bound


def wilson_lower_by_roots(successes: int, n: int, z: float = Z_95) -> float:
    """Independent route: the Wilson bounds are the p solving (p̂ - p)² = z²·p(1-p)/n.

    Expanded: (1 + z²/n)·p² - (2p̂ + z²/n)·p + p̂² = 0; the lower bound is the smaller root.
    """
    p_hat = successes / n
    roots = np.roots([1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat])
    return float(max(0.0, min(roots.real)))


def test_z_is_the_two_sided_95_percent_normal_quantile() -> None:
    # Φ(z) = (1 + erf(z/√2)) / 2 must be 0.975.
    assert (1 + math.erf(Z_95 / math.sqrt(2))) / 2 == pytest.approx(0.975, abs=1e-15)


@pytest.mark.parametrize(
    ("successes", "n", "published"),
    [
        # Newcombe (1998), Stat Med 17:857-872, Table II, method 3 (Wilson score, no continuity correction).
        (81, 263, 0.2553),
        (15, 148, 0.0624),
        (0, 20, 0.0),
        (1, 29, 0.0061),
    ],
)
def test_wilson_matches_published_values(successes: int, n: int, published: float) -> None:
    bound = wilson_lower_bound(successes, n)
    assert bound is not None
    assert round(bound, 4) == published


@given(st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_quadratic_roots(pair: tuple[int, int]) -> None:
    successes, n = pair
    bound = wilson_lower_bound(successes, n)
    assert bound is not None
    assert bound == pytest.approx(wilson_lower_by_roots(successes, n), abs=1e-9)
    assert 0.0 <= bound <= successes / n


def test_wilson_edges() -> None:
    assert wilson_lower_bound(0, 0) is None
    assert wilson_lower_bound(0, 50) == 0.0
    assert wilson_lower_bound(50, 50) == pytest.approx(1 / (1 + Z_95**2 / 50))
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_lower_bound(5, 4)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_lower_bound(-1, 4)


def test_ratio() -> None:
    assert ratio(3, 4) == 0.75
    assert ratio(0, 4) == 0.0
    assert ratio(3, 0) is None
    assert ratio(0, 0) is None


@settings(max_examples=300)
@given(
    st.lists(st.tuples(st.integers(-1000, 1000), st.integers(1, 20)), min_size=1, max_size=40),
    st.floats(0, 100),
)
def test_percentile_equals_numpy_linear_on_expanded_sample(pairs: list[tuple[int, int]], q: float) -> None:
    values = [v / 7 for v, _ in pairs]
    counts = [float(c) for _, c in pairs]
    expanded = np.repeat(np.array(values), np.array(pairs)[:, 1])
    got = percentile_from_distribution(values, counts, q)
    assert got == pytest.approx(float(np.percentile(expanded, q)), rel=1e-9, abs=1e-9)


def test_percentile_rule_on_a_small_example() -> None:
    # Sample 1,1,2,3 (N=4): h = 3·q/100. p50 -> h=1.5 -> 1 + .5·(2-1) = 1.5.
    assert percentile_from_distribution([3.0, 1.0, 2.0], [1, 2, 1], 50) == 1.5
    assert percentile_from_distribution([3.0, 1.0, 2.0], [1, 2, 1], 0) == 1.0
    assert percentile_from_distribution([3.0, 1.0, 2.0], [1, 2, 1], 100) == 3.0
    assert percentile_from_distribution([5.0], [1], 99) == 5.0


def test_percentile_of_empty_and_bad_input() -> None:
    assert percentile_from_distribution([], [], 50) is None
    assert percentile_from_distribution([1.0], [0.0], 50) is None
    with pytest.raises(ValueError, match="same length"):
        percentile_from_distribution([1.0], [], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile_from_distribution([1.0], [1.0], 101)
    with pytest.raises(ValueError, match="counts"):
        percentile_from_distribution([1.0], [-1.0], 50)
    with pytest.raises(ValueError, match="finite"):
        percentile_from_distribution([math.nan], [1.0], 50)
