"""Stream behaviour against the real contract: keys, partitions, providers, events."""

from __future__ import annotations

import itertools
import logging
import time

import pytest

from tap_nylas.errors import ConfigError
from tap_nylas.partitioned import GrantScopedStream
from tap_nylas.slicing import Slice
from tap_nylas.streams import ICLOUD_MAX_WINDOW, MessagesStream
from tap_nylas.tap import TapNylas
from tests.support import START_EPOCH, run_sync
from tests.support.fake_api import FakeNylas, query

GRANT_STREAMS = sorted(
    name
    for name, stream in TapNylas(config={"api_key": "x"}, validate_config=False).streams.items()
    if isinstance(stream, GrantScopedStream)
)


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    return FakeNylas(requests_mock)  # type: ignore[arg-type]


def test_discovery_lists_every_stream_with_its_keys(config: dict) -> None:
    streams = TapNylas(config=config).streams
    keys = {name: tuple(stream.primary_keys or ()) for name, stream in streams.items()}
    assert keys == {
        "grants": ("id",),
        "connectors": ("provider",),
        "credentials": ("provider", "id"),
        **{name: ("grant_id", "id") for name in GRANT_STREAMS},
        "events": ("grant_id", "calendar_id", "id"),
        "scheduled_messages": ("grant_id", "schedule_id"),
        "event_states": ("grant_id", "calendar_id", "id"),
        "sync_coverage": ("stream", "grant_id", "calendar_id", "read_started_at"),
    }
    for name, stream in streams.items():
        assert set(keys[name]) <= set(stream.schema["properties"]), name


def test_calendars_connectors_then_mail_are_synced_first(api: FakeNylas, config: dict) -> None:
    # Connectors are read on the writer's thread while workers fetch ahead; a big
    # mailbox is the run's long pole; events need calendars written first.
    api.add_grant("g1")
    api.pages["g1", "folders"] = [[{"id": "INBOX"}]]
    api.pages["g1", "messages"] = [[{"id": "m1", "date": START_EPOCH + 60}]]
    api.pages["g1", "threads"] = [[{"id": "t1", "latest_message_received_date": START_EPOCH}]]

    result = run_sync(config)

    schemas = [m["stream"] for m in result.messages if m["type"] == "SCHEMA"]
    assert schemas[:4] == ["calendars", "connectors", "threads", "messages"]
    assert schemas.index("events") > schemas.index("calendars")
    order = list(dict.fromkeys(m["stream"] for m in result.messages if m["type"] == "RECORD"))
    # completion records come last, after every record they vouch for
    assert order == ["threads", "messages", "folders", "grants", "sync_coverage"]


def test_same_ids_in_two_grants_stay_two_rows(api: FakeNylas, config: dict) -> None:
    for grant_id in ("g1", "g2"):
        api.add_grant(grant_id)
        api.pages[grant_id, "messages"] = [[{"id": "m1"}, {"id": "m2"}]]

    result = run_sync(config, streams=["messages"])

    keys = result.keys("messages", ("grant_id", "id"))
    assert sorted(keys) == [("g1", "m1"), ("g1", "m2"), ("g2", "m1"), ("g2", "m2")]
    assert len(set(keys)) == len(keys)


