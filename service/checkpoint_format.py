"""The checkpoint file format, version 4 (reads 2 and 3 too): data only, never code. Pure: no I/O.

A file is three parts (docs/checkpoint-format.md is the reference):

    RGCK4\\n
    {"format":"rollguard-checkpoint","version":4,"compression":"zlib","length":N,"sha256":"…"}\\n
    <N bytes: the body, a JSON document, zlib-compressed when "compression" is "zlib">

The SHA-256 covers the N stored body bytes and is checked before anything is decompressed or
parsed. Types JSON lacks are spelled out: an inference id is "s:<id>" (a string id) or
"b:<32 hex digits>" (a canonical UUID kept as its 16 bytes), a series is an array, a multi-capture
entry an array of ints, a Datum an object of its fields; ordered mappings are arrays, so arrival
order (which expiry relies on) is explicit. With the disk store the pending joins are not in the
body: its `store` section (service/state/manifest.py) lists the RocksDB files that hold them.

Decoding builds only str, int, float, bytes, tuple, list, dict, None and Datum, and checks every
type and shape: any surprise is a ValueError naming the checkpoint, in one line.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import zlib
from collections.abc import Mapping
from typing import Any

from pipelines.comparison.config import MAX_PER_ENDPOINT as MAX_COMPARISONS_PER_ENDPOINT
from pipelines.datum import Datum
from pipelines.join import JOIN_SNAPSHOT_VERSION, JoinStats
from pipelines.processor import SNAPSHOT_VERSION as PIPELINE_SNAPSHOT_VERSION
from service.state.manifest import StoreSection, store_in, store_out

FORMAT = "rollguard-checkpoint"
VERSION = 4
#: versions this rollguard reads: 2 is 3 without `pipeline.comparisons`; 3 is 4 without `store`,
#: `pipeline.join.implicit` and the implicit-label counters
READS = (2, 3, 4)
HEADER = b"RGCK%d\n" % VERSION
ZLIB_LEVEL = 1  # the body is mostly digits and hex; level 1 gets most of the gain for a fraction of the time
DOC = "docs/checkpoint-format.md"

CAPTURE_ENTRY_BITS = 150  # pipelines.join: label time (44 bits) from bit 97, 8 comparison bits from 141, implicit 149
LABEL_ENTRY_BITS = 80  # pipelines.join: a pending label's time (44 bits) from bit 36
MAX_ENVELOPE_BYTES = 1024

_HEADER = re.compile(rb"RGCK([1-9][0-9]{0,5})\n")
_ENVELOPE_KEYS = frozenset({"format", "version", "compression", "length", "sha256"})
_COMPRESSIONS = ("zlib", "none")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PIPELINE_KEYS = frozenset({"version", "partition", "offsets", "join", "aggregator", "segments", "bad_records", "window",
                            "comparisons"})
WINDOW_SNAPSHOT_VERSION = 1  # what pipelines.window.SlidingWindow.snapshot() writes
_JOIN_KEYS = frozenset({"version", "series", "captures", "labels", "stats", "implicit"})
_STAT_NAMES = frozenset(f.name for f in dataclasses.fields(JoinStats))
_STATS_SINCE_4 = frozenset({"implicit_labels", "implicit_corrections"})
_DATUM_KEYS = frozenset(f.name for f in dataclasses.fields(Datum))

PICKLE_REFUSED = (
    "refused: it is in the old RGCK1 pickle format, which can run code when loaded, so this rollguard "
    "never reads it; delete it to restart this partition from the consumer group's committed offsets "
    f"with no pending joins (see {DOC})"
)


class _Refused(Exception):
    """Why a checkpoint cannot be read; decode() turns it into one ValueError line."""


# ---------------------------------------------------------------------------------- encoding


def encode(state: Mapping[str, Any], *, compress: bool = True) -> bytes:
    """`{"pipeline": PartitionPipeline.snapshot(), "unsent": {batch_id: [Datum, ...]}}` as bytes,
    with `"store": StoreSection` when the pending joins are in a disk store.

    Raises ValueError (or TypeError) for a state of another shape, e.g. a snapshot field this
    format does not know yet: extend the format and bump VERSION rather than lose a field.
    """
    body = json.dumps(_body(state), separators=(",", ":"), allow_nan=False).encode("ascii")
    return _envelope_around(body, compress)


_NO_STORE = ',"store":null}'


def prepare(state: Mapping[str, Any]) -> str:
    """The JSON body of `state` (without a store section yet: its `store` is written last)."""
    text = json.dumps({**_body({k: v for k, v in state.items() if k != "store"}), "store": None},
                      separators=(",", ":"), allow_nan=False)
    assert text.endswith(_NO_STORE)
    return text


def seal(prepared: str, store: StoreSection | None, *, compress: bool = True) -> bytes:
    """`prepare`'s body with its store section, as checkpoint bytes: what encode() would give."""
    tail = "null" if store is None else json.dumps(store_out(store), separators=(",", ":"))
    return _envelope_around((prepared[:-len(_NO_STORE)] + ',"store":' + tail + "}").encode("ascii"), compress)


