"""Completion records (`sync_coverage`) and sweeps, against the local simulator (issue #17)."""

from __future__ import annotations

import json
import time
import typing as t
from collections import Counter
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from nylas_simulator import NylasSimulator
from tap_nylas.coverage import CoverageLedger, Read, bookmark_index
from tap_nylas.directory import Shard
from tap_nylas.history import IMAP_PROVIDERS, TRUSTED_CACHE_DAYS
from tap_nylas.tap import TapNylas
from tests.support import SyncResult, capture_sync, selected_catalog

API_KEY = "sim-key-warehouse-streams"
START_DATE = "2024-01-01T00:00:00Z"
START = 1704067200
DAY = 86400
SWEEPS = ("message_flags", "thread_flags", "event_states")
SCHEMAS = Path(__file__).resolve().parents[2] / "tap_nylas" / "schemas"


@pytest.fixture(scope="module")
def sim() -> t.Iterator[NylasSimulator]:
    with NylasSimulator(seed=7, grants=12, records_per_grant=20, api_key=API_KEY) as server:
        yield server


def config(sim: NylasSimulator, **extra: t.Any) -> dict:
    return {
        "api_key": API_KEY,
        "api_url": sim.url,
        "start_date": START_DATE,
        "events_lookahead_days": 400,
        "backoff_factor": 0,
        "max_retries": 1,
        **extra,
    }


def sync(
    cfg: dict, state: dict | None = None, streams: t.Iterable[str] | None = None
) -> SyncResult:
    catalog = None
    if streams is not None:
        catalog = selected_catalog(TapNylas(config=cfg, validate_config=False), streams)
    result, error = capture_sync(TapNylas(config=cfg, state=state, catalog=catalog))
    if error is not None:
        raise error
    return result


def coverage(result: SyncResult) -> dict[tuple[str, str, str], dict]:
    records = result.records["sync_coverage"]
    keyed = {(r["stream"], r["grant_id"], r["calendar_id"]): r for r in records}
    assert len(keyed) == len(records), "two completion records for one partition in one run"
    return keyed


def imap_grants(sim: NylasSimulator) -> set[str]:
    """Grants whose cache reads vouch for Nylas's cache only (their history is read apart)."""
    return {g.id for g in sim.grants if g.provider in IMAP_PROVIDERS}


def cache_edge() -> int:
    """Where an IMAP grant's cache read starts vouching (`ImapHistory.read_of`), about."""
    return int(time.time()) - TRUSTED_CACHE_DAYS * DAY


@pytest.fixture(scope="module")
def first(sim: NylasSimulator) -> SyncResult:
    sim.reset_log()
    return sync(config(sim))


@pytest.fixture(scope="module")
def second(sim: NylasSimulator, first: SyncResult) -> tuple[SyncResult, list[dict]]:
    sim.reset_log()
    result = sync(config(sim), state=first.states[-1])
    return result, sim.request_log


# -- completion records -----------------------------------------------------------------


def test_every_partition_read_in_full_has_one_completion_record(
    sim: NylasSimulator, first: SyncResult
) -> None:
    covered = coverage(first)
    readable = [g for g in sim.grants if g.serving]
    for grant in readable:
        for stream in ("messages", "threads", "folders", "contacts", "drafts"):
            if grant.supports(stream):
                assert (stream, grant.id, "") in covered, (stream, grant.provider)
    # events: one per calendar listed, except the calendar whose events answer 404
    calendars = {(r["grant_id"], r["id"]) for r in first.records["calendars"]}
    events = {(g, c) for (s, g, c) in covered if s == "events"}
    assert events == calendars - {sim.missing_calendar}
    # application-level lists: one each, with no grant
    for stream in ("grants", "connectors", "credentials"):
        assert (stream, "", "") in covered


def test_no_completion_record_for_a_grant_that_was_not_read(
    sim: NylasSimulator, first: SyncResult
) -> None:
    covered = coverage(first)
    unread = {g.id for g in sim.grants if not g.serving}  # invalid, and the expired one
    assert sim.expired_grant_id in unread
    assert not [key for key in covered if key[1] in unread]
    # a provider without the endpoint: nothing either
    imap = [g.id for g in sim.grants if g.provider == "imap" and g.serving]
    assert imap
    assert not [key for key in covered if key[0] == "calendars" and key[1] in imap]


def test_completion_records_come_after_every_other_record(first: SyncResult) -> None:
    streams = [m["stream"] for m in first.messages if m["type"] == "RECORD"]
    last_other = max(i for i, s in enumerate(streams) if s != "sync_coverage")
    assert streams.index("sync_coverage") > last_other


