"""Root finding for the tests: crossing points of monotone functions, by bisection."""
from __future__ import annotations

from collections.abc import Callable


def crossing(f: Callable[[float], float], target: float, lo: float, hi: float, *, increasing: bool,
             tol: float = 1e-6) -> float:
    """The point in [lo, hi] where the monotone ``f`` crosses ``target``.

    For increasing ``f``: the sup of {x : f(x) < target}; for decreasing ``f``: the inf of
    {x : f(x) < target}. Clamped to [lo, hi] when ``f`` stays on one side. Within ``tol`` the
    answer errs outwards (a confidence bound is never reported tighter than it is).
    """
    def below(x: float) -> bool:
        return f(x) < target

    if increasing:
        if below(hi):
            return hi
        if not below(lo):
            return lo
        while hi - lo > tol:
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if below(mid) else (lo, mid)
        return hi
    if below(lo):
        return lo
    if not below(hi):
        return hi
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if below(mid) else (mid, hi)
    return lo


def smallest_scale(f: Callable[[float], float], target: float, *, limit: float = 1e9,
                   rel_tol: float = 1e-3) -> float | None:
    """The smallest t >= 1 with f(t) >= target, for an ``f`` that crosses ``target`` once
    upwards; ``None`` if it has not by ``limit``."""
    if f(1.0) >= target:
        return 1.0
    lo, hi = 1.0, 2.0
    while f(hi) < target:
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > rel_tol * lo:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return hi
