"""Throughput of tap-nylas against a hand-written ceiling, on a hostile simulator.

Scenarios (each its own table; a simulator process per scenario, no large bodies):

    A  50 grants x 200 messages, all 12 streams, 100 ms a request, no faults.
    B  as A, with ~6% transient faults (429 with/without Retry-After and provider_error,
       Nylas's own 429, 500, 503, dropped connections).
    C  20 grants, one of them with 20,000 messages; lognormal latency (mean 100 ms),
       ~6% faults, at most 4 requests in flight per grant (more answer 429).
    D  latency 0: records/s, and peak RSS as grants grow 10x (50 -> 500 grants at
       about the same records) and as the large mailbox grows 10x (20k -> 200k).
    E  messages only (20 grants x 1,000), with and without `body` selected in the catalog:
       bytes the simulator sent, and wall time.
    F  a real application's size: 400 grants of small mailboxes (~14,700 records, ~3,600
       requests), lognormal latency (mean 300 ms), ~6% faults, at most 4 in flight per
       grant; the tap at max_concurrency 64, its default (256) and 512, the ceiling with
       256 workers honouring the per-grant limit, and the tap's default on the same data at
       0 ms without faults (F0; its CPU per request is the tap's own cost).

Rows: the tap with `max_concurrency: 1`, the tap with its defaults (`max_concurrency` 256,
`max_requests_per_grant` 4), and `ceiling_client.py` with 8 worker threads (256 in F) (page-level
scheduling, retries that hold no worker, a 429 pausing only its grant; in C at most 4 in
flight per grant, as the server allows). Every client gets `backoff_factor` 0.5 and
`start_date` 2024-01-01, and meets the same sequence of faults and latencies (drawn in
arrival order; the simulator rewinds it before each client). In B a second ceiling row
pauses every request on an application 429, as the tap does (`--application-429
everything`). The ceiling is "-" in D's growth rows (RSS there is about the tap) and in E's
no-body row (the ceiling has no catalog).

Columns: wall s (start-up included); RECORDs; records/s; requests and retries (requests
answered 429/5xx, dropped, or not data, from the simulator's request log); idle s (seconds
between the first request's start and the last one's end with nothing in flight, from the
log); in flight (mean requests in flight between the first start and the last end, from
the log); CPU s (user + system of the client process); peak RSS MB of the client
(getrusage of a fresh wrapper process); sim RSS MB (the simulator's VmHWM); bound s, the
least wall time any client allowed as many requests in flight could take, from the
row's own log: max(requests x mean latency / requests in flight allowed, the busiest
grant's requests x mean latency / its per-grant limit + the Retry-After seconds it was
answered). (mc=1's bound is its requests x mean latency.)

Targets (printed met/MISSED, not asserted): A and B default wall <= 1.1x the ceiling's;
C default >= 6x faster than mc=1 and within 1.25x of its bound; D records/s not below the
README's 13,600/s at latency 0 (2-core machine: +-15% run to run); D peak RSS flat
(<= 1.25x) as grants and the mailbox grow 10x; F default within 1.3x of the best row's
bound and <= 1.5x its own wall at 0 ms (F0); F at 256 >= 200 in flight on average; F0
tap CPU per request <= 1.1 ms.

Usage: .venv/bin/python benchmarks/throughput.py [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    API_KEY,
    PYTHON,
    TAP,
    Simulator,
    machine_line,
    run_measured,
    scan_singer,
    table,
    workdir,
    write_json,
)

START_DATE = "2024-01-01T00:00:00Z"
CEILING = str(Path(__file__).resolve().parent / "ceiling_client.py")
BACKOFF = 0.5
README_RATE = 13_600  # records/s, tap default at latency 0, README "Performance"
ALL = "all"
MC1, DEFAULT, CEIL, NOBODY = "tap mc=1", "tap default", "ceiling x8", "tap default, no body"
CEIL_TAP_POLICY = "ceiling x8, app 429 pauses all"
MC64, MC512, CEIL256 = "tap mc=64", "tap mc=512", "ceiling x256"
DEFAULT_CONCURRENCY = 256  # the tap's max_concurrency default (tap.py)
PER_GRANT = 4  # max_requests_per_grant, the tap's default and every tap row's setting
#: Requests in flight each client is allowed (max_concurrency, or ceiling workers).
ALLOWED = {MC1: 1, DEFAULT: DEFAULT_CONCURRENCY, NOBODY: DEFAULT_CONCURRENCY, CEIL: 8,
           CEIL_TAP_POLICY: 8, MC64: 64, MC512: 512, CEIL256: 256}  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    """One simulator setting and the clients run against it."""

    key: str
    title: str
    grants: int
    records: int
    latency: float = 0.0
    lognormal: bool = False
    fault_rate: float = 0.0
    large_mailbox: int | None = None
    grant_concurrency: int | None = None
    streams: str = ALL
    clients: tuple[str, ...] = (MC1, DEFAULT, CEIL)

    def simulator_args(self) -> list[str]:
        """The simulator CLI flags of this scenario."""
        extra = []
        if self.lognormal:
            extra += ["--latency-distribution", "lognormal"]
        if self.fault_rate:
            extra += ["--fault-rate", str(self.fault_rate), "--retry-after", "1"]
        if self.large_mailbox:
            extra += ["--large-mailbox", str(self.large_mailbox)]
        if self.grant_concurrency:
            extra += ["--grant-concurrency", str(self.grant_concurrency)]
        return extra


@dataclass
class Row:
    """One client run."""

    scenario: Scenario
    client: str
    records: int
    wall: float
    rss: float
    exit: int
    requests: int
    retries: int
    idle: float
    sent_mb: float
    sim_rss: float | None
    by_stream: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0
    in_flight: float = 0.0
    bound: float = 0.0

    @property
    def rate(self) -> float:
        """RECORD lines per second of wall time."""
        return self.records / self.wall if self.wall else 0.0


def scenarios(quick: bool) -> list[Scenario]:
    """The full run, or a check that the script works (well under a minute)."""
    if quick:
        return [
            Scenario("A", "A: 5 grants, 12 streams, 20 ms", 5, 20, 0.02),
            Scenario(
                "B",
                "B: as A, 6% faults",
                5,
                20,
                0.02,
                fault_rate=0.06,
                clients=(MC1, DEFAULT, CEIL, CEIL_TAP_POLICY),
            ),
            Scenario(
                "C",
                "C: 4 grants, one of 1,000 msgs, lognormal 20 ms, 6% faults, 4/grant",
                4,
                20,
                0.02,
                True,
                0.06,
                1000,
                4,
            ),
            Scenario("D", "D: latency 0", 5, 20, clients=(DEFAULT, CEIL)),
            Scenario("D10g", "D: 10x grants", 50, 2, clients=(DEFAULT,)),
            Scenario(
                "E",
                "E: messages only, 5 x 100",
                5,
                100,
                0.02,
                streams="messages",
                clients=(DEFAULT, NOBODY),
            ),
            *scenario_f(40, 10, 0.05),
        ]
    return [
        Scenario("A", "A: 50 grants x 200, all 12 streams, 100 ms", 50, 200, 0.1),
        Scenario(
            "B",
            "B: as A, 6% transient faults",
            50,
            200,
            0.1,
            fault_rate=0.06,
            clients=(MC1, DEFAULT, CEIL, CEIL_TAP_POLICY),
        ),
        Scenario(
            "C",
            "C: 20 grants, one of 20,000 msgs, lognormal 100 ms, 6% faults, 4/grant",
            20,
            200,
            0.1,
            True,
            0.06,
            20_000,
            4,
        ),
        Scenario("D", "D: latency 0, 50 grants x 200", 50, 200),
        Scenario("D10g", "D: latency 0, 500 grants x 20 (10x grants)", 500, 20, clients=(DEFAULT,)),
        Scenario(
            "Dbig",
            "D: latency 0, 20 grants, one of 20,000 msgs",
            20,
            200,
            large_mailbox=20_000,
            clients=(DEFAULT,),
        ),
        Scenario(
            "Dbig10",
            "D: latency 0, 20 grants, one of 200,000 msgs (10x mailbox)",
            20,
            200,
            large_mailbox=200_000,
            clients=(DEFAULT,),
        ),
        Scenario(
            "E",
            "E: messages only, 20 grants x 1,000, 100 ms",
            20,
            1000,
            0.1,
            streams="messages",
            clients=(DEFAULT, NOBODY),
        ),
        *scenario_f(400, 10, 0.3),
    ]


def scenario_f(grants: int, records: int, latency: float) -> list[Scenario]:
    """F: many small grants under faults and a per-grant limit; F0: the same data at 0 ms."""
    return [
        Scenario(
            "F",
            f"F: {grants} grants x {records}, lognormal {latency * 1000:.0f} ms, 6% faults, "
            "4/grant",
            grants,
            records,
            latency,
            True,
            0.06,
            grant_concurrency=PER_GRANT,
            clients=(MC64, DEFAULT, MC512, CEIL256),
        ),
        Scenario(
            "F0",
            f"F0: the same {grants} grants at 0 ms, no faults",
            grants,
            records,
            grant_concurrency=PER_GRANT,
            clients=(DEFAULT,),
        ),
    ]


_CATALOGS: dict[tuple[str, bool], dict] = {}


def catalog(config_path: Path, streams: str, body: bool) -> dict:
    """The discovered catalog with `streams` selected (and `body` deselected if asked)."""
    key = (streams, body)
    if key not in _CATALOGS:
        import subprocess  # noqa: PLC0415 - only here

        found = subprocess.run(  # noqa: S603
            [TAP, "--config", str(config_path), "--discover"], capture_output=True, check=True
        )
        cat = json.loads(found.stdout)
        for entry in cat["streams"]:
            chosen = streams == ALL or entry["tap_stream_id"] in streams.split(",")
            for md in entry["metadata"]:
                if md["breadcrumb"] == []:
                    md["metadata"]["selected"] = chosen
                elif md["breadcrumb"] == ["properties", "body"] and not body:
                    md["metadata"]["selected"] = False
        _CATALOGS[key] = cat
    return _CATALOGS[key]


def run_client(client: str, sc: Scenario, sim: Simulator, tmp: Path) -> Row:
    """Run one client against `sim`; the row from its output and the simulator's log."""
    tag = f"{sc.key}-{client}".replace(" ", "_").replace(",", "").replace("=", "")
    out, err = tmp / f"{tag}.out", tmp / f"{tag}.err"
    # An empty log, and the faults and latencies from their start: every client meets the
    # same sequence (drawn in arrival order), not the next stretch of it.
    sim.take_log(rewind=True)
    if client in (CEIL, CEIL_TAP_POLICY, CEIL256):
        cmd = [
            PYTHON,
            CEILING,
            "--url",
            sim.url,
            "--api-key",
            API_KEY,
            "--start-date",
            START_DATE,
            "--workers",
            str(ALLOWED[client]),
            "--backoff-factor",
            str(BACKOFF),
            "--per-grant",
            str(sc.grant_concurrency or 0),
        ]
        if sc.streams != ALL:
            cmd += ["--streams", sc.streams]
        if client == CEIL_TAP_POLICY:
            cmd += ["--application-429", "everything"]
    else:
        config: dict = {"api_key": API_KEY, "api_url": sim.url, "start_date": START_DATE,
                        "backoff_factor": BACKOFF, "max_requests_per_grant": 4}  # fmt: skip
        if client in (MC1, MC64, MC512):
            config["max_concurrency"] = ALLOWED[client]
        config_path = write_json(tmp, f"{tag}.config.json", config)
        cat = catalog(config_path, sc.streams, body=client != NOBODY)
        catalog_path = write_json(tmp, f"{tag}.catalog.json", cat)
        cmd = [TAP, "--config", str(config_path), "--catalog", str(catalog_path)]
    print(f"... {sc.title}: {client}", flush=True)
    run = run_measured(cmd, out, err)
    log = sim.take_log()
    stats = scan_singer(run.stdout)
    retries = sum(1 for e in log if e["fault"] or e["status"] == 429 or e["status"] >= 500)
    return Row(
        sc,
        client,
        stats.records,
        run.wall,
        run.maxrss_mb,
        run.returncode,
        len(log),
        retries,
        idle_seconds(log),
        sum(e["bytes"] for e in log) / 1e6,
        sim.rss_mb(),
        stats.records_by_stream,
        run.cpu,
        mean_in_flight(log),
        lower_bound(log, ALLOWED[client], sc.grant_concurrency or PER_GRANT),
    )


