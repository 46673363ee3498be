"""Stopped runs say so: exit codes for SIGTERM/SIGINT, one line when the target dies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import typing as t

import pytest

from nylas_simulator import NylasSimulator
from tap_nylas.output import EXIT_TARGET_STOPPED

API_KEY = "sim-key-5e0a7f3c"


@pytest.fixture(scope="module")
def slow_sim() -> t.Iterator[NylasSimulator]:
    """Enough grants and latency that a run is still going when the test acts on it."""
    with NylasSimulator(
        seed=8, grants=40, records_per_grant=30, api_key=API_KEY, latency=0.02
    ) as sim:
        yield sim


def start_tap(sim: NylasSimulator, tmp_path: t.Any) -> subprocess.Popen:
    config = {
        "api_key": API_KEY,
        "api_url": sim.url,
        "start_date": "2024-01-01T00:00:00Z",
        "max_concurrency": 2,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "tap_nylas", "--config", str(tmp_path / "config.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Unbuffered: communicate() reads the pipe itself, past whatever a buffered
        # readline() would have read ahead (the tap writes RECORDs in 64 KiB batches).
        bufsize=0,
    )


def read_records(process: subprocess.Popen, count: int) -> list[bytes]:
    """The first lines of stdout, up to the `count`-th RECORD (the sync is under way)."""
    assert process.stdout is not None
    lines: list[bytes] = []
    while sum(b'"type":"RECORD"' in line for line in lines) < count:
        line = process.stdout.readline()
        assert line, "the run ended before the test could act on it"
        lines.append(line)
    return lines


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_ends_with_a_final_state_and_128_plus_the_signal(
    slow_sim: NylasSimulator, tmp_path: t.Any, signum: int, code: int
) -> None:
    process = start_tap(slow_sim, tmp_path)
    lines = read_records(process, 50)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    lines += out.splitlines(keepends=True)
    stderr = err.decode()

    assert process.returncode == code, stderr[-2000:]
    assert all(line.endswith(b"\n") for line in lines)  # no line cut in half
    messages = [json.loads(line) for line in lines]
    assert messages[-1]["type"] == "STATE"  # resumable from exactly here
    assert "Traceback" not in stderr
    assert f"Stopped by {signal.Signals(signum).name}" in stderr
    assert f"exit code {code}" in stderr


def test_a_closed_stdout_ends_the_run_at_once_in_one_line(
    slow_sim: NylasSimulator, tmp_path: t.Any
) -> None:
    process = start_tap(slow_sim, tmp_path)
    read_records(process, 20)
    assert process.stdout is not None
    process.stdout.close()  # the target died
    _, err = process.communicate(timeout=60)
    stderr = err.decode()

    assert process.returncode == EXIT_TARGET_STOPPED == 141, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, errors
    assert "The target stopped reading (stdout closed)" in errors[0]
    for noise in ("Traceback", "Exception ignored", "BrokenPipeError", "unhandled error"):
        assert noise not in stderr
    # at once: no further requests after the error line
    after = stderr.split("The target stopped reading")[1]
    assert "http_request_duration" not in after