def test_records_without_a_grant_id_get_their_grant(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    api.pages["g1", "folders"] = [[{"id": "INBOX", "name": "Inbox"}]]
    result = run_sync(config, streams=["folders"])
    assert result.records["folders"] == [{"id": "INBOX", "name": "Inbox", "grant_id": "g1"}]


@pytest.mark.parametrize(
    ("provider", "absent"),
    [
        ("imap", {"calendars", "events"}),
        (
            "virtual-calendar",
            {
                "contacts",
                "contact_groups",
                "drafts",
                "folders",
                "messages",
                "scheduled_messages",
                "threads",
            },
        ),
        ("ews", {"contacts/groups"}),
        ("google", set()),
    ],
)
def test_endpoints_a_provider_lacks_are_never_called(
    api: FakeNylas, config: dict, provider: str, absent: set[str]
) -> None:
    api.add_grant("g1", provider=provider)
    api.pages["g1", "calendars"] = [[{"id": "c1"}]]

    run_sync(config, streams=GRANT_STREAMS)

    called = {r.path.split("/g1/", 1)[1] for r in api.mocker.request_history if "/g1/" in r.path}
    expected = {
        "calendars",
        "contacts",
        "contacts/groups",
        "drafts",
        "events",
        "folders",
        "messages",
        "messages/schedules",
        "threads",
    }
    absent_paths = {"messages/schedules" if a == "scheduled_messages" else a for a in absent}
    absent_paths = {"contacts/groups" if a == "contact_groups" else a for a in absent_paths}
    assert called == expected - absent_paths


def test_invalid_grants_are_emitted_but_never_read(api: FakeNylas, config: dict) -> None:
    api.add_grant("good")
    api.add_grant("bad", status="invalid")
    api.pages["good", "messages"] = [[{"id": "m1"}]]

    result = run_sync(config, streams=["grants", "messages"])

    assert [g["id"] for g in result.records["grants"]] == ["good", "bad"]
    assert result.keys("messages", ("grant_id", "id")) == [("good", "m1")]
    assert not api.requests_to("/bad/")


def test_an_expired_grant_is_skipped_with_a_warning(
    api: FakeNylas, config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    for grant_id in ("g1", "g2", "g3"):
        api.add_grant(grant_id)
        api.pages[grant_id, "messages"] = [[{"id": f"{grant_id}-m"}]]
    api.pages["g2", "messages"] = (401, "Grant is invalid or expired")
    api.pages["g3", "contacts"] = (400, "Method not supported for provider")

    with caplog.at_level(logging.WARNING):
        result = run_sync(config, streams=["messages", "contacts"])

    assert result.keys("messages", ("grant_id",)) == [("g1",), ("g3",)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("messages" in w and "g2" in w and "401" in w for w in warnings), warnings
    assert any("contacts" in w and "g3" in w and "not supported" in w for w in warnings)


def test_grant_ids_restricts_the_grants(api: FakeNylas, config: dict) -> None:
    for grant_id in ("g1", "g2", "g3"):
        api.add_grant(grant_id)
    config["grant_ids"] = ["g3", "g1"]

    result = run_sync(config, streams=["grants", "folders"])

    assert [g["id"] for g in result.records["grants"]] == ["g1", "g3"]
    assert not api.requests_to("/g2/")


def test_unknown_grant_ids_are_a_config_error(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    config["grant_ids"] = ["g1", "nope"]
    with pytest.raises(ConfigError, match=r"grant_ids: not found .*: nope"):
        run_sync(config, streams=["folders"])


def test_credentials_are_listed_per_connector_found(api: FakeNylas, config: dict) -> None:
    api.connectors = [{"provider": "zoom"}, {"provider": "microsoft"}]
    api.credentials = {
        "zoom": [{"id": "z1", "name": "a"}],
        "microsoft": [{"id": f"m{n}", "name": "b"} for n in range(205)],
    }

    result = run_sync(config, streams=["connectors", "credentials"])

    keys = result.keys("credentials", ("provider", "id"))
    assert len(keys) == len(set(keys)) == 206
    assert ("zoom", "z1") in keys
    assert {r.path for r in api.requests_to("/creds")} == {
        "/v3/connectors/zoom/creds",
        "/v3/connectors/microsoft/creds",
    }


def _events_requests(api: FakeNylas) -> list[dict[str, list[str]]]:
    return [query(r) for r in api.requests_to("/events")]


def test_google_events_ask_for_a_window_cancelled_and_every_type(
    api: FakeNylas, config: dict
) -> None:
    api.add_grant("g1", provider="google")
    api.pages["g1", "calendars"] = [[{"id": "cal-1"}, {"id": "cal-2"}]]
    api.pages["g1", "events"] = [[{"id": "e1"}]]

    before = int(time.time())
    result = run_sync(config, streams=["events"])

    requests = _events_requests(api)
    assert [r["calendar_id"] for r in requests] == [["cal-1"], ["cal-2"]]
    for params in requests:
        assert params["start"] == [str(START_EPOCH)]
        assert before + 365 * 86400 <= int(params["end"][0]) <= int(time.time()) + 365 * 86400
        assert params["show_cancelled"] == ["true"]
        assert sorted(params["event_type"]) == [
            "default",
            "focusTime",
            "outOfOffice",
            "workingLocation",
        ]
    # the same event id in two calendars of one grant stays two rows
    assert result.keys("events", ("grant_id", "calendar_id", "id")) == [
        ("g1", "cal-1", "e1"),
        ("g1", "cal-2", "e1"),
    ]


def test_icloud_events_window_is_split_into_year_chunks(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1", provider="icloud")
    api.pages["g1", "calendars"] = [[{"id": "home"}]]
    api.pages["g1", "events"] = [[{"id": "e1"}, {"id": "e2"}]]  # every chunk answers both

    result = run_sync(config, streams=["events"])

    requests = _events_requests(api)
    windows = [(int(r["start"][0]), int(r["end"][0])) for r in requests]
    assert len(windows) >= 3
    assert windows[0][0] == START_EPOCH
    assert all(end - start <= ICLOUD_MAX_WINDOW for start, end in windows)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))  # no gap
    assert all("show_cancelled" not in r and "event_type" not in r for r in requests)
    # an event overlapping two chunks is emitted once
    assert [r["id"] for r in result.records["events"]] == ["e1", "e2"]


def test_a_calendar_whose_events_404_is_skipped(
    api: FakeNylas, config: dict, requests_mock: object
) -> None:
    api.add_grant("g1", provider="microsoft")
    api.pages["g1", "calendars"] = [[{"id": "gone"}, {"id": "ok"}]]
    requests_mock.get(  # type: ignore[attr-defined]
        "https://nylas.test/v3/grants/g1/events",
        [
            {"status_code": 404, "json": {"error": {"type": "not_found_error"}}},
            {"json": {"data": [{"id": "e1", "updated_at": 1}], "next_cursor": None}},
        ],
    )
    result = run_sync(config, streams=["events"])
    assert result.keys("events", ("grant_id", "id")) == [("g1", "e1")]


def test_events_without_start_date_use_the_lookback(api: FakeNylas, config: dict) -> None:
    del config["start_date"]
    config["events_lookback_days"] = 10
    config["events_lookahead_days"] = 5
    api.add_grant("g1", provider="microsoft")
    api.pages["g1", "calendars"] = [[{"id": "c"}]]

    now = int(time.time())
    run_sync(config, streams=["events"])

    (params,) = _events_requests(api)
    assert abs(int(params["start"][0]) - (now - 10 * 86400)) <= 5
    assert abs(int(params["end"][0]) - (now + 5 * 86400)) <= 5


def test_grant_shards_cover_every_grant_exactly_once(api: FakeNylas, config: dict) -> None:
    for n in range(60):
        api.add_grant(f"grant-{n}")
        api.pages[f"grant-{n}", "folders"] = [[{"id": "INBOX"}]]
    api.connectors = [{"provider": "google"}]

    per_shard = []
    for index in (1, 2, 3):
        config["grant_shard"] = f"{index}/3"
        result = run_sync(config, streams=["grants", "folders", "connectors"])
        grants = {g["id"] for g in result.records["grants"]}
        assert grants == {grant_id for (grant_id,) in result.keys("folders", ("grant_id",))}
        assert len(result.records["connectors"]) == (1 if index == 1 else 0)
        per_shard.append(grants)

    assert set.union(*per_shard) == {f"grant-{n}" for n in range(60)}
    assert sum(map(len, per_shard)) == 60  # no overlap
    assert all(10 <= len(shard) <= 30 for shard in per_shard)  # a real spread


@pytest.mark.parametrize("shard", ["0/3", "4/3", "1-3", "a/b", "3"])
def test_a_malformed_grant_shard_is_a_config_error(config: dict, shard: str) -> None:
    config["grant_shard"] = shard
    with pytest.raises(ConfigError, match="grant_shard must be 'K/N'"):
        TapNylas(config=config)


def test_unknown_top_level_fields_are_dropped_nested_values_kept(
    api: FakeNylas, config: dict
) -> None:
    api.add_grant("g1")
    folder = {"id": "INBOX", "field_nylas_added_later": 1, "attributes": ["\\Inbox"]}
    message = {"id": "m1", "from": [{"email": "a@example.com", "new_nested": True}]}
    api.pages["g1", "folders"] = [[folder]]
    api.pages["g1", "messages"] = [[message]]

    result = run_sync(config, streams=["folders", "messages"])

    assert result.records["folders"] == [
        {"id": "INBOX", "attributes": ["\\Inbox"], "grant_id": "g1"}
    ]
    assert result.records["messages"][0]["from"] == [{"email": "a@example.com", "new_nested": True}]


@pytest.mark.parametrize(("pages_below", "splits"), [(2, False), (10, False), (30, True)])
def test_a_range_splits_again_only_when_it_still_holds_many_pages(
    config: dict, pages_below: int, splits: bool
) -> None:
    # Each split re-reads the range's first page: only a long pole is worth it.
    stream = TapNylas(config=config).streams["messages"]
    assert isinstance(stream, MessagesStream)
    low, page_span = START_EPOCH, 3600 * 24
    oldest = low + pages_below * page_span
    context = {
        "grant_id": "g1",
        "received_after": low - 1,
        "received_before": oldest + 2 * page_span,
    }
    piece = Slice(context, stream.get_new_paginator(), low=low, high=oldest + page_span, depth=1)
    piece.pages = 1
    page = [{"id": f"m{n}", "date": oldest + n * page_span // 200} for n in range(200)]

    pieces = stream.split_slice(piece, page, capacity=4)

    assert (pieces is not None) == splits
    if pieces:
        # Ranges tile [low, high] and none re-emits the first page's records.
        edges = [(p.low, p.high) for p in pieces]
        assert edges[0][0] == low
        assert edges[-1][1] == piece.high
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(edges))
        assert all({r["id"] for r in page} <= p.exclude for p in pieces)
