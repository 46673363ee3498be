"""Both Nylas paging styles, per-endpoint limits and odd list envelopes."""

from __future__ import annotations

import pytest

from tap_nylas.errors import RunIncompleteError
from tests.support import run_sync
from tests.support.fake_api import FakeNylas, query


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    return FakeNylas(requests_mock)  # type: ignore[arg-type]


def test_grants_page_by_offset_until_a_short_page(api: FakeNylas, config: dict) -> None:
    for n in range(450):
        api.add_grant(f"g{n:03}", status="invalid")  # invalid: no grant-scoped calls

    result = run_sync(config, streams=["grants"])

    assert [r["id"] for r in result.records["grants"]] == [f"g{n:03}" for n in range(450)]
    offsets = [query(r)["offset"][0] for r in api.requests_to("/v3/grants")]
    assert offsets == ["0", "200", "400"]
    assert {query(r)["limit"][0] for r in api.requests_to("/v3/grants")} == {"200"}


def test_offset_paging_follows_the_limit_the_server_applied(api: FakeNylas, config: dict) -> None:
    api.max_offset_limit = 100  # asked for 200, served 100: not the end of the list
    for n in range(250):
        api.add_grant(f"g{n:03}", status="invalid")

    result = run_sync(config, streams=["grants"])

    assert len(result.records["grants"]) == 250
    assert [query(r)["offset"][0] for r in api.requests_to("/v3/grants")] == ["0", "100", "200"]


def test_cursor_paging_goes_on_through_short_and_empty_pages(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    pages = [
        [{"id": "m1"}, {"id": "m2"}, {"id": "m3"}],
        [{"id": "m4"}],  # short page, cursor follows
        [],  # empty page, cursor follows
        [{"id": "m5"}, {"id": "m6"}],
    ]
    api.pages["g1", "messages"] = pages
    config["max_requests_per_grant"] = 1  # one cursor, never split into time ranges

    result = run_sync(config, streams=["messages"])

    assert [r["id"] for r in result.records["messages"]] == ["m1", "m2", "m3", "m4", "m5", "m6"]
    tokens = [query(r).get("page_token", [None])[0] for r in api.requests_to("/messages")]
    assert tokens == [None, "1", "2", "3"]


def test_cursor_paging_resends_filters_with_the_page_token(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    api.pages["g1", "messages"] = [[{"id": "m1"}], [{"id": "m2"}]]
    config["max_requests_per_grant"] = 1  # one cursor, never split into time ranges

    run_sync(config, streams=["messages"])

    first, second = (query(r) for r in api.requests_to("/messages"))
    assert second.pop("page_token") == ["1"]
    assert first == second


def test_a_repeated_cursor_is_an_error_not_a_loop(
    api: FakeNylas, config: dict, requests_mock: object
) -> None:
    api.add_grant("g1")
    requests_mock.get(  # type: ignore[attr-defined]
        "https://nylas.test/v3/grants/g1/folders",
        json={"data": [{"id": "f1"}], "next_cursor": "same"},
    )
    api.add_grant("g2")
    api.pages["g2", "folders"] = [[{"id": "f2"}]]
    with pytest.raises(RunIncompleteError, match="1 partition failed: folders for grant_id g1"):
        run_sync(config, streams=["folders"])
    assert len(api.requests_to("/g1/folders")) == 2
    assert len(api.requests_to("/g2/folders")) == 1


@pytest.mark.parametrize(
    ("page_size", "messages_limit", "threads_limit"),
    [(None, "200", "50"), (200, "200", "50"), (20, "20", "20")],
)
def test_page_size_is_capped_per_endpoint(
    api: FakeNylas, config: dict, page_size: int | None, messages_limit: str, threads_limit: str
) -> None:
    api.add_grant("g1")
    if page_size:
        config["page_size"] = page_size

    run_sync(config, streams=["messages", "threads"])

    assert query(api.requests_to("/messages")[0])["limit"] == [messages_limit]
    assert query(api.requests_to("/threads")[0])["limit"] == [threads_limit]


@pytest.mark.parametrize(
    "body",
    [
        [{"schedule_id": "s1", "close_time": 1}],
        {"request_id": "r", "data": [{"schedule_id": "s1", "close_time": 1}]},
        {"request_id": "r", "data": {"schedules": [{"schedule_id": "s1", "close_time": 1}]}},
    ],
    ids=["bare-array", "data-list", "data-schedules"],
)
def test_scheduled_messages_in_every_documented_shape(
    api: FakeNylas, config: dict, requests_mock: object, body: object
) -> None:
    api.add_grant("g1")
    requests_mock.get("https://nylas.test/v3/grants/g1/messages/schedules", json=body)  # type: ignore[attr-defined]

    result = run_sync(config, streams=["scheduled_messages"])

    assert result.records["scheduled_messages"] == [
        {"schedule_id": "s1", "close_time": 1, "grant_id": "g1"}
    ]
    assert "page_token" not in query(api.requests_to("/schedules")[0])


def test_threads_nested_under_data_threads(
    api: FakeNylas, config: dict, requests_mock: object
) -> None:
    api.add_grant("g1")
    requests_mock.get(  # type: ignore[attr-defined]
        "https://nylas.test/v3/grants/g1/threads",
        json={
            "data": {
                "threads": [{"id": f"t{n}", "latest_message_received_date": n} for n in (1, 2)]
            },
            "next_cursor": None,
        },
    )
    result = run_sync(config, streams=["threads"])
    assert [r["id"] for r in result.records["threads"]] == ["t1", "t2"]
