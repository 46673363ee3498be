"""A hostile server gets nowhere: the tap, run as a user runs it, against a local server
answering each attack. For each: no traceback, the key never leaves its host, memory
bounded, the run ends, and nothing is lost silently (exact, or the partition failed with
its bookmark kept, exit non-zero, one line naming it).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time
import typing as t
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tap_nylas import pagination
from tap_nylas.tap import TapNylas
from tests.support import API_KEY, capture_sync, selected_catalog

START = "2024-01-01T00:00:00Z"
PEAK_RSS_MARK = "\npeak-rss-kb="
PEAK_RSS_WRAPPER = f"""
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
sys.stderr.write({PEAK_RSS_MARK!r} + str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""
DATE = 1_704_153_600  # inside the run, after START
Answer = tuple[int, dict[str, str], bytes]
Route = t.Callable[["Handler", dict[str, list[str]]], "Answer | None"]


def as_json(body: object, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class HostileServer:
    """A loopback HTTP server: a small valid application, with routes replaced per test."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str | None]] = []  # path, Authorization
        self.grants = [{"id": "g1", "provider": "google", "grant_status": "valid"}]
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                server.requests.append((split.path, self.headers.get("Authorization")))
                route = server.routes.get(split.path, server.default)
                answer = route(self, parse_qs(split.query))
                if answer is None:  # the route wrote (or withheld) the answer itself
                    return
                status, headers, body = answer
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: t.Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def default(self, handler: BaseHTTPRequestHandler, query: dict) -> Answer:
        path = urlsplit(handler.path).path
        if path == "/v3/grants":
            return as_json({"data": self.grants, "limit": 200})
        if path.endswith("/messages"):
            return as_json({"data": [{"id": "m1", "date": DATE}]})
        return as_json({"data": []})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


Handler = BaseHTTPRequestHandler


@pytest.fixture
def server() -> t.Iterator[HostileServer]:
    hostile = HostileServer()
    yield hostile
    hostile.close()


class Run(t.NamedTuple):
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float

    @property
    def records(self) -> list[dict]:
        lines = [json.loads(line) for line in self.stdout.splitlines() if line]
        return [m for m in lines if m["type"] == "RECORD"]

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if " ERROR " in line or "ERROR" in line]


def run_tap(tmp_path: Path, config: dict, streams: tuple[str, ...] = ("messages",)) -> Run:
    """The CLI in its own process: exit code, output, wall time and peak RSS."""
    config = {"api_key": API_KEY, "start_date": START, "max_retries": 1, **config}
    config.setdefault("backoff_factor", 0)
    (tmp_path / "config.json").write_text(json.dumps(config))
    catalog = selected_catalog(TapNylas(config=config, validate_config=False), streams)
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    started = time.monotonic()
    # A small wrapper reports the tap's peak RSS: a child forked straight from this test
    # process would count this (large) process's pages until it execs.
    cmd = [sys.executable, "-c", PEAK_RSS_WRAPPER, sys.executable, "-m", "tap_nylas"]
    process = subprocess.Popen(  # noqa: S603 - the tap itself, with files this test wrote
        [*cmd, "--config", "config.json", "--catalog", "catalog.json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    timer = threading.Timer(60, process.kill)  # the run must end by itself
    timer.start()
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out.append(process.stdout.read())),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.append(process.stderr.read())),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    process.wait()
    for reader in readers:
        reader.join()
    timer.cancel()
    stderr, _, peak = err[0].decode().rpartition(PEAK_RSS_MARK)
    return Run(
        process.returncode, out[0].decode(), stderr, time.monotonic() - started, int(peak) / 1024
    )


def assert_contained(run: Run, *, naming: str) -> None:
    """The run ended non-zero, with no traceback and no key in its output, naming `naming`."""
    assert run.code == 1, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert API_KEY not in run.stdout + run.stderr
    assert any(naming in line for line in run.errors), run.errors
    assert run.seconds < 60


def test_a_redirect_is_not_followed_and_the_key_stays_home(
    server: HostileServer, tmp_path: Path
) -> None:
    elsewhere = HostileServer()
    elsewhere.grants = [{"id": "from-other-host", "provider": "google", "grant_status": "valid"}]
    try:
        location = {"Location": f"http://localhost:{elsewhere.httpd.server_address[1]}/v3/grants"}
        server.routes["/v3/grants"] = lambda handler, query: (302, location, b"")

        run = run_tap(tmp_path, {"api_url": server.url}, streams=("grants",))

        assert_contained(run, naming="redirect to localhost")
        assert elsewhere.requests == []
        assert run.records == []
    finally:
        elsewhere.close()


def _gzip_bomb(decoded_mb: int) -> bytes:
    """A gzip body that decodes to `decoded_mb` MB of JSON-ish padding, built in pieces."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunks = [packer.compress(b'{"data": [' + b" " * 1024)]
    chunks += [packer.compress(b" " * (1 << 20)) for _ in range(decoded_mb)]
    chunks.append(packer.compress(b"]}") + packer.flush())
    return b"".join(chunks)


def test_a_compressed_bomb_is_refused_past_the_size_cap(
    server: HostileServer, tmp_path: Path
) -> None:
    bomb = _gzip_bomb(300)
    assert len(bomb) < 1 << 20  # under a megabyte on the wire
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    server.routes["/v3/grants/g1/messages"] = lambda handler, query: (200, headers, bomb)

    run = run_tap(tmp_path, {"api_url": server.url, "max_response_megabytes": 8})

    assert_contained(run, naming="max_response_megabytes")
    assert run.peak_rss_mb < 250  # 300 MB decoded would be far above
    assert len([p for p, _ in server.requests if p.endswith("/messages")]) == 1  # not retried


def test_a_declared_length_over_the_cap_is_refused_before_reading(
    server: HostileServer, tmp_path: Path
) -> None:
    def huge(handler: BaseHTTPRequestHandler, query: dict) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(10 << 30))
        handler.end_headers()
        handler.wfile.write(b'{"data": [')  # and then nothing: the tap must not wait for it

    server.routes["/v3/grants/g1/messages"] = huge

    run = run_tap(tmp_path, {"api_url": server.url, "max_response_megabytes": 8})

    assert_contained(run, naming="max_response_megabytes")
    assert run.seconds < 20


def test_empty_pages_with_new_cursors_forever_end_the_partition(
    server: HostileServer, tmp_path: Path
) -> None:
    count = iter(range(10**6))
    server.routes["/v3/grants/g1/messages"] = lambda handler, query: as_json(
        {"data": [], "next_cursor": f"c{next(count)}"}
    )

    run = run_tap(tmp_path, {"api_url": server.url})

    assert_contained(run, naming="does not end")
    pages = len([p for p, _ in server.requests if p.endswith("/messages")])
    assert pages <= 2 * pagination.MAX_EMPTY_PAGES_IN_A_ROW


def test_headers_trickled_a_byte_at_a_time_hit_the_request_deadline(
    server: HostileServer, tmp_path: Path
) -> None:
    def trickle(handler: BaseHTTPRequestHandler, query: dict) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ":
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass  # the tap hung up: what it should do

    server.routes["/v3/grants/g1/messages"] = trickle

    run = run_tap(tmp_path, {"api_url": server.url, "request_timeout_seconds": 2})

    assert_contained(run, naming="within request_timeout_seconds")
    # Two tries of 2 s each, not the 12 s the trickle would last.
    assert run.seconds < 10


@pytest.mark.parametrize(
    ("answer", "naming"),
    [
        (b'{"data": [{"id": "m1", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}]}", "not JSON"),
        (b'{"data": [1, "x", null]}', "not JSON objects"),
        (b'{"data": [{"id": {"$oid": 1}, "date": 1704153600}]}', "not text"),
        (b'{"data": [{"id": "m1"}], "next_cursor": 7}', "not text"),
    ],
    ids=["nested-1000", "scalars", "object-id", "integer-cursor"],
)
def test_malformed_json_is_retried_then_fails_its_partition(
    server: HostileServer, tmp_path: Path, answer: bytes, naming: str
) -> None:
    headers = {"Content-Type": "application/json"}
    server.routes["/v3/grants/g1/messages"] = lambda handler, query: (200, headers, answer)

    run = run_tap(tmp_path, {"api_url": server.url})

    assert_contained(run, naming=naming)
    assert len([p for p, _ in server.requests if p.endswith("/messages")]) == 2  # one retry


def test_a_numeric_id_is_read_as_its_text(server: HostileServer, tmp_path: Path) -> None:
    server.grants = [{"id": 12345, "provider": "google", "grant_status": "valid"}]
    headers = {"Content-Type": "application/json"}
    server.routes["/v3/grants/12345/messages"] = lambda handler, query: (
        200,
        headers,
        b'{"data": [{"id": 678, "date": 1704153600}]}',
    )

    run = run_tap(tmp_path, {"api_url": server.url}, streams=("grants", "messages"))

    assert run.code == 0, run.stderr[-2000:]
    keys = {(r["stream"], r["record"].get("grant_id"), r["record"]["id"]) for r in run.records}
    assert keys == {("grants", None, "12345"), ("messages", "12345", "678")}


def test_a_string_limit_echoed_on_the_grants_list_is_ignored(
    server: HostileServer, tmp_path: Path
) -> None:
    server.grants = [
        {"id": f"g{n}", "provider": "google", "grant_status": "valid"} for n in range(450)
    ]

    def grants(handler: BaseHTTPRequestHandler, query: dict) -> Answer:
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        return as_json({"data": server.grants[offset : offset + limit], "limit": "200"})

    server.routes["/v3/grants"] = grants

    run = run_tap(tmp_path, {"api_url": server.url}, streams=("grants",))

    assert run.code == 0, run.stderr[-2000:]
    assert len(run.records) == 450


def test_an_echoed_limit_above_the_one_asked_does_not_end_the_list_early(
    server: HostileServer, tmp_path: Path
) -> None:
    server.grants = [
        {"id": f"g{n}", "provider": "google", "grant_status": "valid"} for n in range(600)
    ]

    def grants(handler: BaseHTTPRequestHandler, query: dict) -> Answer:
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        return as_json({"data": server.grants[offset : offset + limit], "limit": 1000})

    server.routes["/v3/grants"] = grants

    run = run_tap(tmp_path, {"api_url": server.url}, streams=("grants",))

    assert run.code == 0, run.stderr[-2000:]
    assert len(run.records) == 600


def test_ids_from_the_api_are_one_path_segment_each(server: HostileServer, tmp_path: Path) -> None:
    server.grants = [
        {"id": gid, "provider": "google", "grant_status": "valid"}
        for gid in ("g1", "b#frag", "a?x=1", "..")
    ]

    run = run_tap(tmp_path, {"api_url": server.url})

    paths = {p for p, _ in server.requests}
    assert "/v3/grants/b%23frag/messages" in paths
    assert "/v3/grants/a%3Fx%3D1/messages" in paths
    assert not any(p.startswith(("/v3/grants/b/", "/v3/messages", "/v3/calendars")) for p in paths)
    # The grant whose ID cannot be a path segment fails alone; the others are read.
    assert_contained(run, naming="cannot name a URL path segment")
    assert sorted(r["record"]["grant_id"] for r in run.records) == ["a?x=1", "b#frag", "g1"]


def test_every_request_carries_the_key_to_api_url_only(
    server: HostileServer, tmp_path: Path
) -> None:
    run = run_tap(tmp_path, {"api_url": server.url})

    assert run.code == 0, run.stderr[-2000:]
    assert server.requests
    assert {auth for _, auth in server.requests} == {f"Bearer {API_KEY}"}


def test_offset_pages_that_never_end_stop_at_the_page_bound(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Distinct, always-full pages forever: only the page bound ends them (lowered here).
    monkeypatch.setattr(pagination, "MAX_PAGES", 5)

    def endless(handler: BaseHTTPRequestHandler, query: dict) -> Answer:
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        return as_json({"data": [{"id": f"g{offset + n}"} for n in range(limit)]})

    server.routes["/v3/grants"] = endless
    config = {"api_key": API_KEY, "api_url": server.url, "backoff_factor": 0}
    tap = TapNylas(config=config, catalog=selected_catalog(TapNylas(config=config), ["grants"]))
    _, error = capture_sync(tap)

    assert error is not None
    assert "does not end" in str(error)
    assert len(server.requests) == 5


def test_gzip_is_still_read_within_the_cap(server: HostileServer, tmp_path: Path) -> None:
    body = gzip.compress(json.dumps({"data": [{"id": "m1", "date": DATE}]}).encode())
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    server.routes["/v3/grants/g1/messages"] = lambda handler, query: (200, headers, body)

    run = run_tap(tmp_path, {"api_url": server.url, "max_response_megabytes": 1})

    assert run.code == 0, run.stderr[-2000:]
    assert [r["record"]["id"] for r in run.records] == ["m1"]


def test_server_error_text_is_quoted_and_shortened_in_the_log(
    server: HostileServer, tmp_path: Path
) -> None:
    message = "upstream broke\nINJECTED fake log line\n" + "x" * 100_000
    server.routes["/v3/grants/g1/messages"] = lambda handler, query: as_json(
        {"error": {"type": "api.internal_error", "message": message}}, status=503
    )

    run = run_tap(tmp_path, {"api_url": server.url})

    assert_contained(run, naming="upstream broke\\nINJECTED")
    assert not any(line.startswith("INJECTED") for line in run.stderr.splitlines())
    assert max(len(line) for line in run.stderr.splitlines()) < 2000
