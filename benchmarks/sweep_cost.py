"""What sweeps cost: requests per grant, and bytes per swept message.

Requests per grant of an incremental run with and without sweeps, and bytes per swept
message with `select=` against the same pages without it.

    .venv/bin/python benchmarks/sweep_cost.py [--quick]

One simulator (its mail is dated 2024-2027, so recent and future-dated mail is in every
sweep window); run 1 is a full sync, runs 2a and 2b are incremental from its state, with
`sweep_days` 7 and 0. Bytes are response bodies as sent (gzip, as Nylas sends them).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections import Counter
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nylas_simulator import NylasSimulator
from tap_nylas.tap import TapNylas

API_KEY = "sim-key-sweep-cost"


def sync(sim: NylasSimulator, state: dict | None, **extra: object) -> tuple[dict, list[dict]]:
    """One in-process sync: its final state and the simulator's log of it."""
    config = {
        "api_key": API_KEY,
        "api_url": sim.url,
        "start_date": "2024-01-01T00:00:00Z",
        "backoff_factor": 0,
        **extra,
    }
    sim.reset_log()
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out):
        TapNylas(config=config, state=state).sync_all()
        out.flush()
    text = out.buffer.getvalue().decode()  # type: ignore[attr-defined]
    states = [line for line in text.split("\n") if '"type":"STATE"' in line]
    return json.loads(states[-1])["value"], sim.request_log


def swept_bytes(sim: NylasSimulator, log: list[dict]) -> tuple[float, float]:
    """Bytes per message of the sweep's message pages, with `select=` and without."""
    pages = [e for e in log if e["path"].endswith("/messages") and "select" in e["params"]]
    with_select = sum(e["bytes"] for e in pages)
    without = 0
    headers = {"Authorization": f"Bearer {API_KEY}", "Accept-Encoding": "gzip"}
    messages = 0
    for entry in pages:
        params = {k: v for k, v in entry["params"].items() if k != "select"}
        response = requests.get(sim.url + entry["path"], params=params, headers=headers, timeout=30)
        without += int(response.headers["Content-Length"])
        messages += len(response.json()["data"])
    return with_select / max(messages, 1), without / max(messages, 1)


def main() -> None:
    """Print the benchmark lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer grants and messages")
    args = parser.parse_args()
    grants, records = (12, 40) if args.quick else (50, 200)
    with NylasSimulator(seed=7, grants=grants, records_per_grant=records, api_key=API_KEY) as sim:
        mail_grants = sum(1 for g in sim.grants if g.serving and g.supports("messages"))
        state, _ = sync(sim, None)
        _, with_sweeps = sync(sim, state, sweep_days=7)
        _, without = sync(sim, state, sweep_days=0)
        per_byte = swept_bytes(sim, with_sweeps)
    count = Counter({"with": len(with_sweeps), "without": len(without)})
    sweeps = Counter(e["path"].rsplit("/", 1)[1] for e in with_sweeps if "select" in e["params"])
    print(
        f"incremental run, {grants} grants ({mail_grants} with mail), {records} messages each: "
        f"{count['with'] / grants:.2f} requests per grant with sweep_days 7 "
        f"({dict(sweeps)} sweep requests), {count['without'] / grants:.2f} without; "
        f"{per_byte[0]:.0f} bytes per swept message with select=, "
        f"{per_byte[1]:.0f} without (gzip)"
    )


if __name__ == "__main__":
    main()
