"""Validation helpers mirroring lull-proto's ``validate`` module: each
raises :class:`~lull.errors.ValidationError` naming the field and the rule."""

from __future__ import annotations

import json
import math
from typing import Any, Optional, Sized

from .errors import ValidationError

#: Largest accepted payload (PROTOCOL.md: 256 KiB).
MAX_PAYLOAD = 256 * 1024
#: Longest id or short text, in bytes.
MAX_ID_LEN = 128
#: Longest free text, in bytes.
MAX_TEXT_LEN = 4096

_TOKEN_EXTRA = set("-_:@")


def number(field: str, v: Any) -> float:
    """``v`` as a finite float; booleans and non-numbers are refused."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValidationError(field, "must be a number", v)
    f = float(v)
    if not math.isfinite(f):
        raise ValidationError(field, "must be a finite number", v)
    return f


def non_negative(field: str, v: Any) -> float:
    """A finite number ``>= 0``."""
    f = number(field, v)
    if f < 0:
        raise ValidationError(field, "must be >= 0", v)
    return f


def non_negative_opt(field: str, v: Any) -> None:
    """Like :func:`non_negative` when ``v`` is not ``None``."""
    if v is not None:
        non_negative(field, v)


def in_range(field: str, v: Any, lo: float, hi: float) -> float:
    """A finite number in ``lo..hi``."""
    f = number(field, v)
    if f < lo or f > hi:
        raise ValidationError(field, f"must be in {lo:g}..{hi:g}", v)
    return f


def in_range_opt(field: str, v: Any, lo: float, hi: float) -> None:
    """Like :func:`in_range` when ``v`` is not ``None``."""
    if v is not None:
        in_range(field, v, lo, hi)


def integer(field: str, v: Any) -> int:
    """An ``int`` (not a bool)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValidationError(field, "must be an integer", v)
    return v


def count_opt(field: str, v: Any) -> None:
    """A non-negative integer, or ``None``."""
    if v is not None and integer(field, v) < 0:
        raise ValidationError(field, "must be >= 0", v)


def int_range(field: str, v: Any, lo: int, hi: int) -> int:
    """An integer in ``lo..hi``."""
    i = integer(field, v)
    if i < lo or i > hi:
        raise ValidationError(field, f"must be {lo}..{hi}", v)
    return i


def boolean_opt(field: str, v: Any) -> None:
    """A ``bool``, or ``None``."""
    if v is not None and not isinstance(v, bool):
        raise ValidationError(field, "must be true or false", v)


def text(field: str, v: Any, max_len: int) -> str:
    """A string of at most ``max_len`` UTF-8 bytes."""
    if not isinstance(v, str):
        raise ValidationError(field, "must be a string", v)
    n = len(v.encode("utf-8"))
    if n > max_len:
        raise ValidationError(field, f"must be at most {max_len} bytes, got {n}")
    return v


def text_opt(field: str, v: Any, max_len: int) -> None:
    """Like :func:`text` when ``v`` is not ``None``."""
    if v is not None:
        text(field, v, max_len)


def ident(field: str, v: Any) -> str:
    """A non-blank id of at most 128 bytes."""
    s = text(field, v, MAX_ID_LEN)
    if not s.strip():
        raise ValidationError(field, "is required (a non-empty string)")
    return s


def subject_token(field: str, v: Any) -> str:
    """A subject token: 1..128 bytes of letters, digits, ``-``, ``_``, ``:``, ``@``."""
    s = ident(field, v)
    bad = next((c for c in s if not ((c.isascii() and c.isalnum()) or c in _TOKEN_EXTRA)), None)
    if bad is not None:
        raise ValidationError(
            field, f"must use only letters, digits, '-', '_', ':' or '@', found {bad!r}"
        )
    return s


def max_items(field: str, items: Sized, limit: int) -> None:
    """At most ``limit`` entries."""
    if len(items) > limit:
        raise ValidationError(field, f"must have at most {limit} items, got {len(items)}")


def payload(body: Any, limit: int = MAX_PAYLOAD) -> bytes:
    """``body`` as compact JSON bytes, at most ``limit`` bytes."""
    try:
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise ValidationError("report", f"must be JSON-serialisable ({e})") from e
    if len(data) > limit:
        raise ValidationError("payload", f"must be at most {limit} bytes, got {len(data)}")
    return data


def optional_str(v: Optional[str]) -> Optional[str]:
    """``None`` for ``None`` or an empty string, else the string."""
    return v if v else None