def test_completion_records_count_what_was_written_and_fit_the_schema(
    sim: NylasSimulator, first: SyncResult
) -> None:
    schema = json.loads((SCHEMAS / "sync_coverage.json").read_text())
    validator = Draft202012Validator(schema)
    written = Counter((r["grant_id"], "messages") for r in first.records["messages"])
    for record in first.records["sync_coverage"]:
        validator.validate(record)
        assert record["read_started_at"] <= record["read_ended_at"]
        assert record["run_started_at"] <= record["read_started_at"]
        if record["stream"] == "messages" and record["grant_id"] in imap_grants(sim):
            # The cache partition's records: its IMAP history (older mail) has none.
            cache = [
                m
                for m in first.records["messages"]
                if m["grant_id"] == record["grant_id"] and m["date"] >= record["range_start"]
            ]
            assert record["records"] == len(cache)
        elif record["stream"] == "messages":
            assert record["records"] == written[record["grant_id"], "messages"]


def test_first_run_ranges_start_at_start_date_and_events_carry_their_window(
    sim: NylasSimulator, first: SyncResult
) -> None:
    records = first.records["sync_coverage"]
    messages = [r for r in records if r["stream"] == "messages"]
    imap = imap_grants(sim)
    assert {
        (r["replication_key"], r["range_start"], r["range_end"])
        for r in messages
        if r["grant_id"] not in imap
    } == {("date", START, None)}
    # IMAP, Yahoo, iCloud: the cache's edge, not start_date (Nylas lists 90 days of them)
    cached = [r["range_start"] for r in messages if r["grant_id"] in imap]
    assert cached
    assert all(abs(start - cache_edge()) < 600 for start in cached)
    folders = [r for r in records if r["stream"] == "folders"]
    assert {(r["replication_key"], r["range_start"], r["window_start"]) for r in folders} == {
        (None, None, None)
    }
    events = [r for r in records if r["stream"] == "events"]
    now = int(time.time())
    for r in events:
        assert r["replication_key"] == "updated_at"
        assert r["range_start"] is None  # no bookmark yet: every event of the window
        assert r["window_start"] == START
        assert abs(r["window_end"] - (now + 400 * DAY)) < 120


def test_incremental_ranges_are_the_lower_bound_that_was_sent(
    sim: NylasSimulator, second: tuple[SyncResult, list[dict]]
) -> None:
    result, log = second
    sent = {
        entry["path"].split("/")[3]: int(entry["params"]["received_after"][0])
        for entry in log
        if entry["path"].endswith("/messages")
        and "select" not in entry["params"]
        and entry["status"] == 200
    }
    ranges = {
        r["grant_id"]: r["range_start"]
        for r in result.records["sync_coverage"]
        if r["stream"] == "messages"
    }
    assert sent
    imap = imap_grants(sim)
    assert {g: r for g, r in ranges.items() if g not in imap} == {
        g: r for g, r in sent.items() if g not in imap
    }
    # IMAP, Yahoo, iCloud: no earlier than the cache's edge, whatever was sent
    for grant in imap & set(ranges):
        assert ranges[grant] >= sent[grant]
        assert ranges[grant] >= cache_edge() - 600
    # events of Google, Microsoft and EWS: the updated_after that was sent
    events = [r for r in result.records["sync_coverage"] if r["stream"] == "events"]
    assert any(r["range_start"] is not None for r in events)


def test_a_partition_that_fails_gets_no_completion_record(sim: NylasSimulator) -> None:
    grant = next(g for g in sim.grants if g.serving and g.provider == "google")
    sim.add_fault_rule(rf"/v3/grants/{grant.id}/messages\?", "502")
    try:
        result, error = capture_sync(TapNylas(config=config(sim, max_retries=0)))
    finally:
        sim.clear_fault_rules()
    assert error is not None  # the run fails, everything else synced
    covered = coverage(result)
    assert ("messages", grant.id, "") not in covered
    assert ("threads", grant.id, "") in covered
    assert [k for k in covered if k[0] == "messages"]


@pytest.mark.parametrize("restriction", ["grant_shard", "grant_ids"])
def test_a_restricted_run_vouches_only_for_its_own_grants(
    sim: NylasSimulator, restriction: str
) -> None:
    mine = [g.id for g in sim.grants if Shard(2, 2).owns(g.id)]
    extra = {"grant_shard": "2/2"} if restriction == "grant_shard" else {"grant_ids": mine}
    result = sync(config(sim, **extra))
    covered = coverage(result)
    assert {key[1] for key in covered} - {""} <= set(mine)
    assert [key for key in covered if key[1] in mine]
    assert ("grants", "", "") not in covered  # a restricted run does not list every grant
    if restriction == "grant_shard":  # application lists are shard 1's
        assert ("connectors", "", "") not in covered


def test_deselected_coverage_writes_nothing(sim: NylasSimulator) -> None:
    result = sync(config(sim), streams=["folders", "messages"])
    assert set(result.records) == {"folders", "messages"}


def test_sweeps_and_coverage_are_never_activated(sim: NylasSimulator, first: SyncResult) -> None:
    cfg = config(sim, emit_activate_version_messages=True)
    result = sync(cfg, state=first.states[-1])
    activated = {m["stream"] for m in result.messages if m["type"] == "ACTIVATE_VERSION"}
    assert not activated & {*SWEEPS, "sync_coverage"}
    assert result.records["sync_coverage"]


# -- sweeps -----------------------------------------------------------------------------


