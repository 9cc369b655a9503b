"""``/v1/status``: the daemon's status plus alarm states and the record rate, with free text
bounded so a record's contents cannot be read back through it. Pure."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: longest error line /v1/status carries (publisher errors can quote record values)
MAX_TEXT_CHARS = 200
#: longest dimension value /v1/status carries (capture headers have no length limit)
MAX_DIMENSION_CHARS = 256
#: publisher rejections listed in /v1/status, newest last
MAX_REJECTIONS_SHOWN = 10

# a quoted literal, or an unbroken run, long enough to be record content rather than a name
_LONG_QUOTED_RE = re.compile(r"'[^']{65,}'|\"[^\"]{65,}\"")
_LONG_RUN_RE = re.compile(r"\S{65,}")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ``...`` marking a cut."""
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def public_text(text: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    """An error line fit to serve: one line, long quoted literals and unbroken runs replaced by
    their length, at most ``limit`` characters.

    Publisher errors quote what CloudWatch refused (``dimension 'k'='<value>'``, or the value
    echoed in CloudWatch's own message) and a segment value is record content up to
    ``max_record_bytes``; names and error codes stay readable.
    """
    if text is None:
        return None
    line = " ".join(str(text).splitlines())
    line = _LONG_QUOTED_RE.sub(lambda m: f"{m.group(0)[0]}<{len(m.group(0)) - 2} chars>{m.group(0)[0]}", line)
    line = _LONG_RUN_RE.sub(lambda m: f"<{len(m.group(0))} chars>", line)
    return clip(line, limit)


def _public_series(series: Any) -> Any:
    if not isinstance(series, Mapping) or not isinstance(series.get("dimensions"), Mapping):
        return series
    dims = {str(k): clip(str(v), MAX_DIMENSION_CHARS) for k, v in series["dimensions"].items()}
    return {**series, "dimensions": dims}


def _is_free_text(key: str, value: Any) -> bool:
    return isinstance(value, str) and key.endswith(("error", "reason"))


def _public_publisher(pub: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: public_text(v) if _is_free_text(k, v) else v for k, v in pub.items()}
    if "rejections" in out:
        out["rejections"] = [[list(ids), public_text(message)]
                             for ids, message in list(out["rejections"] or [])[-MAX_REJECTIONS_SHOWN:]]
    return out


def status_document(status: Mapping[str, Any], alarms: Mapping[str, Any], records_per_second: float | None) -> dict[str, Any]:
    """``/v1/status``: the daemon's status plus cached alarm states and the record rate.

    Free text that can carry record contents is bounded here: dimension values are clipped to
    :data:`MAX_DIMENSION_CHARS`; ``*error`` and ``*reason`` strings (the daemon's
    ``not_ready_reason``, the publisher's ``last_error``, the alarm poll's ``error``) go through
    :func:`public_text`; only the last :data:`MAX_REJECTIONS_SHOWN` rejections are listed.
    """
    doc: dict[str, Any] = {k: public_text(v) if _is_free_text(k, v) else v for k, v in status.items()}
    doc.update(records_per_second=records_per_second, alarms=dict(alarms))
    if isinstance(doc.get("series"), list):
        doc["series"] = [_public_series(s) for s in doc["series"]]
    if isinstance(doc.get("publisher"), Mapping):
        doc["publisher"] = _public_publisher(doc["publisher"])
    if doc["alarms"].get("error") is not None:
        doc["alarms"]["error"] = public_text(doc["alarms"]["error"])
    return doc
