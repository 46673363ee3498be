"""Scripted and random faults, the per-grant in-flight limit and the request log."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from nylas_simulator import FAULT_KINDS, Faults, NylasSimulator
from nylas_simulator.faults import RULE_KINDS, parse_rule

API_KEY = "sim-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def sim() -> Iterator[NylasSimulator]:
    with NylasSimulator(seed=7, grants=8, records_per_grant=10, trickle_interval=0.02) as s:
        yield s


def grant_with_mail(sim: NylasSimulator) -> str:
    return next(g.id for g in sim.grants if g.serving and g.supports("messages"))


def get(sim: NylasSimulator, path: str, timeout: Any = 10, **kwargs: Any) -> requests.Response:
    return requests.get(f"{sim.url}{path}", headers=AUTH, timeout=timeout, **kwargs)


def last_entry(sim: NylasSimulator, path: str) -> dict[str, Any]:
    """The newest log entry of ``path``; it lands just after the client has the body."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = [e for e in sim.request_log if e["path"] == path]
        if entries:
            return max(entries, key=lambda e: e["start"])
        time.sleep(0.01)
    raise AssertionError(f"no log entry for {path}")


def settled_log(sim: NylasSimulator, count: int) -> list[dict[str, Any]]:
    """The log once it holds ``count`` entries, in start order."""
    deadline = time.monotonic() + 5
    while len(log := sim.request_log) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return sorted(log, key=lambda e: e["start"])


def error_of(resp: requests.Response) -> dict[str, Any]:
    err: dict[str, Any] = resp.json()["error"]
    return err


# -- scripted rules: every kind, seen with plain requests -------------------------------


@pytest.mark.parametrize(
    ("kind", "retry_after", "error_type", "provider_error"),
    [
        ("429_provider", None, "rate_limit_error", True),
        ("429_provider_retry_after", "1", "rate_limit_error", True),
        ("429_nylas", None, "nylas_rate_limit_exceeded", False),
        ("429_retry_after_soon", "soon", "rate_limit_error", True),
    ],
)
def test_rule_429_kinds(
    sim: NylasSimulator, kind: str, retry_after: str | None, error_type: str, provider_error: bool
) -> None:
    grant = grant_with_mail(sim)
    sim.add_fault_rule(r"/messages", kind, times=1)
    resp = get(sim, f"/v3/grants/{grant}/messages")
    assert resp.status_code == 429
    assert resp.headers.get("Retry-After") == retry_after
    assert error_of(resp)["type"] == error_type
    assert ("provider_error" in error_of(resp)) == provider_error
    assert get(sim, f"/v3/grants/{grant}/messages").status_code == 200  # used up


@pytest.mark.parametrize(
    ("kind", "status"), [("500", 500), ("503", 503), ("403", 403), ("404", 404)]
)
def test_rule_json_error_kinds(sim: NylasSimulator, kind: str, status: int) -> None:
    sim.add_fault_rule(r"^/v3/grants\?", kind, times=1)
    resp = get(sim, "/v3/grants", params={"limit": 5})
    assert resp.status_code == status
    assert resp.headers["Content-Type"].startswith("application/json")
    assert error_of(resp)["message"]


def test_rule_502_is_a_gateway_html_page(sim: NylasSimulator) -> None:
    sim.add_fault_rule("/v3/connectors", "502", times=1)
    resp = get(sim, "/v3/connectors")
    assert resp.status_code == 502
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "Bad Gateway" in resp.text
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()


def test_rule_200_kinds_that_are_not_data(sim: NylasSimulator) -> None:
    grant = grant_with_mail(sim)
    path = f"/v3/grants/{grant}/messages"
    for kind in ("no_data", "error_200", "truncated_json", "html"):
        sim.add_fault_rule("/messages", kind, times=1)
        resp = get(sim, path)
        assert resp.status_code == 200, kind
        if kind == "no_data":
            assert "data" not in resp.json()
            assert resp.json()["request_id"]
        elif kind == "error_200":
            assert error_of(resp)["type"] == "internal_error"
            assert "data" not in resp.json()
        elif kind == "truncated_json":
            # HTTP is intact (Content-Length matches); only the JSON is cut.
            assert int(resp.headers["Content-Length"]) == len(resp.content)
            assert resp.content.startswith(b'{"request_id"')
            with pytest.raises(requests.exceptions.JSONDecodeError):
                resp.json()
        else:
            assert resp.headers["Content-Type"].startswith("text/html")
            assert resp.text.lstrip().startswith("<!DOCTYPE html>")
    assert "data" in get(sim, path).json()


