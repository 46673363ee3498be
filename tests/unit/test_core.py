"""The Singer SDK's standard tap tests, over the local Nylas simulator."""

from __future__ import annotations

import typing as t

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class

from nylas_simulator import NylasSimulator
from tap_nylas.tap import TapNylas

API_KEY = "sim-key-standard-tests"
# The runner reads this dict when it runs, so the simulator's URL is filled in below.
CONFIG: dict[str, t.Any] = {
    "api_key": API_KEY,
    "start_date": "2024-01-01T00:00:00Z",
    "events_lookahead_days": 800,
    "backoff_factor": 0,
}


@pytest.fixture(scope="module", autouse=True)
def simulator() -> t.Iterator[NylasSimulator]:
    with NylasSimulator(seed=2, grants=10, records_per_grant=8, api_key=API_KEY) as sim:
        CONFIG["api_url"] = sim.url
        yield sim


TestTapNylas = get_tap_test_class(
    tap_class=TapNylas,
    config=CONFIG,
    # Sweeps read only partitions with a bookmark, and completion records are not written
    # in a dry run: a first, partial run has none of them.
    suite_config=SuiteConfig(
        max_records_limit=60,
        ignore_no_records_for_streams=[
            "message_flags",
            "thread_flags",
            "event_states",
            "sync_coverage",
        ],
    ),
)
