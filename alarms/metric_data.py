"""PutMetricData entries: a datum split to CloudWatch's 150 values, and the bytes an entry adds
to a request (so a request is packed within CloudWatch's 1 MB)."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pipelines import cloudwatch_rules
from pipelines.datum import Datum
from pipelines.latency import split_distribution

#: Room for ``{"Namespace": "...", "MetricData": [...]}`` around the entries (namespace <= 255 chars).
REQUEST_ENVELOPE_BYTES = 1024
#: Longest JSON rendering of a double (e.g. ``-2.2250738585072014e-308``), also > 9 bytes of CBOR.
MAX_NUMBER_BYTES = 24


def split_datum(datum: Datum, max_values: int = cloudwatch_rules.MAX_DATUM_VALUES) -> list[Datum]:
    """``datum`` as datums of at most ``max_values`` distinct values each (same name, dimensions, time).

    CloudWatch aggregates datums with equal name, dimensions and timestamp, so the split is exact.
    """
    if len(datum.values) <= max_values:
        return [datum]
    return [replace(datum, values=v, counts=c) for v, c in split_distribution(datum.values, datum.counts, max_values)]


def estimate_entry_bytes(entry: Mapping[str, Any]) -> int:
    """An upper bound on the bytes ``entry`` adds to a PutMetricData body.

    Its JSON size (botocore's separators) plus ``MAX_NUMBER_BYTES`` per number, so it holds
    however the SDK renders doubles (botocore sends CloudWatch awsJson1.0 today;
    rpcv2-CBOR is smaller still), plus the separator between entries.
    """
    numbers = len(entry.get("Values", ())) + len(entry.get("Counts", ())) + 1  # + Timestamp
    if "Value" in entry:
        numbers += 1
    return len(json.dumps(entry)) + MAX_NUMBER_BYTES * numbers + 2
