"""Shared test helpers: run the tap in-process and read what it wrote.

The other helpers sit beside this file: `fake_api` (the Nylas API on requests-mock),
`postgres_server` (the `postgres_dsn` fixture) and `target_postgres` (load with target-postgres).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import typing as t
from collections import defaultdict

import pytest
from click.testing import CliRunner

from tap_nylas.tap import TapNylas

API_KEY = "nylas-test-key-0f8e7d6c5b4a"
API_URL = "https://nylas.test"
START_EPOCH = 1704067200  # 2024-01-01T00:00:00Z, the start_date of the test configs
BASE_CONFIG: dict[str, t.Any] = {
    "api_key": API_KEY,
    "api_url": API_URL,
    "start_date": "2024-01-01T00:00:00Z",
    "backoff_factor": 0,
    "max_retries": 3,
}


class SyncResult:
    """Singer messages of one sync, by type and stream."""

    def __init__(self, lines: list[str]) -> None:
        self.raw = "\n".join(lines)
        self.messages = [json.loads(line) for line in lines]
        self.records: dict[str, list[dict]] = defaultdict(list)
        for message in self.messages:
            if message["type"] == "RECORD":
                self.records[message["stream"]].append(message["record"])

    @property
    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    def keys(self, stream: str, key: tuple[str, ...]) -> list[tuple]:
        return [tuple(r[k] for k in key) for r in self.records[stream]]


def selected_catalog(tap: TapNylas, streams: t.Iterable[str]) -> dict:
    """The tap's catalog with only `streams` selected."""
    wanted = set(streams)
    catalog = tap.catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


def capture_sync(tap: TapNylas) -> tuple[SyncResult, Exception | None]:
    """Run `tap.sync_all()` in-process: what it wrote, and the error it ended with, if any."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    error = None
    with contextlib.redirect_stdout(out):
        try:
            tap.sync_all()
        except Exception as raised:
            error = raised
        out.flush()
    # Split on newlines only: str.splitlines() also splits on U+2028 inside record text.
    lines = out.buffer.getvalue().decode().split("\n")  # type: ignore[attr-defined]
    return SyncResult([line for line in lines if line]), error


def sync(
    config: dict, streams: list[str], state: dict | None = None
) -> tuple[SyncResult, Exception | None]:
    """Sync in-process; the output, and the error the run ended with, if any."""
    catalog = selected_catalog(TapNylas(config=config, validate_config=False), streams)
    return capture_sync(TapNylas(config=config, catalog=catalog, state=state))


def run_sync(
    config: dict,
    streams: t.Iterable[str] | None = None,
    state: dict | None = None,
    catalog: dict | None = None,
) -> SyncResult:
    """Sync in-process (all streams, only `streams`, or `catalog`) and parse stdout."""
    if streams is not None:
        catalog = selected_catalog(TapNylas(config=config, validate_config=False), streams)
    result, error = capture_sync(TapNylas(config=config, catalog=catalog, state=state))
    if error is not None:
        raise error
    return result


def cli_errors(config: dict, tmp_path: t.Any, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Run the CLI, expecting exit 1; its ERROR lines (asserting no traceback, no key)."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with caplog.at_level(logging.INFO):
        result = CliRunner().invoke(TapNylas.cli, ["--config", str(path)])
    assert result.exit_code == 1
    assert not any(record.exc_info for record in caplog.records)
    assert API_KEY not in caplog.text
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
