"""Inputs checked before any request: files, settings, secrets and bookmarks.

In process; tests/e2e/test_inputs_cli.py checks what the real CLI reports.
"""

from __future__ import annotations

import json
import logging
import time
import typing as t
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_nylas.errors import ConfigError
from tap_nylas.inputs import parse_bookmark, read_json_object, sanitise_state
from tap_nylas.tap import TapNylas, replication_keys
from tests.support import API_KEY, START_EPOCH, run_sync
from tests.support.bookmarks import FUTURE, _values
from tests.support.fake_api import FakeNylas


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    return FakeNylas(requests_mock)  # type: ignore[arg-type]


# Files: one line naming the file, before anything else happens.


def test_read_json_object_returns_text_and_value(tmp_path: t.Any) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"bookmarks": {}}')
    assert read_json_object(str(path), "state file") == ('{"bookmarks": {}}', {"bookmarks": {}})


# Settings: bounds, a future start_date, and the new settings' defaults.


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("events_lookahead_days", 100_000_000),
        ("events_lookback_days", 100_000),
        ("incremental_lookback_seconds", 10**9),
        ("max_retries", 1000),
        ("backoff_factor", 3600),
        ("page_size", 0),
        ("max_concurrency", 0),
        ("max_concurrency", 513),
        ("max_requests_per_grant", 0),
        ("max_requests_per_grant", 33),
        ("request_timeout_seconds", 0.5),
        ("request_timeout_seconds", 601),
        ("progress_interval_seconds", -1),
        ("progress_interval_seconds", 86401),
    ],
)
def test_settings_out_of_range_are_rejected(config: dict, setting: str, value: float) -> None:
    config[setting] = value
    with pytest.raises(ConfigValidationError) as raised:
        TapNylas(config=config)
    (error,) = raised.value.errors
    assert f"config[{setting!r}]" in error


def test_every_bounded_number_has_a_maximum() -> None:
    for name, spec in TapNylas.config_jsonschema["properties"].items():
        if name == "stream_maps":
            break  # the SDK's built-in settings follow the tap's own
        types = spec.get("type", [])
        if "integer" in types or "number" in types:
            assert "maximum" in spec, name
            assert str(spec["maximum"]) in spec["description"] or "200" in spec["description"]


def test_the_new_settings_have_their_defaults(config: dict) -> None:
    tap = TapNylas(config=config)
    assert tap.config["max_requests_per_grant"] == 4
    assert tap.config["request_timeout_seconds"] == 150
    assert tap.config["progress_interval_seconds"] == 30


def test_a_null_setting_takes_its_default(api: FakeNylas, config: dict) -> None:
    config.update(max_retries=None, events_lookahead_days=None, region=None)
    tap = TapNylas(config=config)
    assert (tap.config["max_retries"], tap.config["events_lookahead_days"]) == (5, 365)
    run_sync(config, streams=["grants"])  # int(None) used to crash here


def test_a_future_start_date_is_a_config_error(config: dict) -> None:
    config["start_date"] = "2100-01-01T00:00:00Z"
    with pytest.raises(ConfigError, match="start_date 2100-01-01T00:00:00Z is in the future"):
        TapNylas(config=config)


# The API key: stripped, checked, never shown.


def test_whitespace_around_the_key_is_stripped(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    config["api_key"] = f"  {API_KEY}\n"
    result = run_sync(config, streams=["grants"])
    assert [g["id"] for g in result.records["grants"]] == ["g1"]
    assert api.mocker.request_history[0].headers["Authorization"] == f"Bearer {API_KEY}"


# Bookmarks: repaired at init, so nothing downstream sees what the tap did not write.

KEYS = replication_keys()


def _state(stream: str, *values: object, grant: str = "g") -> dict:
    partitions = [
        {"context": {"grant_id": f"{grant}{n}"}, "replication_key_value": value}
        for n, value in enumerate(values)
    ]
    return {"bookmarks": {stream: {"partitions": partitions, "replication_key": KEYS[stream]}}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1700000000, 1700000000),
        (0, 0),
        (1700000000.9, 1700000000),
        (Decimal("1700000000.5"), 1700000000),
        ("1700000000", 1700000000),
        (" 1700000000.25 ", 1700000000),
        ("2023-11-14T22:13:20Z", 1700000000),
        ("2023-11-14T22:13:20+00:00", 1700000000),
        ("2023-11-14T23:13:20+01:00", 1700000000),
        ("2023-11-14T22:13:20", 1700000000),  # no zone: UTC
        ("yesterday", None),
        ("", None),
        (-5, None),
        (float("nan"), None),
        (True, None),
        (None, None),
        ([1700000000], None),
        ({"value": 1}, None),
    ],
)
def test_parse_bookmark(raw: object, expected: int | None) -> None:
    assert parse_bookmark(raw)[0] == expected


