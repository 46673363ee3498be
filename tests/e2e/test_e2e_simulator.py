"""The tap's command line against the local Nylas simulator, end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import typing as t

import pytest
from jsonschema import Draft202012Validator

from nylas_simulator import Faults, NylasSimulator
from nylas_simulator.dataset import STREAMS
from tap_nylas.tap import TapNylas
from tests.support import START_EPOCH, SyncResult, run_sync

API_KEY = "sim-key-3b9f1c0e"
SIMULATED = frozenset(STREAMS)
LOOKAHEAD_DAYS = 800


def tap_config(sim: NylasSimulator, **extra: t.Any) -> dict:
    return {
        "api_key": API_KEY,
        "api_url": sim.url,
        "start_date": "2024-01-01T00:00:00Z",
        "events_lookahead_days": LOOKAHEAD_DAYS,
        "backoff_factor": 0,
        **extra,
    }


def primary_keys() -> dict[str, tuple[str, ...]]:
    """Keys of the streams the simulator has a truth for (not sweeps, not sync_coverage)."""
    tap = TapNylas(config={"api_key": "x"}, validate_config=False)
    return {
        name: tuple(stream.primary_keys or ())
        for name, stream in tap.streams.items()
        if name in SIMULATED
    }


def truth(sim: NylasSimulator) -> dict[str, set[tuple]]:
    """Every primary key a complete sync must produce, in the tap's key order."""
    window = {"events_start": START_EPOCH, "events_end": int(time.time()) + LOOKAHEAD_DAYS * 86400}
    keys = primary_keys()
    return {
        name: {tuple(r[k] for k in key) for r in sim.records(name, **window)}
        for name, key in keys.items()
    }