def test_rule_drop_cuts_the_body(sim: NylasSimulator) -> None:
    sim.add_fault_rule("/v3/grants", "drop", times=1)
    with pytest.raises(requests.exceptions.RequestException):
        get(sim, "/v3/grants", params={"limit": 50})
    assert get(sim, "/v3/grants", params={"limit": 50}).status_code == 200


def test_rule_trickle_sends_the_real_body_slowly(sim: NylasSimulator) -> None:
    grant = grant_with_mail(sim)
    # Small and uncompressed: trickled whole at 0.02 s a byte in a few seconds.
    sim.add_fault_rule(rf"/grants/{grant}\?", "trickle", times=1)
    started = time.monotonic()
    slow = get(sim, f"/v3/grants/{grant}", params={"select": "id"}, timeout=30)
    elapsed = time.monotonic() - started
    assert slow.status_code == 200
    assert slow.json()["data"] == {"id": grant}
    assert elapsed >= 0.02 * len(slow.content) * 0.8
    entry = last_entry(sim, f"/v3/grants/{grant}")
    assert (entry["fault"], entry["fault_source"]) == ("trickle", "rule")
    assert entry["bytes"] == len(slow.content)


def test_trickle_trips_a_read_timeout() -> None:
    with NylasSimulator(grants=2, trickle_interval=1.0) as s:
        s.add_fault_rule("/v3/connectors", "trickle")
        with pytest.raises(requests.exceptions.ConnectionError):
            # The stall is between body bytes; the read timeout catches each gap.
            get(s, "/v3/connectors", timeout=(5, 0.3))


def test_rules_times_forever_order_clear_and_query_match(sim: NylasSimulator) -> None:
    grant = grant_with_mail(sim)
    path = f"/v3/grants/{grant}/messages"
    sim.add_fault_rule(r"page_token=", "503")  # only follow-up pages
    first = get(sim, path, params={"limit": 3})
    assert first.status_code == 200
    cursor = first.json()["next_cursor"]
    for _ in range(4):
        assert get(sim, path, params={"limit": 3, "page_token": cursor}).status_code == 503
    sim.clear_fault_rules()
    assert get(sim, path, params={"limit": 3, "page_token": cursor}).status_code == 200
    # First added, first matched; a used-up rule lets the next one match.
    sim.add_fault_rule("/messages", "500", times=2)
    sim.add_fault_rule("/messages", "404", times=1)
    assert [get(sim, path).status_code for _ in range(4)] == [500, 500, 404, 200]


def test_rules_come_before_auth_and_are_logged(sim: NylasSimulator) -> None:
    sim.reset_log()
    sim.add_fault_rule("/v3/connectors", "429_nylas", times=1)
    resp = requests.get(f"{sim.url}/v3/connectors", timeout=10)  # no API key
    assert resp.status_code == 429
    assert requests.get(f"{sim.url}/v3/connectors", timeout=10).status_code == 401
    log = settled_log(sim, 2)
    assert [(e["fault"], e["fault_source"], e["status"]) for e in log] == [
        ("429_nylas", "rule", 429),
        (None, None, 401),
    ]


