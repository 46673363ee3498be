"""The local Nylas v3 simulator speaks the documented contract and knows its truth."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from nylas_simulator import FAULT_KINDS, Faults, NylasSimulator
from tests.support.simulator_http import Record, get, page_all

Keys = dict[str, set[tuple[str, ...]]]

API_KEY = "sim-key"
WIDE_START, WIDE_END = 1704067200, 1830297600  # 2024-01-01 .. 2028-01-01
YEAR = 365 * 86400
ALL_TYPES = ["default", "outOfOffice", "focusTime", "workingLocation"]
GRANT_PATHS = {
    "calendars": "calendars",
    "contacts": "contacts",
    "contact_groups": "contacts/groups",
    "drafts": "drafts",
    "folders": "folders",
    "messages": "messages",
    "threads": "threads",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[NylasSimulator]:
    with NylasSimulator(seed=7, grants=24, records_per_grant=20) as s:
        yield s


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {API_KEY}"
        yield s


def offset_all(http: requests.Session, sim: NylasSimulator, path: str, limit: int) -> list[Record]:
    out: list[Record] = []
    while True:
        body = get(http, sim, path, limit=limit, offset=len(out)).json()
        assert "next_cursor" not in body
        assert (body["limit"], body["offset"]) == (limit, len(out))
        out += body["data"]
        if len(body["data"]) < limit:
            return out


def cursor_all(
    http: requests.Session, sim: NylasSimulator, path: str, limit: int, **params: Any
) -> tuple[int, list[Record], list[tuple[int, bool]]]:
    """(status, records, [(page length, cursor followed)]) of a cursor-paged list."""
    records: list[Record] = []
    pages: list[tuple[int, bool]] = []
    token = None
    while True:
        extra: dict[str, str] = {"page_token": token} if token else {}
        resp = get(http, sim, path, limit=limit, **params, **extra)
        if resp.status_code != 200:
            return resp.status_code, records, pages
        body = resp.json()
        token = body.get("next_cursor")
        records += body["data"]
        pages.append((len(body["data"]), bool(token)))
        if not token:
            return 200, records, pages


def grant(sim: NylasSimulator, provider: str, serving: bool = True) -> Any:
    return next(g for g in sim.grants if g.provider == provider and g.serving == serving)


def error_of(resp: requests.Response) -> dict[str, Any]:
    body: dict[str, Record] = resp.json()
    assert set(body) == {"request_id", "error"}
    return body["error"]


# -- auth and admin endpoints ---------------------------------------------------


def test_bearer_auth_is_required(sim: NylasSimulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        resp = requests.get(f"{sim.url}/v3/grants", headers=headers, timeout=10)
        assert resp.status_code == 401
        assert error_of(resp) == {"type": "unauthorized", "message": "Unauthorized"}
        assert resp.headers["x-request-id"]


def test_grants_offset_paging_reaches_every_grant(
    sim: NylasSimulator, http: requests.Session
) -> None:
    grants = offset_all(http, sim, "/v3/grants", limit=7)
    assert {(g["id"],) for g in grants} == sim.truth()["grants"]
    assert len(grants) == 24
    statuses = {g["grant_status"] for g in grants}
    assert statuses == {"valid", "invalid"}
    invalid = get(http, sim, "/v3/grants", grant_status="invalid", limit=200).json()["data"]
    assert invalid
    assert all(g["grant_status"] == "invalid" for g in invalid)
    assert get(http, sim, "/v3/grants", limit=201).status_code == 400
    assert get(http, sim, "/v3/grants", limit=200).status_code == 200
    assert "Method not supported" not in json.dumps(grants)


def test_connectors_and_credentials(sim: NylasSimulator, http: requests.Session) -> None:
    connectors = offset_all(http, sim, "/v3/connectors", limit=3)
    providers = {c["provider"] for c in connectors}
    assert {"google", "microsoft", "imap", "zoom"} <= providers
    creds = {
        (p, c["id"])
        for p in providers
        for c in offset_all(http, sim, f"/v3/connectors/{p}/creds", 200)
    }
    assert creds == sim.truth()["credentials"]
    assert sum(1 for p, _ in creds if p == "microsoft") >= 205
    resp = get(http, sim, "/v3/connectors/nope/creds")
    assert resp.status_code == 404
    assert error_of(resp)["type"] == "not_found_error"


# -- cursor paging ----------------------------------------------------------------


def test_message_cursor_paging_matches_truth_with_short_pages(
    sim: NylasSimulator, http: requests.Session
) -> None:
    truth = sim.truth()["messages"]
    short_page_seen = False
    for g in sim.grants:
        if not (g.serving and g.supports("messages")):
            continue
        status, records, pages = cursor_all(http, sim, f"/v3/grants/{g.id}/messages", limit=5)
        assert status == 200
        assert {(r["grant_id"], r["id"]) for r in records} == {k for k in truth if k[0] == g.id}
        dates = [r["date"] for r in records]
        assert dates == sorted(dates, reverse=True)
        short_page_seen |= any(n < 5 and more for n, more in pages)
    assert short_page_seen


def test_final_page_cursor_styles_vary(sim: NylasSimulator, http: requests.Session) -> None:
    styles = set()
    for g in sim.grants:
        if g.serving and g.supports("folders"):
            body = get(http, sim, f"/v3/grants/{g.id}/folders", limit=200).json()
            styles.add(repr(body["next_cursor"]) if "next_cursor" in body else "absent")
    assert styles == {"None", "''", "absent"}


def test_page_token_must_match_filters(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "google")
    path = f"/v3/grants/{g.id}/messages"
    token = get(http, sim, path, limit=3, received_after=0).json()["next_cursor"]
    assert get(http, sim, path, limit=3, received_after=0, page_token=token).status_code == 200
    resp = get(http, sim, path, limit=3, received_after=5, page_token=token)
    assert resp.status_code == 400
    assert error_of(resp)["type"] == "invalid_request_error"
    assert get(http, sim, path, page_token="garbage!").status_code == 400


def test_threads_limit_is_capped_at_50(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "google")
    resp = get(http, sim, f"/v3/grants/{g.id}/threads", limit=51)
    assert resp.status_code == 400
    assert error_of(resp)["message"] == "limit must be <= 50"
    assert get(http, sim, f"/v3/grants/{g.id}/threads", limit=50).status_code == 200
    assert get(http, sim, f"/v3/grants/{g.id}/messages", limit=201).status_code == 400


# -- filters ------------------------------------------------------------------------


def test_received_after_and_latest_message_after(
    sim: NylasSimulator, http: requests.Session
) -> None:
    g = grant(sim, "microsoft")
    messages = [m for m in sim.records("messages") if m["grant_id"] == g.id]
    pivot = sorted(m["date"] for m in messages)[len(messages) // 2]
    _, got, _ = cursor_all(http, sim, f"/v3/grants/{g.id}/messages", 50, received_after=pivot)
    assert {m["id"] for m in got} == {m["id"] for m in messages if m["date"] > pivot}
    _, got, _ = cursor_all(http, sim, f"/v3/grants/{g.id}/messages", 50, received_before=pivot)
    assert {m["id"] for m in got} == {m["id"] for m in messages if m["date"] < pivot}
    threads = [t for t in sim.records("threads") if t["grant_id"] == g.id]
    pivot = sorted(t["latest_message_received_date"] for t in threads)[len(threads) // 2]
    path = f"/v3/grants/{g.id}/threads"
    _, got, _ = cursor_all(http, sim, path, 50, latest_message_after=pivot)
    expected = {t["id"] for t in threads if t["latest_message_received_date"] > pivot}
    assert {t["id"] for t in got} == expected


def test_select_and_header_fields(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "google")
    body = get(http, sim, f"/v3/grants/{g.id}/messages", select="id,subject,nope").json()
    assert body["data"]
    assert all(set(m) == {"id", "subject"} for m in body["data"])
    plain = get(http, sim, f"/v3/grants/{g.id}/messages", limit=3).json()["data"]
    assert all("headers" not in m for m in plain)
    full = get(http, sim, f"/v3/grants/{g.id}/messages", limit=3, fields="include_headers")
    names = [h["name"] for h in full.json()["data"][0]["headers"]]
    assert names.count("Received") == 2
    assert "Message-ID" in names


def test_scheduled_messages_come_in_three_shapes(
    sim: NylasSimulator, http: requests.Session
) -> None:
    shapes = set()
    keys = set()
    for g in sim.grants:
        if g.serving and g.supports("scheduled_messages"):
            body = get(http, sim, f"/v3/grants/{g.id}/messages/schedules").json()
            if isinstance(body, list):
                shapes.add("list")
                items = body
            elif isinstance(body["data"], list):
                shapes.add("data")
                items = body["data"]
            else:
                shapes.add("data.schedules")
                items = body["data"]["schedules"]
            assert all("grant_id" not in s and s["status"]["code"] for s in items)
            keys |= {(g.id, s["schedule_id"]) for s in items}
    assert shapes == {"list", "data", "data.schedules"}
    assert keys == sim.truth()["scheduled_messages"]


# -- providers and grant states ------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "path"),
    [
        ("imap", "calendars"),
        ("imap", "events?calendar_id=primary"),
        ("virtual-calendar", "messages"),
        ("virtual-calendar", "contacts"),
        ("ews", "contacts/groups"),
        ("icloud", "messages/schedules"),
    ],
)
def test_unsupported_provider_endpoints(
    sim: NylasSimulator, http: requests.Session, provider: str, path: str
) -> None:
    g = grant(sim, provider)
    resp = http.get(f"{sim.url}/v3/grants/{g.id}/{path}", timeout=10)
    assert resp.status_code == 400
    error = error_of(resp)
    assert error == {
        "type": "invalid_request_error",
        "message": "Method not supported for provider",
    }


def test_invalid_expired_and_unknown_grants(sim: NylasSimulator, http: requests.Session) -> None:
    invalid = next(g for g in sim.grants if g.status == "invalid")
    resp = get(http, sim, f"/v3/grants/{invalid.id}/messages")
    assert resp.status_code == 401
    assert error_of(resp)["message"] == "Grant is invalid or expired"
    expired = sim.expired_grant_id
    assert expired is not None
    listed = get(http, sim, "/v3/grants", limit=200).json()["data"]
    assert next(g for g in listed if g["id"] == expired)["grant_status"] == "valid"
    assert get(http, sim, f"/v3/grants/{expired}/calendars").status_code == 401
    assert get(http, sim, f"/v3/grants/grant:{expired}/folders").status_code == 401
    resp = get(http, sim, "/v3/grants/no-such-grant/messages")
    assert resp.status_code == 404
    assert error_of(resp)["type"] == "not_found_error"


# -- events ---------------------------------------------------------------------------


def test_events_calendar_validation(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "google")
    path = f"/v3/grants/{g.id}/events"
    assert get(http, sim, path).status_code == 400
    resp = get(http, sim, path, calendar_id="nope")
    assert resp.status_code == 404
    assert error_of(resp) == {"type": "not_found_error", "message": "Calendar not found"}
    assert get(http, sim, path, calendar_id="primary", start=10, end=5).status_code == 400
    gone_grant, gone_calendar = sim.missing_calendar or ("", "")
    listed = get(http, sim, f"/v3/grants/{gone_grant}/calendars").json()["data"]
    assert gone_calendar in {c["id"] for c in listed}
    resp = get(http, sim, f"/v3/grants/{gone_grant}/events", calendar_id=gone_calendar)
    assert resp.status_code == 404


def test_icloud_event_windows(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "icloud")
    calendar = get(http, sim, f"/v3/grants/{g.id}/calendars").json()["data"][0]["id"]
    path = f"/v3/grants/{g.id}/events"
    resp = get(http, sim, path, calendar_id=calendar, start=WIDE_START, end=WIDE_START + YEAR + 1)
    assert resp.status_code == 400
    assert "year" in error_of(resp)["message"]
    ok = get(http, sim, path, calendar_id=calendar, start=WIDE_START, end=WIDE_START + YEAR)
    assert ok.status_code == 200
    assert get(http, sim, path, calendar_id="primary").status_code == 400


def test_events_default_window_is_next_30_days() -> None:
    with (
        NylasSimulator(seed=7, grants=1, records_per_grant=240) as dense,
        requests.Session() as http,
    ):
        http.headers["Authorization"] = f"Bearer {API_KEY}"
        g = dense.grants[0]
        now = int(time.time())
        expected = {
            e["id"]
            for e in dense.records("events", events_start=now, events_end=now + 30 * 86400)
            if e["calendar_id"] == g.email
        }
        path = f"/v3/grants/{g.id}/events"
        _, got, _ = cursor_all(
            http,
            dense,
            path,
            200,
            calendar_id="primary",
            show_cancelled="true",
            event_type=ALL_TYPES,
        )
        assert expected
        assert {e["id"] for e in got} == expected
        _, wide, _ = cursor_all(
            http, dense, path, 200, calendar_id=g.email, start=WIDE_START, end=WIDE_END
        )
        assert len(wide) > len(got)


def test_event_overlap_semantics(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "microsoft")
    data = sim.dataset.grant_data(g)
    calendar = data.primary_calendar
    entry = next(e for e in data.events[calendar or ""] if e.record["when"]["object"] == "timespan")
    when = entry.record["when"]
    start, end = when["start_time"], when["end_time"]
    path = f"/v3/grants/{g.id}/events"

    def ids(lo: int, hi: int) -> set[str]:
        body = get(
            http,
            sim,
            path,
            calendar_id=calendar,
            start=lo,
            end=hi,
            show_cancelled="true",
            limit=200,
        ).json()
        return {e["id"] for e in body["data"]}

    assert entry.record["id"] in ids(end, end + 60)  # touches the window's start
    assert entry.record["id"] in ids(start - 60, start)  # touches the window's end
    assert entry.record["id"] in ids(start + 1, end - 1)  # window inside the event
    assert entry.record["id"] not in ids(end + 1, end + 60)
    assert entry.record["id"] not in ids(start - 60, start - 1)


def test_google_event_types_and_cancelled(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "google")
    data = sim.dataset.grant_data(g)
    entries = data.events[data.primary_calendar or ""]
    by_type: dict[str, set[str]] = defaultdict(set)
    for e in entries:
        by_type[e.event_type].add(e.record["id"])
    assert set(by_type) == set(ALL_TYPES)
    cancelled = {e.record["id"] for e in entries if e.cancelled}
    assert cancelled
    path = f"/v3/grants/{g.id}/events"
    window = {"calendar_id": "primary", "start": WIDE_START, "end": WIDE_END, "limit": 200}

    def ids(**params: Any) -> set[str]:
        return {e["id"] for e in get(http, sim, path, **window, **params).json()["data"]}

    assert ids() == by_type["default"] - cancelled
    assert ids(event_type="outOfOffice", show_cancelled="true") == by_type["outOfOffice"]
    assert ids(event_type=ALL_TYPES, show_cancelled="true") == {e.record["id"] for e in entries}
    assert ids(event_type="default,focusTime") == (by_type["default"] | by_type["focusTime"]) - (
        cancelled
    )


# -- transport --------------------------------------------------------------------------


def test_gzip_and_headers(sim: NylasSimulator, http: requests.Session) -> None:
    g = grant(sim, "google")
    url = f"{sim.url}/v3/grants/{g.id}/messages"
    zipped = http.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.json()["data"]
    plain = http.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in plain.headers
    assert int(plain.headers["Content-Length"]) == len(plain.content)
    assert plain.json() == {**zipped.json(), "request_id": plain.json()["request_id"]}
    small = requests.get(f"{sim.url}/v3/grants", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert "Content-Encoding" not in small.headers  # under 200 bytes


def test_large_bodies_nul_and_shared_ids(sim: NylasSimulator) -> None:
    messages = sim.records("messages")
    large = [m for m in messages if len(m["body"]) > 1_000_000]
    assert 2 <= len(large) <= 3
    assert all(len(m["body"]) < 3_100_000 for m in large)
    assert any("\u0000" in m["subject"] for m in messages)
    by_id: dict[str, set[str]] = defaultdict(set)
    for m in messages:
        by_id[m["id"]].add(m["grant_id"])
    assert any(len(grants) == 2 for grants in by_id.values())
    inbox_grants = {f["grant_id"] for f in sim.records("folders") if f["id"] == "INBOX"}
    assert len(inbox_grants) > 2


def test_a_complete_sync_reproduces_the_truth(sim: NylasSimulator, http: requests.Session) -> None:
    truth = sim.truth(events_start=WIDE_START, events_end=WIDE_END)
    got: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for g in offset_all(http, sim, "/v3/grants", 200):
        if g["grant_status"] == "valid":
            _sync_grant(sim, http, g, got)
    for stream in GRANT_PATHS.keys() | {"events"}:
        assert got[stream] == truth[stream], stream


def _sync_grant(sim: NylasSimulator, http: requests.Session, g: Record, got: Keys) -> None:
    calendars: list[Record] = []
    for stream, sub in GRANT_PATHS.items():
        status, records, _ = cursor_all(http, sim, f"/v3/grants/{g['id']}/{sub}", 7)
        if status == 401:
            return
        got[stream] |= {(r["grant_id"], r["id"]) for r in records}
        calendars += records if stream == "calendars" else []
    for cal in calendars:
        step = YEAR if g["provider"] == "icloud" else WIDE_END - WIDE_START
        for lo in range(WIDE_START, WIDE_END, step):
            status, records, _ = cursor_all(
                http,
                sim,
                f"/v3/grants/{g['id']}/events",
                9,
                calendar_id=cal["id"],
                start=lo,
                end=min(lo + step, WIDE_END),
                show_cancelled="true",
                event_type=ALL_TYPES,
            )
            assert status in (200, 404)
            got["events"] |= {(r["grant_id"], r["id"]) for r in records}


def test_truth_is_stable_for_a_seed() -> None:
    first = NylasSimulator(seed=7, grants=24, records_per_grant=20).truth()
    second = NylasSimulator(seed=7, grants=24, records_per_grant=20).truth()
    other = NylasSimulator(seed=8, grants=24, records_per_grant=20).truth()
    assert first == second
    assert first["messages"] != other["messages"]
    assert all(first[s] for s in first)


def test_faults_happen_and_a_retrying_client_gets_through() -> None:
    faults = Faults(rate=0.3, retry_after=0)
    seen: dict[int, list[requests.Response]] = defaultdict(list)
    with (
        NylasSimulator(seed=3, grants=12, records_per_grant=10, faults=faults) as fsim,
        requests.Session() as http,
    ):
        http.headers["Authorization"] = f"Bearer {API_KEY}"

        def fetch(path: str, **params: Any) -> Any:
            for _ in range(3):
                try:
                    resp = http.get(f"{fsim.url}{path}", params=params, timeout=10)
                except requests.RequestException:
                    continue
                seen[resp.status_code].append(resp)
                if resp.status_code < 429:
                    return resp.json()
            raise AssertionError(f"no success after 3 tries: {path}")

        grants, offset = [], 0
        while page := fetch("/v3/grants", limit=2, offset=offset)["data"]:
            grants += page
            offset += len(page)
        for g in fsim.grants:
            if g.serving and g.supports("messages"):
                body = fetch(f"/v3/grants/{g.id}/messages", limit=2)
                while body.get("next_cursor"):
                    body = fetch(
                        f"/v3/grants/{g.id}/messages", limit=2, page_token=body["next_cursor"]
                    )
        log = fsim.request_log
    assert {g["id"] for g in grants} == {g.id for g in fsim.grants}
    rate = sum(1 for e in log if e["fault"]) / len(log)
    assert 0.15 < rate < 0.45, rate
    # Every kind shows up over more requests: test_simulator_faults.py checks the mix.
    assert len({e["fault"] for e in log} - {None}) >= 4
    assert {e["fault"] for e in log} - {None} <= set(FAULT_KINDS)
    assert {e["fault_source"] for e in log} - {None} == {"random"}
    assert any(r.headers.get("Retry-After") == "0" for r in seen[429])
    assert any("Retry-After" not in r.headers for r in seen[429])
    streaks: dict[tuple[str, str], int] = defaultdict(int)
    for e in log:
        key = (e["path"], json.dumps(e["params"], sort_keys=True))
        streaks[key] = streaks[key] + 1 if e["fault"] else 0
        assert streaks[key] <= 2


def test_rate_limits_answer_nylas_429() -> None:
    with NylasSimulator(grants=2, rate_limits=True) as limited, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {API_KEY}"
        statuses = [http.get(f"{limited.url}/v3/connectors", timeout=10) for _ in range(120)]
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled
    assert error_of(throttled[0])["type"] == "nylas_rate_limit_exceeded"
    assert throttled[0].headers["Retry-After"] == "1"
    assert any(e["status"] == 429 for e in limited.request_log)


def test_latency_overlaps_across_threads() -> None:
    with NylasSimulator(grants=3, latency=0.2) as slow:
        started = time.monotonic()
        threads = [
            threading.Thread(
                target=requests.get,
                args=(f"{slow.url}/v3/connectors",),
                kwargs={"headers": {"Authorization": f"Bearer {API_KEY}"}, "timeout": 10},
            )
            for _ in range(5)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        log = slow.request_log
    assert elapsed < 0.8
    assert max(e["in_flight"] for e in log) >= 2
    assert {e["status"] for e in log} == {200}


def test_ten_thousand_grants_list_quickly_and_lazily() -> None:
    with NylasSimulator(seed=7, grants=10_000, records_per_grant=3) as big, requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {API_KEY}"
        started = time.monotonic()
        grants = offset_all(s, big, "/v3/grants", 200)
        elapsed = time.monotonic() - started
        assert len({g["id"] for g in grants}) == 10_000
        assert elapsed < 3
        assert big.dataset.generated == 0
        g = next(p for p in big.grants if p.serving and p.supports("messages"))
        assert len(get(s, big, f"/v3/grants/{g.id}/messages").json()["data"]) == 3
        assert big.dataset.generated == 1


# -- realism: latency distribution, event windows read in chunks ------------------------


def test_lognormal_latency_is_seeded_with_the_given_mean() -> None:
    def draws(seed: int) -> list[float]:
        s = NylasSimulator(seed=seed, grants=1, latency=0.1, latency_distribution="lognormal")
        return [s.app.delay() for _ in range(4000)]

    first = draws(7)
    assert first == draws(7)
    assert first != draws(8)
    assert sum(first) / len(first) == pytest.approx(0.1, rel=0.1)
    ordered = sorted(first)
    assert ordered[len(ordered) // 2] < 0.09  # median under the mean: a long right tail
    assert ordered[-40] > 0.3  # the slowest 1% take over 3x the mean
    fixed = NylasSimulator(grants=1, latency=0.1)
    assert {fixed.app.delay() for _ in range(10)} == {0.1}
    with pytest.raises(ValueError, match="latency_distribution"):
        NylasSimulator(grants=1, latency=0.1, latency_distribution="uniform")


def test_events_in_overlapping_window_chunks_come_once(
    sim: NylasSimulator, http: requests.Session
) -> None:
    checked = 0
    for g in sim.grants:
        if not (g.serving and g.supports("events")) or g.provider == "icloud":
            continue
        cals = get(http, sim, f"/v3/grants/{g.id}/calendars", limit=200).json()["data"]
        for cal in cals:
            if (g.id, cal["id"]) == sim.missing_calendar:
                continue
            base = {"calendar_id": cal["id"], "show_cancelled": "true"}
            if g.provider == "google":
                base["event_type"] = ",".join(ALL_TYPES)
            url = f"{sim.url}/v3/grants/{g.id}/events"
            whole = page_all(http, url, 200, {**base, "start": WIDE_START, "end": WIDE_END})
            step = (WIDE_END - WIDE_START) // 5
            seen: dict[str, Record] = {}
            fetched = 0
            for lo in range(WIDE_START, WIDE_END, step):
                # Touching chunks [lo, lo + step]: an event across an edge comes in both.
                part = page_all(
                    http, url, 7, {**base, "start": lo, "end": min(lo + step, WIDE_END),
                                   "select": "id"},
                )  # fmt: skip
                fetched += len(part)
                for r in part:
                    seen.setdefault(r["id"], r)
            assert sorted(seen) == sorted(r["id"] for r in whole)
            assert fetched >= len(whole)
            checked += 1
    assert checked >= 5
