"""Throughput: records/s of tap-nylas at 0 and 100 ms per request, against a hand-written ceiling.

What is measured
    A simulator (own process, CLI, no large bodies) with 50 grants x 200 messages (several
    pages per grant: threads come 50 a page), at latency 0 and at 100 ms per request. Each
    client syncs the same five streams - messages, threads, events, folders, contacts
    (calendars are listed for events' partitions, not emitted) - with `start_date`
    2024-01-01 and writes Singer lines to a file:

    * tap mc=1        - `tap-nylas` with `max_concurrency` 1 (one grant after another);
    * tap mc=default  - `tap-nylas` with `max_concurrency` unset (8);
    * ceiling seq     - `benchmarks/ceiling_client.py`: a plain `requests.Session` loop
                        making the same requests, writing RECORD lines with orjson (msgspec
                        if orjson is missing). Strictly SEQUENTIAL;
    * ceiling x8      - the same client fetching 8 grants/calendars at once in threads.

    Before each scenario's measured runs, one unmeasured pass (ceiling x8) warms the
    simulator's per-grant data cache, so the first client is not charged for it.

    A last scenario (latency 0, 500 grants x 20 messages: 10x the grants, about the same
    records) shows whether the tap's peak RSS stays flat as grants grow.

    Every client is a child process under a fresh wrapper: wall time (perf_counter around
    the child, start-up included) and peak RSS (getrusage(RUSAGE_CHILDREN).ru_maxrss of the
    wrapper = that child alone). records/s = RECORD lines / wall time. Requests: the
    tap's from the SDK's `http_request_duration` METRIC lines on stderr (one per request),
    the ceiling's its own count.

How to read it
    Targets from the issue (printed as met / MISSED, nothing is asserted): at 100 ms,
    default concurrency >= 6x the records/s of mc=1; at latency 0, tap (default) >= half
    the sequential ceiling's records/s; peak RSS flat (within 25%) from 50 to 500 grants.
    The machine has 2 shared cores; at latency 0 the simulator and the client compete for
    them, so numbers vary +-15% between runs.

Usage: .venv/bin/python benchmarks/throughput.py [--quick] [--repeat N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    API_KEY,
    PYTHON,
    TAP,
    Simulator,
    machine_line,
    run_measured,
    scan_singer,
    selected_catalog,
    stderr_request_count,
    table,
    workdir,
    write_json,
)

STREAMS = {"messages", "threads", "events", "folders", "contacts"}
START_DATE = "2024-01-01T00:00:00Z"
CEILING = str(Path(__file__).resolve().parent / "ceiling_client.py")


@dataclass(frozen=True)
class Scenario:
    """One simulator setting and the clients run against it."""

    name: str
    grants: int
    records: int
    latency: float
    clients: tuple[str, ...]


@dataclass
class Row:
    """One client run."""

    scenario: Scenario
    client: str
    records: int
    requests: int | None
    wall: float
    cpu: float
    server_cpu: float | None
    maxrss_mb: float
    returncode: int
    by_stream: dict[str, int]

    @property
    def rate(self) -> float:
        """RECORD lines per second of wall time."""
        return self.records / self.wall if self.wall else 0.0


def scenarios(quick: bool) -> list[Scenario]:
    """The full run, or a seconds-long check that the script still works."""
    everyone = ("tap mc=1", "tap mc=default", "ceiling seq", "ceiling x8")
    if quick:
        return [
            Scenario("lat 0", 5, 20, 0.0, everyone),
            Scenario("lat 20ms", 5, 20, 0.02, everyone),
            Scenario("lat 0, 10x grants", 50, 2, 0.0, ("tap mc=default", "ceiling seq")),
        ]
    return [
        Scenario("lat 0", 50, 200, 0.0, everyone),
        Scenario("lat 100ms", 50, 200, 0.1, everyone),
        Scenario("lat 0, 10x grants", 500, 20, 0.0, ("tap mc=default", "ceiling seq")),
    ]


def run_client(client: str, sim: Simulator, tmp: Path, tag: str) -> tuple:
    """Run one client against `sim`; its RunResult and request count."""
    out, err = tmp / f"{tag}.out", tmp / f"{tag}.err"
    if client.startswith("ceiling"):
        workers = "8" if client.endswith("x8") else "1"
        cmd = [PYTHON, CEILING, "--url", sim.url, "--api-key", API_KEY,
               "--start-date", START_DATE, "--workers", workers]  # fmt: skip
        run = run_measured(cmd, out, err, simulator=sim)
        lines = err.read_text().strip().splitlines()
        requests = json.loads(lines[-1])["requests"] if lines else None
        return run, requests
    config: dict = {"api_key": API_KEY, "api_url": sim.url, "start_date": START_DATE}
    if client == "tap mc=1":
        config["max_concurrency"] = 1
    config_path = write_json(tmp, f"{tag}.config.json", config)
    catalog = selected_catalog(config_path, STREAMS, tmp / f"{tag}.catalog.json")
    run = run_measured(
        [TAP, "--config", str(config_path), "--catalog", str(catalog)], out, err, simulator=sim
    )
    return run, stderr_request_count(err)


def main() -> int:
    """Run every scenario and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--keep", action="store_true", help="keep the captured output (else deleted at the end)"
    )
    parser.add_argument("--quick", action="store_true", help="5 grants: a check that it runs")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per client; the fastest is shown"
    )
    args = parser.parse_args()
    tmp = workdir("bench-throughput-")
    print(f"throughput: streams {', '.join(sorted(STREAMS))}; files in {tmp}")
    print(machine_line())
    rows: list[Row] = []
    for sc in scenarios(args.quick):
        with Simulator(sc.grants, sc.records, sc.latency) as sim:
            # One unmeasured pass first: the simulator makes each grant's data on first use
            # (an LRU cache), which would otherwise be charged to whichever client runs first.
            print(f"... {sc.name}: warm-up (ceiling x8, not measured)", flush=True)
            run_client("ceiling x8", sim, tmp, f"{sc.name}-warmup".replace(" ", "_"))
            for client in sc.clients:
                best = None
                for attempt in range(args.repeat):
                    tag = f"{sc.name}-{client}-{attempt}".replace(" ", "_").replace(",", "")
                    print(f"... {sc.name}: {client}", flush=True)
                    run, requests = run_client(client, sim, tmp, tag)
                    stats = scan_singer(run.stdout)
                    row = Row(sc, client, stats.records, requests, run.wall, run.cpu,
                              run.server_cpu, run.maxrss_mb, run.returncode,
                              stats.records_by_stream)  # fmt: skip
                    if best is None or row.wall < best.wall:
                        best = row
                assert best is not None  # noqa: S101
                rows.append(best)
    report(rows)
    if args.keep:
        print(f"\ncaptured output kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(rows: list[Row]) -> None:
    """The side-by-side table, record-count checks and the targets."""
    print()
    print(table(
        ["scenario", "client", "grants", "msgs/grant", "RECORDs", "requests", "wall s",
         "records/s", "client CPU s", "sim CPU s", "peak RSS MB", "exit"],
        [[r.scenario.name, r.client, r.scenario.grants, r.scenario.records, r.records,
          r.requests, r.wall, r.rate, r.cpu, r.server_cpu, r.maxrss_mb, r.returncode]
         for r in rows],
    ))  # fmt: skip
    for name in dict.fromkeys(r.scenario.name for r in rows):
        group = [r for r in rows if r.scenario.name == name]
        if len({json.dumps(r.by_stream) for r in group}) > 1:
            print(f"!! {name}: record counts differ between clients:")
            for r in group:
                print(f"   {r.client}: {r.by_stream}")
        else:
            print(f"{name}: every client emitted the same records per stream: {group[0].by_stream}")

    def find(scenario_index: int, client: str) -> Row | None:
        names = list(dict.fromkeys(r.scenario.name for r in rows))
        return next(
            (r for r in rows if r.scenario.name == names[scenario_index] and r.client == client),
            None,
        )

    print("\ntargets:")
    slow_mc1, slow_mc8 = find(1, "tap mc=1"), find(1, "tap mc=default")
    if slow_mc1 and slow_mc8:
        x = slow_mc8.rate / slow_mc1.rate
        _target(f"{slow_mc8.scenario.name}: tap default >= 6x tap mc=1 records/s: {x:.2f}x", x >= 6)
    fast_tap, ceiling = find(0, "tap mc=default"), find(0, "ceiling seq")
    if fast_tap and ceiling:
        x = fast_tap.rate / ceiling.rate
        _target(f"lat 0: tap default >= 0.5x sequential ceiling records/s: {x:.2f}x", x >= 0.5)
    small, big = find(0, "tap mc=default"), find(2, "tap mc=default")
    if small and big:
        x = big.maxrss_mb / small.maxrss_mb
        _target(
            f"peak RSS flat, {small.scenario.grants} -> {big.scenario.grants} grants: "
            f"{small.maxrss_mb:.0f} -> {big.maxrss_mb:.0f} MB ({x:.2f}x)",
            x <= 1.25,
        )
    for r in rows:
        if r.client.startswith("tap") and r.requests:
            ceiling_row = find(
                list(dict.fromkeys(x.scenario.name for x in rows)).index(r.scenario.name),
                "ceiling seq",
            )
            if ceiling_row and ceiling_row.requests and ceiling_row.requests != r.requests:
                print(f"note: {r.scenario.name} {r.client}: {r.requests} requests vs the "
                      f"ceiling's {ceiling_row.requests}")  # fmt: skip


def _target(text: str, met: bool) -> None:
    print(f"  {'met   ' if met else 'MISSED'}  {text}")


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"\n(total benchmark time {time.perf_counter() - started:.0f} s)")
    sys.exit(code)
