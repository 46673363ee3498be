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
        except msgspec.DecodeError:
            kind = response.headers.get("Content-Type") or "no content type"
            msg = (
                f"HTTP {response.status_code} on {response_path(response)}: "
                f"the body is not JSON ({kind})"
            )
            raise RetryableError(msg) from None
        response._nylas_body = body  # type: ignore[attr-defined]
    return body


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


class CursorPaginator(BaseAPIPaginator["str | None"]):
    """`next_cursor` → `page_token`, until the cursor is null or empty.

    A short (even empty) page does not end the list while a cursor follows, and a cursor
    seen before ends the sync with a clear error instead of looping forever.
    """

    def __init__(self) -> None:
        """Start before the first page."""
        super().__init__(None)
        self._seen: set[str] = set()

    @override
    def get_next(self, response: requests.Response) -> str | None:
        """The next page token, or None at the end of the list."""
        cursor = response_body(response).get("next_cursor") or None
        if cursor is not None:
            if cursor in self._seen:
                msg = (
                    f"Nylas returned a page cursor it had already returned while listing "
                    f"{response_path(response)}; stopping instead of looping forever"
                )
                raise RepeatedCursorError(msg)
            self._seen.add(cursor)
        return cursor


class OffsetPagePaginator(BaseAPIPaginator[int]):
    """`limit`/`offset` paging for the admin lists: ends on a page shorter than its limit."""

    def __init__(self, limit: int) -> None:
        """Start at offset 0 asking for `limit` records a page."""
        super().__init__(0)
        self._limit = limit

    @override
    def get_next(self, response: requests.Response) -> int | None:
        """The next offset: past what this page actually held."""
        body = response_body(response)
        count = len(page_records(body) or ())
        # The server echoes the limit it applied, which may be lower than the one asked for.
        applied = body.get("limit") if isinstance(body, dict) else None
        if count == 0 or count < (applied or self._limit):
            return None
        return int(self.current_value) + count


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