def _envelope_around(body: bytes, compress: bool) -> bytes:
    if compress:
        body = zlib.compress(body, ZLIB_LEVEL)
    envelope = {
        "format": FORMAT, "version": VERSION, "compression": "zlib" if compress else "none",
        "length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
    }
    return HEADER + json.dumps(envelope, separators=(",", ":")).encode("ascii") + b"\n" + body


def _keys(obj: Mapping[str, Any], expected: frozenset[str], what: str) -> None:
    if set(obj) != expected:
        raise ValueError(f"cannot encode {what}: fields {sorted(obj)}, this format (version {VERSION}) "
                         f"holds {sorted(expected)}")


def _pending_out(endpoint: str | None, pending: Mapping[Any, Any]) -> dict[str, Any]:
    ids = ["b:" + k.hex() if k.__class__ is bytes else "s:" + k for k in pending]
    return {"endpoint": endpoint, "ids": ids, "entries": list(pending.values())}  # tuple entries are arrays


def _body(state: Mapping[str, Any]) -> dict[str, Any]:
    _keys(state, frozenset({"pipeline", "unsent", "store"}) if "store" in state else frozenset({"pipeline", "unsent"}),
          "the checkpoint state")
    store: StoreSection | None = state.get("store")
    p = state["pipeline"]
    _keys(p, _PIPELINE_KEYS, "the pipeline snapshot")
    j = p["join"]
    _keys(j, _JOIN_KEYS, "the join snapshot")
    held_versions = (("pipeline", p["version"], PIPELINE_SNAPSHOT_VERSION), ("join", j["version"], JOIN_SNAPSHOT_VERSION))
    for what, version, held in held_versions:
        if version != held:
            raise ValueError(f"cannot encode {what} snapshot version {version!r} (format {VERSION} holds {held})")
    agg = p["aggregator"]
    _keys(agg, frozenset({"counts", "latency"}), "the aggregator snapshot")
    return {
        "pipeline": {
            "partition": p["partition"],
            "offsets": p["offsets"],
            "join": {
                "series": j["series"],  # tuples are JSON arrays
                "captures": [_pending_out(ep, d) for ep, d in j["captures"].items()],
                "labels": [_pending_out(ep, d) for ep, d in j["labels"].items()],
                "stats": j["stats"],
                "implicit": sorted([ep, s] for ep, s in j["implicit"].items()),
            },
            "aggregator": {
                "counts": [[tick, series, name, value] for (tick, series, name), value in agg["counts"].items()],
                "latency": [[tick, series, list(hist.items())] for (tick, series), hist in agg["latency"].items()],
            },
            "segments": p["segments"],
            "bad_records": p["bad_records"],
            "window": _window_out(p["window"]),
            "comparisons": p["comparisons"],
        },
        "unsent": [{"batch_id": batch_id, "datums": [_datum(d) for d in datums]}
                   for batch_id, datums in state["unsent"].items()],
        "store": None if store is None else store_out(store),
    }


