"""ACTIVATE_VERSION: after a full-table stream's last record, only when the run read it all."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
import typing as t

import pytest

from nylas_simulator import NylasSimulator
from tests.support import SyncResult, run_sync
from tests.support.fake_api import FakeNylas
from tests.support.target_postgres import connect, load


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


# -- end to end: target-postgres drops or soft-deletes what disappeared -------------------------


class Warehouse:
    """A simulator and a fresh PostgreSQL schema; runs the tap into target-postgres."""

    def __init__(self, sim: NylasSimulator, dsn: str, hard_delete: bool) -> None:
        self.sim, self.dsn, self.hard_delete = sim, dsn, hard_delete
        self.schema = f"versions_{hard_delete}_{os.getpid()}_{int(time.time() * 1000)}".lower()
        self.conn = connect(dsn)
        self.config = {
            "api_key": "k",
            "api_url": sim.url,
            "start_date": "2024-01-01T00:00:00Z",
            "emit_activate_version_messages": True,
        }

    def run(self, **config: t.Any) -> None:
        result = run_sync({**self.config, **config}, streams=["grants", "folders", "contacts"])
        load(
            result.raw.split("\n"),
            self.dsn,
            self.schema,
            activate_version=True,
            hard_delete=self.hard_delete,
        )

    def live(self, table: str) -> set[tuple[str, str]]:
        deleted = "" if self.hard_delete else " WHERE _sdc_deleted_at IS NULL"
        sql = f'SELECT grant_id, id FROM "{self.schema}".{table}{deleted}'  # noqa: S608
        return set(self.conn.execute(sql).fetchall())

    def all_rows(self, table: str) -> set[tuple[str, str]]:
        sql = f'SELECT grant_id, id FROM "{self.schema}".{table}'  # noqa: S608
        return set(self.conn.execute(sql).fetchall())

    def close(self) -> None:
        self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()


@pytest.mark.parametrize("hard_delete", [True, False], ids=["hard_delete", "soft_delete"])
def test_rows_gone_from_nylas_leave_the_table_only_after_complete_runs(
    postgres_dsn: str, hard_delete: bool
) -> None:
    # four valid grants, none expired: a plain run reads everything
    with NylasSimulator(seed=7, grants=4, records_per_grant=6, api_key="k") as sim:
        assert all(p.serving for p in sim.grants)
        warehouse = Warehouse(sim, postgres_dsn, hard_delete)
        try:
            warehouse.run()
            truth = {(r["grant_id"], r["id"]) for r in sim.records("folders")}
            assert warehouse.live("folders") == truth
            grants = [p for p in sim.grants if sim.dataset.grant_data(p).folders]
            first, other = grants[0], grants[1]

            # a folder deleted in Nylas, seen by a run restricted to another grant: kept
            gone = sim.dataset.grant_data(first).folders.pop()
            assert (first.id, gone["id"]) in truth
            warehouse.run(grant_ids=[other.id])
            assert warehouse.live("folders") == truth

            # ... and by a run where one grant failed (expired since listing): kept
            index = sim.dataset.profiles.index(other)
            sim.dataset.profiles[index] = dataclasses.replace(other, expired=True)
            warehouse.run()
            assert warehouse.live("folders") == truth
            sim.dataset.profiles[index] = other

            # a complete run: the deleted folder leaves, every other row stays
            warehouse.run()
            assert warehouse.live("folders") == truth - {(first.id, gone["id"])}
            contacts = {(r["grant_id"], r["id"]) for r in sim.records("contacts")}
            assert warehouse.live("contacts") == contacts
            if not hard_delete:  # soft delete: the row stays, marked
                assert (first.id, gone["id"]) in warehouse.all_rows("folders")
        finally:
            warehouse.close()
