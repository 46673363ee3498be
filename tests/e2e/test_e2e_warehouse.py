"""Issue #17 end to end: `meltano run tap-nylas target-postgres dbt-postgres:build` stays true.

In the embedded PostgreSQL (``postgres_dsn``), against one simulator with ~6% transient
faults (429s, 5xx, dropped connections), two grant shards:

1. run 1: shard 1 alone, then shard 2, then the dbt models; they equal the simulator;
2. between runs, in the simulator: a folder of grant A, a contact of grant B, a message of
   grant C (inside the sweep window) and an event of Microsoft grant D are deleted; a
   message of grant E is marked read, starred and moved; grant X's token expires;
3. run 2: both shards at once, incremental from their state, then the models: every
   ``nylas__<stream>`` equals the simulator's truth, the five changes in, X's rows kept,
   nothing missing, nothing twice;
4. a ``grant_ids`` run removes nothing of other grants; a partition that keeps failing and a
   run killed part-way write no completion record, so nothing of them is shown as deleted;
   the next complete runs bring every model back to the truth.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from nylas_simulator import Faults, NylasSimulator
from nylas_simulator.dataset import KEY_FIELDS
from tap_nylas.directory import Shard
from tests.e2e.test_e2e_meltano import (
    INSTALL_TIMEOUT,
    LOOKAHEAD_DAYS,
    REPO,
    RUN_TIMEOUT,
    START,
    _connect,
    _environment,
    _meltano,
    _meltano_parallel,
    _meltano_step,
)

API_KEY = "sim-key-e2e-meltano"  # what tests/test_e2e_meltano.py's environment sends
SHARDS = 2
SWEEP_DAYS = 30  # the simulator's mail is sparse: 30 days hold enough of it
DAY = 86400
#: Grant-scoped streams with a current-state model, and the application-level ones.
GRANT_STREAMS = (
    "calendars",
    "contacts",
    "contact_groups",
    "drafts",
    "events",
    "folders",
    "messages",
    "scheduled_messages",
    "threads",
)
MODELS = (*GRANT_STREAMS, "grants", "connectors", "credentials")


@dataclass
class Warehouse:
    """The project, the database and the simulator of the scenario, and what it did."""

    root: Path
    meltano: str
    env: dict[str, str]
    conn: t.Any
    raw: str
    models: str
    sim: NylasSimulator
    picked: dict[str, t.Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: Rows the models must keep although the simulator no longer serves them.
    kept: dict[str, set[tuple]] = field(default_factory=dict)

    def run(self, step: str, *plugins: str) -> None:
        self.timings[step] = self.timings.get(step, 0) + _meltano_step(
            self.meltano, ["run", *plugins], self.env, self.root / f"{step}.log", RUN_TIMEOUT
        )

    def shards_at_once(self, step: str, *options: str) -> None:
        runs = [
            (
                ["run", *options, f"tap-nylas-shard-{k}", "target-postgres"],
                self.env,
                self.root / f"{step}-{k}.log",
            )
            for k in range(1, SHARDS + 1)
        ]
        self.timings[step] = _meltano_parallel(self.meltano, runs, RUN_TIMEOUT)
        self.run(f"{step} dbt", "dbt-postgres:build")

    def query(self, sql: str, params: t.Sequence[t.Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def model_keys(self, stream: str) -> list[tuple]:
        columns = ", ".join(f'"{c}"' for c in KEY_FIELDS[stream])
        table = f'"{self.models}"."nylas__{stream}"'
        return [tuple(r) for r in self.query(f"SELECT {columns} FROM {table}")]  # noqa: S608

    def truth(self, stream: str) -> set[tuple]:
        window = {"events_start": START, "events_end": int(time.time()) + LOOKAHEAD_DAYS * DAY}
        keys = KEY_FIELDS[stream]
        return {tuple(r[k] for k in keys) for r in self.sim.records(stream, **window)}

    def coverage_rows(self) -> int:
        return self.query(f'SELECT count(*) FROM "{self.raw}".sync_coverage')[0][0]  # noqa: S608

    def assert_models_equal_truth(self, *, except_kept: bool = True) -> dict[str, int]:
        counts = {}
        for stream in MODELS:
            rows = self.model_keys(stream)
            expected = self.truth(stream) | (self.kept.get(stream, set()) if except_kept else set())
            assert len(rows) == len(set(rows)), f"nylas__{stream}: a row twice"
            missing, extra = expected - set(rows), set(rows) - expected
            assert not missing, f"nylas__{stream}: missing {sorted(missing)[:3]}"
            assert not extra, f"nylas__{stream}: not in the truth {sorted(extra)[:3]}"
            counts[stream] = len(rows)
        return counts


def _project(root: Path, sim: NylasSimulator, one_grant: str) -> Path:
    """The repo's meltano.yml and transform/, the tap from this checkout, two shards and a
    `grant_ids` extractor."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    extractors = project["plugins"]["extractors"]
    (tap,) = [p for p in extractors if p["name"] == "tap-nylas"]
    tap["pip_url"] = f"-e {REPO.as_posix()}"
    extractors.extend(
        {
            "name": f"tap-nylas-shard-{k}",
            "inherit_from": "tap-nylas",
            "config": {"grant_shard": f"{k}/{SHARDS}"},
        }
        for k in range(1, SHARDS + 1)
    )
    extractors.append(
        {
            "name": "tap-nylas-one-grant",
            "inherit_from": "tap-nylas",
            "config": {"grant_ids": [one_grant]},
        }
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    shutil.copytree(
        REPO / "transform", root / "transform", ignore=shutil.ignore_patterns("target", "logs")
    )
    return root


def _pick(sim: NylasSimulator) -> dict[str, t.Any]:
    """Grants A..E and X, and the objects to change, each in a different grant."""
    now = int(time.time())
    window = now - SWEEP_DAYS * DAY + 2 * DAY  # well inside the sweep window
    records = {s: sim.records(s) for s in ("messages", "folders", "contacts", "events", "threads")}
    serving = {g.id: g for g in sim.grants if g.serving}
    used: set[str] = set()

    def take(stream: str, ok: t.Callable[[dict], bool]) -> dict:
        found = next(r for r in records[stream] if r["grant_id"] not in used and ok(r))
        used.add(found["grant_id"])
        return found

    threads = {(t_["grant_id"], t_["id"]): t_ for t_ in records["threads"]}
    picked = {
        "E": take("messages", lambda m: m["date"] > window and m["unread"] and not m["starred"])
    }
    picked |= {
        # C: its thread keeps other messages, so the thread stays (with one message less)
        "C": take(
            "messages",
            lambda m: (
                m["date"] > window
                and len(threads[m["grant_id"], m["thread_id"]]["message_ids"]) > 1
            ),
        ),
        "D": take(
            "events",
            lambda e: (
                serving[e["grant_id"]].provider == "microsoft"
                and now + DAY < e["when"].get("start_time", 0) < now + 300 * DAY
            ),
        ),
        "A": take("folders", lambda f: True),
        "B": take("contacts", lambda c: True),
    }
    has_data = {r["grant_id"] for r in records["messages"]} - used
    picked["X"] = next(g for g in sorted(has_data) if serving[g].provider == "google")
    used.add(picked["X"])
    picked["F"] = take("contacts", lambda c: True)  # deleted before the grant_ids run
    picked["G"] = next(g for g in sorted(has_data) if g not in used)  # the grant_ids run's
    used.add(picked["G"])
    picked["H"] = take("contacts", lambda c: True)  # its grant's contacts keep failing
    picked["K"] = take("messages", lambda m: m["date"] > window)  # deleted before the kill
    return picked


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, postgres_dsn: str) -> t.Iterator[Warehouse]:
    meltano = _meltano()
    faults = Faults(rate=0.06, retry_after=0)
    sim = NylasSimulator(
        seed=21, grants=16, records_per_grant=20, api_key=API_KEY, faults=faults, large_bodies=False
    ).start()
    picked = _pick(sim)
    root = _project(tmp_path_factory.mktemp("warehouse"), sim, picked["G"])
    stamp = f"{os.getpid()}_{int(time.time())}"
    raw, models = f"e2e_wh_raw_{stamp}", f"e2e_wh_models_{stamp}"
    env = _environment(root, postgres_dsn, raw)
    env.update(
        TAP_NYLAS_API_URL=sim.url,
        TAP_NYLAS_MAX_RETRIES="8",
        TAP_NYLAS_SWEEP_DAYS=str(SWEEP_DAYS),
        DBT_POSTGRES_SOURCE_SCHEMA=raw,
        DBT_POSTGRES_HOST=env["TARGET_POSTGRES_HOST"],
        DBT_POSTGRES_PORT=env["TARGET_POSTGRES_PORT"],
        DBT_POSTGRES_USER=env["TARGET_POSTGRES_USER"],
        DBT_POSTGRES_PASSWORD=env["TARGET_POSTGRES_PASSWORD"],
        DBT_POSTGRES_DBNAME=env["TARGET_POSTGRES_DATABASE"],
        DBT_POSTGRES_SCHEMA=models,
    )
    conn = _connect(postgres_dsn)
    house = Warehouse(root, meltano, env, conn, raw, models, sim, picked)
    try:
        house.timings["meltano install"] = _meltano_step(
            meltano, ["install"], env, root / "install.log", INSTALL_TIMEOUT
        )
        yield house
    finally:
        print("\n[e2e warehouse] " + ", ".join(f"{k}: {v:.1f} s" for k, v in house.timings.items()))
        sim.stop()
        for schema in (raw, models):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


