"""Load the demo's JSONL output into DuckDB and report rows per table against the simulator.

Used by ``scripts/demo.sh``::

    python scripts/demo_report.py --jsonl-dir output/demo --db output/nylas.duckdb \
        --seed 7 --grants 20 --records 30

Each ``<stream>.jsonl`` that target-jsonl wrote becomes table ``<stream>`` in the DuckDB
file (nested objects as STRUCTs, arrays as LISTs). The expected row counts come from the
simulator's own truth for the same seed and size, so a mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

# The simulator is not installed with the tap: import it from this checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from nylas_simulator import NylasSimulator

# A message body can be several MB; DuckDB's default limit per JSON object is 16 MB.
MAX_OBJECT_BYTES = 256 * 1024 * 1024


def load(jsonl_dir: Path, db_path: Path, streams: list[str]) -> duckdb.DuckDBPyConnection:
    """One table per stream file; the database file is rebuilt from scratch."""
    db_path.unlink(missing_ok=True)
    conn = duckdb.connect(str(db_path))
    for stream in streams:
        path = jsonl_dir / f"{stream}.jsonl"
        if not path.exists() or path.stat().st_size == 0:
            continue
        conn.execute(
            f'CREATE TABLE "{stream}" AS SELECT * FROM read_json('  # noqa: S608 - our stream names
            f"?, format = 'newline_delimited', sample_size = -1, "
            f"maximum_object_size = {MAX_OBJECT_BYTES})",
            [str(path)],
        )
    return conn


def count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of a table, 0 if target-jsonl wrote nothing for it."""
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def main() -> int:
    """Load, print the table, and a couple of example queries."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsonl-dir", type=Path, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--grants", type=int, default=20)
    parser.add_argument("--records", type=int, default=30)
    args = parser.parse_args()

    sim = NylasSimulator(seed=args.seed, grants=args.grants, records_per_grant=args.records)
    streams = sorted(sim.truth())
    expected = {stream: len(sim.records(stream)) for stream in streams}
    conn = load(args.jsonl_dir, args.db, streams)

    print(f"\nRows per table in {args.db}:\n")
    print(f"  {'table':<20}{'rows':>8}{'expected':>10}")
    mismatched = []
    for stream in streams:
        rows = count(conn, stream)
        flag = "" if rows == expected[stream] else "   <-- differs from the simulator"
        if flag:
            mismatched.append(stream)
        print(f"  {stream:<20}{rows:>8}{expected[stream]:>10}{flag}")
    print(f"  {'total':<20}{sum(count(conn, s) for s in streams):>8}{sum(expected.values()):>10}")

    print("\nTop recipients (messages.to is a list of {name, email}):")
    for email, n in conn.execute(
        'SELECT r.email, count(*) AS n FROM messages, unnest("to") AS u(r) '
        "GROUP BY 1 ORDER BY n DESC, 1 LIMIT 3"
    ).fetchall():
        print(f"  {n:>4}  {email}")
    print('\nEvents by kind of time (events."when".object):')
    for kind, n in conn.execute(
        'SELECT "when".object, count(*) AS n FROM events GROUP BY 1 ORDER BY n DESC'
    ).fetchall():
        print(f"  {n:>4}  {kind}")
    conn.close()

    if mismatched:
        print(f"\nFAILED: row counts differ from the simulator for {', '.join(mismatched)}")
        return 1
    print("\nOK: every table has exactly the rows the simulator serves.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
