"""Property: whatever JSON, shape, size or status a server answers, a page read either
yields records (objects) or raises one of the tap's own errors, never anything else.
"""

from __future__ import annotations

import json
import typing as t

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tap_nylas.errors import (
    ApiKeyRejectedError,
    ApplicationRequestError,
    PartitionFailedError,
    PartitionUnavailableError,
    RepeatedCursorError,
    RetryableError,
)
from tap_nylas.tap import TapNylas
from tests.support import BASE_CONFIG

#: What a page read may raise: each ends in a retry, a partition's failure or one line.
THE_TAPS_OWN = (
    ApiKeyRejectedError,
    ApplicationRequestError,
    PartitionFailedError,
    PartitionUnavailableError,
    RepeatedCursorError,
    RetryableError,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
records = st.one_of(
    json_values,
    st.fixed_dictionaries({"id": json_values}, optional={"date": json_values}),
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"data": st.one_of(st.lists(records, max_size=8), json_values)},
        optional={"next_cursor": json_values, "limit": json_values, "error": json_values},
    ),
)
statuses = st.sampled_from([200, 200, 200, 204, 301, 400, 401, 403, 404, 429, 500, 503])


def response(status: int, content: bytes) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = content
    answer.url = "https://nylas.test/v3/grants/g1/messages?limit=200"
    answer.headers["Content-Type"] = "application/json"
    return answer


@pytest.fixture(scope="module")
def tap() -> TapNylas:
    return TapNylas(config={**BASE_CONFIG, "max_retries": 0})


@pytest.mark.parametrize("stream_name", ["messages", "grants", "scheduled_messages"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pages=st.lists(st.tuples(statuses, bodies), min_size=1, max_size=6), raw=st.binary(max_size=40)
)
def test_a_page_read_yields_records_or_the_taps_own_error(
    tap: TapNylas, stream_name: str, pages: list[tuple[int, t.Any]], raw: bytes
) -> None:
    stream = tap.streams[stream_name]
    context = None if stream_name == "grants" else {"grant_id": "g1"}
    piece = stream.new_slice(context)  # type: ignore[attr-defined]
    answers = [response(status, json.dumps(body).encode()) for status, body in pages]
    answers.append(response(200, raw))  # and once, bytes that may not be JSON at all
    stream.send = lambda prepared: answers.pop(0) if answers else response(200, b"{}")  # type: ignore[method-assign]
    for _ in range(len(pages) + 2):
        if piece.finished:
            break
        try:
            found = stream.fetch_slice_page(piece)  # type: ignore[attr-defined]
        except THE_TAPS_OWN:
            return
        assert isinstance(found, list)
        assert all(isinstance(record, dict) for record in found)
