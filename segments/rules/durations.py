"""Durations as editors write them: ``90s``, ``30m``, ``48h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$")
# Windows and ages are subtracted from and added to real dates; past a century the
# arithmetic can leave datetime's range (years 1..9999), and no rule needs that long.
MAX_DURATION = timedelta(days=36500)


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    match = _PATTERN.match(text)
    if match is None:
        raise DurationError(
            f"{text!r} is not a duration; write a whole number and a unit: s, m, h, d or w (e.g. 48h)"
        )
    digits, unit = match.group(1).lstrip("0") or "0", match.group(2)
    # Length first: int() refuses strings over 4300 digits with a plain ValueError.
    amount = int(digits) if len(digits) <= 12 else None
    if amount == 0:
        raise DurationError("a duration must be longer than zero")
    if amount is None or amount * _UNITS[unit] > MAX_DURATION.total_seconds():
        raise DurationError("a duration must be at most 36500d (100 years)")
    return timedelta(seconds=amount * _UNITS[unit])


def format_duration(value: timedelta) -> str:
    """The form editors write: days from 3 days up, else hours, minutes or seconds
    (so "48h" stays "48h" and "7d" stays "7d")."""
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0 and seconds >= 3 * 86400:
        return f"{seconds // 86400}d"
    for unit in ("h", "m"):
        size = _UNITS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
