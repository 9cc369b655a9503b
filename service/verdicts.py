"""Comparison counts shared through the state location, so every instance judges all of them.

Each partition's owner writes that partition's comparison tallies beside its checkpoint after
every checkpoint it writes (one small JSON object per partition, ``…p<N>.comparisons.json``,
docs/checkpoint-format.md). Anyone who can read the state location (the daemons, `rollguard
gate`, `rollguard watch`) sums every partition's latest object, so the verdict is the same
whether one instance or five own the partitions: each partition's counts are written by one
owner at a time and moved with the partition.

A tally whose fingerprint differs from the comparison's definition (another arm, latency
threshold, segment list) was counted for another comparison and is left out, and reported.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipelines.comparison.config import Comparison
from pipelines.comparison.tally import ComparisonTally
from pipelines.verdict import Verdict, judge
from service.checkpoint import CheckpointStore

FORMAT = "rollguard-comparison-counts"
VERSION = 1
SUFFIX = ".comparisons.json"


def prefix(group_id: str, captures_topic: str, labels_topic: str) -> str:
    """The name prefix of one consumer group's objects (the same as its checkpoints')."""
    return f"{group_id}.{captures_topic}.{labels_topic}.p"


def object_name(group_prefix: str, partition: int) -> str:
    return f"{group_prefix}{partition}{SUFFIX}"


def encode(partition: int, offsets: Mapping[str, int], tallies: Mapping[str, ComparisonTally]) -> bytes:
    body = {
        "format": FORMAT, "version": VERSION, "partition": partition, "offsets": dict(offsets),
        "comparisons": {name: tally.to_plain() for name, tally in sorted(tallies.items())},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes, name: str) -> dict[str, ComparisonTally]:
    """The tallies in one object; ValueError naming it, in one line, for anything else."""
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("not a rollguard comparison-counts object")
        if body.get("version") != VERSION:
            raise ValueError(f"version {body.get('version')!r} is not supported (expected {VERSION})")
        return {str(k): ComparisonTally.from_plain(v) for k, v in body["comparisons"].items()}
    except (ValueError, KeyError, TypeError) as ex:
        raise ValueError(f"comparison counts {name}: {ex}") from None


@dataclass
class Evidence:
    """Every partition's tallies, summed per comparison."""

    tallies: dict[str, ComparisonTally] = field(default_factory=dict)
    partitions: int = 0  # objects read
    stale: dict[str, int] = field(default_factory=dict)  # comparison -> partitions counted under another definition
    unreadable: list[str] = field(default_factory=list)  # objects that could not be decoded (one line each)

    def tally(self, comparison: Comparison) -> ComparisonTally:
        return self.tallies.get(comparison.name) or ComparisonTally(comparison.fingerprint())

    def verdict(self, comparison: Comparison) -> Verdict:
        return judge(comparison.config(), self.tally(comparison).counts(comparison))


def gather(store: CheckpointStore, group_prefix: str, comparisons: Sequence[Comparison]) -> Evidence:
    """Read every partition's comparison counts under `group_prefix` and sum them."""
    wanted = {c.name: c.fingerprint() for c in comparisons}
    evidence = Evidence()
    for name in store.names(group_prefix):
        if not name.endswith(SUFFIX):
            continue
        data = store.load(name)
        if data is None:  # removed between listing and reading
            continue
        try:
            tallies = decode(data, name)
        except ValueError as ex:
            evidence.unreadable.append(str(ex))
            continue
        evidence.partitions += 1
        for comparison, tally in tallies.items():
            if comparison not in wanted:
                continue
            if tally.fingerprint != wanted[comparison]:
                evidence.stale[comparison] = evidence.stale.get(comparison, 0) + 1
                continue
            have = evidence.tallies.get(comparison)
            evidence.tallies[comparison] = tally if have is None else have.merge(tally)
    return evidence


def load_comparisons(settings: Any) -> tuple[Comparison, ...]:
    """The comparisons of the spec ROLLGUARD_SPEC names (none when unset), checked against the
    settings the counts depend on; ValueError with one line naming the setting otherwise."""
    if not settings.spec:
        return ()
    from alarms.spec import SpecError, comparisons, load_spec

    try:
        found = comparisons(load_spec(settings.spec))
    except (SpecError, OSError, ValueError) as ex:
        text = " ".join(str(ex).split())
        raise ValueError(f"invalid setting ROLLGUARD_SPEC={settings.spec!r}: {text}") from None
    for c in found:
        missing = [a for a in c.segments if a not in settings.segment_attributes]
        if missing:
            raise ValueError(
                f"invalid setting ROLLGUARD_SPEC={settings.spec!r}: comparison {c.name!r} judges segment "
                f"attribute(s) {', '.join(missing)}, which ROLLGUARD_SEGMENT_ATTRIBUTES does not list")
        if settings.endpoints and c.endpoint not in settings.endpoints:
            raise ValueError(
                f"invalid setting ROLLGUARD_SPEC={settings.spec!r}: comparison {c.name!r} is on endpoint "
                f"{c.endpoint!r}, which ROLLGUARD_ENDPOINTS does not list")
    return found


def describe_problems(evidence: Evidence) -> list[str]:
    out = list(evidence.unreadable)
    for comparison, partitions in sorted(evidence.stale.items()):
        out.append(f"comparison {comparison}: {partitions} partition(s) counted it under another definition "
                   "(arms, latency threshold or segments changed); restart the daemon with this spec")
    return out


def plain(evidence: Evidence) -> dict[str, Any]:
    return {"partitions": evidence.partitions, "stale": dict(evidence.stale), "unreadable": list(evidence.unreadable)}
