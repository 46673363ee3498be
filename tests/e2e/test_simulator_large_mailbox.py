"""The simulator's large mailbox: served lazily, matching its truth, readable in time slices.

Split from tests/unit/test_simulator.py: thousands of messages read in many short pages, a few
seconds in all.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from nylas_simulator import NylasSimulator
from tests.support.simulator_http import Record, get, page_all

API_KEY = "sim-key"
YEAR = 365 * 86400


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {API_KEY}"
        yield s


@pytest.fixture(scope="module")
def big() -> Iterator[NylasSimulator]:
    with NylasSimulator(seed=7, grants=8, records_per_grant=10, large_mailbox=3000) as s:
        yield s


def test_large_mailbox_is_served_lazily_and_matches_truth(
    big: NylasSimulator, http: requests.Session
) -> None:
    gid = big.large_mailbox_grant_id
    assert gid is not None
    profile = next(g for g in big.grants if g.id == gid)
    assert profile.serving
    assert profile.provider in ("google", "microsoft")
    url = f"{big.url}/v3/grants/{gid}"
    messages = page_all(http, f"{url}/messages", 200, {"select": "id,date,thread_id"})
    threads = page_all(http, f"{url}/threads", 50, {})
    truth = big.truth()
    assert len(messages) == len({m["id"] for m in messages}) == 3000
    assert {(gid, m["id"]) for m in messages} == {k for k in truth["messages"] if k[0] == gid}
    assert {(gid, t["id"]) for t in threads} == {k for k in truth["threads"] if k[0] == gid}
    assert len(threads) == 1500
    dates = [m["date"] for m in messages]
    assert dates == sorted(dates, reverse=True)  # newest first, like the API
    # Every message belongs to a listed thread, and every thread lists its messages.
    by_thread: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        by_thread[m["thread_id"]].add(m["id"])
    assert {t["id"]: set(t["message_ids"]) for t in threads} == by_thread
    # Recent mail is denser: the last year holds more than the first.
    first_year = sum(d < min(dates) + YEAR for d in dates)
    last_year = sum(d > max(dates) - YEAR for d in dates)
    assert last_year > 2 * first_year
    # Other streams of the grant stay ordinary-sized.
    assert len(page_all(http, f"{url}/contacts", 200, {})) < 100
    full = get(http, big, f"/v3/grants/{gid}/messages", limit=5).json()["data"]
    assert full[0]["body"]
    assert full[0]["grant_id"] == gid


def sliced(
    http: requests.Session,
    url: str,
    limit: int,
    after: str,
    before: str,
    bounds: list[int],
    params: dict[str, Any],
) -> tuple[list[Record], int]:
    """Read [bounds[0], bounds[-1]] in pieces whose bounds overlap by a second; deduped."""
    seen: dict[str, Record] = {}
    fetched = 0
    for lo, hi in itertools.pairwise(bounds):
        # Strict bounds: after=lo-1 and before=hi+1 take both edge seconds.
        page = page_all(http, url, limit, {after: lo - 1, before: hi + 1, **params})
        fetched += len(page)
        for r in page:
            seen.setdefault(r["id"], r)
    return list(seen.values()), fetched


@pytest.mark.parametrize("large", [False, True])
def test_messages_and_threads_sliced_with_overlap_come_once(
    big: NylasSimulator, http: requests.Session, large: bool
) -> None:
    gid = (
        big.large_mailbox_grant_id
        if large
        else next(
            g.id
            for g in big.grants
            if g.serving and g.supports("messages") and g.id != big.large_mailbox_grant_id
        )
    )
    url = f"{big.url}/v3/grants/{gid}"
    for stream, field, after, before, limit in (
        ("messages", "date", "received_after", "received_before", 7),
        ("threads", "latest_message_received_date", "latest_message_after",
         "latest_message_before", 5),
    ):  # fmt: skip
        everything = page_all(http, f"{url}/{stream}", 200 if stream == "messages" else 50, {})
        values = sorted(r[field] for r in everything)
        lo, hi = values[0], values[-1]
        # Piece edges sit exactly on record values, so overlaps really hold duplicates.
        bounds = [lo, *values[len(values) // 3 :: max(1, len(values) // 4)], hi]
        got, fetched = sliced(
            http, f"{url}/{stream}", limit, after, before, sorted(set(bounds)),
            {"select": f"id,{field}"},
        )  # fmt: skip
        assert sorted(r["id"] for r in got) == sorted(r["id"] for r in everything), stream
        assert fetched > len(got), "the overlapping bounds should have produced duplicates"
        assert all(set(r) == {"id", field} for r in got)
        # The bounds are strict.
        pivot = values[len(values) // 2]
        at_pivot = {r["id"] for r in everything if r[field] == pivot}
        below = page_all(http, f"{url}/{stream}", 50, {before: pivot})
        above = page_all(http, f"{url}/{stream}", 50, {after: pivot})
        assert all(r[field] < pivot for r in below)
        assert all(r[field] > pivot for r in above)
        assert len(below) + len(above) + len(at_pivot) == len(everything)


def test_select_may_change_between_pages(big: NylasSimulator, http: requests.Session) -> None:
    gid = big.large_mailbox_grant_id
    url = f"{big.url}/v3/grants/{gid}/messages"
    first = http.get(url, params={"limit": 50, "select": "id"}, timeout=30).json()
    second = http.get(
        url, params={"limit": 50, "select": "id,date", "page_token": first["next_cursor"]},
        timeout=30,
    ).json()  # fmt: skip
    assert set(first["data"][0]) == {"id"}
    assert set(second["data"][0]) == {"id", "date"}
    assert not {m["id"] for m in first["data"]} & {m["id"] for m in second["data"]}
