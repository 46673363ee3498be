"""The README stays true: its settings table and its test commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tap_nylas.tap import TapNylas

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_settings_table_matches_about() -> None:
    about = subprocess.run(
        [sys.executable, "-m", "tap_nylas", "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = README.split("<!-- settings-table")[1].split("<!-- /settings-table -->")[0]
    documented = [line for line in table.splitlines() if line.startswith("|")]
    about_rows = [line for line in about.splitlines() if line.startswith("|")]
    # The README lists the tap's own settings; the SDK's built-ins follow them in --about.
    assert documented == about_rows[: len(documented)]
    assert about_rows[len(documented)].startswith("| stream_maps |")


def test_ci_runs_exactly_the_readme_commands() -> None:
    block = README.split("## Development")[1].split("```bash")[1].split("```")[0]
    commands = [line for line in block.strip().splitlines() if line]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-len(commands) :] == commands


def test_every_stream_is_in_the_streams_table() -> None:
    rows = re.findall(r"^\| `(\w+)` \|", README, flags=re.MULTILINE)
    streams = TapNylas(config={"api_key": "x"}, validate_config=False).streams
    assert sorted(rows) == sorted(streams)
