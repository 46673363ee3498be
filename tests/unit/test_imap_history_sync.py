"""Issue #18 in-process: IMAP, Yahoo and iCloud mail older than Nylas's cache, read once."""

from __future__ import annotations

import collections
import logging
import time
import typing as t
from collections.abc import Iterator

import pytest

from nylas_simulator import NylasSimulator
from tap_nylas.directory import GrantDirectory
from tap_nylas.history import LANE as HISTORY_LANE
from tap_nylas.scheduler import Lane
from tap_nylas.tap import TapNylas
from tests.support import run_sync, sync

IMAP = ("imap", "yahoo", "icloud")
STREAMS = ["messages", "folders"]


@pytest.fixture(scope="module")
def sim() -> Iterator[NylasSimulator]:
    """IMAP-like grants whose mail goes back to 2024, of which Nylas caches 90 days."""
    with NylasSimulator(
        seed=7, grants=24, records_per_grant=40, imap_cache_days=90, imap_latency=0.002
    ) as s:
        yield s


def config(sim: NylasSimulator, **extra: t.Any) -> dict:
    return {
        "api_key": "sim-key",
        "api_url": sim.url,
        "start_date": "2000-01-01T00:00:00Z",
        "backoff_factor": 0,
        "page_size": 7,  # several pages per folder
        **extra,
    }


def history_requests(log: list[dict]) -> list[dict]:
    return [e for e in log if e["params"].get("query_imap")]


def imap_grants(sim: NylasSimulator) -> set[str]:
    return {g.id for g in sim.grants if g.provider in IMAP and g.serving}


def test_a_full_sync_emits_every_message_once_with_all_its_folders_and_never_again(
    sim: NylasSimulator,
) -> None:
    sim.reset_log()
    result = run_sync(config(sim), STREAMS)

    counted = collections.Counter((r["grant_id"], r["id"]) for r in result.records["messages"])
    truth = {(m["grant_id"], m["id"]): sorted(m["folders"]) for m in sim.records("messages")}
    assert set(counted) == set(truth)
    assert max(counted.values()) == 1
    got = {(r["grant_id"], r["id"]): sorted(r["folders"]) for r in result.records["messages"]}
    assert got == truth
    # The test means something: IMAP mail older than the cache, some in two folders.
    multi = [k for k, folders in truth.items() if len(folders) > 1 and k[0] in imap_grants(sim)]
    assert multi
    assert history_requests(sim.request_log)
    state = result.states[-1]
    history = {
        p["context"]["grant_id"]: p["imap_history"]
        for p in state["bookmarks"]["messages"]["partitions"]
        if "imap_history" in p
    }
    assert set(history) == imap_grants(sim)
    assert all(h == {"done": True} for h in history.values())

    sim.reset_log()
    again = run_sync(config(sim), STREAMS, state=state)
    assert history_requests(sim.request_log) == []
    assert all(
        p.get("imap_history") in (None, {"done": True})
        for p in again.states[-1]["bookmarks"]["messages"]["partitions"]
    )


def test_other_providers_send_the_same_requests_as_without_history(sim: NylasSimulator) -> None:
    def requests_of_other_grants(**extra: t.Any) -> collections.Counter[tuple]:
        sim.reset_log()
        run_sync(config(sim, **extra), STREAMS)
        others = [e for e in sim.request_log if e["grant_id"] not in imap_grants(sim)]
        return collections.Counter(
            (e["path"], tuple(sorted((k, tuple(v)) for k, v in e["params"].items())))
            for e in others
        )

    with_history = requests_of_other_grants()
    without = requests_of_other_grants(imap_history=False)
    assert with_history == without
    assert sum(with_history.values()) > 20


def test_imap_history_off_reads_only_the_cache(sim: NylasSimulator) -> None:
    sim.reset_log()
    result = run_sync(config(sim, imap_history=False), STREAMS)
    assert history_requests(sim.request_log) == []
    read = {(r["grant_id"], r["id"]) for r in result.records["messages"]}
    truth = {(m["grant_id"], m["id"]) for m in sim.records("messages")}
    assert read < truth  # the history of IMAP grants is missing, as before issue #18


