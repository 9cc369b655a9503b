"""How the disk store lays pending joins out as RocksDB keys and values (docs/checkpoint-format.md,
"Disk store"). Bytes only, read back by these functions only: nothing in a store file is code.

Keys (big-endian numbers, so byte order is the order expiry needs):

    C | endpoint id (2) | inference id            -> capture entry
    T | endpoint id (2) | arrival s (5) | inf. id -> b""   (captures by first arrival)
    L | endpoint id (2) | inference id            -> pending label
    U | endpoint id (2) | arrival s (5) | inf. id -> b""   (labels by arrival)

The inference id is 0x01 + 16 bytes for a canonical UUID, 0x02 + UTF-8 for any other id. An
endpoint id indexes the store's endpoint list (carried by each checkpoint), 0xFFFF is "none"
(a label that named no endpoint). A value is one or more elements, each a length byte (1..19)
followed by that many bytes of an unsigned little-endian integer: a capture entry with several
captures (production and shadow) has several elements, a pending label has one.
"""
from __future__ import annotations

CAPTURE, CAPTURE_TIME, LABEL, LABEL_TIME = b"C", b"T", b"L", b"U"
NO_ENDPOINT = 0xFFFF
ARRIVAL_BYTES = 5
MAX_ELEMENT_BYTES = 19  # a capture entry is at most 150 bits
_UUID, _TEXT = b"\x01", b"\x02"
_ID_AT = 3  # kind (1) + endpoint id (2)
_TIME_ID_AT = _ID_AT + ARRIVAL_BYTES


def id_bytes(key: str | bytes) -> bytes:
    return _UUID + key if key.__class__ is bytes else _TEXT + key.encode()  # type: ignore[operator, union-attr]


def id_of(raw: bytes) -> str | bytes:
    if raw[:1] == _UUID and len(raw) == 17:
        return raw[1:]
    if raw[:1] == _TEXT:
        return raw[1:].decode()
    raise ValueError(f"store key holds no inference id: {raw[:40]!r}")


def endpoint_bytes(endpoint_id: int) -> bytes:
    return endpoint_id.to_bytes(2, "big")


def time_key(time_kind: bytes, endpoint: bytes, arrival_s: int, ident: bytes) -> bytes:
    return time_kind + endpoint + arrival_s.to_bytes(ARRIVAL_BYTES, "big") + ident


def time_bound(time_kind: bytes, endpoint: bytes, arrival_s: int) -> bytes:
    """The first index key of `endpoint` at `arrival_s` (an iteration bound)."""
    return time_kind + endpoint + max(arrival_s, 0).to_bytes(ARRIVAL_BYTES, "big")


def primary_of(kind: bytes, time_key_: bytes) -> bytes:
    """The entry key an index key points to."""
    return kind + time_key_[1:_ID_AT] + time_key_[_TIME_ID_AT:]


def arrival_of(time_key_: bytes) -> int:
    return int.from_bytes(time_key_[_ID_AT:_TIME_ID_AT], "big")


def inference_id(primary: bytes) -> str | bytes:
    return id_of(primary[_ID_AT:])


def encode_value(value: int | tuple[int, ...]) -> bytes:
    if value.__class__ is int:
        n = (value.bit_length() + 7) // 8  # type: ignore[union-attr]
        return bytes((n,)) + value.to_bytes(n, "little")  # type: ignore[union-attr]
    out = bytearray()
    for e in value:  # type: ignore[union-attr]
        n = (e.bit_length() + 7) // 8
        out.append(n)
        out += e.to_bytes(n, "little")
    return bytes(out)


def decode_value(raw: bytes) -> int | tuple[int, ...]:
    if raw[0] == len(raw) - 1:
        return int.from_bytes(raw[1:], "little")
    out, i = [], 0
    while i < len(raw):
        n = raw[i]
        if n > MAX_ELEMENT_BYTES or i + 1 + n > len(raw):
            raise ValueError(f"store value is not a list of elements: {raw[:40]!r}")
        out.append(int.from_bytes(raw[i + 1:i + 1 + n], "little"))
        i += 1 + n
    return out[0] if len(out) == 1 else tuple(out)
