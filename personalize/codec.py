"""JSON in and out of the tracking path: fast, and only what PostgreSQL can store.

orjson decodes and encodes a 500-event batch several times faster than the
standard library, which mattered once the database work per batch had shrunk to
a few statements. The standard library stays as the fallback for the one thing
JSON allows and orjson does not keep: integers beyond 64 bits (jsonb stores them;
orjson refuses to encode them and decodes them as floats).

PostgreSQL cannot store the NUL character (``\\u0000``) in text or jsonb, and
``NaN``/``Infinity`` are not JSON: a message carrying them is rejected with
the field named (a 400 per message, not a failed batch and never a 500).
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (\\u0000)"
# What a NUL becomes in the copy of a rejected message kept for replay.
NUL_REPLACEMENT = "\ufffd"


class InvalidJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: JSON allows it, no column can hold it
        raise InvalidJson(f"{text} is beyond a double's range")
    return value


# A run of 19 digits may be an integer beyond 64 bits (-9223372036854775809 has
# 19), which orjson would decode as a float, losing digits; a document holding
# one takes the standard library. Found by mapping every digit to "0" and looking
# for 19 zeros: two passes in C, ten times faster than a regular expression.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def _may_hold_long_integer(raw: bytes) -> bool:
    return _LONG_DIGITS in raw.translate(_DIGITS_AS_ZERO)


def decode_json(raw: bytes) -> Any:
    """The document in ``raw``; :class:`InvalidJson` if it is not valid JSON (UTF-8)."""
    if not _may_hold_long_integer(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        # Lone surrogates ("\ud800") decode in Python but are not Unicode text.
        json.dumps(value, ensure_ascii=False).encode()
    except (ValueError, UnicodeError) as exc:
        raise InvalidJson(str(exc)) from None
    return value


def _plain(value: Any) -> Any:
    """What neither encoder writes by itself: dates, decimals and ids as text,
    dataclasses (validated messages) as objects (orjson writes these natively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_json(value: Any) -> bytes:
    """Compact JSON, as a client sends it (the size limits are measured on this);
    also the rows and inbox batches personalize writes to PostgreSQL."""
    try:
        return orjson.dumps(value, default=_plain)
    except orjson.JSONEncodeError:
        return json.dumps(
            value, default=_plain, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()


def nul_path(value: Any, path: str = "") -> str | None:
    """The first field (``properties.note``, ``products[2]``) holding a NUL, in a
    key or a string; None if there is none."""
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if NUL in str(key):
                return here.replace(NUL, "\\u0000")
            found = nul_path(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def without_nul(value: Any) -> Any:
    """``value`` with every NUL replaced, so that it can be stored."""
    if isinstance(value, str):
        return value.replace(NUL, NUL_REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def has_nul(encoded: bytes) -> bool:
    """Whether JSON from :func:`encode_json` holds a NUL (always escaped there)."""
    return b"\\u0000" in encoded