def _window_out(w: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if w is None:
        return None
    _keys(w, frozenset({"version", "window_ms", "bucket_ms", "min_samples", "series"}), "the window snapshot")
    if w["version"] != WINDOW_SNAPSHOT_VERSION:
        raise ValueError(f"cannot encode window snapshot version {w['version']!r} (format {VERSION} holds {WINDOW_SNAPSHOT_VERSION})")
    return {"window_ms": w["window_ms"], "bucket_ms": w["bucket_ms"], "min_samples": w["min_samples"],
            "series": [[key, [[start, counters, list(hist)] for start, counters, hist in buckets]]
                       for key, buckets in w["series"]]}


def _datum(d: Datum) -> dict[str, Any]:
    return {"name": d.name, "dimensions": d.dimensions, "timestamp_ms": d.timestamp_ms, "unit": d.unit,
            "value": d.value, "values": d.values, "counts": d.counts}


# ---------------------------------------------------------------------------------- decoding


def decode(data: bytes, name: str) -> dict[str, Any]:
    """The state encode() was given; raises ValueError `checkpoint 'name': …` for anything else."""
    try:
        return _decode(data)
    except _Refused as ex:
        raise ValueError(f"checkpoint {name!r}: {ex}") from None


def _decode(data: bytes) -> dict[str, Any]:
    if not isinstance(data, bytes):
        raise _Refused(f"not a rollguard checkpoint (got {type(data).__name__}, not bytes)")
    if not data:
        raise _Refused("corrupt (empty)")
    header = _HEADER.match(data, 0, 16)
    if header is None:
        if HEADER.startswith(data):
            raise _Refused(f"corrupt (truncated after {len(data)} bytes)")
        if data[:1] == b"\x80":
            raise _Refused("not a rollguard checkpoint (it looks like a bare pickle, which rollguard never loads)")
        raise _Refused("not a rollguard checkpoint (no RGCK header)")
    version = int(header.group(1))
    if version == 1:
        raise _Refused(PICKLE_REFUSED)
    if version not in READS:
        raise _Refused(f"unsupported checkpoint version {version} (this rollguard reads versions "
                       f"{', '.join(map(str, READS[:-1]))} and {READS[-1]})")
    start = header.end()
    end = data.find(b"\n", start, start + MAX_ENVELOPE_BYTES)
    if end < 0:
        short = len(data) < start + MAX_ENVELOPE_BYTES
        raise _Refused("corrupt (truncated envelope)" if short else "corrupt (no envelope line)")
    envelope = _envelope(data[start:end], version)
    body = data[end + 1:]
    if len(body) != envelope["length"]:
        raise _Refused(f"corrupt (truncated: body has {len(body)} of {envelope['length']} bytes)"
                       if len(body) < envelope["length"] else
                       f"corrupt ({len(body) - envelope['length']} bytes after the body)")
    if hashlib.sha256(body).hexdigest() != envelope["sha256"]:
        raise _Refused("corrupt (checksum mismatch)")
    try:
        text = (zlib.decompress(body) if envelope["compression"] == "zlib" else body).decode("utf-8")
        doc = json.loads(text, parse_constant=_no_constant)
    except (ValueError, zlib.error, RecursionError) as ex:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _Refused(f"corrupt (body: {type(ex).__name__}: {str(ex).splitlines()[0][:200]})") from None
    return _state(doc, version)


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number this format allows")


def _envelope(line: bytes, version: int) -> dict[str, Any]:
    try:
        env = json.loads(line.decode("utf-8"))
    except ValueError:
        raise _Refused("corrupt (the envelope line is not JSON)") from None
    if not isinstance(env, dict) or env.get("format") != FORMAT:
        raise _Refused(f"not a rollguard checkpoint (envelope format is not {FORMAT!r})")
    if env.get("version") != version or env["version"].__class__ is not int:
        raise _Refused(f"corrupt (envelope version {_short(env.get('version'))} differs from the header's {version})")
    if set(env) != _ENVELOPE_KEYS:
        raise _Refused(f"corrupt (envelope: {_field_diff(env, _ENVELOPE_KEYS)})")
    if env["compression"] not in _COMPRESSIONS:
        raise _Refused(f"corrupt (envelope compression {_short(env['compression'])}, expected one of {list(_COMPRESSIONS)})")
    if env["length"].__class__ is not int or env["length"] < 0:
        raise _Refused(f"corrupt (envelope length {_short(env['length'])} is not an integer >= 0)")
    if not isinstance(env["sha256"], str) or not _SHA256.fullmatch(env["sha256"]):
        raise _Refused("corrupt (envelope sha256 is not 64 lowercase hex digits)")
    return env


# Shape checks. Each raises _Refused naming the field's path and what was expected; paths of
# items in long arrays are only built when something is wrong.

def _short(value: Any) -> str:
    text = repr(value)  # repr escapes newlines: a message stays one line
    return text if len(text) <= 60 else text[:57] + "..."


def _member(path: str, name: str) -> str:
    return f"{path}.{name}" if _PLAIN_NAME.fullmatch(name) else f"{path}[{_short(name)}]"


def _field_diff(got: dict[str, Any], expected: frozenset[str]) -> str:
    def listed(names: set[str] | frozenset[str]) -> str:
        shown = sorted(names)
        return ", ".join(_short(n) for n in shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")

    unexpected, missing = set(got) - expected, expected - set(got)
    return "; ".join(([f"unexpected field {listed(unexpected)}"] if unexpected else [])
                     + ([f"missing {listed(missing)}"] if missing else []))


def _bad(path: str, expected: str, got: Any) -> _Refused:
    shown = type(got).__name__ if not isinstance(got, (int, str)) or isinstance(got, bool) else _short(got)
    return _Refused(f"invalid ({path}: expected {expected}, got {shown})")


def _obj(value: Any, path: str, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "an object", value)
    if set(value) != keys:
        raise _Refused(f"invalid ({path}: {_field_diff(value, keys)})")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(path, "an array", value)
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, "a string", value)
    return value


def _opt_str(value: Any, path: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _bad(path, "a string or null", value)
    return value


def _int(value: Any, path: str, minimum: int | None = None) -> int:
    if value.__class__ is not int or (minimum is not None and value < minimum):
        raise _bad(path, "an integer" if minimum is None else f"an integer >= {minimum}", value)
    return value


def _float(value: Any, path: str) -> float:
    if value.__class__ not in (int, float) or not math.isfinite(value):
        raise _bad(path, "a finite number", value)
    return float(value)


def _str_pairs(value: Any, path: str) -> tuple[tuple[str, str], ...]:
    out = []
    for i, pair in enumerate(_list(value, path)):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], str)):
            raise _bad(f"{path}[{i}]", "a [string, string] pair", pair)
        out.append((pair[0], pair[1]))
    return tuple(out)


