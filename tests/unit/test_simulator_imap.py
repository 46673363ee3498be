"""The simulator models Nylas's 90-day mail cache of IMAP, Yahoo and iCloud grants."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from nylas_simulator import NylasSimulator
from tests.support.simulator_http import get, page_all

API_KEY = "sim-key"
DAY = 86_400
IMAP = ("imap", "yahoo", "icloud")


@pytest.fixture(scope="module")
def sim() -> Iterator[NylasSimulator]:
    with NylasSimulator(seed=7, grants=24, records_per_grant=40, imap_cache_days=90) as s:
        yield s


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {API_KEY}"
        yield s


def _messages(sim: NylasSimulator, grant_id: str) -> list[dict]:
    return [m for m in sim.records("messages") if m["grant_id"] == grant_id]


def _folders(sim: NylasSimulator, grant_id: str) -> list[str]:
    return [f["id"] for f in sim.records("folders") if f["grant_id"] == grant_id]


def test_imap_grants_list_only_the_last_90_days(
    sim: NylasSimulator, http: requests.Session
) -> None:
    cutoff = int(time.time()) - 90 * DAY
    for provider in (*IMAP, "google"):
        g = next(g for g in sim.grants if g.provider == provider and g.serving)
        listed = page_all(http, f"{sim.url}/v3/grants/{g.id}/messages", 200, {})
        truth = _messages(sim, g.id)
        if provider in IMAP:
            assert {m["id"] for m in listed} == {m["id"] for m in truth if m["date"] >= cutoff}
            assert len(listed) < len(truth)  # the mail goes back years
        else:
            assert len(listed) == len(truth)


def test_query_imap_lists_one_folder_of_any_age(
    sim: NylasSimulator, http: requests.Session
) -> None:
    g = max(
        (g for g in sim.grants if g.provider in IMAP and g.serving),
        key=lambda g: sum(len(m["folders"]) > 1 for m in _messages(sim, g.id)),
    )
    truth = _messages(sim, g.id)
    seen: dict[str, set[str]] = {}
    for folder in _folders(sim, g.id):
        url = f"{sim.url}/v3/grants/{g.id}/messages"
        # Date filters are not honoured: the tap must filter on its side.
        listed = page_all(http, url, 7, {"query_imap": "true", "in": folder, "received_after": 1})
        assert all(m["folders"] == [folder] for m in listed)
        dates = [m["date"] for m in listed]
        assert dates == sorted(dates)  # oldest first, as IMAP UIDs go
        for m in listed:
            seen.setdefault(m["id"], set()).add(folder)
    assert seen == {m["id"]: set(m["folders"]) for m in truth}
    assert any(len(f) > 1 for f in seen.values())  # some messages sit in two folders


def test_query_imap_needs_in_and_an_imap_grant(sim: NylasSimulator, http: requests.Session) -> None:
    g = next(g for g in sim.grants if g.provider == "yahoo" and g.serving)
    resp = get(http, sim, f"/v3/grants/{g.id}/messages", query_imap="true")
    assert resp.status_code == 400
    assert "in is required" in resp.json()["error"]["message"]
    google = next(g for g in sim.grants if g.provider == "google" and g.serving)
    resp = get(http, sim, f"/v3/grants/{google.id}/messages", query_imap="true", **{"in": "INBOX"})
    assert resp.status_code == 400
    drafts = get(http, sim, f"/v3/grants/{g.id}/drafts", query_imap="true", **{"in": "Drafts"})
    assert drafts.status_code == 200


def test_query_imap_is_slow_and_answers_429_past_its_connections() -> None:
    with NylasSimulator(
        seed=7, grants=24, records_per_grant=20, imap_latency=0.3, imap_concurrency=2
    ) as sim:
        g = next(g for g in sim.grants if g.provider == "icloud" and g.serving)
        url = f"{sim.url}/v3/grants/{g.id}/messages"
        statuses: list[int] = []

        def one() -> None:
            resp = requests.get(
                url,
                params={"query_imap": "true", "in": "INBOX"},
                headers={"Authorization": f"Bearer {API_KEY}"},
                timeout=30,
            )
            statuses.append(resp.status_code)

        threads = [threading.Thread(target=one) for _ in range(4)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [200, 200, 429, 429]
        assert time.monotonic() - started >= 0.3
        # The cache is not behind the IMAP gate, nor slowed.
        started = time.monotonic()
        plain = requests.get(url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        assert plain.status_code == 200
        assert time.monotonic() - started < 0.3


def test_a_large_imap_mailbox_lists_its_folders_lazily() -> None:
    with NylasSimulator(
        seed=7,
        grants=8,
        records_per_grant=10,
        large_mailbox=600,
        large_mailbox_provider="imap",
        imap_cache_days=90,
        imap_latency=0,
    ) as sim:
        gid = sim.large_mailbox_grant_id
        assert gid is not None
        assert next(g for g in sim.grants if g.id == gid).provider == "imap"
        ids: set[str] = set()
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {API_KEY}"
            for folder in _folders(sim, gid):
                url = f"{sim.url}/v3/grants/{gid}/messages"
                listed = page_all(http, url, 200, {"query_imap": "true", "in": folder})
                assert all(m["folders"] == [folder] for m in listed)
                ids.update(m["id"] for m in listed)
        assert ids == {k[1] for k in sim.truth()["messages"] if k[0] == gid}
