"""benchmarks/sweep_cost.py still runs (its `--quick` variant; figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sweep_cost_quick_run() -> None:
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(ROOT / "benchmarks" / "sweep_cost.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "requests per grant with sweep_days 7" in result.stdout
    assert "bytes per swept message with select=" in result.stdout
