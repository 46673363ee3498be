"""Deterministic hashing, id and time helpers shared by the dataset generators."""

from __future__ import annotations

import base64
import calendar
import hashlib
import random
from datetime import datetime, timezone
from typing import Any, TypeVar

Record = dict[str, Any]
T = TypeVar("T")

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def digest(*parts: object) -> bytes:
    """SHA-256 of the parts, joined with a separator no part contains."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()


def rng(*parts: object) -> random.Random:
    """A PRNG seeded from the parts; stable across runs and Python processes."""
    # Seeding with bytes (not a str hash) keeps it independent of PYTHONHASHSEED.
    return random.Random(digest(*parts))  # noqa: S311 - test data, not crypto


def base36_id(*parts: object, length: int = 25) -> str:
    """A Nylas-style lowercase base36 id such as ``5d3qmne77v32r8l4phyuksl2x``."""
    value = int.from_bytes(digest(*parts), "big")
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 36)
        chars.append(_B36[rem])
    return "".join(chars)


def hex_id(*parts: object, length: int = 16) -> str:
    """A Gmail-style hex id such as ``18e2b1c0a1f3d4e5``."""
    return digest(*parts).hex()[:length]


def ms_id(*parts: object) -> str:
    """A long Microsoft Graph-style id (``AAMkAD...``), unique per parts."""
    raw = digest(*parts) + digest("ms", *parts)[:18]
    return "AAMkAD" + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") + "AAA="


def uuid_like(*parts: object) -> str:
    """A deterministic version-4-shaped UUID string."""
    h = digest(*parts).hex()
    variant = "89ab"[int(h[16], 16) % 4]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def epoch(year: int, month: int, day: int) -> int:
    """Epoch seconds of midnight UTC on the given date."""
    return calendar.timegm((year, month, day, 0, 0, 0))


def iso_date(ts: int) -> str:
    """``YYYY-MM-DD`` of an epoch timestamp, in UTC."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d")


def day_start(ts: int) -> int:
    """Midnight UTC of the day containing ``ts``."""
    return ts - ts % 86400


def pick(r: random.Random, items: tuple[T, ...] | list[T]) -> T:
    """A deterministic choice that reads clearer than ``r.choice`` at call sites."""
    return items[r.randrange(len(items))]
