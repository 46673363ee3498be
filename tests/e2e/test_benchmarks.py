"""The benchmark scripts still run (their `--quick` variants; figures are not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", ["state_scale.py", "throughput.py"])
def test_benchmark_quick_run(script: str) -> None:
    result = subprocess.run(  # noqa: S603 - our own scripts
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "records/s" in result.stdout or "STATE % stdout" in result.stdout
    assert "targets" in result.stdout
