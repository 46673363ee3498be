"""The Meltano plugin definition, used the way a data engineer would.

Split from tests/unit/test_meltano_plugin.py (the checks of the generated files). This test
adds the tap to an empty Meltano project (``meltano add --from-ref``), sets SDK built-in settings
with ``meltano config set`` and runs ``meltano run tap-nylas target-jsonl`` against the
simulator, offline: the loader is an inline definition too, so nothing asks Meltano Hub.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nylas_simulator import NylasSimulator

REPO = Path(__file__).resolve().parents[2]
DEFINITION = REPO / "meltano-hub" / "tap-nylas.yml"
API_KEY = "sim-key-meltano-plugin"
TARGET_JSONL = {
    "name": "target-jsonl",
    "namespace": "target_jsonl",
    "pip_url": "target-jsonl~=0.1.4",
    "settings": [
        {"name": "destination_path", "kind": "string", "value": "output"},
        {"name": "do_timestamp_file", "kind": "boolean", "value": False},
    ],
}


def _meltano() -> str:
    beside = Path(sys.executable).with_name("meltano")
    found = str(beside) if beside.exists() else shutil.which("meltano")
    if not found:
        pytest.fail("meltano is not installed here: pip install -e '.[test]'", pytrace=False)
    return found


def _env(project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MELTANO_", "TAP_NYLAS_"))}
    env.update(
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_CLI_DISABLE_VERSION_CHECK="true",
        MELTANO_PROJECT_ROOT=str(project),
    )
    return env


def _meltano_cmd(meltano: str, project: Path, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        [meltano, *args],
        cwd=project,
        env=_env(project),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"`meltano {' '.join(args)}` exited {done.returncode}:\n{output[-4000:]}")
    return output


def test_meltano_add_from_ref_config_set_and_run(tmp_path: Path) -> None:
    meltano = _meltano()
    project = tmp_path / "project"
    _meltano_cmd(meltano, tmp_path, "init", str(project), "--no-usage-stats")

    # The published definition, installed from this checkout instead of the Git URL.
    tap = yaml.safe_load(DEFINITION.read_text())
    tap["pip_url"] = REPO.as_posix()
    (tmp_path / "tap-nylas.yml").write_text(yaml.safe_dump(tap))
    (tmp_path / "target-jsonl.yml").write_text(yaml.safe_dump(TARGET_JSONL))
    for kind, name in [("extractor", "tap-nylas"), ("loader", "target-jsonl")]:
        ref = str(tmp_path / f"{name}.yml")
        _meltano_cmd(meltano, project, "add", "--plugin-type", kind, "--from-ref", ref, name)

    with NylasSimulator(seed=5, grants=4, records_per_grant=4, api_key=API_KEY) as sim:
        output = tmp_path / "output"
        stream_maps = {"grants": {"email_domain": "email.split('@')[-1]"}}
        for setting, value in [
            ("api_key", API_KEY),
            ("api_url", sim.url),
            ("start_date", "2024-01-01T00:00:00Z"),
            ("max_retries", "0"),
            ("stream_maps", json.dumps(stream_maps)),
            ("flattening_enabled", "true"),
            ("flattening_max_depth", "1"),
        ]:
            _meltano_cmd(meltano, project, "config", "set", "tap-nylas", setting, value)
        _meltano_cmd(
            meltano, project, "config", "set", "target-jsonl", "destination_path", str(output)
        )
        for stream in ("grants", "calendars"):
            _meltano_cmd(meltano, project, "select", "tap-nylas", stream, "*")
        _meltano_cmd(meltano, project, "run", "tap-nylas", "target-jsonl", timeout=180)
        grants, calendars = sim.records("grants"), sim.records("calendars")

    # api_key is sensitive: Meltano kept it in .env, not in meltano.yml
    assert API_KEY not in (project / "meltano.yml").read_text()
    assert API_KEY in (project / ".env").read_text()
    installed = yaml.safe_load((project / "meltano.yml").read_text())["plugins"]["extractors"][0]
    assert installed["config"]["stream_maps"] == stream_maps
    assert installed["config"]["flattening_enabled"] is True

    assert sorted(p.name for p in output.iterdir()) == ["calendars.jsonl", "grants.jsonl"]
    rows = [json.loads(line) for line in (output / "grants.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(g["id"] for g in grants)
    domains = {g["id"]: g["email"].split("@")[-1] for g in grants}
    assert {r["id"]: r["email_domain"] for r in rows} == domains  # the stream map

    rows = [json.loads(line) for line in (output / "calendars.jsonl").read_text().splitlines()]
    assert len(rows) == len(calendars)
    flattened = 0
    for row in rows:  # flattening: `notetaker: {...}` -> `notetaker__...` columns
        assert "notetaker" not in row
        flattened += any(column.startswith("notetaker__") for column in row)
    assert flattened == sum(1 for c in calendars if c.get("notetaker")) > 0
