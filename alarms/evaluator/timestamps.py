"""Times as CloudWatch takes them: ISO 8601 or epoch seconds in, ISO 8601 UTC out."""
from __future__ import annotations

import math
from datetime import datetime, timezone

MILLISECONDS_LOOK_ALIKE = 1e11  # epoch seconds this large are past the year 5000


def parse_time(value: str | float | int | datetime) -> float:
    """Epoch seconds from ISO 8601 (naive means UTC), epoch seconds, or a datetime."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time, got {value!r}")
    if isinstance(value, (int, float)):
        return _epoch_seconds(float(value))
    if isinstance(value, datetime):
        moment = value
    else:
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _epoch_seconds(number)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected ISO 8601 or epoch seconds, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _epoch_seconds(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"expected a time, got {value!r}")
    # Epoch milliseconds (rollguard's internal unit) passed as seconds would land tens of
    # thousands of years ahead; say so instead of silently evaluating nothing.
    if abs(value) >= MILLISECONDS_LOOK_ALIKE:
        raise ValueError(f"{value:.0f} looks like epoch milliseconds; CloudWatch timestamps are epoch seconds")
    return value


def format_time(epoch: float) -> str:
    """ISO 8601 UTC with a Z, seconds precision."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
