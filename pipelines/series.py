"""Series: the dimension sets counts are kept under, and the segment cardinality cap."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipelines import metrics
from pipelines.datum import Dimensions

OTHER = "__other__"
UNKNOWN_ENDPOINT = "__unknown__"

# (endpoint, variant or None, model_version or None, ((segment attribute, value), ...))
# A plain tuple: hashable, small, and cheap to use as a dict key on the hot path.
Series = tuple[str, str | None, str | None, tuple[tuple[str, str], ...]]


def endpoint_series(endpoint: str | None) -> Series:
    """The series of endpoint-level counts that belong to no variant (OrphanLabels)."""
    return (endpoint or UNKNOWN_ENDPOINT, None, None, ())


def dimension_sets(series: Series, segments: bool = True) -> list[Dimensions]:
    """Every dimension set a count is published under (SPEC.md "Metrics"); only the first two
    with ``segments=False``.

    (EndpointName, VariantName) always, so an all-traffic alarm sees the whole variant; the
    same plus ModelVersion when known, so an alarm can watch the new fleet only; and one copy
    per segment attribute under the most specific of those only (with ModelVersion when
    known): segment copies are most of the metric bill, a segment alarm on the new fleet needs
    ModelVersion, and a second copy without it would double them.
    """
    endpoint, variant, model_version, attributes = series
    base: Dimensions = ((metrics.ENDPOINT_NAME, endpoint),)
    if variant is not None:
        base += ((metrics.VARIANT_NAME, variant),)
    bases = [base]
    if model_version is not None:
        bases.append(base + ((metrics.MODEL_VERSION, model_version),))
    if not segments:
        return bases
    return bases + [bases[-1] + (segment,) for segment in attributes]


BLANK = "__blank__"
MAX_SEGMENT_VALUE_CHARS = 255
_KEEP = frozenset(chr(c) for c in range(0x20, 0x7f)) - {"%"}


def dimension_value(value: str) -> str:
    """A segment value as a CloudWatch dimension value (printable ASCII, not blank), losslessly:
    any other character, and `%` itself, is percent-encoded as UTF-8 (`café` -> `caf%C3%A9`).
    A blank value is `__blank__`; one over 255 characters after encoding is `__other__`."""
    if all(ch in _KEEP for ch in value):
        encoded = value
    else:
        encoded = "".join(ch if ch in _KEEP else "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
                          for ch in value)
    if not encoded.strip():
        return BLANK
    return encoded if len(encoded) <= MAX_SEGMENT_VALUE_CHARS else OTHER


class SegmentCap:
    """Maps capture attributes to segment values: configured attributes only, each value either
    in the attribute's allow-list (`allowed`: the same mapping on every instance and across
    restarts) or, for an attribute without one, among the first `cap` distinct values seen
    (first come, first admitted: per instance, so kept in checkpoints); the rest `__other__`."""

    def __init__(self, attributes: tuple[str, ...] = (), cap: int = 50,
                 allowed: Mapping[str, Iterable[str]] | None = None) -> None:
        self.attributes = frozenset(attributes)
        self.cap = cap
        allowed = allowed or {}
        # values as published, so `café` in a list matches the capture's `café`
        self.allowed: dict[str, frozenset[str]] = {
            a: frozenset(dimension_value(v) for v in allowed[a]) for a in attributes if a in allowed}
        self._admitted: dict[str, set[str]] = {a: set() for a in attributes if a not in self.allowed}
        self.overflowed = 0  # values mapped to __other__, for /metrics

    def map(self, attributes: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        if not self.attributes:
            return ()
        out = []
        for name, raw in attributes:
            listed = self.allowed.get(name)
            if listed is not None:
                value = dimension_value(raw)
                if value not in listed and value != OTHER:
                    self.overflowed += 1
                    value = OTHER
                out.append((name, value))
                continue
            admitted = self._admitted.get(name)
            if admitted is None:
                continue
            value = dimension_value(raw)
            if value != OTHER and value not in admitted:
                if len(admitted) >= self.cap:
                    self.overflowed += 1
                    value = OTHER
                else:
                    admitted.add(value)
            out.append((name, value))
        return tuple(out)

    def snapshot(self) -> dict[str, list[str]]:
        """The first-come attributes' admitted values (allow-listed ones come from settings)."""
        return {name: sorted(values) for name, values in self._admitted.items()}

    def restore(self, data: dict[str, Any]) -> None:
        """Re-admit the values a checkpoint lists, all of them: a value admitted once keeps its own
        series after a restart (its pending joins and window already carry it). Partitions
        checkpointed together list the same set; the cap then bounds only new admissions."""
        for name, values in data.items():
            admitted = self._admitted.get(name)
            if admitted is not None:
                admitted.update(values)


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


