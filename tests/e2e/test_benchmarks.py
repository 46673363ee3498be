"""The benchmark scripts still run (their `--quick` variants; figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("script", "prints"),
    [
        ("state_scale.py", ["STATE % stdout", "targets"]),
        ("throughput.py", ["records/s", "targets"]),
        ("imap_history.py", ["imap history:", "targets: every message read met"]),
        (
            "sweep_cost.py",
            ["requests per grant with sweep_days 7", "bytes per swept message with select="],
        ),
    ],
)
def test_benchmark_quick_run(script: str, prints: list[str]) -> None:
    result = subprocess.run(  # noqa: S603 - our own scripts
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for line in prints:
        assert line in result.stdout
