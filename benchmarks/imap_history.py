"""The IMAP history of one grant (issue #18) next to the same grant's cache-only read.

One IMAP grant with 20,000 messages dated 2024-01 .. 2026-10 (the simulator's large
mailbox), of which Nylas's cache (the simulator's `--imap-cache-days 90`) holds the last
90 days. The tap reads only that grant (`grant_ids`), `messages` only, from `start_date`
2000-01-01:

    cache only      `imap_history: false`: what the tap read before issue #18.
    with history    a first run: the cache, and the history (`query_imap=true`, folder by
                    folder: an index pass with `select=id,date`, then the messages).
    the run after   with the state of the first run: the history is done.

The simulator answers a cache request in `--latency` (100 ms) and a query_imap request in
4x that (400 ms), with at most 2 query_imap requests of a grant in flight (more answer
429). Rows: wall s (start-up included), RECORDs, requests (from the simulator's log),
history requests (query_imap; index + messages), 429s, peak RSS MB of the tap.

Usage: .venv/bin/python benchmarks/imap_history.py [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys

from _common import (
    API_KEY,
    TAP,
    Simulator,
    machine_line,
    run_measured,
    scan_singer,
    table,
    workdir,
    write_json,
)

from nylas_simulator import NylasSimulator

GRANTS, RECORDS = 8, 20
START = "2000-01-01T00:00:00Z"


def main() -> int:
    """Run the three rows and print them, with the one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2,000 messages, no latency")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    messages, latency = (2_000, 0.0) if args.quick else (20_000, 0.1)
    large = ["--large-mailbox", str(messages), "--large-mailbox-provider", "imap"]
    grant = NylasSimulator(
        seed=7,
        grants=GRANTS,
        records_per_grant=RECORDS,
        large_mailbox=messages,
        large_mailbox_provider="imap",
    ).large_mailbox_grant_id
    assert grant is not None  # noqa: S101 - the simulator has an IMAP grant
    work = workdir("tap-nylas-imap-history-")
    extra = [*large, "--imap-cache-days", "90", "--imap-concurrency", "2"]
    extra += ["--imap-latency", str(4 * latency), "--seed", "7"]
    rows = []
    summary: dict[str, dict] = {}
    with Simulator(GRANTS, RECORDS, latency=latency, extra=extra) as sim:
        base = {
            "api_key": API_KEY,
            "api_url": sim.url,
            "start_date": START,
            "grant_ids": [grant],
            "backoff_factor": 0.5,
        }
        catalog = work / "catalog.json"
        config_path = write_json(work, "config.json", base)
        from _common import selected_catalog  # noqa: PLC0415 - needs the config above

        selected_catalog(config_path, {"messages"}, catalog)
        state: dict | None = None
        for name, config, use_state in (
            ("cache only", {**base, "imap_history": False}, False),
            ("with history", base, False),
            ("the run after", base, True),
        ):
            path = write_json(work, f"{name.replace(' ', '_')}.json", config)
            cmd = [TAP, "--config", str(path), "--catalog", str(catalog)]
            if use_state and state is not None:
                cmd += ["--state", str(write_json(work, "state.json", state))]
            sim.take_log()
            out, err = work / f"{name}.out", work / f"{name}.err"
            result = run_measured(cmd, out, err, simulator=sim)
            log = sim.take_log()
            stats = scan_singer(out)
            history = [e for e in log if "query_imap" in e["params"]]
            index = [e for e in history if "select" in e["params"]]
            throttled = sum(e["status"] == 429 for e in log)
            if name == "with history":
                state = stats.final_state
            summary[name] = {
                "wall": result.wall,
                "requests": len(log),
                "history": len(history),
                "index": len(index),
                "records": stats.records,
                "429": throttled,
            }
            rows.append([
                name, f"{result.wall:.1f}", stats.records, len(log),
                f"{len(history)} ({len(index)} + {len(history) - len(index)})", throttled,
                f"{result.maxrss_mb:.0f}",
            ])  # fmt: skip
    print(machine_line())
    print(
        f"One IMAP grant, {messages:,} messages; cache {latency * 1000:.0f} ms a request, "
        f"query_imap {4 * latency * 1000:.0f} ms, 2 in flight per grant"
    )
    print(
        table(
            ["run", "wall s", "RECORDs", "requests", "history (index + messages)", "429", "RSS MB"],
            rows,
        )
    )
    cache, first, after = summary["cache only"], summary["with history"], summary["the run after"]
    print(
        f"imap history: {first['history']} history requests, {first['wall']:.1f} s wall for "
        f"{first['records']:,} records (cache only: {cache['requests']} requests, "
        f"{cache['wall']:.1f} s, {cache['records']:,} records); the run after: "
        f"{after['history']} history requests, {after['wall']:.1f} s"
    )
    print(json.dumps(summary))
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    complete = first["records"] >= messages and after["history"] == 0
    print(f"targets: every message read {'met' if complete else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
