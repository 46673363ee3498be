"""ACTIVATE_VERSION: after a full-table stream's last record, only when the run read it all."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from tests.support import SyncResult, run_sync
from tests.support.fake_api import FakeNylas


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    fake = FakeNylas(requests_mock)  # type: ignore[arg-type]
    for grant_id in ("g1", "g2"):
        fake.add_grant(grant_id)
        fake.pages[grant_id, "folders"] = [[{"id": "INBOX"}], [{"id": "SENT"}]]
        fake.pages[grant_id, "calendars"] = [[{"id": f"cal-{grant_id}"}]]
    fake.connectors = [{"provider": "google"}, {"provider": "microsoft"}]
    fake.credentials = {"google": [{"id": "cr1"}], "microsoft": [{"id": "cr2"}]}
    return fake


@pytest.fixture
def emitting(config: dict) -> dict:
    return {**config, "emit_activate_version_messages": True}


def activations(result: SyncResult) -> dict[str, int]:
    return {m["stream"]: m["version"] for m in result.messages if m["type"] == "ACTIVATE_VERSION"}


def last_index(result: SyncResult, stream: str, kind: str) -> int:
    return max(
        i for i, m in enumerate(result.messages) if m["type"] == kind and m["stream"] == stream
    )


def test_the_setting_is_declared_in_about() -> None:
    about = subprocess.run(
        [sys.executable, "-m", "tap_nylas", "--about", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = json.loads(about)
    setting = info["settings"]["properties"]["emit_activate_version_messages"]
    assert "boolean" in setting["type"]
    assert setting["default"] is False
    assert "activate-version" in info["capabilities"]


def test_activation_follows_the_last_record_of_each_full_table_stream(
    api: FakeNylas, emitting: dict
) -> None:
    streams = ["grants", "folders", "calendars", "connectors", "credentials", "messages"]
    result = run_sync(emitting, streams=streams)

    versions = activations(result)
    assert set(versions) == {"grants", "folders", "calendars", "connectors", "credentials"}
    for stream, version in versions.items():
        assert result.records[stream], stream
        # every record carries the version the stream activates, and comes before it
        records = [m for m in result.messages if m["type"] == "RECORD" and m["stream"] == stream]
        assert {m["version"] for m in records} == {version}
        assert last_index(result, stream, "RECORD") < last_index(result, stream, "ACTIVATE_VERSION")
    # credentials are read per connector: activated once, after the last connector's
    assert [m["stream"] for m in result.messages if m["type"] == "ACTIVATE_VERSION"].count(
        "credentials"
    ) == 1


def test_nothing_is_activated_by_default(api: FakeNylas, config: dict) -> None:
    result = run_sync(config, streams=["grants", "folders"])
    assert result.records["folders"]
    assert activations(result) == {}


def test_incremental_streams_are_never_activated(api: FakeNylas, emitting: dict) -> None:
    api.pages["g1", "messages"] = [[{"id": "m1"}]]
    result = run_sync(emitting, streams=["messages", "threads", "events"])
    assert result.records["messages"]
    assert activations(result) == {}


def test_grant_ids_keeps_other_grants_rows(
    api: FakeNylas, emitting: dict, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        result = run_sync({**emitting, "grant_ids": ["g1"]}, streams=["grants", "folders"])
    assert result.records["folders"]
    assert activations(result) == {}
    lines = [r.getMessage() for r in caplog.records if "no ACTIVATE_VERSION" in r.getMessage()]
    assert len(lines) == 2
    assert all("grant_ids restricts the run to 1 grant(s)" in line for line in lines)


def test_a_skipped_grant_blocks_only_the_streams_it_skipped(
    api: FakeNylas, emitting: dict, caplog: pytest.LogCaptureFixture
) -> None:
    api.pages["g2", "folders"] = (401, "Grant expired")
    with caplog.at_level(logging.WARNING):
        result = run_sync(emitting, streams=["grants", "folders", "calendars"])
    assert set(activations(result)) == {"grants", "calendars"}
    [line] = [r.getMessage() for r in caplog.records if "no ACTIVATE_VERSION" in r.getMessage()]
    assert line.startswith("folders: ")
    assert "grant_id g2 skipped: HTTP 401" in line


def test_invalid_grants_are_not_read_so_block_activation(api: FakeNylas, emitting: dict) -> None:
    api.add_grant("g3", status="invalid")
    result = run_sync(emitting, streams=["grants", "folders"])
    assert set(activations(result)) == {"grants"}


def test_shards_activate_only_what_they_read_whole(api: FakeNylas, emitting: dict) -> None:
    first = run_sync({**emitting, "grant_shard": "1/2"}, streams=["connectors", "credentials"])
    assert set(activations(first)) == {"connectors", "credentials"}
    second = run_sync(
        {**emitting, "grant_shard": "2/2"}, streams=["connectors", "credentials", "folders"]
    )
    assert activations(second) == {}