def _int_map(value: Any, path: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _bad(path, "an object", value)
    for k, v in value.items():
        if v.__class__ is not int or v < 0:
            raise _bad(_member(path, k), "an integer >= 0", v)
    return value


def _series(value: Any, path: str) -> tuple[str, str | None, str | None, tuple[tuple[str, str], ...]]:
    if not (isinstance(value, list) and len(value) == 4):
        raise _bad(path, "a series [endpoint, variant|null, model_version|null, [[attribute, value], ...]]", value)
    return (_str(value[0], f"{path}[0]"), _opt_str(value[1], f"{path}[1]"), _opt_str(value[2], f"{path}[2]"),
            _str_pairs(value[3], f"{path}[3]"))


_ID_EXPECTED = 'an inference id "s:<id>" or "b:<32 hex digits>"'


def _keys_of(ids: list[Any], path: str) -> list[str | bytes]:
    keys: list[str | bytes] = []
    append = keys.append
    for k in ids:
        if k.__class__ is str:
            tag = k[:2]
            if tag == "s:":
                append(k[2:])
                continue
            if tag == "b:" and len(k) == 34:
                try:
                    key = bytes.fromhex(k[2:])
                except ValueError:
                    pass
                else:
                    if len(key) == 16:  # fromhex skips spaces
                        append(key)
                        continue
        raise _bad(f"{path}[{len(keys)}]", _ID_EXPECTED, k)
    return keys


def _entry_int(x: Any, bits: int) -> bool:
    return x.__class__ is int and x >= 0 and not x >> bits


def _pending(value: Any, path: str, endpoint_optional: bool, bits: int, multi: bool) -> tuple[str | None, dict[Any, Any]]:
    item = _obj(value, path, frozenset({"endpoint", "ids", "entries"}))
    endpoint = (_opt_str if endpoint_optional else _str)(item["endpoint"], f"{path}.endpoint")
    ids = _list(item["ids"], f"{path}.ids")
    entries = _list(item["entries"], f"{path}.entries")
    if len(ids) != len(entries):
        raise _Refused(f"invalid ({path}: {len(ids)} ids but {len(entries)} entries)")
    keys = _keys_of(ids, f"{path}.ids")
    values = list(entries)
    for i, e in enumerate(values):
        if e.__class__ is int:
            if e < 0 or e >> bits:
                raise _bad(f"{path}.entries[{i}]", f"an integer of 0..{bits} bits", e)
        elif multi and e.__class__ is list and len(e) >= 2 and all(_entry_int(x, bits) for x in e):
            values[i] = tuple(e)
        else:
            expected = f"an integer of 0..{bits} bits" + (" or an array of 2 or more" if multi else "")
            raise _bad(f"{path}.entries[{i}]", expected, e)
    pending = dict(zip(keys, values))
    if len(pending) != len(keys):
        raise _Refused(f"invalid ({path}.ids: an inference id appears twice)")
    return endpoint, pending


def _state(doc: Any, version: int) -> dict[str, Any]:
    body = _obj(doc, "body", frozenset({"pipeline", "unsent", "store"} if version >= 4 else {"pipeline", "unsent"}))
    out: dict[str, Any] = {"pipeline": _pipeline(body["pipeline"], version), "unsent": _unsent(body["unsent"])}
    if body.get("store") is not None:
        try:
            out["store"] = store_in(body["store"])
        except ValueError as ex:
            raise _Refused(f"invalid ({ex})") from None
    return out


def _pipeline(value: Any, version: int) -> dict[str, Any]:
    keys = _PIPELINE_KEYS - {"version"} - ({"comparisons"} if version < 3 else set())
    p = _obj(value, "pipeline", keys)
    offsets = _int_map(p["offsets"], "pipeline.offsets")
    segments = p["segments"]
    if not isinstance(segments, dict):
        raise _bad("pipeline.segments", "an object", segments)
    for attr, values in segments.items():
        for i, v in enumerate(_list(values, _member("pipeline.segments", attr))):
            _str(v, f"{_member('pipeline.segments', attr)}[{i}]")
    return {
        "version": PIPELINE_SNAPSHOT_VERSION,
        "partition": _int(p["partition"], "pipeline.partition", 0),
        "offsets": offsets,
        "join": _join(p["join"], version),
        "aggregator": _aggregator(p["aggregator"]),
        "segments": segments,
        "bad_records": _int_map(p["bad_records"], "pipeline.bad_records"),
        "window": None if p["window"] is None else _window(p["window"]),
        "comparisons": _comparisons(p.get("comparisons", {})),
    }


_CELL_WIDTH = {"paired": 3, "unpaired": 4}


def _slot(value: Any, path: str) -> int:
    if value.__class__ is not int or not 0 <= value < MAX_COMPARISONS_PER_ENDPOINT:
        raise _bad(path, f"an integer 0..{MAX_COMPARISONS_PER_ENDPOINT - 1}", value)
    return value


def _comparisons(value: Any) -> dict[str, Any]:
    """pipelines.comparison.counter.ComparisonCounter.snapshot() (version 3; version 2 lacks it)."""
    if not isinstance(value, dict):
        raise _bad("pipeline.comparisons", "an object", value)
    out: dict[str, Any] = {}
    for name, item in value.items():
        path = _member("pipeline.comparisons", name)
        c = _obj(item, path, frozenset({"fingerprint", "endpoint", "slot", "last_seen_ms", "tally"}))
        seen = _list(c["last_seen_ms"], f"{path}.last_seen_ms")
        if len(seen) != 2:
            raise _bad(f"{path}.last_seen_ms", "[baseline ms|null, candidate ms|null]", seen)
        tally = _obj(c["tally"], f"{path}.tally", frozenset({"fingerprint", "shadow", "cells"}))
        if not isinstance(tally["shadow"], bool):
            raise _bad(f"{path}.tally.shadow", "true or false", tally["shadow"])
        for i, cell in enumerate(_list(tally["cells"], f"{path}.tally.cells")):
            where = f"{path}.tally.cells[{i}]"
            if not (isinstance(cell, list) and len(cell) == 5 and isinstance(cell[0], str) and cell[1] in _CELL_WIDTH):
                raise _bad(where, '[metric, "paired"|"unpaired", attribute|null, value|null, [numbers]]', cell)
            _opt_str(cell[2], f"{where}[2]")
            _opt_str(cell[3], f"{where}[3]")
            numbers = _list(cell[4], f"{where}[4]")
            if len(numbers) != _CELL_WIDTH[cell[1]]:
                raise _bad(f"{where}[4]", f"{_CELL_WIDTH[cell[1]]} numbers", numbers)
            for k, x in enumerate(numbers):
                _float(x, f"{where}[4][{k}]")
        out[name] = {
            "fingerprint": _str(c["fingerprint"], f"{path}.fingerprint"),
            "endpoint": _str(c["endpoint"], f"{path}.endpoint"),
            "slot": _slot(c["slot"], f"{path}.slot"),
            "last_seen_ms": [None if x is None else _int(x, f"{path}.last_seen_ms[{k}]") for k, x in enumerate(seen)],
            "tally": {"fingerprint": _str(tally["fingerprint"], f"{path}.tally.fingerprint"),
                      "shadow": tally["shadow"], "cells": tally["cells"]},
        }
    return out


def _window(value: Any) -> dict[str, Any]:
    w = _obj(value, "pipeline.window", frozenset({"window_ms", "bucket_ms", "min_samples", "series"}))
    bucket_ms = _int(w["bucket_ms"], "pipeline.window.bucket_ms", 1)
    window_ms = _int(w["window_ms"], "pipeline.window.window_ms", 1)
    if window_ms % bucket_ms:
        raise _bad("pipeline.window.window_ms", f"a multiple of bucket_ms {bucket_ms}", window_ms)
    series: list[Any] = []
    seen: set[Any] = set()
    for i, item in enumerate(_list(w["series"], "pipeline.window.series")):
        path = f"pipeline.window.series[{i}]"
        if not (isinstance(item, list) and len(item) == 2):
            raise _bad(path, "[dimensions, buckets]", item)
        dims = _str_pairs(item[0], f"{path}[0]")
        if dims in seen:
            raise _Refused(f"invalid ({path}: a dimension set appears twice)")
        seen.add(dims)
        buckets = []
        for k, b in enumerate(_list(item[1], f"{path}[1]")):
            bpath = f"{path}[1][{k}]"
            if not (isinstance(b, list) and len(b) == 3 and isinstance(b[1], dict)):
                raise _bad(bpath, "[start_ms, {counter: value}, [[latency_ms, count], ...]]", b)
            counters = {_str(name, f"{bpath}[1] key"): _float(v, _member(f"{bpath}[1]", str(name))) for name, v in b[1].items()}
            hist = []
            for j, pair in enumerate(_list(b[2], f"{bpath}[2]")):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise _bad(f"{bpath}[2][{j}]", "a [latency_ms, count] pair", pair)
                ms, n = _float(pair[0], f"{bpath}[2][{j}][0]"), _float(pair[1], f"{bpath}[2][{j}][1]")
                if ms < 0 or n < 0:
                    raise _bad(f"{bpath}[2][{j}]", "a latency >= 0 and a count >= 0", pair)
                hist.append((ms, n))
            buckets.append((_int(b[0], f"{bpath}[0]"), counters, hist))
        series.append((dims, buckets))
    return {"version": WINDOW_SNAPSHOT_VERSION, "window_ms": window_ms, "bucket_ms": bucket_ms,
            "min_samples": _float(w["min_samples"], "pipeline.window.min_samples"), "series": series}


def _by_endpoint(value: Any, path: str, endpoint_optional: bool, bits: int, multi: bool) -> dict[Any, Any]:
    """An array of `{endpoint, ids, entries}` as endpoint -> pending entries; each endpoint once."""
    out: dict[Any, Any] = {}
    for i, item in enumerate(_list(value, path)):
        endpoint, pending = _pending(item, f"{path}[{i}]", endpoint_optional, bits, multi)
        if endpoint in out:
            raise _Refused(f"invalid ({path}[{i}]: endpoint {_short(endpoint)} appears twice)")
        out[endpoint] = pending
    return out


def _join(value: Any, version: int) -> dict[str, Any]:
    j = _obj(value, "pipeline.join", _JOIN_KEYS - {"version"} - ({"implicit"} if version < 4 else set()))
    series = [_series(s, f"pipeline.join.series[{i}]") for i, s in enumerate(_list(j["series"], "pipeline.join.series"))]
    if len(set(series)) != len(series):
        raise _Refused("invalid (pipeline.join.series: a series appears twice)")
    captures = _by_endpoint(j["captures"], "pipeline.join.captures", False, CAPTURE_ENTRY_BITS, True)
    labels = _by_endpoint(j["labels"], "pipeline.join.labels", True, LABEL_ENTRY_BITS, False)
    stats = _int_map(j["stats"], "pipeline.join.stats")
    names = _STAT_NAMES if version >= 4 else _STAT_NAMES - _STATS_SINCE_4
    if set(stats) != names:
        raise _Refused(f"invalid (pipeline.join.stats: {_field_diff(stats, names)})")
    stats = {**dict.fromkeys(_STATS_SINCE_4, 0), **stats}
    implicit: dict[str, int] = {}
    for i, pair in enumerate(_list(j.get("implicit", []), "pipeline.join.implicit")):
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)) or pair[0] in implicit:
            raise _bad(f"pipeline.join.implicit[{i}]", "a distinct [endpoint, arrival second] pair", pair)
        implicit[pair[0]] = _int(pair[1], f"pipeline.join.implicit[{i}][1]", -1)
    return {"version": JOIN_SNAPSHOT_VERSION, "series": series, "captures": captures, "labels": labels, "stats": stats,
            "implicit": implicit}