TOO_MANY_ENDPOINTS = "too_many_endpoints"
TOO_MANY_VARIANTS = "too_many_variants"
TOO_MANY_MODEL_VERSIONS = "too_many_model_versions"
ENDPOINT_NOT_ALLOWED = "endpoint_not_allowed"


class NameCap:
    """Bounds the endpoint, variant and model-version names that become dimensions, so a flood
    of unique names cannot create unbounded memory and CloudWatch metric streams.

    An allow-list of endpoints makes admission the same on every instance; without one, the
    first `max_endpoints` endpoints seen are admitted (a single-instance setting: on restart the
    admitted names are rebuilt from the restored series). Refusals are dead-lettered by the
    caller with the reason this returns.
    """

    def __init__(self, allowed_endpoints: tuple[str, ...] = (), max_endpoints: int = 100,
                 max_variants: int = 20, max_model_versions: int = 20) -> None:
        self.allowed = frozenset(allowed_endpoints)
        self.max_endpoints, self.max_variants, self.max_model_versions = max_endpoints, max_variants, max_model_versions
        self._variants: dict[str, set[str]] = {}  # endpoint -> admitted variants
        self._versions: dict[tuple[str, str], set[str]] = {}
        self._admitted: set[tuple[str, str, str | None]] = set()  # names once admitted stay admitted

    def refuse_endpoint(self, endpoint: str | None) -> tuple[str, str] | None:
        """(reason, detail) when `endpoint` may not become a dimension, else None (admitting it)."""
        if endpoint is None or endpoint in self._variants:
            return None
        if self.allowed:
            if endpoint not in self.allowed:
                return ENDPOINT_NOT_ALLOWED, f"endpoint {endpoint[:80]!r} is not in ROLLGUARD_ENDPOINTS"
        elif len(self._variants) >= self.max_endpoints:
            return TOO_MANY_ENDPOINTS, f"endpoint {endpoint[:80]!r} is over the cap of {self.max_endpoints} endpoints (ROLLGUARD_MAX_ENDPOINTS)"
        self._variants[endpoint] = set()
        return None

    def refuse(self, endpoint: str, variant: str, model_version: str | None) -> tuple[str, str] | None:
        """(reason, detail) when this capture's names may not become dimensions, else None."""
        names = (endpoint, variant, model_version)
        if names in self._admitted:
            return None
        refused = self.refuse_endpoint(endpoint)
        if refused is not None:
            return refused
        variants = self._variants[endpoint]
        if variant not in variants:
            if len(variants) >= self.max_variants:
                return TOO_MANY_VARIANTS, f"variant {variant[:80]!r} of {endpoint[:80]!r} is over the cap of {self.max_variants} variants (ROLLGUARD_MAX_VARIANTS)"
            variants.add(variant)
        if model_version is not None:
            versions = self._versions.setdefault((endpoint, variant), set())
            if model_version not in versions:
                if len(versions) >= self.max_model_versions:
                    return TOO_MANY_MODEL_VERSIONS, f"model version {model_version[:80]!r} of {endpoint[:80]!r}/{variant[:80]!r} is over the cap of {self.max_model_versions} (ROLLGUARD_MAX_MODEL_VERSIONS)"
                versions.add(model_version)
        self._admitted.add(names)
        return None

    def admit_restored(self, series: list[Series]) -> None:
        """Re-admit the names of restored series (they were admitted before the restart)."""
        for endpoint, variant, model_version, _ in series:
            self._variants.setdefault(endpoint, set())
            if variant is not None:
                self._variants[endpoint].add(variant)
                if model_version is not None:
                    self._versions.setdefault((endpoint, variant), set()).add(model_version)
