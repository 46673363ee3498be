"""Fixtures for every test; the shared helpers live in `tests/support`."""

from __future__ import annotations

import pytest

from tests.support import BASE_CONFIG

pytest_plugins = ["tests.support.postgres_server"]


@pytest.fixture
def config() -> dict:
    return dict(BASE_CONFIG)