def _shard_of(grant_id: str) -> int:
    return next(k for k in range(1, SHARDS + 1) if Shard(k, SHARDS).owns(grant_id))


def test_the_models_stay_true_through_deletions_flags_shards_and_failures(
    warehouse: Warehouse,
) -> None:
    house, sim, picked = warehouse, warehouse.sim, warehouse.picked

    # 1. Run 1: shard 1 alone (it creates every table), then shard 2 and the models.
    house.run("run 1 shard 1", "tap-nylas-shard-1", "target-postgres")
    house.run("run 1 shard 2", "tap-nylas-shard-2", "target-postgres", "dbt-postgres:build")
    assert any(e["fault"] for e in sim.request_log), "no fault was injected"
    first = house.assert_models_equal_truth()

    # 2. Changes between the runs.
    x = picked["X"]
    house.kept = {s: {k for k in house.truth(s) if k[0] == x} for s in GRANT_STREAMS}
    assert house.kept["messages"]
    sim.expire(x)
    a, b, c, d, e = (picked[k] for k in "ABCDE")
    sim.delete("folders", a["grant_id"], a["id"])
    sim.delete("contacts", b["grant_id"], b["id"])
    sim.delete("messages", c["grant_id"], c["id"])
    sim.delete("events", d["grant_id"], d["id"], d["calendar_id"])
    sim.update_message(e["grant_id"], e["id"], unread=False, starred=True, folders=["TRASH"])
    sim.reset_log()

    # 3. Run 2: both shards at once, incremental, X expired.
    house.shards_at_once("run 2")
    log = sim.request_log
    mail = [x_ for x_ in log if x_["path"].endswith("/messages") and x_["status"] == 200]
    assert all("received_after" in x_["params"] for x_ in mail), "run 2 was not incremental"
    assert any("select" in x_["params"] for x_ in mail), "no message sweep ran"
    counts = house.assert_models_equal_truth()
    m = house.models
    assert (a["grant_id"], a["id"]) not in house.model_keys("folders")
    assert (b["grant_id"], b["id"]) not in house.model_keys("contacts")
    assert (c["grant_id"], c["id"]) not in house.model_keys("messages")
    assert (d["grant_id"], d["calendar_id"], d["id"]) not in house.model_keys("events")
    flags = house.query(
        f'SELECT unread, starred, folders FROM "{m}".nylas__messages '  # noqa: S608
        "WHERE grant_id = %s AND id = %s",
        (e["grant_id"], e["id"]),
    )
    assert flags == [(False, True, ["TRASH"])]
    thread = house.query(
        f'SELECT starred, message_ids FROM "{m}".nylas__threads WHERE grant_id = %s AND id = %s',  # noqa: S608
        (c["grant_id"], c["thread_id"]),
    )
    assert thread, "the thread of the deleted message is gone too"
    assert c["id"] not in thread[0][1], "the thread still lists the deleted message"
    participants = house.query(
        f'SELECT count(*) FROM "{m}".nylas__message_participants '  # noqa: S608
        "WHERE grant_id = %s AND message_id = %s",
        (c["grant_id"], c["id"]),
    )
    assert participants == [(0,)]
    assert counts["messages"] == first["messages"] - 1
    print(f"\n[e2e warehouse] rows per model after run 2: {counts}")

    # 4a. A grant_ids run vouches for its grant only: F's deleted contact stays.
    f_ = picked["F"]
    sim.delete("contacts", f_["grant_id"], f_["id"])
    house.run("grant_ids run", "tap-nylas-one-grant", "target-postgres", "dbt-postgres:build")
    assert (f_["grant_id"], f_["id"]) in house.model_keys("contacts")
    house.kept.setdefault("contacts", set()).add((f_["grant_id"], f_["id"]))
    house.assert_models_equal_truth()

    # 4b. A partition that keeps failing: H's contacts answer 502; its deleted contact stays.
    h = picked["H"]
    sim.delete("contacts", h["grant_id"], h["id"])
    house.kept["contacts"].add((h["grant_id"], h["id"]))
    sim.add_fault_rule(rf"/v3/grants/{h['grant_id']}/contacts\?", "502")
    shard = _shard_of(h["grant_id"])
    failed = subprocess.run(  # noqa: S603 - our own fixed command line
        [house.meltano, "run", f"tap-nylas-shard-{shard}", "target-postgres"],
        cwd=house.root, env={**house.env, "TAP_NYLAS_MAX_RETRIES": "1"},
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    assert failed.returncode != 0
    assert f"contacts for grant_id {h['grant_id']}" in failed.stdout + failed.stderr
    sim.clear_fault_rules()
    if _shard_of(f_["grant_id"]) == shard:  # that run read F's contacts in full
        house.kept["contacts"].discard((f_["grant_id"], f_["id"]))
    house.run("after the failure dbt", "dbt-postgres:build")
    assert (h["grant_id"], h["id"]) in house.model_keys("contacts")
    house.assert_models_equal_truth()

    # 4c. A run killed part-way: no completion record, so K's deleted message stays.
    k = picked["K"]
    sim.delete("messages", k["grant_id"], k["id"])
    before = house.coverage_rows()
    shard = _shard_of(k["grant_id"])
    sim.app.latency = 0.05  # slow enough to stop it in the middle
    sim.reset_log()
    process = subprocess.Popen(  # noqa: S603 - our own fixed command line
        [house.meltano, "run", f"tap-nylas-shard-{shard}", "target-postgres"],
        cwd=house.root, env=house.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + RUN_TIMEOUT
    while not any("select" in x_["params"] for x_ in sim.request_log):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    sim.app.latency = 0
    assert house.coverage_rows() == before, "a killed run wrote completion records"
    house.run("after the kill dbt", "dbt-postgres:build")
    assert (k["grant_id"], k["id"]) in house.model_keys("messages")
    house.kept["messages"].add((k["grant_id"], k["id"]))
    house.assert_models_equal_truth()

    # 5. Complete runs again: every deletion reaches the models; X's rows are still kept.
    # --force: Meltano still sees the killed run as running (until it is 5 minutes stale)
    house.shards_at_once("run 3", "--force")
    for key in ((f_["grant_id"], f_["id"]), (h["grant_id"], h["id"])):
        house.kept["contacts"].discard(key)
    house.kept["messages"].discard((k["grant_id"], k["id"]))
    house.assert_models_equal_truth()
    assert house.kept["messages"], "the expired grant's rows were dropped"