def test_rule_validation_and_cli_syntax() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        NylasSimulator(grants=1).add_fault_rule("x", "418")
    with pytest.raises(ValueError, match="times"):
        NylasSimulator(grants=1).add_fault_rule("x", "500", times=0)
    assert parse_rule("/messages:500") == ("/messages", "500", None)
    assert parse_rule("/messages:429_provider:3") == ("/messages", "429_provider", 3)
    assert parse_rule(r"^/v3/grants/[^/]+/threads\?.*:drop:1") == (
        r"^/v3/grants/[^/]+/threads\?.*",
        "drop",
        1,
    )
    assert parse_rule("a:b:c:trickle") == ("a:b:c", "trickle", None)
    with pytest.raises(ValueError, match="REGEX:KIND"):
        parse_rule("/messages:teapot")
    assert set(FAULT_KINDS) <= set(RULE_KINDS)


# -- random transient mix -----------------------------------------------------------------


def sweep(s: NylasSimulator, rounds: int) -> list[requests.Response | None]:
    """Sequential requests over grant and application paths; None for a dropped one."""
    grants = [g.id for g in s.grants if g.serving and g.supports("messages")]
    out: list[requests.Response | None] = []
    for k in range(rounds):
        path = f"/v3/grants/{grants[k % len(grants)]}/folders" if k % 3 else "/v3/connectors"
        try:
            out.append(get(s, path, params={"limit": 10 + k % 7}))
        except requests.exceptions.RequestException:
            out.append(None)
    return out


def test_random_mix_has_every_kind_and_is_deterministic() -> None:
    faults = Faults(rate=0.3, retry_after=0.5)
    with NylasSimulator(seed=5, grants=8, records_per_grant=5, faults=faults) as s:
        responses = sweep(s, 300)
        # Entries are appended as requests finish; start order is the order sent.
        log = settled_log(s, 300)
    kinds = Counter(e["fault"] for e in log if e["fault"])
    assert set(kinds) == set(FAULT_KINDS)
    assert 0.2 < sum(kinds.values()) / len(log) < 0.4
    by_kind: dict[str, list[requests.Response]] = defaultdict(list)
    for e, r in zip(log, responses, strict=True):
        if e["fault"] and r is not None:
            by_kind[e["fault"]].append(r)
    assert all(error_of(r)["provider_error"] for r in by_kind["429_provider"])
    assert all("Retry-After" not in r.headers for r in by_kind["429_provider"])
    assert all(r.headers["Retry-After"] == "0.5" for r in by_kind["429_provider_retry_after"])
    nylas = by_kind["429_nylas"]
    assert all(error_of(r)["type"] == "nylas_rate_limit_exceeded" for r in nylas)
    assert all("provider_error" not in error_of(r) for r in nylas)
    assert any("/grants/" in r.url for r in nylas)  # grant paths too, not only app ones
    assert {r.status_code for r in by_kind["500"]} == {500}
    assert {r.status_code for r in by_kind["503"]} == {503}
    assert all(r is None for e, r in zip(log, responses, strict=True) if e["fault"] == "drop")
    # Same seed, same arrival order: the same faults.
    with NylasSimulator(seed=5, grants=8, records_per_grant=5, faults=faults) as again:
        sweep(again, 300)
        again_log = settled_log(again, 300)
        assert [e["fault"] for e in again_log] == [e["fault"] for e in log]


def test_rewind_starts_the_faults_over_for_the_next_client() -> None:
    # A benchmark compares clients: each must meet the same faults, not the next ones.
    faults = Faults(rate=0.3, retry_after=0.5)
    with NylasSimulator(
        seed=5, grants=8, records_per_grant=5, faults=faults, latency=0.002,
        latency_distribution="lognormal",
    ) as s:  # fmt: skip
        runs = []
        for _ in range(3):
            requests.get(f"{s.url}/__sim/log?reset=1&rewind=1", timeout=10).raise_for_status()
            sweep(s, 60)
            runs.append([e["fault"] for e in settled_log(s, 60)])
        requests.get(f"{s.url}/__sim/log?reset=1", timeout=10).raise_for_status()
        sweep(s, 60)
        unrewound = [e["fault"] for e in settled_log(s, 60)]
    assert any(runs[0])
    assert runs[0] == runs[1] == runs[2]
    assert unrewound != runs[0]  # without rewind: the next stretch of the sequence