def mean_in_flight(log: list[dict]) -> float:
    """Requests in flight on average between the first start and the last end."""
    if not log:
        return 0.0
    span = max(e["end"] for e in log) - min(e["start"] for e in log)
    return sum(e["end"] - e["start"] for e in log) / span if span > 0 else 0.0


def lower_bound(log: list[dict], allowed: int, per_grant: int) -> float:
    """The least wall time for these requests at this latency, `allowed` in flight at once.

    max(all requests x mean latency / allowed, the busiest grant's requests x mean latency
    / min(per_grant, allowed) + the Retry-After seconds that grant was answered).
    """
    if not log:
        return 0.0
    latency = sum(e["duration"] for e in log) / len(log)
    per: dict[str, list[dict]] = {}
    for entry in log:
        if entry.get("grant_id"):
            per.setdefault(entry["grant_id"], []).append(entry)
    grant_bound = 0.0
    for entries in per.values():
        holds = sum(_seconds(e.get("retry_after")) for e in entries)
        grant_bound = max(grant_bound, len(entries) * latency / min(per_grant, allowed) + holds)
    return max(len(log) * latency / allowed, grant_bound)


def _seconds(retry_after: str | None) -> float:
    try:
        return max(0.0, float(retry_after or 0))
    except ValueError:
        return 0.0


