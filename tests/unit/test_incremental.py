"""Incremental streams: per-grant bookmarks, look-back, signpost, filters sent."""

from __future__ import annotations

import time

import pytest

from tap_nylas.output import ProportionalStateWriter
from tests.support import START_EPOCH, run_sync
from tests.support.fake_api import FakeNylas, query

HOUR = 3600


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    return FakeNylas(requests_mock)  # type: ignore[arg-type]


def _bookmarks(state: dict, stream: str) -> dict[tuple, int]:
    partitions = state["bookmarks"][stream]["partitions"]
    return {tuple(p["context"].values()): p.get("replication_key_value") for p in partitions}


def _param(api: FakeNylas, fragment: str, name: str) -> list[str | None]:
    return [query(r).get(name, [None])[0] for r in api.requests_to(fragment)]


def test_bookmarks_are_per_grant_and_a_new_grant_starts_at_start_date(
    api: FakeNylas, config: dict
) -> None:
    api.add_grant("g1")
    api.add_grant("g2")
    api.pages["g1", "messages"] = [[{"id": "a", "date": START_EPOCH + 9 * HOUR}]]
    api.pages["g2", "messages"] = [[{"id": "b", "date": START_EPOCH + 5 * HOUR}]]

    first = run_sync(config, streams=["messages"])
    state = first.states[-1]
    assert _bookmarks(state, "messages") == {
        ("g1",): START_EPOCH + 9 * HOUR,
        ("g2",): START_EPOCH + 5 * HOUR,
    }
    assert _param(api, "/messages", "received_after") == [str(START_EPOCH)] * 2
    # compact: the replication key once per stream, a context and a value per grant
    messages_state = state["bookmarks"]["messages"]
    assert messages_state["replication_key"] == "date"
    assert all(set(p) == {"context", "replication_key_value"} for p in messages_state["partitions"])

    api.add_grant("g3")  # joined since the last run
    api.mocker.reset_mock()
    run_sync(config, streams=["messages"], state=state)

    lookback = config.get("incremental_lookback_seconds", HOUR)
    assert _param(api, "/messages", "received_after") == [
        str(START_EPOCH + 9 * HOUR - lookback),
        str(START_EPOCH + 5 * HOUR - lookback),
        str(START_EPOCH),
    ]


def test_lookback_never_reaches_before_start_date(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    config["incremental_lookback_seconds"] = 30 * 86400
    state = {
        "bookmarks": {
            "threads": {
                "partitions": [
                    {
                        "context": {"grant_id": "g1"},
                        "replication_key": "latest_message_received_date",
                        "replication_key_value": START_EPOCH + 86400,
                    }
                ]
            }
        }
    }
    run_sync(config, streams=["threads"], state=state)
    assert _param(api, "/threads", "latest_message_after") == [str(START_EPOCH)]


def test_a_future_date_cannot_push_the_bookmark_past_the_run(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    api.pages["g1", "messages"] = [[{"id": "clock-skew", "date": 4102444800}]]  # year 2100
    before = int(time.time())
    result = run_sync(config, streams=["messages"])
    (bookmark,) = _bookmarks(result.states[-1], "messages").values()
    assert before - 5 <= bookmark <= int(time.time())


def test_a_grant_failing_midway_keeps_its_old_bookmark(
    api: FakeNylas, config: dict, requests_mock: object
) -> None:
    api.add_grant("g1")
    requests_mock.get(  # type: ignore[attr-defined]
        "https://nylas.test/v3/grants/g1/messages",
        [
            {"json": {"data": [{"id": "new", "date": START_EPOCH + 99}], "next_cursor": "c"}},
            {"status_code": 401, "json": {"error": {"type": "unauthorized"}}},
        ],
    )
    old = {"context": {"grant_id": "g1"}, "replication_key": "date"}
    old["replication_key_value"] = START_EPOCH + HOUR
    state = {"bookmarks": {"messages": {"partitions": [old]}}}

    result = run_sync(config, streams=["messages"], state=state)

    assert [r["id"] for r in result.records["messages"]] == ["new"]
    assert _bookmarks(result.states[-1], "messages") == {("g1",): START_EPOCH + HOUR}


def test_events_filter_on_updated_after_only_where_supported(api: FakeNylas, config: dict) -> None:
    for grant_id, provider in (("g", "google"), ("i", "icloud"), ("v", "virtual-calendar")):
        api.add_grant(grant_id, provider=provider)
        api.pages[grant_id, "calendars"] = [[{"id": f"{grant_id}-cal"}]]
        api.pages[grant_id, "events"] = [[{"id": "e", "updated_at": START_EPOCH + 7 * HOUR}]]

    first = run_sync(config, streams=["events"])
    assert _param(api, "/events", "updated_after") == [None] * len(api.requests_to("/events"))
    state = first.states[-1]
    # iCloud and virtual calendars re-read the window: a bookmark would be dead weight
    assert _bookmarks(state, "events") == {("g", "g-cal"): START_EPOCH + 7 * HOUR}

    api.mocker.reset_mock()
    run_sync(config, streams=["events"], state=state)

    by_grant = {
        r.path.split("/")[3]: query(r).get("updated_after") for r in api.requests_to("/events")
    }
    assert by_grant == {"g": [str(START_EPOCH + 6 * HOUR)], "i": None, "v": None}
    assert all("start" in query(r) and "end" in query(r) for r in api.requests_to("/events"))


def test_full_table_streams_keep_no_per_grant_state(api: FakeNylas, config: dict) -> None:
    for grant_id in ("g1", "g2"):
        api.add_grant(grant_id)
        api.pages[grant_id, "folders"] = [[{"id": "INBOX"}]]
    result = run_sync(config, streams=["folders"])
    assert result.keys("folders", ("grant_id", "id")) == [("g1", "INBOX"), ("g2", "INBOX")]
    assert result.states[-1]["bookmarks"]["folders"] == {}


def test_state_goes_out_between_grants_with_finished_grants_only(
    api: FakeNylas, config: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(4):
        api.add_grant(f"g{n}")
        api.pages[f"g{n}", "messages"] = [[{"id": "m", "date": START_EPOCH + n}]]

    quiet = run_sync(config, streams=["messages"])
    monkeypatch.setattr(ProportionalStateWriter, "RATIO", 0)  # every STATE the SDK asks for
    monkeypatch.setattr(ProportionalStateWriter, "INTERVAL_SECONDS", 0)
    chatty = run_sync(config, streams=["messages"])

    assert len(quiet.states) == 1  # a short run writes only its final STATE
    bookmarked = [
        sorted(g for (g,), v in _bookmarks(state, "messages").items() if v is not None)
        for state in chatty.states
    ]
    # one STATE before each grant after the first, each vouching for finished grants only
    assert bookmarked == [["g0"], ["g0", "g1"], ["g0", "g1", "g2"], ["g0", "g1", "g2", "g3"]]


def test_the_sdks_unsorted_warning_is_logged_once_not_per_grant(
    api: FakeNylas, config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(5):
        api.add_grant(f"g{n}")
        api.pages[f"g{n}", "messages"] = [[{"id": "m", "date": START_EPOCH + n}]]
    run_sync(config, streams=["messages"])
    assert sum("assumed to be unsorted" in r.getMessage() for r in caplog.records) == 1
