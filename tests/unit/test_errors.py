"""Retries, fatal errors, config errors, and the API key staying secret."""

from __future__ import annotations

import json
import logging
import threading
import typing as t

import pytest
import requests

from tap_nylas.errors import ApplicationRequestError
from tap_nylas.tap import TapNylas
from tests.support import API_KEY, cli_errors, run_sync
from tests.support.fake_api import FakeNylas

GRANTS_URL = "https://nylas.test/v3/grants"
OK_GRANTS = {"json": {"data": [], "limit": 200, "offset": 0}}


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    return FakeNylas(requests_mock)  # type: ignore[arg-type]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds the application-level retry loop slept, without sleeping."""
    slept: list[float] = []
    monkeypatch.setattr("tap_nylas.client.time.sleep", slept.append)
    return slept


def test_retry_after_is_honoured(requests_mock: t.Any, config: dict, waits: list) -> None:
    config["backoff_factor"] = 0.5
    requests_mock.get(
        GRANTS_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "json": {}},
            {"status_code": 429, "json": {"error": {"type": "rate_limit_error"}}},
            {"status_code": 503, "json": {}},
            OK_GRANTS,
        ],
    )

    run_sync(config, streams=["grants"])

    assert waits[0] == 7.0  # the server's word, no jitter
    # then factor * 2**retry, with up to 25% jitter
    assert 1.0 <= waits[1] <= 1.0 * 1.25
    assert 2.0 <= waits[2] <= 2.0 * 1.25
    assert requests_mock.call_count == 4


def test_dropped_connections_and_5xx_are_retried(
    requests_mock: t.Any, config: dict, waits: list
) -> None:
    requests_mock.get(
        GRANTS_URL,
        [
            {"exc": requests.exceptions.ConnectionError("connection reset")},
            {"exc": requests.exceptions.ChunkedEncodingError("body cut short")},
            {"status_code": 500, "json": {}},
            {"status_code": 502, "json": {}},
            {"json": {"data": [{"id": "g1", "grant_status": "invalid"}]}},
        ],
    )
    config["max_retries"] = 4
    result = run_sync(config, streams=["grants"])
    assert [g["id"] for g in result.records["grants"]] == ["g1"]
    assert len(waits) == 4


def test_retries_give_up_after_max_retries(requests_mock: t.Any, config: dict, waits: list) -> None:
    requests_mock.get(GRANTS_URL, status_code=429, json={"error": {"type": "rate_limit_error"}})
    config["max_retries"] = 2
    with pytest.raises(ApplicationRequestError, match=r"Cannot read grants: HTTP 429 .*2 retries"):
        run_sync(config, streams=["grants"])
    assert requests_mock.call_count == 3


def test_a_rejected_key_fails_with_one_clear_line(
    requests_mock: t.Any, config: dict, tmp_path: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    config["region"] = "eu"
    del config["api_url"]
    requests_mock.get("https://api.eu.nylas.com/v3/grants", status_code=401, json={})

    errors = cli_errors(config, tmp_path, caplog)

    (line,) = [line for line in errors if "API key" in line]
    assert "HTTP 401 on /v3/grants" in line
    assert "region 'eu'" in line
    assert requests_mock.call_count == 1  # no retry, no other call


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"region": "mars"}, "region"),
        ({"api_url": "http://nylas.example.com"}, "api_url must use https"),
        ({"api_url": "ftp://x"}, "api_url must be an http(s) URL"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"page_size": 500}, "page_size"),
        ({"api_key": ""}, "api_key"),
    ],
)
def test_bad_settings_fail_fast_with_one_line(
    config: dict,
    tmp_path: t.Any,
    caplog: pytest.LogCaptureFixture,
    requests_mock: t.Any,
    change: dict,
    message: str,
) -> None:
    config.update(change)
    (line,) = cli_errors(config, tmp_path, caplog)
    assert message in line
    assert not requests_mock.called


def test_the_key_never_appears_in_output_logs_or_state(
    api: FakeNylas, config: dict, requests_mock: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    api.add_grant("g1")
    api.add_grant("g2")
    api.pages["g1", "messages"] = [[{"id": "m1", "subject": "hi"}]]
    api.pages["g2", "messages"] = (401, "Grant is invalid or expired")
    requests_mock.get(
        "https://nylas.test/v3/grants/g1/folders",
        [
            {"status_code": 429, "json": {}},
            {"exc": requests.exceptions.ConnectionError},
            {"json": {"data": [{"id": "INBOX"}]}},
        ],
    )
    with caplog.at_level(logging.DEBUG):
        result = run_sync(config, streams=["grants", "messages", "folders"])

    assert result.records["messages"]
    assert result.records["folders"]
    assert API_KEY not in result.raw
    assert API_KEY not in caplog.text
    assert all(API_KEY not in json.dumps(state) for state in result.states)
    # the key did reach the API, so the check above is not vacuous
    assert requests_mock.request_history[0].headers["Authorization"] == f"Bearer {API_KEY}"


def test_requests_name_the_tap_and_ask_for_gzip(api: FakeNylas, config: dict) -> None:
    run_sync(config, streams=["grants"])
    headers = api.mocker.request_history[0].headers
    assert headers["User-Agent"].startswith("tap-nylas/")
    assert headers["Accept-Encoding"] == "gzip"
    config["user_agent"] = "acme-etl/1.0"
    run_sync(config, streams=["grants"])
    assert api.mocker.request_history[-1].headers["User-Agent"] == "acme-etl/1.0"


def test_proxy_and_ca_bundle_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, config: dict
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    stream = TapNylas(config=config).streams["messages"]
    session = stream.requests_session
    assert session.proxies.get("https") == "http://proxy.internal:3128"
    assert session.verify == "/etc/ssl/corp.pem"
    monkeypatch.setenv("NO_PROXY", "nylas.test")
    other_thread_session: list = []
    thread = threading.Thread(target=lambda: other_thread_session.append(stream.requests_session))
    thread.start()
    thread.join()
    assert other_thread_session[0] is not session  # one session per thread
    assert not other_thread_session[0].proxies  # NO_PROXY covers the API host
