"""HTTP plumbing: auth, faults, rate limits, gzip, request log, threaded server."""

from __future__ import annotations

import gzip
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from .dataset import Dataset
from .endpoints import Endpoints, Route, parse_route
from .faults import FaultInjector, RateLimiter, rate_limited
from .query import ApiError, Query

GZIP_MIN_BYTES = 200  # Nylas skips compression for responses under about 200 bytes
GRANT_RATE_LIMIT = 200  # requests per second per grant
APP_RATE_LIMIT = 50  # requests per second for grants/connectors/credentials


@dataclass
class Outcome:
    """A finished response, ready to write."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    grant_id: str | None = None

    @property
    def drop(self) -> bool:
        """Whether to cut the body in half and close the connection."""
        return self.fault == "drop"


@dataclass(frozen=True)
class Ticket:
    """Bookkeeping taken when a request starts."""

    t: float
    in_flight: int


def _json_bytes(payload: Any) -> bytes:
    # ensure_ascii=False keeps unicode compact; json still escapes NUL as \u0000.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _fault_key(path: str, query: str) -> str:
    # Parameter order must not turn a retry into a "different" request.
    return path + "?" + urlencode(sorted(parse_qsl(query, keep_blank_values=True)))


def _wants_gzip(headers: Mapping[str, str]) -> bool:
    accept = headers.get("accept-encoding") or ""
    return any(token.split(";")[0].strip().lower() == "gzip" for token in accept.split(","))


class App:
    """Everything between a parsed request and its response bytes."""

    def __init__(
        self,
        dataset: Dataset,
        api_key: str,
        *,
        latency: float = 0.0,
        faults: FaultInjector | None = None,
        rate_limits: bool = False,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.dataset = dataset
        self.api_key = api_key
        self.latency = latency
        self.faults = faults
        self.limiter = RateLimiter() if rate_limits else None
        self.endpoints = Endpoints(dataset, now)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.log: list[dict[str, Any]] = []

    # -- request log --------------------------------------------------------

    def begin(self) -> Ticket:
        """Count a request in; its ``in_flight`` includes itself."""
        with self._lock:
            self._in_flight += 1
            return Ticket(time.monotonic(), self._in_flight)

    def end(self, ticket: Ticket, method: str, target: str, outcome: Outcome | None) -> None:
        """Count a request out and log it."""
        parts = urlsplit(target)
        entry = {
            "method": method,
            "path": parts.path,
            "params": parse_qs(parts.query, keep_blank_values=True),
            "status": outcome.status if outcome else 500,
            "in_flight": ticket.in_flight,
            "t": ticket.t,
            "grant_id": outcome.grant_id if outcome else None,
            "fault": outcome.fault if outcome else None,
            "duration": time.monotonic() - ticket.t,
        }
        with self._lock:
            self._in_flight -= 1
            self.log.append(entry)

    def snapshot_log(self) -> list[dict[str, Any]]:
        """A copy of the request log."""
        with self._lock:
            return list(self.log)

    def reset_log(self) -> None:
        """Forget all logged requests."""
        with self._lock:
            self.log.clear()

    # -- handling -------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str]) -> Outcome:
        """Answer one request; ``headers`` has lower-case names."""
        if self.latency > 0:
            time.sleep(self.latency)
        parts = urlsplit(target)
        query = Query(parse_qs(parts.query, keep_blank_values=True))
        route = parse_route(parts.path)
        grant_id = self._grant_id(route)
        rid = str(uuid.uuid4())
        fault = self.faults.draw(_fault_key(parts.path, parts.query)) if self.faults else None
        status, extra = 200, {}
        try:
            self._gate(headers, fault)
            payload = self._payload(method, route, query, rid, grant_id)
        except ApiError as err:
            status, payload, extra = err.status, err.body(rid), err.headers
        except Exception as err:  # a simulator bug must still answer, not hang the client
            status, payload = 500, ApiError(500, "internal_error", repr(err)).body(rid)
        body = _json_bytes(payload)
        out_headers = {"Content-Type": "application/json; charset=utf-8", "x-request-id": rid}
        out_headers.update(extra)
        if len(body) > GZIP_MIN_BYTES and _wants_gzip(headers):
            body = gzip.compress(body, compresslevel=5)
            out_headers["Content-Encoding"] = "gzip"
        return Outcome(status, body, out_headers, fault, grant_id)

    def _gate(self, headers: Mapping[str, str], fault: str | None) -> None:
        """Injected faults first, then bearer auth."""
        if fault is not None and fault != "drop" and self.faults is not None:
            raise self.faults.error(fault)
        if headers.get("authorization") != f"Bearer {self.api_key}":
            raise ApiError(401, "unauthorized", "Unauthorized")

    def _grant_id(self, route: Route | None) -> str | None:
        if route is None or route.grant_ref is None:
            return None
        profile = self.dataset.resolve(route.grant_ref)
        return profile.id if profile else route.grant_ref

    def _payload(
        self, method: str, route: Route | None, query: Query, rid: str, grant_id: str | None
    ) -> Any:
        if method != "GET":
            raise ApiError(405, "invalid_request_error", f"{method} is not supported here")
        if route is None:
            raise ApiError(404, "not_found_error", "Not found")
        self._check_rate(route, grant_id)
        return self.endpoints.dispatch(route, query, rid)

    def _check_rate(self, route: Route, grant_id: str | None) -> None:
        if self.limiter is None:
            return
        if grant_id is not None and route.kind != "grant":
            key, limit = f"grant:{grant_id}", GRANT_RATE_LIMIT
        else:
            key, limit = "application", APP_RATE_LIMIT
        if not self.limiter.allow(key, limit):
            raise rate_limited()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response sets Content-Length
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus
    # the client's delayed ACK stalls every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def version_string(self) -> str:
        """The ``Server`` header."""
        return "NylasSimulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        app = self.server.app
        self._drain_body()
        ticket = app.begin()
        outcome: Outcome | None = None
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            outcome = app.handle(self.command, self.path, headers)
            self._write(outcome)
        finally:
            app.end(ticket, self.command, self.path, outcome)

    def _drain_body(self) -> None:
        # An unread request body would corrupt the next keep-alive request.
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)

    def _write(self, outcome: Outcome) -> None:
        try:
            self.send_response(outcome.status)
            for name, value in outcome.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(outcome.body)))
            if outcome.drop:
                self.send_header("Connection", "close")
            self.end_headers()
            body = outcome.body[: len(outcome.body) // 2] if outcome.drop else outcome.body
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if outcome.drop:
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, _Handler)
        self.app = app

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-connection is normal here, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ServerThread:
    """A started ``_Server`` serving from a daemon thread."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0) -> None:
        self.httpd = _Server((host, port), app)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
