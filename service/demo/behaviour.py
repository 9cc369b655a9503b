"""How each model version behaves in the demo: recall and false alarms per merchant category,
errors, a latency tail, and how two models scoring the same request agree (shadow traffic).

Pure: every draw takes its ``random.Random``, so a seed gives the same traffic.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

#: the regressions ``--regress-after-shift`` can inject into the new fleet
REGRESSIONS = ("errors", "latency")


@dataclass(frozen=True)
class Category:
    """A merchant category code (MCC) and its share of the traffic."""

    code: str
    name: str
    share: float


#: the demo's merchant categories; 5411 is the one V4 once regressed on (SPEC's reference story)
CATEGORIES = (
    Category("5812", "restaurants", 0.30),
    Category("5999", "misc. retail", 0.30),
    Category("4829", "money transfer", 0.28),
    Category("5411", "grocery stores", 0.12),
)
REGRESSED_CATEGORY = "5411"


@dataclass(frozen=True)
class Behaviour:
    """One model version. ``recall`` is its chance of flagging a fraud (``by_category`` overrides it
    per category), ``false_alarm_rate`` its chance of flagging a legitimate transaction; a share
    ``error_rate`` of requests fail (HTTP 503); latency is log-normal around ``latency_median_ms``
    with a tail: a share ``slow_share`` of requests takes ``slow_ms`` instead."""

    version: str
    recall: float = 0.80
    by_category: tuple[tuple[str, float], ...] = ()
    false_alarm_rate: float = 0.004  # precision about 0.98 at the demo's 20 % fraud rate
    error_rate: float = 0.003
    latency_median_ms: float = 12.0
    latency_sigma: float = 0.35
    slow_share: float = 0.004
    slow_ms: tuple[float, float] = (45.0, 120.0)

    def __post_init__(self) -> None:
        for name in ("recall", "false_alarm_rate", "error_rate", "slow_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Behaviour.{name} must be a probability in [0, 1], got {value!r}")
        for code, value in self.by_category:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Behaviour.by_category[{code!r}] must be a probability in [0, 1], got {value!r}")

    def recall_in(self, category: str) -> float:
        return dict(self.by_category).get(category, self.recall)

    def regressed(self, kind: str) -> Behaviour:
        """This model with an injected regression: ``errors`` (4 % of requests fail) or ``latency``
        (a quarter of requests take 45-120 ms)."""
        if kind == "errors":
            return replace(self, error_rate=0.04)
        if kind == "latency":
            return replace(self, slow_share=0.25)
        raise ValueError(f"unknown regression {kind!r}; expected one of {', '.join(REGRESSIONS)}")

    def latency_ms(self, rng: random.Random) -> float:
        """Whole milliseconds: a tick's latencies then fit one exact distribution datum."""
        if rng.random() < self.slow_share:
            return float(round(rng.uniform(*self.slow_ms)))
        return float(round(rng.lognormvariate(math.log(self.latency_median_ms), self.latency_sigma)))

    def fails(self, rng: random.Random) -> bool:
        return rng.random() < self.error_rate


#: production's model
V5 = Behaviour("fraud-v5")
#: a clean V6: a little better than V5 everywhere (the reason to deploy it)
V6_GOOD = Behaviour("fraud-v6", recall=0.83, latency_median_ms=13.0)
#: the default V6: as good, except for a V4-style regression in one merchant category, recall
#: 0.80 -> 0.50 there, which its gains elsewhere hide in the pooled recall
V6_REGRESSED = replace(V6_GOOD, by_category=((REGRESSED_CATEGORY, 0.50),))


@dataclass(frozen=True)
class Agreement:
    """How often two models scoring the same request disagree beyond what their rates force:
    on frauds, each catches ``on_frauds`` of them the other misses; on legitimate traffic each
    flags ``on_legitimate`` the other does not."""

    on_frauds: float = 0.02
    on_legitimate: float = 0.001


def _pair(p_base: float, p_cand: float, discordance: float, u: float) -> tuple[bool, bool]:
    """Two correlated events with marginals ``p_base`` and ``p_cand``; each happens alone at least
    ``discordance`` of the time (less where the marginals leave no room), one uniform draw ``u``."""
    low, high = min(p_base, p_cand), max(p_base, p_cand)
    d = max(0.0, min(discordance, low, 1.0 - high))
    both = low - d
    base_only = max(0.0, p_base - p_cand) + d
    cand_only = max(0.0, p_cand - p_base) + d
    if u < both:
        return True, True
    if u < both + base_only:
        return True, False
    if u < both + base_only + cand_only:
        return False, True
    return False, False


def flags(truth: int, category: str, base: Behaviour, cand: Behaviour, agreement: Agreement,
          rng: random.Random) -> tuple[bool, bool]:
    """Whether each model flags one request (``truth`` 1: a fraud), drawn jointly."""
    if truth:
        return _pair(base.recall_in(category), cand.recall_in(category), agreement.on_frauds, rng.random())
    return _pair(base.false_alarm_rate, cand.false_alarm_rate, agreement.on_legitimate, rng.random())


def score(flagged: bool, rng: random.Random) -> float:
    """The probability the model reports: above the 0.5 threshold exactly when it flags."""
    return round(rng.uniform(0.5, 0.99) if flagged else rng.uniform(0.01, 0.49), 3)


@dataclass(frozen=True)
class LabelDelays:
    """When a transaction's truth becomes known, in demo hours: most within hours (reviews), a
    share ``tail_share`` days later (chargebacks); a share ``unlabelled`` never."""

    median_hours: float = 2.0
    sigma: float = 0.7
    tail_share: float = 0.10
    tail_days: tuple[float, float] = (1.0, 5.0)
    unlabelled: float = 0.02

    def draw_hours(self, rng: random.Random) -> float | None:
        """The delay of one label in demo hours, or None for a label that never comes."""
        if rng.random() < self.unlabelled:
            return None
        if rng.random() < self.tail_share:
            return rng.uniform(*self.tail_days) * 24.0
        return rng.lognormvariate(math.log(self.median_hours), self.sigma)


@dataclass(frozen=True)
class Population:
    """The traffic itself: the fraud rate and the categories' shares."""

    fraud_rate: float = 0.20
    categories: tuple[Category, ...] = CATEGORIES
    _weights: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.fraud_rate < 1.0:
            raise ValueError(f"Population.fraud_rate must be in (0, 1), got {self.fraud_rate!r}")
        total = sum(c.share for c in self.categories)
        if not self.categories or abs(total - 1.0) > 1e-9:
            raise ValueError(f"Population.categories' shares must add up to 1, got {total!r}")
        object.__setattr__(self, "_weights", tuple(c.share for c in self.categories))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.categories)

    def draw(self, rng: random.Random) -> tuple[str, int]:
        """(category code, truth) of one transaction."""
        category = rng.choices(self.categories, self._weights)[0].code
        return category, int(rng.random() < self.fraud_rate)
