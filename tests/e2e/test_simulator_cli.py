"""`python -m nylas_simulator`: the simulator's command line, in a child process.

Split from tests/unit/test_simulator.py and tests/unit/test_simulator_faults.py. The child runs
with the checkout on PYTHONPATH: the simulator is not installed with the tap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

from nylas_simulator import NylasSimulator

API_KEY = "sim-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
REPO = Path(__file__).resolve().parents[2]


def test_cli_truth_and_serve() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "nylas_simulator", "--grants", "6", "--records", "4"]
    out = subprocess.run(  # noqa: S603 - our own interpreter and module
        [*cmd, "--truth"], capture_output=True, text=True, env=env, check=True
    )
    counts = json.loads(out.stdout)
    assert counts == {
        k: len(v) for k, v in NylasSimulator(grants=6, records_per_grant=4).truth().items()
    }
    with subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [*cmd, "--port", "0"], stdout=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            assert line.startswith("NYLAS_SIMULATOR_URL=http://127.0.0.1:")
            url = line.split("=", 1)[1]
            resp = requests.get(
                f"{url}/v3/grants", headers={"Authorization": "Bearer sim-key"}, timeout=10
            )
            assert len(resp.json()["data"]) == 6
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_cli_fault_rules_and_request_log_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "log.jsonl"
    cmd = [
        sys.executable, "-m", "nylas_simulator", "--grants", "6", "--records", "4",
        "--port", "0", "--fault-rule", r"/v3/connectors:503:1", "--fault-rule",
        "/creds:429_provider", "--grant-concurrency", "4", "--latency", "0.01",
        "--latency-distribution", "lognormal", "--request-log", str(log_path),
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as proc:  # noqa: S603
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip().split("=", 1)[1]
            statuses = [
                requests.get(f"{url}{p}", headers=AUTH, timeout=10).status_code
                for p in ("/v3/connectors", "/v3/connectors", "/v3/connectors/google/creds")
            ]
        finally:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert statuses == [503, 200, 429]
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    entries.sort(key=lambda e: e["start"])
    assert [(e["status"], e["fault"]) for e in entries] == [
        (503, "503"),
        (200, None),
        (429, "429_provider"),
    ]