def test_random_faults_never_hit_one_request_three_times_running() -> None:
    with NylasSimulator(seed=1, grants=3, faults=Faults(rate=0.9, retry_after=0)) as s:
        for _ in range(60):
            with contextlib.suppress(requests.exceptions.RequestException):
                get(s, "/v3/connectors")
        streak = longest = 0
        for e in sorted(s.request_log, key=lambda e: e["start"]):
            streak = streak + 1 if e["fault"] else 0
            longest = max(longest, streak)
    assert longest == 2


# -- per-grant in-flight limit -------------------------------------------------------------


def concurrent(s: NylasSimulator, paths: list[str]) -> list[requests.Response]:
    results: list[requests.Response | None] = [None] * len(paths)
    barrier = threading.Barrier(len(paths))

    def one(k: int) -> None:
        barrier.wait()
        results[k] = get(s, paths[k])

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def test_grant_concurrency_limit_answers_429_per_grant() -> None:
    with NylasSimulator(grants=8, records_per_grant=5, latency=0.4, grant_concurrency=2) as s:
        a, b = [g.id for g in s.grants if g.serving and g.supports("messages")][:2]
        paths = [f"/v3/grants/{a}/folders"] * 4 + [f"/v3/grants/{b}/folders"] * 2
        paths += ["/v3/connectors"] * 3  # application endpoints are not per grant
        results = concurrent(s, paths)
        statuses = [r.status_code for r in results]
        assert sorted(statuses[:4]) == [200, 200, 429, 429]
        assert statuses[4:] == [200] * 5
        refused = [r for r in results if r.status_code == 429]
        for r in refused:
            err = error_of(r)
            assert err["type"] == "rate_limit_error"
            assert err["provider_error"]["error"]["code"] == "ApplicationThrottled"
        # Retry-After only sometimes (every other refusal).
        assert sorted(r.headers.get("Retry-After", "-") for r in refused) == ["-", "1"]
        log = settled_log(s, len(paths))
        assert sum(e["fault"] == "grant_concurrency" for e in log) == 2
        assert all(e["grant_id"] == a for e in log if e["fault"] == "grant_concurrency")
        # Slots are given back: the grant answers again.
        assert get(s, f"/v3/grants/{a}/folders").status_code == 200


def test_grant_concurrency_is_off_by_default() -> None:
    with NylasSimulator(grants=4, records_per_grant=5, latency=0.2) as s:
        g = next(g.id for g in s.grants if g.serving and g.supports("messages"))
        assert {r.status_code for r in concurrent(s, [f"/v3/grants/{g}/folders"] * 6)} == {200}


# -- request log ------------------------------------------------------------------------------


def test_log_has_times_and_bytes(sim: NylasSimulator) -> None:
    sim.reset_log()
    grant = grant_with_mail(sim)
    resp = get(sim, f"/v3/grants/{grant}/messages", stream=True)
    raw = resp.raw.read(decode_content=False)
    entry = last_entry(sim, f"/v3/grants/{grant}/messages")
    assert entry["bytes"] == len(raw) == int(resp.headers["Content-Length"])
    assert entry["end"] >= entry["start"] == entry["t"]
    assert entry["duration"] == pytest.approx(entry["end"] - entry["start"])
    assert {"method", "path", "params", "status", "in_flight", "grant_id", "fault"} <= set(entry)


def test_admin_log_endpoint_needs_no_key_and_resets(sim: NylasSimulator) -> None:
    sim.reset_log()
    get(sim, "/v3/connectors")
    get(sim, "/v3/grants", params={"limit": 3})
    settled_log(sim, 2)
    first = requests.get(f"{sim.url}/__sim/log", timeout=10).json()["entries"]
    first.sort(key=lambda e: e["start"])
    assert [e["path"] for e in first] == ["/v3/connectors", "/v3/grants"]
    taken = requests.get(f"{sim.url}/__sim/log?reset=1", timeout=10).json()["entries"]
    assert len(taken) == 2  # the admin call itself is not logged
    assert requests.get(f"{sim.url}/__sim/log", timeout=10).json()["entries"] == []
    assert requests.get(f"{sim.url}/__sim/nope", timeout=10).status_code == 404