def test_a_start_date_within_the_cache_reads_no_history(sim: NylasSimulator) -> None:
    sim.reset_log()
    month_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400))
    run_sync(config(sim, start_date=month_ago), STREAMS)
    assert history_requests(sim.request_log) == []


def test_a_history_that_fails_mid_folder_resumes_at_its_page(
    sim: NylasSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The history state keeps the page being written; the next run starts there."""
    grant = max(
        imap_grants(sim),
        key=lambda g: sum(m["grant_id"] == g for m in sim.records("messages")),
    )
    sim.clear_fault_rules()
    # A second page of the message pass (no `select`) of the grant's history fails.
    pattern = rf"/v3/grants/{grant}/messages\?(?!.*select)(?=.*query_imap).*page_token"
    sim.add_fault_rule(pattern, "500", times=1)
    sim.reset_log()
    with caplog.at_level(logging.INFO):
        first, error = sync(config(sim, max_retries=0), STREAMS)
    sim.clear_fault_rules()
    assert error is not None  # the partition failed: the run says so
    state = first.states[-1]
    entry = next(
        p for p in state["bookmarks"]["messages"]["partitions"] if p["context"]["grant_id"] == grant
    )
    assert "folder" in entry["imap_history"]
    assert "imap history:" in caplog.text

    second = run_sync(config(sim), STREAMS, state=state)
    records = first.records["messages"] + second.records["messages"]
    keys = [(r["grant_id"], r["id"]) for r in records]
    truth = {(m["grant_id"], m["id"]) for m in sim.records("messages")}
    assert set(keys) >= truth
    # History's mail (older than its bound) twice at most for the page in progress; the
    # cache's is read again from the bookmark minus the look-back, as on any grant.
    before = entry["imap_history"]["before"]
    mine = [r for r in records if r["grant_id"] == grant and r["date"] < before]
    old = [(r["grant_id"], r["id"]) for r in mine]
    assert set(old) == {
        (m["grant_id"], m["id"])
        for m in sim.records("messages")
        if m["grant_id"] == grant and m["date"] < before
    }
    assert len(old) - len(set(old)) <= 7


def test_a_saved_page_cursor_that_expired_rereads_that_folder(
    sim: NylasSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    grant = sorted(imap_grants(sim))[0]
    folders = sorted(f["id"] for f in sim.records("folders") if f["grant_id"] == grant)
    before = int(time.time()) - 88 * 86400
    saved = {"before": before, "folder": folders[0], "cursor": "expired-cursor"}
    state = {
        "bookmarks": {
            "messages": {"partitions": [{"context": {"grant_id": grant}, "imap_history": saved}]}
        }
    }
    with caplog.at_level(logging.WARNING):
        result = run_sync(config(sim, grant_ids=[grant]), STREAMS, state=state)

    assert "was refused" in caplog.text
    old = {(r["grant_id"], r["id"]) for r in result.records["messages"] if r["date"] < before}
    assert old == {
        (m["grant_id"], m["id"])
        for m in sim.records("messages")
        if m["grant_id"] == grant and m["date"] < before
    }
    entry = result.states[-1]["bookmarks"]["messages"]["partitions"][0]
    assert entry["imap_history"] == {"done": True}


@pytest.mark.parametrize(
    ("settings", "lane"),
    [
        ({}, Lane(per_grant=1, total=16)),  # a fixed number, not a share of the workers
        ({"max_concurrency": 1}, Lane(per_grant=1, total=1)),
        ({"imap_history_max_requests": 3}, Lane(per_grant=1, total=3)),
        ({"imap_history_max_requests": 64, "max_concurrency": 2}, Lane(per_grant=1, total=2)),
    ],
)
def test_history_requests_have_their_own_budget(
    settings: dict, lane: Lane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 grants: workers are capped at max_requests_per_grant x grants, not below the lane.
    monkeypatch.setattr(GrantDirectory, "grants", property(lambda _: [None] * 100))
    tap = TapNylas(config={"api_key": "k", **settings}, validate_config=False)
    assert tap.scheduler._lanes == {HISTORY_LANE: lane}
    tap.scheduler.close()