def test_sanitise_converts_clamps_and_drops_with_one_warning_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = 1800000000
    state = _state(
        "messages", 1700000000, "2023-11-14T22:13:20Z", 1.7e9, FUTURE, "soon", "1700000000"
    )
    original = json.dumps(state)
    with caplog.at_level(logging.WARNING):
        fixed = sanitise_state(state, KEYS, now, logging.getLogger("test"))

    assert _values(fixed, "messages") == [1700000000, 1700000000, 1700000000, now, None, 1700000000]
    assert json.dumps(state) == original  # the caller's state is not edited in place
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 5  # ISO, fractional, future, unreadable, numeric string
    (future,) = [w for w in warnings if "later than this run's start" in w]
    assert "State of messages" in future
    assert "grant_id g3" in future
    assert "2100-01-01T00:00:00Z" in future
    (dropped,) = [w for w in warnings if "dropped" in w]
    assert "grant_id g4" in dropped
    assert "'soon'" in dropped


def test_sanitise_lists_a_few_partitions_not_thousands(caplog: pytest.LogCaptureFixture) -> None:
    state = _state("threads", *[FUTURE] * 3000)
    with caplog.at_level(logging.WARNING):
        fixed = sanitise_state(state, KEYS, 1800000000, logging.getLogger("test"))
    assert set(_values(fixed, "threads")) == {1800000000}
    (warning,) = caplog.records
    assert "3000 bookmark(s)" in warning.getMessage()
    assert "and 2995 more" in warning.getMessage()
    assert len(warning.getMessage()) < 1000


def test_sanitise_handles_structures_the_tap_never_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test")
    state = {
        "bookmarks": {
            "messages": {"replication_key": "received_at", "partitions": []},  # another tap's key
            "threads": {"partitions": [7, {"replication_key_value": 1}, {"context": {"g": 1}}]},
            "events": "nonsense",
            "contacts": {"anything": ["left", "alone"]},  # full-table: not a bookmark
        },
        "currently_syncing": None,
    }
    fixed = sanitise_state(state, KEYS, 1800000000, logger)
    assert fixed == {
        "bookmarks": {
            "threads": {"partitions": [{"context": {"g": 1}}]},
            "contacts": {"anything": ["left", "alone"]},
        },
        "currently_syncing": None,
    }
    assert sanitise_state([1], KEYS, 0, logger) == {}
    assert sanitise_state({"bookmarks": []}, KEYS, 0, logger) == {"bookmarks": {}}
    message = {"type": "STATE", "value": _state("messages", FUTURE)}  # a whole STATE line
    assert _values(sanitise_state(message, KEYS, 5, logger), "messages") == [5]
    stream_level = {"bookmarks": {"events": {"replication_key_value": "2023-11-14T22:13:20Z"}}}
    fixed = sanitise_state(stream_level, KEYS, 1800000000, logger)
    assert fixed["bookmarks"]["events"]["replication_key_value"] == 1700000000


def test_a_future_bookmark_reads_from_the_run_start_and_is_not_written_back(
    api: FakeNylas, config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    api.add_grant("g0")
    api.pages["g0", "messages"] = [[{"id": "m1", "date": START_EPOCH + 10}]]
    before = int(time.time())
    with caplog.at_level(logging.WARNING):
        result = run_sync(config, streams=["messages"], state=_state("messages", FUTURE))
    after = int(time.time())

    (request,) = api.requests_to("/messages")
    since = int(parse_qs(urlparse(request.url).query)["received_after"][0])
    lookback = 3600
    assert before - lookback <= since <= after - lookback  # not 2100, not nothing
    assert result.states
    assert all(v <= after for s in result.states for v in _values(s, "messages"))
    # Clamped at init: whatever STATE goes out first already holds the run's start.
    tap = TapNylas(config=config, state=_state("messages", FUTURE))
    assert before <= _values(tap.state, "messages")[0] <= int(time.time())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("grant_id g0" in w and "later than this run's start" in w for w in warnings)


def test_iso_bookmarks_no_longer_crash_the_run(api: FakeNylas, config: dict) -> None:
    api.add_grant("g0")
    record = {"id": "t1", "latest_message_received_date": 1706745600 + 60}
    api.pages["g0", "threads"] = [[record]]
    state = _state("threads", "2024-02-01T00:00:00Z")
    result = run_sync(config, streams=["threads"], state=state)
    (request,) = api.requests_to("/threads")
    expected = 1706745600 - 3600  # 2024-02-01 minus the look-back
    assert parse_qs(urlparse(request.url).query)["latest_message_after"] == [str(expected)]
    assert _values(result.states[-1], "threads") == [1706745600 + 60]
