"""Inputs checked before any request: files, settings, secrets and bookmarks."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import typing as t
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_nylas.errors import ConfigError
from tap_nylas.inputs import parse_bookmark, read_json_object, sanitise_state
from tap_nylas.simulator import NylasSimulator
from tap_nylas.tap import TapNylas, replication_keys
from tests.conftest import API_KEY, START_EPOCH, run_sync
from tests.fake_api import FakeNylas

SIM_KEY = "sim-key-7c1d9e2b4f"
# Pieces of a key a test looks for must not occur in ordinary output (as "nylas" does).
SECRET = "nyk_v0_Qx7Rf3Lm9Tb2Wc8Zp4Hd"
FUTURE = 4102444800  # 2100-01-01T00:00:00Z


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    return FakeNylas(requests_mock)  # type: ignore[arg-type]


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


def test_read_json_object_returns_text_and_value(tmp_path: t.Any) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"bookmarks": {}}')
    assert read_json_object(str(path), "state file") == ('{"bookmarks": {}}', {"bookmarks": {}})


# Settings: bounds, a future start_date, and the new settings' defaults.


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("events_lookahead_days", 100_000_000),
        ("events_lookback_days", 100_000),
        ("incremental_lookback_seconds", 10**9),
        ("max_retries", 1000),
        ("backoff_factor", 3600),
        ("page_size", 0),
        ("max_concurrency", 0),
        ("max_concurrency", 513),
        ("max_requests_per_grant", 0),
        ("max_requests_per_grant", 33),
        ("request_timeout_seconds", 0.5),
        ("request_timeout_seconds", 601),
        ("progress_interval_seconds", -1),
        ("progress_interval_seconds", 86401),
    ],
)
def test_settings_out_of_range_are_rejected(config: dict, setting: str, value: float) -> None:
    config[setting] = value
    with pytest.raises(ConfigValidationError) as raised:
        TapNylas(config=config)
    (error,) = raised.value.errors
    assert f"config[{setting!r}]" in error


def test_every_bounded_number_has_a_maximum() -> None:
    for name, spec in TapNylas.config_jsonschema["properties"].items():
        if name == "stream_maps":
            break  # the SDK's built-in settings follow the tap's own
        types = spec.get("type", [])
        if "integer" in types or "number" in types:
            assert "maximum" in spec, name
            assert str(spec["maximum"]) in spec["description"] or "200" in spec["description"]


def test_max_concurrency_goes_up_to_512_and_513_is_one_clear_line(
    config: dict, tmp_path: t.Any
) -> None:
    config["max_concurrency"] = 512
    assert TapNylas(config=config).config["max_concurrency"] == 512
    run = cli(tmp_path, config={"api_key": API_KEY, "max_concurrency": 513})
    run.assert_one_clean_error("513 is greater than the maximum of 512", "max_concurrency")


def test_the_new_settings_have_their_defaults(config: dict) -> None:
    tap = TapNylas(config=config)
    assert tap.config["max_requests_per_grant"] == 4
    assert tap.config["request_timeout_seconds"] == 150
    assert tap.config["progress_interval_seconds"] == 30


def test_a_null_setting_takes_its_default(api: FakeNylas, config: dict) -> None:
    config.update(max_retries=None, events_lookahead_days=None, region=None)
    tap = TapNylas(config=config)
    assert (tap.config["max_retries"], tap.config["events_lookahead_days"]) == (5, 365)
    run_sync(config, streams=["grants"])  # int(None) used to crash here


def test_a_future_start_date_is_a_config_error(config: dict) -> None:
    config["start_date"] = "2100-01-01T00:00:00Z"
    with pytest.raises(ConfigError, match="start_date 2100-01-01T00:00:00Z is in the future"):
        TapNylas(config=config)


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


def test_whitespace_around_the_key_is_stripped(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    config["api_key"] = f"  {API_KEY}\n"
    result = run_sync(config, streams=["grants"])
    assert [g["id"] for g in result.records["grants"]] == ["g1"]
    assert api.mocker.request_history[0].headers["Authorization"] == f"Bearer {API_KEY}"


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
    url = sim.url.replace("http://", "http://etl:Pw9876zzQ@")
    config = sim_config(sim, api_key=f"{SIM_KEY}\n", api_url=url)
    run = cli(tmp_path, config=config, env={"TAP_NYLAS_LOGLEVEL": "DEBUG"})
    assert run.code == 0, run.stderr[-2000:]
    assert "| DEBUG" in run.stderr  # the check below is not vacuous
    assert '"type":"RECORD"' in run.stdout
    run.assert_never_shows(SIM_KEY)
    run.assert_never_shows("Pw9876zzQ")


# Bookmarks: repaired at init, so nothing downstream sees what the tap did not write.

KEYS = replication_keys()


def _state(stream: str, *values: object, grant: str = "g") -> dict:
    partitions = [
        {"context": {"grant_id": f"{grant}{n}"}, "replication_key_value": value}
        for n, value in enumerate(values)
    ]
    return {"bookmarks": {stream: {"partitions": partitions, "replication_key": KEYS[stream]}}}


def _values(state: dict, stream: str) -> list[object]:
    return [p.get("replication_key_value") for p in state["bookmarks"][stream]["partitions"]]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1700000000, 1700000000),
        (0, 0),
        (1700000000.9, 1700000000),
        (Decimal("1700000000.5"), 1700000000),
        ("1700000000", 1700000000),
        (" 1700000000.25 ", 1700000000),
        ("2023-11-14T22:13:20Z", 1700000000),
        ("2023-11-14T22:13:20+00:00", 1700000000),
        ("2023-11-14T23:13:20+01:00", 1700000000),
        ("2023-11-14T22:13:20", 1700000000),  # no zone: UTC
        ("yesterday", None),
        ("", None),
        (-5, None),
        (float("nan"), None),
        (True, None),
        (None, None),
        ([1700000000], None),
        ({"value": 1}, None),
    ],
)
def test_parse_bookmark(raw: object, expected: int | None) -> None:
    assert parse_bookmark(raw)[0] == expected


def test_sanitise_converts_clamps_and_drops_with_one_warning_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = 1800000000
    state = _state(
        "messages", 1700000000, "2023-11-14T22:13:20Z", 1.7e9, FUTURE, "soon", "1700000000"
    )
    original = json.dumps(state)
    with caplog.at_level(logging.WARNING):
        fixed = sanitise_state(state, KEYS, now, logging.getLogger("test"))

    assert _values(fixed, "messages") == [1700000000, 1700000000, 1700000000, now, None, 1700000000]
    assert json.dumps(state) == original  # the caller's state is not edited in place
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 5  # ISO, fractional, future, unreadable, numeric string
    (future,) = [w for w in warnings if "later than this run's start" in w]
    assert "State of messages" in future
    assert "grant_id g3" in future
    assert "2100-01-01T00:00:00Z" in future
    (dropped,) = [w for w in warnings if "dropped" in w]
    assert "grant_id g4" in dropped
    assert "'soon'" in dropped


def test_sanitise_lists_a_few_partitions_not_thousands(caplog: pytest.LogCaptureFixture) -> None:
    state = _state("threads", *[FUTURE] * 3000)
    with caplog.at_level(logging.WARNING):
        fixed = sanitise_state(state, KEYS, 1800000000, logging.getLogger("test"))
    assert set(_values(fixed, "threads")) == {1800000000}
    (warning,) = caplog.records
    assert "3000 bookmark(s)" in warning.getMessage()
    assert "and 2995 more" in warning.getMessage()
    assert len(warning.getMessage()) < 1000


def test_sanitise_handles_structures_the_tap_never_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test")
    state = {
        "bookmarks": {
            "messages": {"replication_key": "received_at", "partitions": []},  # another tap's key
            "threads": {"partitions": [7, {"replication_key_value": 1}, {"context": {"g": 1}}]},
            "events": "nonsense",
            "contacts": {"anything": ["left", "alone"]},  # full-table: not a bookmark
        },
        "currently_syncing": None,
    }
    fixed = sanitise_state(state, KEYS, 1800000000, logger)
    assert fixed == {
        "bookmarks": {
            "threads": {"partitions": [{"context": {"g": 1}}]},
            "contacts": {"anything": ["left", "alone"]},
        },
        "currently_syncing": None,
    }
    assert sanitise_state([1], KEYS, 0, logger) == {}
    assert sanitise_state({"bookmarks": []}, KEYS, 0, logger) == {"bookmarks": {}}
    message = {"type": "STATE", "value": _state("messages", FUTURE)}  # a whole STATE line
    assert _values(sanitise_state(message, KEYS, 5, logger), "messages") == [5]
    stream_level = {"bookmarks": {"events": {"replication_key_value": "2023-11-14T22:13:20Z"}}}
    fixed = sanitise_state(stream_level, KEYS, 1800000000, logger)
    assert fixed["bookmarks"]["events"]["replication_key_value"] == 1700000000


def test_a_future_bookmark_reads_from_the_run_start_and_is_not_written_back(
    api: FakeNylas, config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    api.add_grant("g0")
    api.pages["g0", "messages"] = [[{"id": "m1", "date": START_EPOCH + 10}]]
    before = int(time.time())
    with caplog.at_level(logging.WARNING):
        result = run_sync(config, streams=["messages"], state=_state("messages", FUTURE))
    after = int(time.time())

    (request,) = api.requests_to("/messages")
    since = int(parse_qs(urlparse(request.url).query)["received_after"][0])
    lookback = 3600
    assert before - lookback <= since <= after - lookback  # not 2100, not nothing
    assert result.states
    assert all(v <= after for s in result.states for v in _values(s, "messages"))
    # Clamped at init: whatever STATE goes out first already holds the run's start.
    tap = TapNylas(config=config, state=_state("messages", FUTURE))
    assert before <= _values(tap.state, "messages")[0] <= int(time.time())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("grant_id g0" in w and "later than this run's start" in w for w in warnings)


def test_iso_bookmarks_no_longer_crash_the_run(api: FakeNylas, config: dict) -> None:
    api.add_grant("g0")
    record = {"id": "t1", "latest_message_received_date": 1706745600 + 60}
    api.pages["g0", "threads"] = [[record]]
    state = _state("threads", "2024-02-01T00:00:00Z")
    result = run_sync(config, streams=["threads"], state=state)
    (request,) = api.requests_to("/threads")
    expected = 1706745600 - 3600  # 2024-02-01 minus the look-back
    assert parse_qs(urlparse(request.url).query)["latest_message_after"] == [str(expected)]
    assert _values(result.states[-1], "threads") == [1706745600 + 60]


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
