"""Query parsing, errors, cursors and paging as the Nylas API does them."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .util import Record, digest

# Params that shape a page but not the result set; a cursor stays valid
# when they change between pages.
_NON_FILTER_PARAMS = frozenset({"page_token", "limit", "select", "fields"})


class ApiError(Exception):
    """An error answered with the Nylas error envelope."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        provider_error: Record | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.provider_error = provider_error
        self.headers = headers or {}

    def body(self, request_id: str) -> Record:
        """The JSON error body."""
        error: Record = {"type": self.error_type, "message": self.message}
        if self.provider_error is not None:
            error["provider_error"] = self.provider_error
        return {"request_id": request_id, "error": error}


def bad_request(message: str) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError(400, "invalid_request_error", message)


def not_found(message: str) -> ApiError:
    """A 404 ``not_found_error``."""
    return ApiError(404, "not_found_error", message)


@dataclass(frozen=True)
class Query:
    """The parsed query string (every value of every parameter)."""

    params: dict[str, list[str]]

    def one(self, name: str) -> str | None:
        """The first value of a parameter, or None."""
        values = self.params.get(name)
        return values[0] if values else None

    def many(self, name: str) -> list[str]:
        """All values, also splitting comma lists (``a=1&a=2`` or ``a=1,2``)."""
        return [v for raw in self.params.get(name, []) for v in raw.split(",") if v]

    def integer(self, name: str) -> int | None:
        """An integer parameter, None when absent; 400 when it does not parse."""
        raw = self.one(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise bad_request(f"{name} must be an integer") from None

    def integer_or(self, name: str, default: int) -> int:
        """An integer parameter with a default."""
        value = self.integer(name)
        return default if value is None else value

    def boolean(self, name: str) -> bool | None:
        """A ``true``/``false`` parameter; None when absent."""
        raw = self.one(name)
        if raw is None:
            return None
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise bad_request(f"{name} must be true or false")

    def limit(self, default: int, maximum: int) -> int:
        """The ``limit`` parameter, validated against the endpoint's maximum."""
        value = self.integer_or("limit", default)
        if value < 1:
            raise bad_request("limit must be >= 1")
        if value > maximum:
            raise bad_request(f"limit must be <= {maximum}")
        return value

    def filter_hash(self, scope: str) -> str:
        """A short hash of the filters, binding a cursor to its query."""
        items = sorted((k, tuple(v)) for k, v in self.params.items() if k not in _NON_FILTER_PARAMS)
        return digest(scope, items).hex()[:12]


def encode_cursor(offset: int, fhash: str) -> str:
    """An opaque cursor for the page starting at ``offset``."""
    raw = json.dumps({"o": offset, "h": fhash}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(token: str, fhash: str) -> int:
    """The offset in a cursor; 400 when malformed or minted for other filters."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
        offset, minted_for = int(payload["o"]), str(payload["h"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise bad_request("Invalid page_token") from None
    if minted_for != fhash or offset < 0:
        raise bad_request("page_token does not match the query parameters of this request")
    return offset


def page_size(limit: int, offset: int, fhash: str) -> int:
    """How many items this page holds; about one page in three is short."""
    h = digest(fhash, offset)[0]
    if h % 3 or limit <= 3:
        return limit
    # Like the real API, a page can be short while a cursor still follows.
    return limit - 1 - (h // 3) % 3


@dataclass(frozen=True)
class CursorPage:
    """One page of a cursor-paginated list."""

    items: list[Any]
    next_cursor: str | None


def cursor_page(items: Sequence[Any], query: Query, limit: int, scope: str) -> CursorPage:
    """Slice ``items`` at the request's cursor."""
    fhash = query.filter_hash(scope)
    token = query.one("page_token")
    offset = decode_cursor(token, fhash) if token else 0
    end = offset + page_size(limit, offset, fhash)
    nxt = encode_cursor(end, fhash) if end < len(items) else None
    return CursorPage(list(items[offset:end]), nxt)


def offset_page(items: list[Any], query: Query) -> tuple[list[Any], int, int]:
    """Slice ``items`` by ``limit``/``offset`` (admin endpoints)."""
    limit = query.limit(10, 200)
    offset = query.integer_or("offset", 0)
    if offset < 0:
        raise bad_request("offset must be >= 0")
    return items[offset : offset + limit], limit, offset


def select_fields(record: Record, query: Query) -> Record:
    """Apply ``select=a,b`` to the record's top-level fields."""
    wanted = query.many("select")
    if not wanted:
        return record
    return {k: record[k] for k in wanted if k in record}