def _aggregator(value: Any) -> dict[str, Any]:
    a = _obj(value, "pipeline.aggregator", frozenset({"counts", "latency"}))
    counts: dict[Any, int] = {}
    for i, item in enumerate(_list(a["counts"], "pipeline.aggregator.counts")):
        path = f"pipeline.aggregator.counts[{i}]"
        if not (isinstance(item, list) and len(item) == 4):
            raise _bad(path, "[tick_ms, series, metric, count]", item)
        key = (_int(item[0], f"{path}[0]"), _series(item[1], f"{path}[1]"), _str(item[2], f"{path}[2]"))
        if key in counts:
            raise _Refused(f"invalid ({path}: a (tick, series, metric) appears twice)")
        counts[key] = _int(item[3], f"{path}[3]")
    latency: dict[Any, dict[float, int]] = {}
    for i, item in enumerate(_list(a["latency"], "pipeline.aggregator.latency")):
        path = f"pipeline.aggregator.latency[{i}]"
        if not (isinstance(item, list) and len(item) == 3):
            raise _bad(path, "[tick_ms, series, [[latency_ms, count], ...]]", item)
        lkey = (_int(item[0], f"{path}[0]"), _series(item[1], f"{path}[1]"))
        hist: dict[float, int] = {}
        for k, pair in enumerate(_list(item[2], f"{path}[2]")):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise _bad(f"{path}[2][{k}]", "a [latency_ms, count] pair", pair)
            ms = _float(pair[0], f"{path}[2][{k}][0]")
            if ms < 0 or ms in hist:
                raise _bad(f"{path}[2][{k}][0]", "a distinct latency >= 0", pair[0])
            hist[ms] = _int(pair[1], f"{path}[2][{k}][1]", 0)
        if lkey in latency:
            raise _Refused(f"invalid ({path}: a (tick, series) appears twice)")
        latency[lkey] = hist
    return {"counts": counts, "latency": latency}


