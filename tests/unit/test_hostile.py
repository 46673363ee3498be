"""Answers the tap does not understand: retried, then one partition's failure, never loss."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
import typing as t
from collections import Counter

import pytest

from tap_nylas.errors import RunIncompleteError
from tap_nylas.tap import TapNylas
from tests.support import START_EPOCH, SyncResult, cli_errors, selected_catalog, sync
from tests.support.fake_api import FakeNylas

HOUR = 3600
MESSAGES = "https://nylas.test/v3/grants/{}/messages"


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    fake = FakeNylas(requests_mock)  # type: ignore[arg-type]
    for grant in ("g1", "g2"):
        fake.add_grant(grant)
        fake.pages[grant, "messages"] = [[{"id": f"{grant}-m", "date": START_EPOCH + 5 * HOUR}]]
        fake.pages[grant, "threads"] = [[{"id": f"{grant}-t"}]]
    return fake


def bookmark(result: SyncResult, grant: str) -> int | None:
    for partition in result.states[-1]["bookmarks"]["messages"].get("partitions", []):
        if partition["context"] == {"grant_id": grant}:
            return partition.get("replication_key_value")
    return None


OLD_STATE = {
    "bookmarks": {
        "messages": {
            "replication_key": "date",
            "partitions": [
                {"context": {"grant_id": g}, "replication_key_value": START_EPOCH + HOUR}
                for g in ("g1", "g2")
            ],
        }
    }
}


@pytest.mark.parametrize(
    "answer",
    [
        {"json": {"request_id": "r1"}},  # a 200 without `data`
        {"json": {"request_id": "r1", "error": {"type": "api.internal_error"}}},
        {"text": '{"data": [{"id": "g1-m", "da'},  # truncated JSON
        {"text": "<html><body>Bad gateway</body></html>", "headers": {"Content-Type": "text/html"}},
        {"status_code": 502, "json": {}},
    ],
    ids=["no-data", "error-object", "truncated-json", "html", "502"],
)
def test_a_grant_that_keeps_failing_fails_alone_and_keeps_its_bookmark(
    api: FakeNylas, config: dict, answer: dict, caplog: pytest.LogCaptureFixture
) -> None:
    api.mocker.get(MESSAGES.format("g1"), **answer)
    config["max_retries"] = 2

    with caplog.at_level(logging.WARNING):
        result, error = sync(config, ["messages", "threads"], state=OLD_STATE)

    assert isinstance(error, RunIncompleteError)
    assert str(error).startswith("1 partition failed: messages for grant_id g1;")
    assert len(api.requests_to("/g1/messages")) == 3  # tried, then retried twice
    # every other grant and stream was read, and the failed grant's bookmark stayed
    assert [r["id"] for r in result.records["messages"]] == ["g2-m"]
    assert sorted(r["id"] for r in result.records["threads"]) == ["g1-t", "g2-t"]
    assert bookmark(result, "g1") == START_EPOCH + HOUR
    assert bookmark(result, "g2") == START_EPOCH + 5 * HOUR
    assert "messages for grant_id g1 failed" in caplog.text


def test_a_garbled_answer_is_retried_not_read_as_the_last_page(
    api: FakeNylas, config: dict, waits: list
) -> None:
    api.pages["g1", "messages"] = [
        [{"id": "m1", "date": START_EPOCH + 9 * HOUR}],
        [{"id": "m2", "date": START_EPOCH + 8 * HOUR}],
    ]
    good = api._grant_list
    answers = iter(
        [
            {"text": "<html>proxy error</html>"},
            {"json": {"request_id": "x"}},
            {"text": '{"data": ['},
        ]
    )

    def flaky(request: t.Any, context: t.Any) -> t.Any:
        if "page_token" in request.url and (answer := next(answers, None)):
            return answer.get("text") or json.dumps(answer["json"])
        return json.dumps(good(request, context))

    api.mocker.get(MESSAGES.format("g1"), text=flaky)
    config["max_requests_per_grant"] = 1

    result, error = sync(config, ["messages"])

    assert error is None
    assert sorted(r["id"] for r in result.records["messages"]) == ["g2-m", "m1", "m2"]
    assert bookmark(result, "g1") == START_EPOCH + 9 * HOUR


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tap_nylas.errors.random.uniform", lambda a, b: 0.0)


def test_a_retry_after_that_is_not_a_number_falls_back_to_backoff(
    api: FakeNylas, config: dict
) -> None:
    api.mocker.get(
        MESSAGES.format("g1"),
        [
            {"status_code": 429, "headers": {"Retry-After": "soon"}, "json": {}},
            {"json": {"data": [{"id": "m1", "date": START_EPOCH}]}},
        ],
    )
    result, error = sync(config, ["messages"])
    assert error is None
    assert sorted(r["id"] for r in result.records["messages"]) == ["g2-m", "m1"]


def test_records_without_their_key_are_skipped_and_hold_the_bookmark(
    api: FakeNylas, config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    api.pages["g1", "messages"] = [
        [{"id": "m1", "date": START_EPOCH + 9 * HOUR}, {"date": START_EPOCH + 8 * HOUR}]
    ]
    with caplog.at_level(logging.WARNING):
        result, error = sync(config, ["messages"], state=OLD_STATE)

    assert error is None
    assert sorted(r["id"] for r in result.records["messages"]) == ["g2-m", "m1"]
    assert bookmark(result, "g1") == START_EPOCH + HOUR
    assert "messages for grant_id g1 1 records without their key" in caplog.text


@pytest.mark.parametrize(("status", "hint"), [(404, "check api_url"), (403, "not allowed")])
def test_an_application_endpoint_refusing_stops_the_run_with_one_line(
    requests_mock: t.Any,
    config: dict,
    tmp_path: t.Any,
    caplog: pytest.LogCaptureFixture,
    status: int,
    hint: str,
) -> None:
    requests_mock.get("https://nylas.test/v3/grants", status_code=status, json={})
    errors = cli_errors(config, tmp_path, caplog)
    assert errors[-1].startswith(f"Cannot read grants: HTTP {status} on /v3/grants")
    assert hint in errors[-1]


def test_an_application_429_holds_application_requests_only(
    api: FakeNylas, config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    config["max_concurrency"] = 8  # application requests halve from 8 to 4
    api.connectors.append({"provider": "google"})
    api.mocker.get(
        "https://nylas.test/v3/connectors",
        [
            {"status_code": 429, "headers": {"Retry-After": "0.2"}, "json": {}},
            {"json": {"data": [{"provider": "google"}], "limit": 200, "offset": 0}},
        ],
    )
    with caplog.at_level(logging.INFO):
        # calendars come first: the scheduler runs when connectors are throttled
        result, error = sync(config, ["calendars", "connectors", "messages"])
    assert error is None
    assert [r["provider"] for r in result.records["connectors"]] == ["google"]
    assert "Nylas throttled the application: 4 application requests in flight" in caplog.text
    assert "(grant requests go on)" in caplog.text
    assert sorted(r["id"] for r in result.records["messages"]) == ["g1-m", "g2-m"]


def test_test_mode_reads_one_record_per_stream_without_fetching_ahead(
    requests_mock: t.Any, config: dict
) -> None:
    fake = FakeNylas(requests_mock)
    for n in range(6):
        grant = f"g{n}"
        fake.add_grant(grant)
        fake.pages[grant, "messages"] = [
            [{"id": f"{grant}-{p}-{n}"} for n in "ab"] for p in "vwxyz"
        ]
        fake.pages[grant, "folders"] = [[{"id": f"{grant}-{p}-{n}"} for n in "ab"] for p in "vwxyz"]
    catalog = selected_catalog(
        TapNylas(config=config, validate_config=False), ["messages", "folders"]
    )
    tap = TapNylas(config=config, catalog=catalog)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out):
        tap.run_sync_dry_run(dry_run_record_limit=1, streams=tap.streams.values())
        out.flush()
    time.sleep(0.3)  # a worker fetching ahead would have done so by now

    for stream in ("messages", "folders"):
        asked = [r for r in requests_mock.request_history if r.path.endswith(f"/{stream}")]
        assert {r.path.split("/")[3] for r in asked} == {"g0"}, f"{stream}: other grants read"
        assert len(asked) <= 2, f"{stream}: pages read ahead"  # the one written, maybe one more
    lines = out.buffer.getvalue().decode().splitlines()  # type: ignore[attr-defined]
    written = Counter(json.loads(line)["stream"] for line in lines if '"type":"RECORD"' in line)
    assert written["messages"] == written["folders"] == 1
