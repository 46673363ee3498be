"""CLI: ``python -m tap_nylas.simulator --port 0 --grants 20 --records 30``."""

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
from .faults import Faults
from .simulator import NylasSimulator


def _timestamp(text: str) -> int:
    """Epoch seconds, or a ``YYYY-MM-DD`` date (UTC)."""
    if text.lstrip("-").isdigit():
        return int(text)
    return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tap_nylas.simulator", description=__doc__)
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
    return p


def _build(args: argparse.Namespace) -> NylasSimulator:
    faults = Faults(rate=args.fault_rate, retry_after=args.retry_after) if args.fault_rate else None
    return NylasSimulator(
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
    )


def _serve(sim: NylasSimulator) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with sim:
        print(f"NYLAS_SIMULATOR_URL={sim.url}", flush=True)
        while not stop.wait(0.5):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI."""
    args = _parser().parse_args(argv)
    sim = _build(args)
    if args.truth:
        truth = sim.truth(events_start=args.events_start, events_end=args.events_end)
        json.dump({k: len(v) for k, v in sorted(truth.items())}, sys.stdout, indent=2)
        print()
        return 0
    _serve(sim)
    return 0


if __name__ == "__main__":
    sys.exit(main())