def _unsent(value: Any) -> dict[str, list[Datum]]:
    out: dict[str, list[Datum]] = {}
    for i, item in enumerate(_list(value, "unsent")):
        batch = _obj(item, f"unsent[{i}]", frozenset({"batch_id", "datums"}))
        batch_id = _str(batch["batch_id"], f"unsent[{i}].batch_id")
        if batch_id in out:
            raise _Refused(f"invalid (unsent[{i}]: batch {_short(batch_id)} appears twice)")
        datums = _list(batch["datums"], f"unsent[{i}].datums")
        out[batch_id] = [_datum_from(d, f"unsent[{i}].datums[{k}]") for k, d in enumerate(datums)]
    return out


def _datum_from(value: Any, path: str) -> Datum:
    d = _obj(value, path, _DATUM_KEYS)
    values = tuple(_float(v, f"{path}.values[{i}]") for i, v in enumerate(_list(d["values"], f"{path}.values")))
    counts = tuple(_float(c, f"{path}.counts[{i}]") for i, c in enumerate(_list(d["counts"], f"{path}.counts")))
    if len(values) != len(counts):
        raise _Refused(f"invalid ({path}: {len(values)} values but {len(counts)} counts)")
    return Datum(
        name=_str(d["name"], f"{path}.name"),
        dimensions=_str_pairs(d["dimensions"], f"{path}.dimensions"),
        timestamp_ms=_int(d["timestamp_ms"], f"{path}.timestamp_ms"),
        unit=_str(d["unit"], f"{path}.unit"),
        value=None if d["value"] is None else _float(d["value"], f"{path}.value"),
        values=values,
        counts=counts,
    )