def test_a_first_run_needs_no_sweep(first: SyncResult, sim: NylasSimulator) -> None:
    assert not any(first.records[s] for s in SWEEPS)
    assert not [k for k in coverage(first) if k[0] in SWEEPS]


def test_sweeps_reread_the_recent_window_with_field_selection(
    sim: NylasSimulator, second: tuple[SyncResult, list[dict]]
) -> None:
    result, log = second
    now = int(time.time())
    sweeps = [e for e in log if "select" in e["params"]]
    by_path = Counter(e["path"].rsplit("/", 1)[1] for e in sweeps)
    assert set(by_path) == {"messages", "threads", "events"}
    for entry in sweeps:
        params = entry["params"]
        kind = entry["path"].rsplit("/", 1)[1]
        after = {"messages": "received_after", "threads": "latest_message_after"}.get(kind)
        start = int(params[after][0]) if after else int(params["start"][0])
        assert abs(start - (now - 7 * DAY)) < 120, kind
        assert "updated_after" not in params
    fields = {e["path"].rsplit("/", 1)[1]: e["params"]["select"][0] for e in sweeps}
    assert fields["messages"] == "date,folders,grant_id,id,starred,thread_id,unread"
    assert fields["events"] == "calendar_id,grant_id,id,status,updated_at"
    # records of a sweep carry only its fields, and its partitions their completion records
    for stream in SWEEPS:
        assert result.records[stream], stream
        schema = json.loads((SCHEMAS / f"{stream}.json").read_text())
        assert all(set(r) <= set(schema["properties"]) for r in result.records[stream])
    covered = coverage(result)
    grants = {r["grant_id"] for r in result.records["message_flags"]}
    assert grants <= {g for (s, g, _) in covered if s == "message_flags"}
    for record in result.records["sync_coverage"]:
        if record["stream"] == "message_flags":
            assert record["replication_key"] == "date"
            assert abs(record["range_start"] - (now - 7 * DAY)) < 120
        if record["stream"] == "event_states":
            assert record["replication_key"] is None
            assert abs(record["window_start"] - (now - 7 * DAY)) < 120


def test_sweeps_only_grants_whose_main_read_starts_inside_the_window(
    sim: NylasSimulator, first: SyncResult, second: tuple[SyncResult, list[dict]]
) -> None:
    result, _ = second
    now = int(time.time())
    bookmarks = bookmark_index(first.states[-1])
    swept = {g for (s, g, _) in coverage(result) if s == "message_flags"}
    for (stream, key), value in bookmarks.items():
        if stream != "messages":
            continue
        grant = dict(key)["grant_id"]
        inside = value - 3600 > now - 7 * DAY
        assert (grant in swept) == inside, grant


def test_sweep_days_zero_turns_sweeps_off(sim: NylasSimulator, first: SyncResult) -> None:
    sim.reset_log()
    result = sync(config(sim, sweep_days=0), state=first.states[-1])
    assert not any(result.records[s] for s in SWEEPS)
    assert not [e for e in sim.request_log if "select" in e["params"]]


def test_a_sweep_selected_alone_reads_only_its_window(
    sim: NylasSimulator, first: SyncResult
) -> None:
    sim.reset_log()
    result = sync(config(sim), state=first.states[-1], streams=["message_flags"])
    assert set(result.records) <= {"message_flags"}
    assert {e["path"].rsplit("/", 1)[1] for e in sim.request_log} <= {"grants", "messages"}


# -- the ledger ------------------------------------------------------------------------


def test_the_ledger_vouches_only_for_reads_it_saw_start() -> None:
    ledger = CoverageLedger(1000.0, enabled=True)
    ledger.completed("messages", {"grant_id": "g1"}, 3)  # never started: ignored
    ledger.started("messages", {"grant_id": "g2"}, Read(1001.5, "date", 900))
    ledger.started("messages", {"grant_id": "g3"}, Read(1002.0, "date", 900))
    ledger.forget("messages", {"grant_id": "g3"})  # failed
    ledger.completed("messages", {"grant_id": "g3"}, 1)
    ledger.completed("messages", {"grant_id": "g2"}, 2)
    (record,) = ledger.records()
    assert record["grant_id"] == "g2"
    assert record["calendar_id"] == ""
    assert record["range_start"] == 900
    assert record["read_started_at"] == "1970-01-01T00:16:41.500000+00:00"
    off = CoverageLedger(1000.0, enabled=False)
    off.started("messages", {"grant_id": "g2"}, Read(1001.5))
    off.completed("messages", {"grant_id": "g2"}, 2)
    assert off.records() == []


def test_bookmarks_at_start_are_read_from_the_sdk_state_format() -> None:
    state = {
        "bookmarks": {
            "messages": {
                "partitions": [
                    {"context": {"grant_id": "g1"}, "replication_key_value": 5},
                    {"context": {"grant_id": "g2"}},
                ]
            },
            "folders": {},
        }
    }
    assert bookmark_index(state) == {("messages", (("grant_id", "g1"),)): 5}
    assert bookmark_index({}) == {}
