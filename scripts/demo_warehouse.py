"""The demo's second part: changes in the simulator between two syncs, and what the models show.

Used by ``scripts/demo.sh``::

    python scripts/demo_warehouse.py change --url URL --api-key KEY --picks picks.json \
        --seed 7 --grants 20 --records 30 --sweep-days 30
    python scripts/demo_warehouse.py report --dsn postgresql://… --raw nylas \
        --models analytics --picks picks.json

``change`` deletes one recent message and one folder, and marks another recent message read,
starred and moved, through the simulator's Nylas API (``DELETE`` and ``PUT``, as one would on
Nylas). ``report`` then shows each change in the raw tables target-postgres loaded and in the
dbt models (``nylas__messages``, ``nylas__folders``), and exits 1 if a model does not show it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing as t
import urllib.request
from pathlib import Path

# The simulator is not installed with the tap: import it from this checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from nylas_simulator import NylasSimulator

DAY = 86400


def _call(url: str, api_key: str, method: str, path: str, body: dict | None = None) -> None:
    request = urllib.request.Request(  # noqa: S310 - the local simulator
        url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


def change(args: argparse.Namespace) -> int:
    """Pick the objects (from the simulator's truth for the same seed) and change them."""
    sim = NylasSimulator(seed=args.seed, grants=args.grants, records_per_grant=args.records)
    now = int(time.time())
    # Inside the sweep window, and older than the run: only the sweep re-reads them.
    recent = [
        m
        for m in sim.records("messages")
        if now - (args.sweep_days - 2) * DAY < m["date"] < now - 3600
    ]
    newest: dict[str, int] = {}
    for m in sim.records("messages"):
        newest[m["grant_id"]] = max(newest.get(m["grant_id"], 0), m["date"])
    deleted = recent[0]
    # Not its grant's newest message: the incremental read (from the newest date, less an
    # hour) does not list it again, only the sweep does.
    candidates = [
        m
        for m in recent
        if m["id"] != deleted["id"] and m["date"] < newest[m["grant_id"]] - 2 * 3600
    ]
    flagged = next((m for m in candidates if m["unread"]), candidates[0])
    folders = [f for f in sim.records("folders") if f["grant_id"] == flagged["grant_id"]]
    moved_to = next(f["id"] for f in folders if f["id"] not in flagged["folders"])
    # A user folder or label (listed after the system ones) of a third grant.
    folder = [
        f
        for f in sim.records("folders")
        if f["grant_id"] not in (flagged["grant_id"], deleted["grant_id"])
        and not f.get("attributes")
        and f["id"].lower() != "inbox"
    ][-1]
    api = (args.url, args.api_key)
    _call(*api, "DELETE", f"/v3/grants/{deleted['grant_id']}/messages/{deleted['id']}")
    _call(
        *api,
        "PUT",
        f"/v3/grants/{flagged['grant_id']}/messages/{flagged['id']}",
        {"unread": False, "starred": True, "folders": [moved_to]},
    )
    _call(*api, "DELETE", f"/v3/grants/{folder['grant_id']}/folders/{folder['id']}")
    picks = {
        "deleted_message": [deleted["grant_id"], deleted["id"]],
        "flagged_message": [flagged["grant_id"], flagged["id"]],
        "moved_to": moved_to,
        "deleted_folder": [folder["grant_id"], folder["id"]],
    }
    args.picks.write_text(json.dumps(picks))
    print(f"    deleted message {deleted['id']} (grant {deleted['grant_id'][:8]}…)")
    print(
        f"    marked message {flagged['id']} (grant {flagged['grant_id'][:8]}…) read and "
        f"starred, moved to {moved_to}"
    )
    print(f"    deleted folder {folder['id']!r} (grant {folder['grant_id'][:8]}…)")
    return 0


def report(args: argparse.Namespace) -> int:
    """Each change in the raw tables and in the models; 1 if a model misses one."""
    import psycopg  # noqa: PLC0415 - installed by demo.sh for this part only

    picks = json.loads(args.picks.read_text())
    raw, models = args.raw, args.models
    failures = []
    with psycopg.connect(args.dsn, autocommit=True) as conn:

        def one(sql: str, params: t.Sequence[t.Any]) -> list[tuple]:
            return conn.execute(sql, params).fetchall()

        flags = "SELECT unread, starred, folders FROM {} WHERE grant_id = %s AND id = %s"
        count = "SELECT count(*) FROM {} WHERE grant_id = %s AND id = %s"
        deleted = picks["deleted_message"]
        raw_rows = one(count.format(f'"{raw}".messages'), deleted)[0][0]
        model_rows = one(count.format(f'"{models}".nylas__messages'), deleted)[0][0]
        print(f"\nDeleted message {deleted[1]}:")
        print(f"  {raw}.messages (as loaded, rows are never deleted there): {raw_rows} row")
        print(f"  {models}.nylas__messages (what exists now):              {model_rows} rows")
        if model_rows:
            failures.append("the deleted message is still in nylas__messages")

        flagged = picks["flagged_message"]
        before = one(flags.format(f'"{raw}".messages'), flagged)
        after = one(flags.format(f'"{models}".nylas__messages'), flagged)
        print(f"\nMessage {flagged[1]} marked read, starred, moved to {picks['moved_to']}:")
        print(f"  {raw}.messages (not re-read by date):      unread, starred, folders = {before}")
        print(f"  {models}.nylas__messages (from the sweep): unread, starred, folders = {after}")
        if after != [(False, True, [picks["moved_to"]])]:
            failures.append("nylas__messages does not show the new flags")

        folder = picks["deleted_folder"]
        raw_rows = one(count.format(f'"{raw}".folders'), folder)[0][0]
        model_rows = one(count.format(f'"{models}".nylas__folders'), folder)[0][0]
        print(f"\nDeleted folder {folder[1]!r}:")
        print(f"  {raw}.folders: {raw_rows} row; {models}.nylas__folders: {model_rows} rows")
        if model_rows:
            failures.append("the deleted folder is still in nylas__folders")

        coverage = one(
            f'SELECT stream, count(*) FROM "{raw}".sync_coverage GROUP BY 1 ORDER BY 1',  # noqa: S608
            (),
        )
        print("\nCompletion records (sync_coverage) per stream, both runs:")
        print("  " + ", ".join(f"{stream} {n}" for stream, n in coverage))

    if failures:
        print("\nFAILED: " + "; ".join(failures))
        return 1
    print("\nOK: the deletion and the flag change reached the models.")
    return 0


def main() -> int:
    """`change` or `report`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("change")
    one.add_argument("--url", required=True)
    one.add_argument("--api-key", required=True)
    one.add_argument("--picks", type=Path, required=True)
    one.add_argument("--seed", type=int, default=7)
    one.add_argument("--grants", type=int, default=20)
    one.add_argument("--records", type=int, default=30)
    one.add_argument("--sweep-days", type=int, default=30)
    two = commands.add_parser("report")
    two.add_argument("--dsn", required=True)
    two.add_argument("--raw", default="nylas")
    two.add_argument("--models", default="analytics")
    two.add_argument("--picks", type=Path, required=True)
    args = parser.parse_args()
    return change(args) if args.command == "change" else report(args)


if __name__ == "__main__":
    sys.exit(main())
