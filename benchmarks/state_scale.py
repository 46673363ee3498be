"""State that scales: per-grant bookmarks with 10,000 grants, against one bookmark per stream.

What is measured
    A simulator (own process, CLI, latency 0, 3 messages per grant, no large bodies) with
    10,000 grants (`--quick`: 300). The tap syncs three incremental streams (messages,
    threads, events; `start_date` 2024-01-01, `events_lookahead_days` 800, default
    `max_concurrency`) twice from empty state:

    * per-grant   - `tap-nylas` as shipped: one bookmark per grant (per grant+calendar
                    for events);
    * 1 bookmark  - `benchmarks/one_bookmark_tap.py`: the same tap with
                    `state_partitioning_keys = []`, i.e. one bookmark per stream, the
                    baseline the issue compares with.

    Each run is a child process under a fresh wrapper: wall time (perf_counter around the
    child) and peak RSS (getrusage(RUSAGE_CHILDREN).ru_maxrss of that wrapper = the tap
    alone). stdout goes to a file and is counted afterwards: RECORD lines, STATE lines and
    their bytes, total bytes, and the final STATE value as Meltano would store it
    (compact JSON).

    Then an incremental run of the per-grant tap with the first run's final state, against
    a simulator with the same seed and size (in this process, so its request log can be
    read; the tap is still a separate process): records emitted, and how many requests
    carried the bookmark filters (`received_after`, `latest_message_after`,
    `updated_after`) with the value bookmark - incremental_lookback_seconds.

How to read it
    Targets from the issue (printed as met / MISSED, nothing is asserted):
    STATE bytes <= 5% of stdout; peak RSS < 300 MB; per-grant wall time <= 2x the
    one-bookmark wall time. The machine has 2 shared cores: the simulator, the tap and
    its writer compete for them, so expect +-15% between identical runs.

Usage: .venv/bin/python benchmarks/state_scale.py [--quick] [--grants N] [--records R] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    API_KEY,
    PYTHON,
    TAP,
    RunResult,
    Simulator,
    SingerStats,
    machine_line,
    run_measured,
    scan_singer,
    selected_catalog,
    stderr_request_count,
    table,
    workdir,
    write_json,
)

STREAMS = {"messages", "threads", "events"}
START_DATE = "2024-01-01T00:00:00Z"
LOOKBACK = 3600  # the tap's default incremental_lookback_seconds
FILTERS = {
    "messages": "received_after",
    "threads": "latest_message_after",
    "events": "updated_after",
}
# Providers whose events endpoint takes `updated_after` (the tap sends it only there).
UPDATED_AFTER_PROVIDERS = {"google", "microsoft", "ews"}
PartitionKey = tuple[tuple[str, Any], ...]  # sorted context items, as the state uses them
ONE_BOOKMARK = str(Path(__file__).resolve().parent / "one_bookmark_tap.py")


def main() -> int:
    """Run both taps, the incremental run, and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--keep", action="store_true", help="keep the captured output (else deleted at the end)"
    )
    parser.add_argument("--quick", action="store_true", help="300 grants: a check that it runs")
    parser.add_argument("--grants", type=int, help="default 10,000 (300 with --quick)")
    parser.add_argument("--records", type=int, default=3, help="messages per grant")
    args = parser.parse_args()
    grants = args.grants or (300 if args.quick else 10_000)
    tmp = workdir("bench-state-")
    print(f"state_scale: {grants:,} grants, {args.records} messages/grant, streams "
          f"{', '.join(sorted(STREAMS))}; files in {tmp}")  # fmt: skip
    print(machine_line())

    rows: list[list[object]] = []
    results: dict[str, tuple[RunResult, SingerStats]] = {}
    with Simulator(grants, args.records) as sim:
        config = write_json(tmp, "config.json", {
            "api_key": API_KEY, "api_url": sim.url, "start_date": START_DATE,
            "events_lookahead_days": 800,
        })  # fmt: skip
        catalog = selected_catalog(config, STREAMS, tmp / "catalog.json")
        for label, cmd in (
            ("per-grant", [TAP]),
            ("1 bookmark", [PYTHON, ONE_BOOKMARK]),
        ):
            name = label.replace(" ", "-")
            print(f"... running {label}", flush=True)
            run = run_measured(
                [*cmd, "--config", str(config), "--catalog", str(catalog)],
                tmp / f"{name}.out", tmp / f"{name}.err", simulator=sim,
            )  # fmt: skip
            stats = scan_singer(run.stdout)
            results[label] = (run, stats)
            write_json(tmp, f"{name}.state.json", stats.final_state)
            rows.append(_row(label, run, stats))

    print()
    print(table(HEADERS, rows))
    per_grant, one = results["per-grant"], results["1 bookmark"]
    ratio = per_grant[0].wall / one[0].wall if one[0].wall else float("nan")
    print(f"\nwall time per-grant / 1 bookmark: {ratio:.2f}x")
    print(f"records by stream (per-grant run): {per_grant[1].records_by_stream}")
    if per_grant[1].records != one[1].records:
        print(f"!! record counts differ: {per_grant[1].records} vs {one[1].records}")
    _targets(per_grant, ratio)

    print("\n... incremental run (per-grant tap, final state of the first run)", flush=True)
    _incremental(tmp, grants, args.records, per_grant)
    if args.keep:
        print(f"\ncaptured output kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


HEADERS = ["run", "wall s", "tap CPU s", "sim CPU s", "RECORDs", "requests", "STATE msgs",
           "STATE bytes", "stdout bytes", "STATE % stdout", "stderr bytes", "peak RSS MB",
           "final STATE bytes", "exit"]  # fmt: skip


def _row(label: str, run: RunResult, stats: SingerStats) -> list[object]:
    share = 100 * stats.state_bytes / stats.total_bytes if stats.total_bytes else 0.0
    return [
        label, run.wall, run.cpu, run.server_cpu, stats.records, stderr_request_count(run.stderr),
        stats.states, stats.state_bytes, stats.total_bytes, f"{share:.2f}%",
        run.stderr.stat().st_size, run.maxrss_mb, stats.final_state_bytes, run.returncode,
    ]  # fmt: skip


def _targets(per_grant: tuple[RunResult, SingerStats], ratio: float) -> None:
    run, stats = per_grant
    share = 100 * stats.state_bytes / stats.total_bytes if stats.total_bytes else 0.0
    print("\ntargets (per-grant run):")
    for text, met in (
        (f"STATE bytes <= 5% of stdout: {share:.2f}%", share <= 5),
        (f"peak RSS < 300 MB: {run.maxrss_mb:.0f} MB", run.maxrss_mb < 300),
        (f"wall time within 2x of 1 bookmark: {ratio:.2f}x", ratio <= 2),
    ):
        print(f"  {'met   ' if met else 'MISSED'}  {text}")


def _incremental(
    tmp: Path, grants: int, records: int, first: tuple[RunResult, SingerStats]
) -> None:
    from nylas_simulator import NylasSimulator  # noqa: PLC0415 - only this part needs it

    state = first[1].final_state or {}
    sim = NylasSimulator(
        seed=7, grants=grants, records_per_grant=records, api_key=API_KEY, large_bodies=False
    ).start()
    try:
        config = write_json(tmp, "config-inc.json", {
            "api_key": API_KEY, "api_url": sim.url, "start_date": START_DATE,
            "events_lookahead_days": 800,
        })  # fmt: skip
        catalog = selected_catalog(config, STREAMS, tmp / "catalog-inc.json")
        state_path = write_json(tmp, "state-in.json", state)
        sim.reset_log()
        before = resource.getrusage(resource.RUSAGE_SELF)
        run = run_measured(
            [TAP, "--config", str(config), "--catalog", str(catalog), "--state", str(state_path)],
            tmp / "incremental.out", tmp / "incremental.err",
        )  # fmt: skip
        after = resource.getrusage(resource.RUSAGE_SELF)
        # The simulator runs in this process now: its CPU is this process's during the run.
        run.server_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        log = sim.request_log
        providers = {g.id: g.provider for g in sim.grants}
    finally:
        sim.stop()
    stats = scan_singer(run.stdout)
    print(table(HEADERS, [_row("first (empty state)", *first), _row("incremental", run, stats)]))
    expected = _expected_incremental(first[0].stdout, state, providers)
    print(
        "\nincremental records by stream, emitted vs expected (expected = first-run records "
        "newer than their partition's bookmark - lookback, plus all events of providers "
        "without `updated_after`):"
    )
    print(table(
        ["stream", "first run", "incremental", "expected"],
        [[s, first[1].records_by_stream.get(s, 0), stats.records_by_stream.get(s, 0), expected[s]]
         for s in sorted(FILTERS)],
    ))  # fmt: skip
    _check_filters(log, state, providers)


def _bookmarks(state: dict) -> dict[str, dict[PartitionKey, int]]:
    """Per stream: partition key (sorted context items) -> bookmark."""
    out = {}
    for stream in FILTERS:
        entries = state.get("bookmarks", {}).get(stream, {}).get("partitions", [])
        out[stream] = {
            tuple(sorted(e["context"].items())): int(e["replication_key_value"])
            for e in entries
            if e.get("replication_key_value") is not None
        }
    return out


def _expected_incremental(first_out: Path, state: dict, providers: dict[str, str]) -> Counter:
    """How many of the first run's records an incremental run should emit again."""
    keys = {"messages": "date", "threads": "latest_message_received_date", "events": "updated_at"}
    bookmarks = _bookmarks(state)
    expected: Counter = Counter()
    with first_out.open("rb") as lines:
        for line in lines:
            if b'"RECORD"' not in line[:64]:
                continue
            message = json.loads(line)
            stream, record = message["stream"], message["record"]
            if stream not in keys:
                continue
            key: PartitionKey
            if stream == "events":
                key = (("calendar_id", record["calendar_id"]), ("grant_id", record["grant_id"]))
                if providers.get(record["grant_id"]) not in UPDATED_AFTER_PROVIDERS:
                    expected[stream] += 1
                    continue
            else:
                key = (("grant_id", record["grant_id"]),)
            bookmark = bookmarks[stream].get(key)
            if bookmark is None or record[keys[stream]] > bookmark - LOOKBACK:
                expected[stream] += 1
    return expected


def _check_filters(log: list[dict], state: dict, providers: dict[str, str]) -> None:
    """Requests per stream, and how many carried bookmark - lookback as their filter."""
    start_epoch = int(datetime.fromisoformat(START_DATE.replace("Z", "+00:00")).timestamp())
    bookmarks = _bookmarks(state)
    counts: dict[str, Counter] = {s: Counter() for s in FILTERS}
    for entry in log:
        parts = entry["path"].strip("/").split("/")
        if len(parts) != 4 or parts[1] != "grants" or parts[3] not in FILTERS:
            continue
        stream, grant_id = parts[3], parts[2]
        params = entry["params"]
        c = counts[stream]
        c["requests"] += 1
        key: PartitionKey
        if stream == "events":
            key = (("calendar_id", params["calendar_id"][0]), ("grant_id", grant_id))
            if providers.get(grant_id) not in UPDATED_AFTER_PROVIDERS:
                c["provider takes no filter"] += 1
                continue
        else:
            key = (("grant_id", grant_id),)
        value = params.get(FILTERS[stream], [None])[0]
        bookmark = bookmarks[stream].get(key)
        if value is None:
            # Events are filtered on `updated_after` only once a calendar has a bookmark.
            expected = stream == "events" and bookmark is None
            c["no bookmark, no filter" if expected else "no filter"] += 1
            continue
        c["with filter"] += 1
        if bookmark is not None and int(value) == max(bookmark - LOOKBACK, start_epoch):
            c["= bookmark - lookback"] += 1
        elif bookmark is None and int(value) == start_epoch:
            c["= start_date (no bookmark)"] += 1
        else:
            c["other value"] += 1
    columns = ["requests", "with filter", "= bookmark - lookback",
               "= start_date (no bookmark)", "no bookmark, no filter",
               "provider takes no filter", "no filter", "other value"]  # fmt: skip
    print("\nincremental requests (simulator request log):")
    print(table(
        ["stream", "filter param", *columns],
        [[s, FILTERS[s], *(counts[s][k] for k in columns)] for s in sorted(FILTERS)],
    ))  # fmt: skip
    missing = sum(counts[s]["no filter"] + counts[s]["other value"] for s in FILTERS)
    if missing:
        print(f"bookmark filters: {missing} requests lack the expected value")
    else:
        print("bookmark filters: every request that can carry one did")


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"\n(total benchmark time {time.perf_counter() - started:.0f} s)")
    sys.exit(code)