class TapProcess:
    """The tap's CLI as a child process, its stdout read line by line."""

    def __init__(self, config: dict, tmp_path: t.Any, state: dict | None = None) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        (tmp_path / "config.json").write_text(json.dumps(config))
        args = [sys.executable, "-m", "tap_nylas", "--config", str(tmp_path / "config.json")]
        if state is not None:
            (tmp_path / "state.json").write_text(json.dumps(state))
            args += ["--state", str(tmp_path / "state.json")]
        self.stderr_path = tmp_path / "stderr.log"
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI
            args,
            stdout=subprocess.PIPE,
            stderr=self.stderr_path.open("w"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []

    def read_until(self, stop: t.Callable[[list[str]], bool]) -> None:
        assert self.process.stdout is not None
        while not stop(self.lines) and (line := self.process.stdout.readline()):
            self.lines.append(line.decode())

    def finish(self, timeout: float = 120) -> SyncResult:
        assert self.process.stdout is not None
        # Read through the same buffered reader as read_until (communicate() would bypass
        # what it already buffered).
        out = self.process.stdout.read()
        self.process.wait(timeout=timeout)
        # Split on newlines only: str.splitlines() also splits inside a record's text.
        self.lines += [line.decode() + "\n" for line in out.split(b"\n")]
        if not out.endswith(b"\n"):
            self.lines[-1] = self.lines[-1][:-1]
        # A process killed mid-write leaves a last line without its newline: not a message.
        return SyncResult([line for line in self.lines if line.endswith("\n") and line.strip()])

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


@pytest.fixture(scope="module")
def faulty_sim() -> t.Iterator[NylasSimulator]:
    faults = Faults(rate=0.05, retry_after=0)
    with NylasSimulator(
        seed=11, grants=24, records_per_grant=20, api_key=API_KEY, faults=faults
    ) as sim:
        yield sim


def test_a_full_sync_emits_exactly_the_truth_despite_faults(
    faulty_sim: NylasSimulator, tmp_path: t.Any
) -> None:
    faulty_sim.reset_log()
    tap = TapProcess(tap_config(faulty_sim, max_retries=4), tmp_path)
    result = tap.finish()

    assert tap.process.returncode == 0, tap.stderr[-2000:]
    assert any(entry["fault"] for entry in faulty_sim.request_log), "no fault was injected"
    expected = truth(faulty_sim)
    keys = primary_keys()
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    for stream, key in keys.items():
        got = result.keys(stream, key)
        assert len(got) == len(set(got)), f"{stream}: duplicate keys"
        assert set(got) == expected[stream], stream
        validator = Draft202012Validator(schemas[stream])
        for record in result.records[stream]:
            errors = list(validator.iter_errors(record))
            assert not errors, f"{stream}: {errors[0].message}"
    assert API_KEY not in result.raw
    assert API_KEY not in tap.stderr
    # an expired grant and a deleted calendar were skipped with a warning, not fatal
    assert "Skipping" in tap.stderr


@pytest.mark.parametrize(
    "faults", [None, Faults(rate=0.06, retry_after=0.1)], ids=["clean", "faults"]
)
def test_concurrent_output_equals_sequential_output(faults: Faults | None) -> None:
    """Same records (each once) and same final bookmarks; only the order may differ.

    1,200 messages a grant: the concurrent run splits mailboxes into time ranges.
    """
    started = int(time.time())
    with NylasSimulator(
        seed=5, grants=6, records_per_grant=1200, api_key=API_KEY, latency=0.005, faults=faults
    ) as sim:
        sequential = run_sync(tap_config(sim, max_concurrency=1, max_retries=8))
        sim.reset_log()
        concurrent = run_sync(tap_config(sim, max_concurrency=8, max_retries=8))
        in_flight = max(entry["in_flight"] for entry in sim.request_log)
        assert any("received_before" in entry["params"] for entry in sim.request_log)

    def mask(value: t.Any) -> str:
        # Bookmarks of data dated in the future stop at each run's start (the signpost),
        # which differs between the two runs by design; so does the signpost itself.
        text = json.dumps(value, sort_keys=True)
        pattern = r'"replication_key_(?:value|signpost)": (\d+)'
        return re.sub(pattern, _at_run_start(started), text)

    def records(result: SyncResult) -> list[tuple[str, str]]:
        return sorted(
            (m["stream"], json.dumps(m["record"], sort_keys=True))
            for m in result.messages
            # completion records carry the time of each read, which differs run to run
            if m["type"] == "RECORD" and m["stream"] != "sync_coverage"
        )

    def final_bookmarks(result: SyncResult) -> str:
        bookmarks = result.states[-1]["bookmarks"]
        for stream in bookmarks.values():
            stream.get("partitions", []).sort(key=lambda p: json.dumps(p["context"]))
        return mask(bookmarks)

    assert in_flight > 2, "the concurrent run did not overlap requests"
    assert sum(map(len, sequential.records.values())) > 1000
    assert records(concurrent) == records(sequential)
    assert len(set(records(concurrent))) == len(records(concurrent))
    assert final_bookmarks(concurrent) == final_bookmarks(sequential)


def _at_run_start(started: int) -> t.Callable[[re.Match], str]:
    def replace(match: re.Match) -> str:
        return match.group(0) if int(match.group(1)) < started else "run start"

    return replace


def _union(*results: SyncResult) -> dict[str, set[tuple]]:
    return {
        stream: {key for result in results for key in result.keys(stream, pk)}
        for stream, pk in primary_keys().items()
    }


def _records(lines: list[str], stream: str = "") -> int:
    marker = f'"type":"RECORD","stream":"{stream}' if stream else '"type":"RECORD"'
    return sum(marker in line for line in lines)


def test_an_interrupted_sync_resumed_from_its_last_state_loses_nothing(
    tmp_path: t.Any,
) -> None:
    with NylasSimulator(
        seed=3, grants=30, records_per_grant=20, api_key=API_KEY, latency=0.002
    ) as sim:
        expected = truth(sim)
        total = sum(map(len, expected.values()))
        config = tap_config(sim, max_concurrency=4)

        first = TapProcess(config, tmp_path / "one")
        # stop it half-way through messages, an incremental stream
        first.read_until(
            lambda lines: _records(lines, "messages") >= len(expected["messages"]) // 2
        )
        first.process.send_signal(signal.SIGTERM)
        interrupted = first.finish()
        assert interrupted.states, "no STATE before the interruption"
        assert _records(first.lines) < total, "the sync ended before the interruption"

        resume = TapProcess(config, tmp_path / "two", state=interrupted.states[-1])
        second = resume.finish()
        assert resume.process.returncode == 0, resume.stderr[-2000:]

    union = _union(interrupted, second)
    for stream, keys in expected.items():
        assert keys <= union[stream], f"{stream}: lost {len(keys - union[stream])} records"
    # the resumed run started from the bookmarks, not from scratch
    assert len(second.records["messages"]) < len(expected["messages"])


def test_killed_during_a_retry_then_resumed_loses_nothing(tmp_path: t.Any) -> None:
    faults = Faults(rate=0.05, retry_after=1, kinds=("429_retry_after",))
    with NylasSimulator(
        seed=4, grants=8, records_per_grant=15, api_key=API_KEY, faults=faults
    ) as sim:
        expected = truth(sim)
        config = tap_config(sim, max_retries=5)
        first = TapProcess(config, tmp_path / "one")
        deadline = time.monotonic() + 60
        while "Retrying" not in first.stderr and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Retrying" in first.stderr
        first.process.kill()  # SIGKILL: no chance to write a final STATE
        killed = first.finish()

        state = killed.states[-1] if killed.states else None
        resume = TapProcess(config, tmp_path / "two", state=state)
        resumed = resume.finish(timeout=300)
        assert resume.process.returncode == 0, resume.stderr[-2000:]

    union = _union(killed, resumed)
    for stream, keys in expected.items():
        assert keys <= union[stream], f"{stream}: lost {len(keys - union[stream])} records"


def _max_in_flight_per_grant(log: list[dict]) -> int:
    # The simulator logs a request's end once its handler returns, a moment after the
    # client has the whole body and may have sent its next request: 5 ms of slack.
    events = sorted(
        (moment, step, entry["grant_id"])
        for entry in log
        if entry["grant_id"]
        for moment, step in ((entry["t"], 1), (entry["t"] + entry["duration"] - 0.005, -1))
    )
    busy: dict[str, int] = {}
    peak = 0
    for _, step, grant in events:
        busy[grant] = busy.get(grant, 0) + step
        peak = max(peak, busy[grant])
    return peak


def test_big_mailboxes_are_read_in_time_slices_each_record_once() -> None:
    faults = Faults(rate=0.05, retry_after=0.2)
    with NylasSimulator(
        seed=6, grants=3, records_per_grant=1500, api_key=API_KEY, faults=faults
    ) as sim:
        expected = truth(sim)
        config = tap_config(sim, max_requests_per_grant=3, backoff_factor=0.05)
        result = run_sync(config, streams=["messages", "threads", "calendars", "events"])
        log = sim.request_log

    sliced = {
        p for e in log for p in e["params"] if p in {"received_before", "latest_message_before"}
    }
    assert sliced == {"received_before", "latest_message_before"}, "nothing was split"
    assert _max_in_flight_per_grant(log) <= 3
    for stream in ("messages", "threads", "events"):
        keys = result.keys(stream, primary_keys()[stream])
        assert len(keys) == len(set(keys)), f"{stream}: a record came twice"
        assert set(keys) == expected[stream]


def test_killed_in_the_middle_of_a_sliced_grant_then_resumed_loses_nothing(
    tmp_path: t.Any,
) -> None:
    with NylasSimulator(
        seed=8, grants=3, records_per_grant=1200, api_key=API_KEY, latency=0.01
    ) as sim:
        expected = truth(sim)
        config = tap_config(sim, max_requests_per_grant=4)
        first = TapProcess(config, tmp_path / "one")
        first.read_until(
            lambda lines: _records(lines, "messages") >= len(expected["messages"]) // 2
        )
        first.process.kill()  # SIGKILL: the last STATE written is all there is
        killed = first.finish()

        state = killed.states[-1] if killed.states else None
        resume = TapProcess(config, tmp_path / "two", state=state)
        resumed = resume.finish(timeout=300)
        assert resume.process.returncode == 0, resume.stderr[-2000:]
        assert any("received_before" in e["params"] for e in sim.request_log)

    union = _union(killed, resumed)
    for stream, keys in expected.items():
        assert keys <= union[stream], f"{stream}: lost {len(keys - union[stream])} records"
