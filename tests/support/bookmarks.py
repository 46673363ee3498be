"""Bookmarks in STATE, for the tests of how the tap reads (and repairs) them."""

from __future__ import annotations

FUTURE = 4102444800  # 2100-01-01T00:00:00Z


def _values(state: dict, stream: str) -> list[object]:
    return [p.get("replication_key_value") for p in state["bookmarks"][stream]["partitions"]]