def idle_seconds(log: list[dict]) -> float:
    """Seconds between the first start and the last end with no request in flight."""
    spans = sorted((e["start"], e["end"]) for e in log)
    if not spans:
        return 0.0
    idle, reach = 0.0, spans[0][1]
    for start, end in spans[1:]:
        if start > reach:
            idle += start - reach
        reach = max(reach, end)
    return idle


def main() -> int:
    """Run every scenario and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the captured output")
    parser.add_argument("--quick", action="store_true", help="tiny scenarios: a check that it runs")
    parser.add_argument("--only", default="", help="comma-separated scenario keys, e.g. A,C")
    args = parser.parse_args()
    tmp = workdir("bench-throughput-")
    print(f"throughput; files in {tmp}")
    print(machine_line())
    rows: list[Row] = []
    only = set(args.only.split(",")) if args.only else None
    for sc in scenarios(args.quick):
        if only and sc.key not in only:
            continue
        with Simulator(sc.grants, sc.records, sc.latency, extra=sc.simulator_args()) as sim:
            # Unmeasured: the simulator makes each grant's data on first use.
            print(f"... {sc.title}: warm-up (ceiling, not measured)", flush=True)
            workers = str(max(8, min(100, sc.grants // 4)))
            warm = [
                PYTHON,
                CEILING,
                "--url",
                sim.url,
                "--workers",
                workers,
                "--backoff-factor",
                "0",
            ]
            warm += ["--per-grant", str(sc.grant_concurrency or 0)]
            run_measured(warm, tmp / "warm.out", tmp / "warm.err")
            for client in sc.clients:
                rows.append(run_client(client, sc, sim, tmp))
    report(rows)
    if args.keep:
        print(f"\ncaptured output kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(rows: list[Row]) -> None:
    """One table per scenario, record-count checks, then the targets."""
    headers = [
        "client",
        "wall s",
        "records",
        "records/s",
        "requests",
        "retries",
        "idle s",
        "in flight",
        "CPU s",
        "MB sent",
        "peak RSS MB",
        "sim RSS MB",
        "bound s",
        "exit",
    ]
    for key in dict.fromkeys(r.scenario.key for r in rows):
        group = [r for r in rows if r.scenario.key == key]
        print(f"\n{group[0].scenario.title}")
        body = [
            [
                r.client,
                r.wall,
                r.records,
                r.rate,
                r.requests,
                r.retries,
                r.idle,
                r.in_flight,
                r.cpu,
                r.sent_mb,
                r.rss,
                r.sim_rss,
                r.bound,
                r.exit,
            ]
            for r in group
        ]
        if CEIL not in {r.client for r in group} and key not in ("F", "F0"):
            body.append([CEIL, *["-"] * (len(headers) - 1)])
        print(table(headers, body))
        counts = {r.client: r.by_stream for r in group if r.client != NOBODY}
        if len({json.dumps(c, sort_keys=True) for c in counts.values()}) > 1:
            print("!! record counts differ between clients:")
            for client, c in counts.items():
                print(f"   {client}: {c}")

    report_targets(rows)


def report_targets(rows: list[Row]) -> None:
    """Each target, met or MISSED."""

    def find(key: str, client: str) -> Row | None:
        return next((r for r in rows if r.scenario.key == key and r.client == client), None)

    print("\ntargets:")
    for key in ("A", "B"):
        tap, ceiling = find(key, DEFAULT), find(key, CEIL)
        if tap and ceiling:
            x = tap.wall / ceiling.wall
            _target(f"{key}: tap default wall <= 1.1x ceiling: {x:.2f}x", x <= 1.1)
        if tap and (same_policy := find(key, CEIL_TAP_POLICY)):
            print(
                f"  info    {key}: against a ceiling that pauses every request on an "
                f"application 429, as the tap does: {tap.wall / same_policy.wall:.2f}x"
            )
    slow, fast = find("C", MC1), find("C", DEFAULT)
    if slow and fast:
        x = slow.wall / fast.wall
        _target(f"C: tap default >= 6x faster than mc=1: {x:.2f}x", x >= 6)
    if fast:
        x = fast.wall / fast.bound
        _target(f"C: tap default within 1.25x of its bound {fast.bound:.1f} s: {x:.2f}x", x <= 1.25)
    report_f(find)
    d = find("D", DEFAULT)
    if d:
        _target(
            f"D: tap default records/s >= README {README_RATE:,}: {d.rate:,.0f}",
            d.rate >= README_RATE,
        )
    for base, grown, what in (("D", "D10g", "grants"), ("Dbig", "Dbig10", "mailbox")):
        a, b = find(base, DEFAULT), find(grown, DEFAULT)
        if a and b:
            x = b.rss / a.rss
            _target(
                f"D: peak RSS flat as {what} grow 10x: {a.rss:.0f} -> {b.rss:.0f} MB ({x:.2f}x)",
                x <= 1.25,
            )
    full, nobody = find("E", DEFAULT), find("E", NOBODY)
    if full and nobody:
        print(
            f"  info    E: without body: {nobody.sent_mb:.1f} MB sent vs {full.sent_mb:.1f} MB "
            f"({nobody.sent_mb / full.sent_mb:.2f}x), wall {nobody.wall:.1f} s vs "
            f"{full.wall:.1f} s"
        )


def report_f(find: t.Callable[[str, str], Row | None]) -> None:
    """Scenario F's targets: against the best row's bound, its own 0 ms run, in flight, CPU."""
    default, zero = find("F", DEFAULT), find("F0", DEFAULT)
    taps = [r for c in (MC64, DEFAULT, MC512) if (r := find("F", c))]
    if default and taps:
        best = min(taps, key=lambda r: r.bound)
        x = default.wall / best.bound
        _target(
            f"F: tap default within 1.3x of the best row's bound ({best.client}, "
            f"{best.bound:.1f} s): {x:.2f}x",
            x <= 1.3,
        )
    if default and zero:
        x = default.wall / zero.wall
        _target(
            f"F: tap default <= 1.5x its own wall at 0 ms ({zero.wall:.1f} s): {x:.2f}x", x <= 1.5
        )
    if default:
        _target(
            f"F: mean in flight at max_concurrency 256 >= 200: {default.in_flight:.0f}",
            default.in_flight >= 200,
        )
    if zero and zero.requests:
        ms = 1000 * zero.cpu / zero.requests
        _target(f"F0: tap CPU per request at 0 ms <= 1.1 ms: {ms:.2f} ms", ms <= 1.1)


def _target(text: str, met: bool) -> None:
    print(f"  {'met   ' if met else 'MISSED'}  {text}")


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"\n(total benchmark time {time.perf_counter() - started:.0f} s)")
    sys.exit(code)
