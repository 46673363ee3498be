"""Shared helpers: run the tap in-process and read what it wrote."""

from __future__ import annotations

import contextlib
import io
import json
import typing as t
from collections import defaultdict

import pytest

from tap_nylas.tap import TapNylas

pytest_plugins = ["tests.postgres_server"]

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


def run_sync(
    config: dict,
    streams: t.Iterable[str] | None = None,
    state: dict | None = None,
) -> SyncResult:
    """Sync in-process (all streams, or only `streams`) and parse stdout."""
    catalog = None
    if streams is not None:
        catalog = selected_catalog(TapNylas(config=config, validate_config=False), streams)
    tap = TapNylas(config=config, catalog=catalog, state=state)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out):
        tap.sync_all()
        out.flush()
    # Split on newlines only: str.splitlines() also splits on U+2028 inside record text.
    lines = out.buffer.getvalue().decode().split("\n")  # type: ignore[attr-defined]
    return SyncResult([line for line in lines if line])


@pytest.fixture
def config() -> dict:
    return dict(BASE_CONFIG)
