"""Series: the dimension sets counts are kept under, and the segment cardinality cap."""
from __future__ import annotations

from typing import Any

from pipelines.datum import Dimensions

OTHER = "__other__"
UNKNOWN_ENDPOINT = "__unknown__"

# (endpoint, variant or None, model_version or None, ((segment attribute, value), ...))
# A plain tuple: hashable, small, and cheap to use as a dict key on the hot path.
Series = tuple[str, str | None, str | None, tuple[tuple[str, str], ...]]


def endpoint_series(endpoint: str | None) -> Series:
    """The series of endpoint-level counts that belong to no variant (OrphanLabels)."""
    return (endpoint or UNKNOWN_ENDPOINT, None, None, ())


def dimension_sets(series: Series) -> list[Dimensions]:
    """Every dimension set a count is published under (SPEC.md "Metrics").

    (EndpointName, VariantName) always, so an all-traffic alarm sees the whole variant;
    the same plus ModelVersion when known, so an alarm can watch the new fleet only; and
    one copy of each per segment attribute.
    """
    endpoint, variant, model_version, segments = series
    base: Dimensions = (("EndpointName", endpoint),)
    if variant is not None:
        base += (("VariantName", variant),)
    bases = [base]
    if model_version is not None:
        bases.append(base + (("ModelVersion", model_version),))
    return bases + [b + (segment,) for segment in segments for b in bases]


class SegmentCap:
    """Maps capture attributes to segment values: allow-listed attributes only, at most
    `cap` distinct values per attribute (first come, first admitted), the rest `__other__`."""

    def __init__(self, attributes: tuple[str, ...] = (), cap: int = 50) -> None:
        self.attributes = frozenset(attributes)
        self.cap = cap
        self._admitted: dict[str, set[str]] = {a: set() for a in attributes}
        self.overflowed = 0  # values mapped to __other__, for /metrics

    def map(self, attributes: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        if not self.attributes:
            return ()
        out = []
        for name, value in attributes:
            admitted = self._admitted.get(name)
            if admitted is None:
                continue
            if value not in admitted:
                if len(admitted) >= self.cap:
                    self.overflowed += 1
                    value = OTHER
                else:
                    admitted.add(value)
            out.append((name, value))
        return tuple(out)

    def snapshot(self) -> dict[str, list[str]]:
        return {name: sorted(values) for name, values in self._admitted.items()}

    def restore(self, data: dict[str, Any]) -> None:
        """Merge admitted values from a checkpoint (up to the cap)."""
        for name, values in data.items():
            admitted = self._admitted.get(name)
            if admitted is None:
                continue
            for value in values:
                if len(admitted) < self.cap:
                    admitted.add(value)


class SeriesRegistry:
    """Interns series as small ints so pending joins stay compact."""

    def __init__(self) -> None:
        self._series: list[Series] = []
        self._ids: dict[Series, int] = {}

    def intern(self, series: Series) -> int:
        sid = self._ids.get(series)
        if sid is None:
            sid = len(self._series)
            self._series.append(series)
            self._ids[series] = sid
        return sid

    def __getitem__(self, sid: int) -> Series:
        return self._series[sid]

    def __len__(self) -> int:
        return len(self._series)

    def snapshot(self) -> list[Series]:
        return list(self._series)

    @classmethod
    def restore(cls, data: list[Any]) -> "SeriesRegistry":
        reg = cls()
        for endpoint, variant, model_version, segments in data:
            reg.intern((endpoint, variant, model_version, tuple(tuple(s) for s in segments)))
        return reg
