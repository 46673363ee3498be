"""A hostile network, config or server gets nowhere: no key sent astray, no secret shown.

Each test here failed before the fix it covers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.singerlib import RecordMessage

from tap_nylas.errors import ConfigError, quote_server_text
from tap_nylas.inputs import api_base_url, check_api_url
from tap_nylas.normalize import MAX_SETTINGS_DEPTH, is_secret_name, normalizer
from tap_nylas.output import WholeLineWriter
from tap_nylas.tap import TapNylas
from tests.support import (
    API_KEY,
    BASE_CONFIG,
    START_EPOCH,
    capture_sync,
    cli_errors,
    selected_catalog,
)
from tests.support.fake_api import FakeNylas


def run_cli(tmp_path: t.Any, config: dict) -> subprocess.CompletedProcess:
    """`python -m tap_nylas --config` in a child process, logging at DEBUG."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "tap_nylas", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TAP_NYLAS_LOGLEVEL": "DEBUG"},
    )


# api_url: read as requests reads it, so the key goes to the host that was checked.


class _Recorder(BaseHTTPRequestHandler):
    """Records every request it gets and answers 401 (a pre-fix run then ends at once)."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        self.send_response(401)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def listener() -> t.Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_backslash_cannot_send_the_key_over_http_to_another_host(
    listener: ThreadingHTTPServer, config: dict, tmp_path: t.Any, caplog: pytest.LogCaptureFixture
) -> None:
    # urllib.parse reads host `localhost` (plain http allowed); requests connects to
    # 127.0.0.1:<port>, standing in for any host on a hostile network.
    config["api_url"] = f"http://127.0.0.1:{listener.server_address[1]}\\@localhost:9"
    errors = cli_errors(config, tmp_path, caplog)
    seen = listener.seen  # type: ignore[attr-defined]
    assert not [path for path, headers in seen if API_KEY in str(headers)]
    assert seen == []
    (line,) = errors
    assert "api_url has a backslash" in line


BAD_API_URLS = [
    ("http://evil.example\\@localhost", "a backslash"),
    ("https://user:secret@proxy.example:99999", "port"),
    ("https://user:secret@proxy.example", "credentials"),
    ("https://secret@proxy.example", "credentials"),
    ("https://@proxy.example", "credentials"),
    ("http://localhost:8080@proxy.example", "credentials"),
    ("https://proxy.example:0", "port 0"),
    ("https://proxy.example:65536", "port"),
    ("https://proxy.example:+443", "port"),
    ("https://proxy.example/v3?key=secret", "query"),
    ("https://proxy.example/#secret", "fragment"),
    ("https://proxy.example /", "whitespace"),
    ("https://proxy.example\tsecret", "whitespace"),
    ("https://proxy.example\u0000secret", "control"),
    ("https://proxy.example\u200bsecret", "unprintable"),
    ("http://proxy.example", "must use https"),
    ("http://localhost.proxy.example", "must use https"),
    ("https://proxy%2fexample", "host"),
    ("ftp://user:secret@proxy.example", "must be an http(s) URL"),
    ("proxy.example", "must be an http(s) URL"),
    ("https://", "must be an http(s) URL"),
]


@pytest.mark.parametrize(("api_url", "problem"), BAD_API_URLS)
def test_a_bad_api_url_is_one_line_without_any_secret(
    config: dict,
    tmp_path: t.Any,
    caplog: pytest.LogCaptureFixture,
    requests_mock: t.Any,
    api_url: str,
    problem: str,
) -> None:
    config["api_url"] = api_url
    (line,) = cli_errors(config, tmp_path, caplog)
    assert line.startswith("api_url ")
    assert problem in line
    assert "secret" not in caplog.text
    assert not requests_mock.called


def test_a_password_in_a_bad_api_url_is_nowhere_in_the_output(tmp_path: t.Any) -> None:
    config = {**BASE_CONFIG, "api_url": "https://user:secret@proxy.example:99999"}
    run = run_cli(tmp_path, config)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if "ERROR" in line]
    assert "api_url has a port that is not a number from 1 to 65535" in line
    assert "secret" not in run.stdout + run.stderr
    assert API_KEY not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("api_url", "base"),
    [
        ("https://nylas.test", "https://nylas.test"),
        ("HTTPS://API.US.Nylas.com/", "https://api.us.nylas.com"),
        ("https://proxy.example:8443/nylas/", "https://proxy.example:8443/nylas"),
        ("https://proxy.example/a/../nylas", "https://proxy.example/nylas"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("https://ёлка.рф", "https://xn--80atc1g.xn--p1ai"),
    ],
)
def test_api_url_is_normalised_to_what_requests_reaches(api_url: str, base: str) -> None:
    assert check_api_url(api_url) == base
    assert api_base_url({"api_url": api_url, "region": "eu"}) == base


def test_without_api_url_the_base_is_the_region() -> None:
    assert api_base_url({"region": "eu"}) == "https://api.eu.nylas.com"
    assert api_base_url({"api_url": None}) == "https://api.us.nylas.com"
    with pytest.raises(ConfigError, match="region must be one of eu, us"):
        api_base_url({"region": "mars"})


# Server text in a log line: one line, bounded, escapes visible.


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("Grant not found", "Grant not found"),
        ("Accès refusé", "Accès refusé"),  # printable non-ASCII stays readable
        ("bad\nINFO forged line", "bad\\nINFO forged line"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[2Jcleared", "\\x1b[2Jcleared"),
        ("one\u2028two\u2029three\x85four", "one\\u2028two\\u2029three\\x85four"),
        ("\u202egnp.exe", "\\u202egnp.exe"),  # a bidi override
        ("\ud800", "\\ud800"),  # a lone surrogate, which a UTF-8 log cannot encode
        ("C:\\n", "C:\\\\n"),  # a literal backslash cannot pass for an escape
        ("", ""),
    ],
)
def test_server_text_is_one_printable_line(text: str, quoted: str) -> None:
    assert quote_server_text(text) == quoted
    assert quote_server_text(text).isprintable()


def test_long_server_text_is_cut_with_its_length() -> None:
    quoted = quote_server_text("x" * 5000)
    assert quoted == "x" * 200 + "… (5,000 characters)"
    assert quote_server_text("y" * 200) == "y" * 200  # at the limit: whole


def test_the_limit_counts_escapes_and_never_splits_one() -> None:
    quoted = quote_server_text("ab\n" * 10, limit=7)  # a 2nd `\n` would end past 7
    assert quoted == "ab\\nab… (30 characters)"
    assert quote_server_text("\n" * 1000, limit=5) == "\\n\\n… (1,000 characters)"


# user_agent: a header value, so nothing a header cannot carry.


@pytest.mark.parametrize(
    ("user_agent", "problem"),
    [
        ("acme-etl/1.0\r\nX-Injected: yes", "a control character at position 13"),
        ("acme-etl/1.0\n", "a control character at position 13"),
        ("acme\x00etl", "a control character at position 5"),
        ("acme\x7fetl", "a control character at position 5"),
        ("acme\x85etl", "a control character at position 5"),
        ("acme\u2028etl", "a character outside Latin-1 at position 5"),
        ("acme-etl/1.0 🚀", "a character outside Latin-1 at position 14"),
        (" acme-etl/1.0", "a leading space"),
    ],
)
def test_a_user_agent_no_header_can_carry_is_one_line(
    config: dict,
    tmp_path: t.Any,
    caplog: pytest.LogCaptureFixture,
    requests_mock: t.Any,
    user_agent: str,
    problem: str,
) -> None:
    config["user_agent"] = user_agent
    (line,) = cli_errors(config, tmp_path, caplog)
    assert line.startswith(f"user_agent has {problem}")
    assert "X-Injected" not in caplog.text
    assert not requests_mock.called


@pytest.mark.parametrize("user_agent", ["acme-etl/1.0 (Zürich; +https://acme.example)", ""])
def test_a_printable_latin1_user_agent_is_accepted(config: dict, user_agent: str) -> None:
    config["user_agent"] = user_agent
    TapNylas(config=config)  # check_settings runs and raises nothing


# Output: one Singer message per line, whatever line-splitting the target uses.

LINE_BREAKS = "one\u2028two\u2029three\x85four"


def test_a_record_with_unicode_line_breaks_is_one_line(requests_mock: t.Any, config: dict) -> None:
    api = FakeNylas(requests_mock)
    api.add_grant("g1")
    record = {"id": "m1", "date": START_EPOCH + 60, "subject": LINE_BREAKS, "snippet": "“ok”"}
    api.pages["g1", "messages"] = [[record]]
    result, error = capture_sync(
        TapNylas(
            config=config,
            catalog=selected_catalog(TapNylas(config=config, validate_config=False), ["messages"]),
        )
    )
    assert error is None
    lines = result.raw.splitlines()  # what a target using str.splitlines() reads
    assert len(lines) == len(result.messages)
    (message,) = [json.loads(line) for line in lines if '"RECORD"' in line]
    assert message["record"]["subject"] == LINE_BREAKS
    assert "\\u2028" in result.raw
    assert "\u2028" not in result.raw


def _line(text: str) -> bytes:
    return bytes(WholeLineWriter().format_message(RecordMessage(stream="s", record={"t": text})))


@pytest.mark.parametrize(
    "text",
    [
        LINE_BREAKS,
        "“quoted” — " * 40 + "\u2028",  # past LEADS_CHECKED typographic E2 characters
        "\xa0" * 40 + "\x85",  # past LEADS_CHECKED NBSPs (C2 A0)
        "\u2028",
        "\x85",
        "…\u2029",
    ],
)
def test_every_unicode_line_break_is_escaped(text: str) -> None:
    line = _line(text)
    assert len(line.decode().splitlines()) == 1
    assert json.loads(line)["record"]["t"] == text


@pytest.mark.parametrize(
    "text", ["plain", "Zoë “quoted” \u2013 ½ ©\xa0é", "\u2027\u202a\u2020", ""]
)
def test_a_line_without_them_is_left_as_encoded(text: str) -> None:
    line = _line(text)
    assert json.loads(line)["record"]["t"] == text
    assert b"\\u" not in line  # nothing escaped that did not need it


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_one_line_and_reads_back_the_same(text: str) -> None:
    line = _line(text).decode()
    assert line.endswith("\n")
    assert len(line.splitlines()) == 1
    assert json.loads(line)["record"]["t"] == text


# Secrets in the free-form `settings` of grants and connectors stay out of the warehouse.

GRANT_SETTINGS = {
    "imap_username": "zoe@example.com",
    "imap_password": "grant-pw-7731",
    "Refresh_Token": "grant-rt-7732",
    "smtp": {"host": "smtp.example.com", "password": "grant-pw-7733", "port": 587},
    "tenant": "acme",
}
CONNECTOR_SETTINGS = {
    "client_id": "client-1234",
    "client_secret": "conn-cs-7741",
    "clientSecret": "conn-cs-7742",
    "api-key": "conn-ak-7743",
    "service_account": {"private_key": "conn-pk-7744", "private_key_id": "conn-pk-7745"},
    "webhooks": [{"url": "https://hooks.example", "signing_secret": "conn-ws-7746"}],
    "topic_name": "projects/acme/topics/nylas",
}
SECRETS_IN_SETTINGS = [f"grant-{kind}-773{n}" for kind, n in (("pw", 1), ("rt", 2), ("pw", 3))]
SECRETS_IN_SETTINGS += ["conn-cs-7741", "conn-cs-7742", "conn-ak-7743", "conn-pk-7744"]
SECRETS_IN_SETTINGS += ["conn-pk-7745", "conn-ws-7746"]


def _sync_settings(requests_mock: t.Any, config: dict) -> tuple[dict, dict, str]:
    api = FakeNylas(requests_mock)
    api.add_grant("g1")
    api.grants[0]["settings"] = GRANT_SETTINGS
    api.connectors.append({"provider": "google", "settings": CONNECTOR_SETTINGS})
    catalog = selected_catalog(
        TapNylas(config=config, validate_config=False), ["grants", "connectors"]
    )
    result, error = capture_sync(TapNylas(config=config, catalog=catalog))
    assert error is None
    (grant,) = result.records["grants"]
    (connector,) = result.records["connectors"]
    return grant["settings"], connector["settings"], result.raw


def test_secret_looking_settings_are_dropped_by_default(
    requests_mock: t.Any, config: dict, caplog: pytest.LogCaptureFixture
) -> None:
    grant, connector, raw = _sync_settings(requests_mock, config)
    assert grant == {
        "imap_username": "zoe@example.com",
        "smtp": {"host": "smtp.example.com", "port": 587},
        "tenant": "acme",
    }
    assert connector == {
        "client_id": "client-1234",
        "service_account": {},
        "webhooks": [{"url": "https://hooks.example"}],
        "topic_name": "projects/acme/topics/nylas",
    }
    for secret in SECRETS_IN_SETTINGS:
        assert secret not in raw
        assert secret not in caplog.text


def test_keep_secret_settings_keeps_them(requests_mock: t.Any, config: dict) -> None:
    config["keep_secret_settings"] = True
    grant, connector, _ = _sync_settings(requests_mock, config)
    assert grant == GRANT_SETTINGS
    assert connector == CONNECTOR_SETTINGS


def test_settings_nested_past_the_depth_checked_are_dropped() -> None:
    deep: dict = {"leaf": "kept"}
    for _ in range(40):
        deep = {"level": deep, "note": "n"}
    row = {"id": "g", "settings": deep}
    fix = normalizer("grants")
    assert fix is not None
    fix(row)
    text = json.dumps(row)
    assert "kept" not in text
    assert text.count('"note"') == MAX_SETTINGS_DEPTH + 1  # scalars are kept down to there


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("client_secret", True),
        ("CLIENT-SECRET", True),
        ("clientSecret", True),
        ("imap_password", True),
        ("passwd", True),
        ("refresh_token", True),
        ("accessToken", True),
        ("api_key", True),
        ("apiKey", True),
        ("private.key", True),
        ("client_id", False),
        ("tenant", False),
        ("topic_name", False),
        ("imap_host", False),
        ("key1", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_other_streams_keep_their_free_form_objects() -> None:
    assert normalizer("events") is None
    row = {"id": "e", "metadata": {"token": "t"}}
    for stream in ("calendars", "messages"):
        if fix := normalizer(stream):
            fix(row)
    assert row["metadata"] == {"token": "t"}
