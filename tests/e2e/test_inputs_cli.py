"""Inputs checked before any request, as the real CLI reports them (a child process each).

Split from tests/unit/test_inputs.py (the in-process checks): files, settings, secrets and
bookmarks, each through `python -m tap_nylas`, most against the simulator.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing as t

import pytest

from nylas_simulator import NylasSimulator
from tap_nylas.tap import TapNylas
from tests.support import API_KEY
from tests.support.bookmarks import FUTURE, _values

SIM_KEY = "sim-key-7c1d9e2b4f"
# Pieces of a key a test looks for must not occur in ordinary output (as "nylas" does).
SECRET = "nyk_v0_Qx7Rf3Lm9Tb2Wc8Zp4Hd"


@pytest.fixture(scope="module")
def sim() -> t.Iterator[NylasSimulator]:
    with NylasSimulator(seed=21, grants=4, records_per_grant=10, api_key=SIM_KEY) as simulator:
        yield simulator


class Run:
    """One run of the real CLI in a child process."""

    def __init__(self, process: subprocess.CompletedProcess) -> None:
        self.code = process.returncode
        self.stdout: str = process.stdout
        self.stderr: str = process.stderr

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "| ERROR" in line]

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "| WARNING" in line]

    @property
    def last_state(self) -> dict:
        states = [m for m in map(json.loads, self.stdout.splitlines()) if m["type"] == "STATE"]
        return t.cast("dict", states[-1]["value"])

    def assert_one_clean_error(self, *fragments: str) -> str:
        """Exit 1, one ERROR line holding `fragments`, and no traceback anywhere."""
        assert self.code == 1, self.stderr
        assert "Traceback" not in self.stderr
        assert "Exception" not in self.stderr
        (line,) = self.errors
        for fragment in fragments:
            assert fragment in line
        return line

    def assert_never_shows(self, secret: str) -> None:
        """Neither the secret nor a recognisable piece of it, on stdout or stderr."""
        pieces = {secret, secret.strip(), repr(secret)[1:-1]}
        pieces |= {p for p in re.split(r"[^0-9A-Za-z]+", secret) if len(p) >= 4}
        for piece in pieces:
            assert piece not in self.stdout, f"{piece!r} on stdout"
            assert piece not in self.stderr, f"{piece!r} on stderr"


def cli(
    tmp_path: t.Any, *args: str, config: dict | None = None, env: dict | None = None, **files: str
) -> Run:
    """`python -m tap_nylas` with `config` (as --config) and other files written as given."""
    argv = [sys.executable, "-m", "tap_nylas"]
    if config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
        argv += ["--config", str(tmp_path / "config.json")]
    for option, text in files.items():
        (tmp_path / f"{option}.json").write_text(text)
        argv += [f"--{option}", str(tmp_path / f"{option}.json")]
    process = subprocess.run(  # noqa: S603 - our own CLI
        [*argv, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    return Run(process)


def sim_config(sim: NylasSimulator, **extra: t.Any) -> dict:
    return {"api_key": SIM_KEY, "api_url": sim.url, "start_date": "2024-01-01T00:00:00Z", **extra}


# Files: one line naming the file, before anything else happens.

BAD_FILES = [
    ("", "is empty"),
    ("  \n", "is empty"),
    ('{"api_key": "x",}', "is not valid JSON (line 1, column"),
    ("[1, 2]", "must hold a JSON object, not a JSON list"),
    ("null", "must hold a JSON object, not a JSON null"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_a_bad_config_file_is_one_line_naming_it(tmp_path: t.Any, text: str, problem: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    run = cli(tmp_path, "--config", str(path))
    line = run.assert_one_clean_error(f"config file '{path}'", problem)
    assert run.stderr.strip() == line  # the only line: nothing ran before the check


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_a_bad_state_file_is_one_line_naming_it(tmp_path: t.Any, text: str, problem: str) -> None:
    run = cli(tmp_path, config={"api_key": API_KEY}, state=text)
    line = run.assert_one_clean_error(f"state file '{tmp_path / 'state.json'}'", problem)
    assert run.stderr.strip() == line


def test_missing_files_are_one_line_naming_them(tmp_path: t.Any) -> None:
    missing = str(tmp_path / "nowhere.json")
    cli(tmp_path, "--config", missing).assert_one_clean_error(f"config file '{missing}'")
    run = cli(tmp_path, "--state", missing, config={"api_key": API_KEY})
    run.assert_one_clean_error(f"state file '{missing}' was not found")
    run = cli(tmp_path, "--catalog", missing, config={"api_key": API_KEY})
    run.assert_one_clean_error(f"catalog file '{missing}' was not found")
    run = cli(tmp_path, "--state", str(tmp_path), config={"api_key": API_KEY})
    run.assert_one_clean_error("is a directory")


def test_a_bad_config_file_never_shows_its_content(tmp_path: t.Any) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"api_key": "' + SECRET + '" "region": "us"}')  # a comma missing
    run = cli(tmp_path, "--config", str(path))
    run.assert_one_clean_error("is not valid JSON")
    run.assert_never_shows(SECRET)


# Settings: bounds and a future start_date.


def test_a_future_start_date_stops_the_cli_before_any_request(
    tmp_path: t.Any, sim: NylasSimulator
) -> None:
    sim.reset_log()
    run = cli(tmp_path, config=sim_config(sim, start_date="2100-01-01T00:00:00Z"))
    run.assert_one_clean_error("start_date", "in the future")
    assert not sim.request_log
    assert run.stdout == ""


def test_a_huge_lookahead_stops_the_cli_in_one_line(tmp_path: t.Any, sim: NylasSimulator) -> None:
    run = cli(tmp_path, config=sim_config(sim, events_lookahead_days=100_000_000))
    run.assert_one_clean_error("events_lookahead_days", "maximum of 1825")


# The API key: stripped, checked, never shown.


def test_a_key_with_a_trailing_newline_syncs_and_is_never_shown(
    tmp_path: t.Any, sim: NylasSimulator
) -> None:
    run = cli(tmp_path, "--test", config=sim_config(sim, api_key=SIM_KEY + "\n"))
    assert run.code == 0, run.stderr[-2000:]
    assert '"type":"RECORD"' in run.stdout
    run.assert_never_shows(SIM_KEY)


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (SECRET[:12] + "\u2013" + SECRET[12:], "outside Latin-1"),  # a pasted en dash
        (SECRET[:12] + "\x07" + SECRET[12:], "a control character"),
        (SECRET[:12] + "\n" + SECRET[12:], "a control character"),
    ],
)
def test_a_key_that_cannot_be_a_header_is_one_line_without_it(
    tmp_path: t.Any, sim: NylasSimulator, key: str, kind: str
) -> None:
    sim.reset_log()
    run = cli(tmp_path, config=sim_config(sim, api_key=key))
    run.assert_one_clean_error("api_key has", kind, "not shown")
    run.assert_never_shows(key)
    assert not sim.request_log


def test_a_numeric_key_is_not_echoed_by_validation(tmp_path: t.Any) -> None:
    run = cli(tmp_path, config={"api_key": 918273645546372819})
    run.assert_one_clean_error("config['api_key'] must be a string", "not shown")
    run.assert_never_shows("918273645546372819")


def test_the_key_is_not_echoed_even_in_another_settings_error(tmp_path: t.Any) -> None:
    run = cli(tmp_path, config={"api_key": SECRET, "region": SECRET})  # pasted in the wrong box
    run.assert_one_clean_error("config['region']")
    run.assert_never_shows(SECRET)


def test_credentials_in_api_url_are_never_shown(tmp_path: t.Any) -> None:
    run = cli(tmp_path, config={"api_key": "k" * 8, "api_url": "ftp://etl:hunter2pw@proxy.test"})
    line = run.assert_one_clean_error("api_url must be an http(s) URL", "***@proxy.test")
    assert "etl" not in line
    run.assert_never_shows("hunter2pw")


def test_no_secret_at_debug_level_in_a_whole_run(tmp_path: t.Any, sim: NylasSimulator) -> None:
    # Credentials in api_url no longer start a run (tests/unit/test_hostile_inputs.py).
    config = sim_config(sim, api_key=f"{SIM_KEY}\n")
    run = cli(tmp_path, config=config, env={"TAP_NYLAS_LOGLEVEL": "DEBUG"})
    assert run.code == 0, run.stderr[-2000:]
    assert "| DEBUG" in run.stderr  # the check below is not vacuous
    assert '"type":"RECORD"' in run.stdout
    run.assert_never_shows(SIM_KEY)


# Bookmarks: repaired at init, so nothing downstream sees what the tap did not write.


def test_the_cli_repairs_a_hand_edited_state(tmp_path: t.Any, sim: NylasSimulator) -> None:
    config = sim_config(sim)
    first = cli(tmp_path, config=config)
    assert first.code == 0, first.stderr[-2000:]
    state = first.last_state
    partitions = state["bookmarks"]["messages"]["partitions"]
    partitions[0]["replication_key_value"] = FUTURE
    partitions[1]["replication_key_value"] = "2024-03-01T00:00:00Z"
    grant = partitions[0]["context"]["grant_id"]

    second = cli(tmp_path, config=config, state=json.dumps(state))
    assert second.code == 0, second.stderr[-2000:]
    (clamped,) = [w for w in second.warnings if "later than this run's start" in w]
    assert f"grant_id {grant}" in clamped
    assert any("ISO date-times" in w for w in second.warnings)
    values = _values(second.last_state, "messages")
    assert FUTURE not in values
    assert all(isinstance(v, int) and v < FUTURE for v in values if v is not None)


def test_max_concurrency_goes_up_to_512_and_513_is_one_clear_line(
    config: dict, tmp_path: t.Any
) -> None:
    config["max_concurrency"] = 512
    assert TapNylas(config=config).config["max_concurrency"] == 512
    run = cli(tmp_path, config={"api_key": API_KEY, "max_concurrency": 513})
    run.assert_one_clean_error("513 is greater than the maximum of 512", "max_concurrency")
