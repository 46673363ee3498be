"""Paging bounds and the memory estimate, on the paginators alone."""

from __future__ import annotations

import json
import tracemalloc

import msgspec
import pytest
import requests

from tap_nylas import pagination
from tap_nylas.errors import RepeatedCursorError
from tap_nylas.pagination import CursorPaginator, OffsetPagePaginator, memory_cost

MESSAGE = {
    "id": "18d5a6b8c9",
    "thread_id": "t1",
    "subject": "Quarterly numbers, again",
    "from": [{"name": "A B", "email": "a@example.com"}],
    "to": [{"name": "C", "email": "c@example.com"}] * 3,
    "date": 1_700_000_000,
    "unread": True,
    "folders": ["INBOX", "UNREAD"],
    "snippet": "x" * 100,
    "body": "<p>" + "y" * 3000 + "</p>",
}


def page(body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    response.url = "https://nylas.test/v3/grants/g1/messages"
    return response


@pytest.mark.parametrize(
    "records",
    [
        [{"id": str(n)} for n in range(200)],
        [{"id": str(n), "a": 1, "b": "x", "c": [1, 2, 3], "d": {"e": None}} for n in range(200)],
        [MESSAGE] * 200,
    ],
    ids=["tiny", "small", "mail"],
)
def test_the_memory_estimate_is_near_what_decoding_costs(records: list[dict]) -> None:
    # A budget counted in JSON bytes let 5.5 MB of tiny records cost 121 MB of objects.
    content = json.dumps({"data": records}).encode()
    tracemalloc.start()
    decoded = msgspec.json.decode(content)
    cost, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert decoded
    assert cost * 0.8 <= memory_cost(content) <= cost * 3


def test_empty_pages_with_new_cursors_end_after_a_bound() -> None:
    paginator = CursorPaginator()
    for n in range(pagination.MAX_EMPTY_PAGES_IN_A_ROW - 1):
        paginator.advance(page({"data": [], "next_cursor": f"c{n}"}))
    with pytest.raises(RepeatedCursorError, match="does not end"):
        paginator.advance(page({"data": [], "next_cursor": "last"}))


def test_a_few_empty_pages_between_full_ones_go_on() -> None:
    paginator = CursorPaginator()
    for n in range(3 * pagination.MAX_EMPTY_PAGES_IN_A_ROW):
        records = [{"id": str(n)}] if n % 5 == 0 else []
        paginator.advance(page({"data": records, "next_cursor": f"c{n}"}))
    assert not paginator.finished


@pytest.mark.parametrize(("echoed", "goes_on"), [(1000, False), ("200", False), (100, True)])
def test_an_echoed_limit_counts_only_as_an_integer_below_the_one_asked(
    echoed: object, goes_on: bool
) -> None:
    paginator = OffsetPagePaginator(200)
    paginator.advance(page({"data": [{"id": str(n)} for n in range(100)], "limit": echoed}))
    assert paginator.finished is not goes_on


def test_the_same_full_offset_page_twice_ends_the_list() -> None:
    paginator = OffsetPagePaginator(2)
    same = {"data": [{"id": "a"}, {"id": "b"}]}
    paginator.advance(page(same))
    with pytest.raises(RepeatedCursorError, match="the same page again"):
        paginator.advance(page(same))
