"""Pages of a Nylas list: the decoded body, its records, and where the next page starts."""

from __future__ import annotations

import typing as t
from urllib.parse import urlparse

import msgspec
from singer_sdk.pagination import BaseAPIPaginator, SinglePagePaginator
from typing_extensions import override

from tap_nylas.errors import RepeatedCursorError, RetryableError

if t.TYPE_CHECKING:
    import requests

_decode_json = msgspec.json.Decoder().decode

#: Pages of one list (or one slice of it) before the tap stops following it: 10 million
#: records at 200 a page, past any real mailbox, so only a server that never ends hits it.
MAX_PAGES = 50_000
#: Empty pages in a row that still carry a cursor: a real list has a few at most (short
#: pages are documented), a server that never ends has them forever.
MAX_EMPTY_PAGES_IN_A_ROW = 20
#: What a decoded JSON value costs in memory beyond its bytes, roughly (tracemalloc: a
#: page of 200 small records costs 7-12x its JSON, one of 200 mail messages 1.6x).
VALUE_OVERHEAD_BYTES = 96


def response_path(response: requests.Response) -> str:
    """The path a response answers, for messages: never the query (it may hold tokens)."""
    return urlparse(response.url or "").path or "?"


def response_body(response: requests.Response) -> t.Any:
    """The decoded JSON body, parsed once per response and shared by parser and paginator.

    A body that is not JSON is an answer the tap does not understand: it is retried,
    never read as an empty page.
    """
    body = getattr(response, "_nylas_body", None)
    if body is None:
        try:
            body = _decode_json(response.content) if response.content else {}
        except (msgspec.DecodeError, RecursionError):  # not JSON, or nested past any sense
            kind = response.headers.get("Content-Type") or "no content type"
            msg = (
                f"HTTP {response.status_code} on {response_path(response)}: "
                f"the body is not JSON ({kind})"
            )
            raise RetryableError(msg) from None
        response._nylas_body = body  # type: ignore[attr-defined]
    return body


def memory_cost(content: bytes) -> int:
    """Bytes a decoded page holds in memory, estimated from its JSON without decoding it."""
    values = content.count(b",") + content.count(b"{") + content.count(b"[")
    return len(content) + VALUE_OVERHEAD_BYTES * values


def page_records(body: t.Any) -> list[dict] | None:
    """Records of a list response, whatever envelope Nylas chose for it; None if none.

    Nylas answers lists as `data: [...]`, as a bare array (scheduled messages per the
    spec), or nested one level down (`data.threads`, `data.schedules`, `data.items`).
    """
    if isinstance(body, list):
        return body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("items", "threads", "schedules"):
            if isinstance(data.get(key), list):
                return t.cast("list[dict]", data[key])
    return None


def checked_records(
    response: requests.Response, *, keys: tuple[str, ...], limit: int | None
) -> list[dict]:
    """The page's records, each a JSON object whose `keys` are text (or absent).

    Anything else is an answer the tap does not understand: retried, never read. A
    numeric key becomes its text (the Node SDK types `schedule_id` as a number).
    """
    records = page_records(response_body(response))
    problem = None
    if records is None:
        problem = "no list of records in it"
    elif not all(isinstance(r, dict) for r in records):
        problem = "records that are not JSON objects"
    elif limit is not None and len(records) > limit:
        problem = "more records than the limit asked"
    else:
        for record, key in [(r, k) for r in records for k in keys if type(r.get(k)) is not str]:
            value = record.get(key)
            if type(value) is int:
                record[key] = str(value)
            elif value is not None:
                problem = f"a record whose {key} is not text"
    if problem is not None:
        msg = f"HTTP {response.status_code} on {response_path(response)}: {problem}"
        raise RetryableError(msg)
    return t.cast("list[dict]", records)


class CursorPaginator(BaseAPIPaginator["str | None"]):
    """`next_cursor` → `page_token`, until the cursor is null or empty.

    A short (even empty) page does not end the list while a cursor follows, and a cursor
    seen before ends the sync with a clear error instead of looping forever.
    """

    def __init__(self, start: str | None = None) -> None:
        """Start before the first page, or at the page of cursor `start`."""
        super().__init__(start)
        self._seen: set[str] = set()
        self._pages = 0
        self._empty_in_a_row = 0

    @override
    def get_next(self, response: requests.Response) -> str | None:
        """The next page token, or None at the end of the list."""
        body = response_body(response)
        cursor = (body.get("next_cursor") if isinstance(body, dict) else None) or None
        if cursor is None:
            return None
        if not isinstance(cursor, str):
            msg = f"a page cursor that is not text on {response_path(response)}"
            raise RetryableError(msg)
        where = response_path(response)
        if cursor in self._seen:
            msg = (
                f"Nylas returned a page cursor it had already returned while listing "
                f"{where}; stopping instead of looping forever"
            )
            raise RepeatedCursorError(msg)
        self._seen.add(cursor)
        self._pages += 1
        self._empty_in_a_row = 0 if page_records(body) else self._empty_in_a_row + 1
        if self._empty_in_a_row >= MAX_EMPTY_PAGES_IN_A_ROW or self._pages >= MAX_PAGES:
            msg = (
                f"listing {where} does not end ({self._pages} pages, the last "
                f"{self._empty_in_a_row} empty, each with a new cursor); stopping"
            )
            raise RepeatedCursorError(msg)
        return cursor


class OffsetPagePaginator(BaseAPIPaginator[int]):
    """`limit`/`offset` paging for the admin lists: ends on a page shorter than its limit."""

    def __init__(self, limit: int) -> None:
        """Start at offset 0 asking for `limit` records a page."""
        super().__init__(0)
        self._limit = limit
        self._pages = 0
        self._last_ids: list[t.Any] = []

    @override
    def get_next(self, response: requests.Response) -> int | None:
        """The next offset: past what this page actually held."""
        body = response_body(response)
        records = page_records(body) or []
        # The server echoes the limit it applied, which may be lower than the one asked
        # for; never higher (an echoed 1000 for 200 asked would end the list early).
        applied = body.get("limit") if isinstance(body, dict) else None
        limit = self._limit
        if type(applied) is int and 0 < applied < limit:
            limit = applied
        if not records or len(records) < limit:
            return None
        ids = [r.get("id") if isinstance(r, dict) else None for r in records]
        self._pages += 1
        if ids == self._last_ids or self._pages >= MAX_PAGES:
            msg = (
                f"listing {response_path(response)} does not end ({self._pages} full pages"
                f"{', the same page again' if ids == self._last_ids else ''}); stopping"
            )
            raise RepeatedCursorError(msg)
        self._last_ids = ids
        return int(self.current_value) + len(records)


#: Paging styles a stream declares: "cursor" for grant-scoped lists, "offset" for the
#: application's lists, None for an unpaginated answer.
Paging = t.Literal["cursor", "offset"] | None


def new_paginator(paging: Paging, page_size: int) -> BaseAPIPaginator:
    """A paginator for the paging style."""
    if paging == "cursor":
        return CursorPaginator()
    if paging == "offset":
        return OffsetPagePaginator(page_size)
    return SinglePagePaginator()


def paging_params(paging: Paging, page_size: int, token: t.Any) -> dict[str, t.Any]:
    """The query parameters that ask for the page at `token`."""
    if paging == "cursor":
        return {"limit": page_size, "page_token": token}
    if paging == "offset":
        return {"limit": page_size, "offset": token}
    return {}
