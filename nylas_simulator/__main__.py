"""CLI: ``python -m nylas_simulator --port 0 --grants 20 --records 30``.

Prints ``NYLAS_SIMULATOR_URL=...`` once serving. ``GET /__sim/log[?reset=1]`` returns the
request log as JSON (no API key); ``--request-log PATH`` also writes it, one JSON object a
line, on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from types import FrameType

from .dataset import DEFAULT_EVENTS_END, DEFAULT_EVENTS_START
from .faults import RULE_KINDS, Faults, parse_rule
from .simulator import NylasSimulator


def _timestamp(text: str) -> int:
    """Epoch seconds, or a ``YYYY-MM-DD`` date (UTC)."""
    if text.lstrip("-").isdigit():
        return int(text)
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nylas_simulator", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--grants", type=int, default=20)
    p.add_argument("--records", type=int, default=30, help="messages per grant")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--api-key", default="sim-key")
    p.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--rate-limits", action="store_true")
    p.add_argument("--no-large-bodies", action="store_true")
    p.add_argument("--truth", action="store_true", help="print truth counts as JSON and exit")
    p.add_argument("--events-start", type=_timestamp, default=DEFAULT_EVENTS_START)
    p.add_argument("--events-end", type=_timestamp, default=DEFAULT_EVENTS_END)
    p.add_argument(
        "--latency-distribution",
        choices=("fixed", "lognormal"),
        default="fixed",
        help="lognormal: --latency is the mean (sigma 0.8, seeded)",
    )
    p.add_argument(
        "--large-mailbox", type=int, default=None, help="messages of one google/microsoft grant"
    )
    p.add_argument(
        "--grant-concurrency", type=int, default=None, help="in-flight requests per grant, then 429"
    )
    p.add_argument("--grant-concurrency-retry-after", type=float, default=1.0)
    p.add_argument(
        "--fault-rule",
        action="append",
        default=[],
        metavar="REGEX:KIND[:TIMES]",
        help=f"scripted fault (repeatable); KIND one of {', '.join(RULE_KINDS)}",
    )
    p.add_argument(
        "--imap-cache-days",
        type=int,
        default=None,
        help="IMAP/Yahoo/iCloud grants list only this many days without query_imap (Nylas: 90)",
    )
    p.add_argument("--imap-latency", type=float, default=None, help="seconds per query_imap")
    p.add_argument("--imap-concurrency", type=int, default=2, help="query_imap in flight per grant")
    p.add_argument("--large-mailbox-provider", default=None, help="provider of the large mailbox")
    p.add_argument("--trickle-interval", type=float, default=2.0, help="seconds per byte")
    p.add_argument("--request-log", default=None, help="write the request log here on exit")
    return p


def _build(args: argparse.Namespace) -> NylasSimulator:
    faults = Faults(rate=args.fault_rate, retry_after=args.retry_after) if args.fault_rate else None
    sim = NylasSimulator(
        seed=args.seed,
        grants=args.grants,
        records_per_grant=args.records,
        api_key=args.api_key,
        latency=args.latency,
        faults=faults,
        large_bodies=not args.no_large_bodies,
        rate_limits=args.rate_limits,
        host=args.host,
        port=args.port,
        latency_distribution=args.latency_distribution,
        large_mailbox=args.large_mailbox,
        grant_concurrency=args.grant_concurrency,
        grant_concurrency_retry_after=args.grant_concurrency_retry_after,
        trickle_interval=args.trickle_interval,
        imap_cache_days=args.imap_cache_days,
        imap_latency=args.imap_latency,
        imap_concurrency=args.imap_concurrency,
        large_mailbox_provider=args.large_mailbox_provider,
    )
    for spec in args.fault_rule:
        sim.add_fault_rule(*parse_rule(spec))
    return sim


def _serve(sim: NylasSimulator, request_log: str | None = None) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with sim:
        print(f"NYLAS_SIMULATOR_URL={sim.url}", flush=True)
        while not stop.wait(0.5):
            pass
    if request_log:
        with open(request_log, "w", encoding="utf-8") as out:
            for entry in sim.request_log:
                out.write(json.dumps(entry) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI."""
    args = _parser().parse_args(argv)
    sim = _build(args)
    if args.truth:
        truth = sim.truth(events_start=args.events_start, events_end=args.events_end)
        json.dump({k: len(v) for k, v in sorted(truth.items())}, sys.stdout, indent=2)
        print()
        return 0
    _serve(sim, args.request_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
