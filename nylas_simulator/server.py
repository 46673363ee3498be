"""HTTP plumbing: auth, faults, rate limits, gzip, request log, threaded server.

Besides ``/v3``, the server answers ``GET /__sim/log`` (no API key; Nylas has no such
path): ``{"entries": [...]}``, the request log so far, ``?reset=1`` also clears it, and
``?rewind=1`` starts the random faults and latencies over from the seed, so that each
client a benchmark compares meets the same sequence. Admin requests are not logged
themselves.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from typing_extensions import override

from .dataset import Dataset
from .endpoints import Endpoints, Route, parse_route
from .faults import (
    BODY_KINDS,
    FaultInjector,
    FaultRules,
    GrantGate,
    RateLimiter,
    fault_error,
    html_page,
    rate_limited,
)
from .query import ApiError, Query

GZIP_MIN_BYTES = 200  # Nylas skips compression for responses under about 200 bytes
GRANT_RATE_LIMIT = 200  # requests per second per grant
APP_RATE_LIMIT = 50  # requests per second for grants/connectors/credentials
LATENCY_SIGMA = 0.8  # lognormal shape: a median ~0.73x the mean, a long right tail
ADMIN_PREFIX = "/__sim/"
LATENCY_DISTRIBUTIONS = ("fixed", "lognormal")
#: A query_imap request takes this many times the latency: the IMAP server is slow.
IMAP_SLOWDOWN = 4.0
#: query_imap requests one grant may have in flight before its IMAP server answers 429.
IMAP_CONCURRENCY = 2


@dataclass
class Outcome:
    """A finished response, ready to write."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    fault: str | None = None
    grant_id: str | None = None
    fault_source: str | None = None  # random | rule | grant_concurrency
    slot: str | None = None  # the grant whose in-flight slot this request holds

    @property
    def drop(self) -> bool:
        """Whether to cut the body in half and close the connection."""
        return self.fault == "drop"

    @property
    def trickle(self) -> bool:
        """Whether to send the body one byte at a time."""
        return self.fault == "trickle"


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
        latency_distribution: str = "fixed",
        seed: int = 7,
        grant_concurrency: int | None = None,
        grant_concurrency_retry_after: float = 1,
        trickle_interval: float = 2.0,
        retry_after: float = 1,
        imap_cache_days: int | None = None,
        imap_latency: float | None = None,
        imap_concurrency: int | None = IMAP_CONCURRENCY,
    ) -> None:
        if latency_distribution not in LATENCY_DISTRIBUTIONS:
            raise ValueError(f"latency_distribution must be one of {LATENCY_DISTRIBUTIONS}")
        self.dataset = dataset
        self.api_key = api_key
        self.latency = latency
        self.latency_distribution = latency_distribution
        # Lognormal with the given mean: mu = ln(mean) - sigma^2 / 2.
        self._mu = math.log(latency) - LATENCY_SIGMA**2 / 2 if latency > 0 else 0.0
        self._seed = seed
        self._latency_rng = random.Random(f"latency:{seed}")  # noqa: S311 - not crypto
        self.faults = faults
        self.rules = FaultRules()
        self.gate = (
            GrantGate(grant_concurrency, grant_concurrency_retry_after)
            if (grant_concurrency)
            else None
        )
        self.trickle_interval = trickle_interval
        self.retry_after = retry_after
        self.limiter = RateLimiter() if rate_limits else None
        self.endpoints = Endpoints(dataset, now, imap_cache_days)
        # An IMAP server behind query_imap: several times slower, and few connections.
        self.imap_latency = IMAP_SLOWDOWN * latency if imap_latency is None else imap_latency
        self.imap_gate = GrantGate(imap_concurrency, retry_after) if imap_concurrency else None
        self._lock = threading.Lock()
        self._in_flight = 0
        self.log: list[dict[str, Any]] = []

    # -- request log --------------------------------------------------------

    def begin(self) -> Ticket:
        """Count a request in; its ``in_flight`` includes itself."""
        with self._lock:
            self._in_flight += 1
            return Ticket(time.monotonic(), self._in_flight)

    def end(
        self,
        ticket: Ticket,
        method: str,
        target: str,
        outcome: Outcome | None,
        sent: int = 0,
    ) -> None:
        """Count a request out and log it; ``sent`` is the body bytes written."""
        if outcome is not None and outcome.slot is not None and self.gate is not None:
            self.gate.leave(outcome.slot)
        parts = urlsplit(target)
        finished = time.monotonic()
        entry = {
            "method": method,
            "path": parts.path,
            "params": parse_qs(parts.query, keep_blank_values=True),
            "status": outcome.status if outcome else 500,
            "in_flight": ticket.in_flight,
            "t": ticket.t,
            "grant_id": outcome.grant_id if outcome else None,
            "fault": outcome.fault if outcome else None,
            "fault_source": outcome.fault_source if outcome else None,
            "duration": finished - ticket.t,
            "start": ticket.t,
            "end": finished,
            "bytes": sent,
            # the Retry-After answered, if any: benchmarks add up a grant's holds from it
            "retry_after": outcome.headers.get("Retry-After") if outcome else None,
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

    def take_log(self) -> list[dict[str, Any]]:
        """The request log so far, cleared in the same step."""
        with self._lock:
            taken, self.log = self.log, []
            return taken

    def admin(self, target: str) -> Outcome:
        """``/__sim/log`` (``?reset=1`` clears it, ``?rewind=1`` rewinds); 404 elsewhere."""
        parts = urlsplit(target)
        if parts.path != ADMIN_PREFIX + "log":
            return Outcome(404, b'{"error":"unknown simulator admin path"}')
        query = parse_qs(parts.query)
        reset = query.get("reset", ["0"])[0] in ("1", "true")
        entries = self.take_log() if reset else self.snapshot_log()
        if query.get("rewind", ["0"])[0] in ("1", "true"):
            self.rewind()
        body = _json_bytes({"entries": entries})
        return Outcome(200, body, {"Content-Type": "application/json"})

    def rewind(self) -> None:
        """Start the random faults and latencies over from the seed."""
        with self._lock:
            self._latency_rng = random.Random(f"latency:{self._seed}")  # noqa: S311
        if self.faults is not None:
            self.faults.rewind()

    def delay(self) -> float:
        """This request's latency: fixed, or drawn in arrival order (deterministic)."""
        if self.latency <= 0 or self.latency_distribution == "fixed":
            return self.latency
        with self._lock:
            return self._latency_rng.lognormvariate(self._mu, LATENCY_SIGMA)

    # -- handling -------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Outcome:
        """Answer one request; ``headers`` has lower-case names, ``body`` the request body.

        Order: scripted rules, the per-grant in-flight gate, latency, random faults,
        auth, then the endpoint.
        """
        parts = urlsplit(target)
        route = parse_route(parts.path)
        grant_id = self._grant_id(route)
        rid = str(uuid.uuid4())
        rule = self.rules.match(target)
        slot = None
        if _queries_imap(parts.query) and grant_id is not None:
            return self._imap(method, parts.query, route, grant_id, rid, headers, rule)
        if rule is None and self.gate is not None and grant_id is not None:
            refused = self.gate.enter(grant_id)
            if refused is not None:
                time.sleep(self.delay())
                out = self._error_outcome(refused, rid, headers)
                out.fault = out.fault_source = "grant_concurrency"
                out.grant_id = grant_id
                return out
            slot = grant_id
        time.sleep(self.delay())
        fault, source = rule, "rule" if rule else None
        if fault is None and self.faults is not None:
            fault = self.faults.draw(_fault_key(parts.path, parts.query))
            source = "random" if fault else None
        out = self._respond(method, parts.query, route, grant_id, rid, headers, fault, body)
        out.fault, out.fault_source, out.grant_id, out.slot = fault, source, grant_id, slot
        return out

    def _imap(  # noqa: PLR0917 - private, one call site
        self,
        method: str,
        query_string: str,
        route: Route | None,
        grant_id: str,
        rid: str,
        headers: Mapping[str, str],
        rule: str | None,
    ) -> Outcome:
        """A query_imap request: the grant's IMAP gate, the IMAP latency, then the answer."""
        slot = None
        if rule is None and self.imap_gate is not None:
            refused = self.imap_gate.enter(grant_id)
            if refused is not None:
                out = self._error_outcome(refused, rid, headers)
                out.fault = out.fault_source = "imap_concurrency"
                out.grant_id = grant_id
                return out
            slot = grant_id
        try:
            time.sleep(self.imap_latency)
            out = self._respond(method, query_string, route, grant_id, rid, headers, rule)
        finally:
            if slot is not None and self.imap_gate is not None:
                self.imap_gate.leave(slot)
        out.fault, out.fault_source, out.grant_id = rule, "rule" if rule else None, grant_id
        return out

    def _respond(  # noqa: PLR0917 - private, one call site
        self,
        method: str,
        query_string: str,
        route: Route | None,
        grant_id: str | None,
        rid: str,
        headers: Mapping[str, str],
        fault: str | None,
        body: bytes = b"",
    ) -> Outcome:
        if fault in ("html", "502"):
            status, title = (200, "Service Status") if fault == "html" else (502, "Bad Gateway")
            return Outcome(status, html_page(title), {"Content-Type": "text/html; charset=utf-8"})
        if fault == "no_data":
            return self._json_outcome(200, {"request_id": rid}, rid, headers)
        if fault == "error_200":
            err = {"type": "internal_error", "message": "Upstream provider error, please retry"}
            return self._json_outcome(200, {"request_id": rid, "error": err}, rid, headers)
        if fault is not None and fault not in BODY_KINDS:
            return self._error_outcome(fault_error(fault, self._retry_after()), rid, headers)
        query = Query(parse_qs(query_string, keep_blank_values=True))
        status, extra = 200, {}
        try:
            self._gate(headers)
            payload = self._payload(method, route, query, rid, grant_id, body)
        except ApiError as err:
            status, payload, extra = err.status, err.body(rid), err.headers
        except Exception as err:  # a simulator bug must still answer, not hang the client
            status, payload = 500, ApiError(500, "internal_error", repr(err)).body(rid)
        if fault == "truncated_json":
            body = _json_bytes(payload)
            # Content-Length matches what is sent: only the JSON is broken, not HTTP.
            body = body[: max(1, len(body) // 2)]
            return Outcome(status, body, {"Content-Type": "application/json", "x-request-id": rid})
        out = self._json_outcome(status, payload, rid, headers)
        out.headers.update(extra)
        return out

    def _retry_after(self) -> float:
        return self.faults.faults.retry_after if self.faults is not None else self.retry_after

    def _error_outcome(self, err: ApiError, rid: str, headers: Mapping[str, str]) -> Outcome:
        out = self._json_outcome(err.status, err.body(rid), rid, headers)
        out.headers.update(err.headers)
        return out

    def _json_outcome(
        self, status: int, payload: Any, rid: str, headers: Mapping[str, str]
    ) -> Outcome:
        body = _json_bytes(payload)
        out_headers = {"Content-Type": "application/json; charset=utf-8", "x-request-id": rid}
        if len(body) > GZIP_MIN_BYTES and _wants_gzip(headers):
            body = gzip.compress(body, compresslevel=5)
            out_headers["Content-Encoding"] = "gzip"
        return Outcome(status, body, out_headers)

    def _gate(self, headers: Mapping[str, str]) -> None:
        """Bearer auth."""
        if headers.get("authorization") != f"Bearer {self.api_key}":
            raise ApiError(401, "unauthorized", "Unauthorized")

    def _grant_id(self, route: Route | None) -> str | None:
        if route is None or route.grant_ref is None:
            return None
        profile = self.dataset.resolve(route.grant_ref)
        return profile.id if profile else route.grant_ref

    def _payload(  # noqa: PLR0917 - private, one call site
        self,
        method: str,
        route: Route | None,
        query: Query,
        rid: str,
        grant_id: str | None,
        body: bytes = b"",
    ) -> Any:
        if method in ("PUT", "DELETE") and route is not None and route.kind == "grant_object":
            # Changes between syncs: a message's flags and folders; deletions.
            self._check_rate(route, grant_id)
            return self.endpoints.write(route, method, query, body, rid)
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


def _queries_imap(query_string: str) -> bool:
    """Whether a request asks the IMAP server itself (``query_imap=true``)."""
    values = parse_qs(query_string).get("query_imap", [])
    return bool(values) and values[0].lower() in ("true", "1")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response sets Content-Length
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus
    # the client's delayed ACK stalls every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    @override
    def version_string(self) -> str:
        """The ``Server`` header."""
        return "NylasSimulator/1.0"

    @override
    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr line."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        app = self.server.app
        body = self._read_body()
        if self.path.startswith(ADMIN_PREFIX):
            self._write(app.admin(self.path))
            return
        ticket = app.begin()
        outcome: Outcome | None = None
        sent = 0
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            outcome = app.handle(self.command, self.path, headers, body)
            sent = self._write(outcome)
        finally:
            app.end(ticket, self.command, self.path, outcome, sent)

    def _read_body(self) -> bytes:
        # Read even when unused: an unread body would corrupt the next keep-alive request.
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, outcome: Outcome) -> int:
        """Send the response; the body bytes actually written."""
        sent = 0
        try:
            self.send_response(outcome.status)
            for name, value in outcome.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(outcome.body)))
            if outcome.drop:
                self.send_header("Connection", "close")
            self.end_headers()
            body = outcome.body[: len(outcome.body) // 2] if outcome.drop else outcome.body
            if outcome.trickle:
                sent = self._trickle(body)
            else:
                self.wfile.write(body)
                self.wfile.flush()
                sent = len(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if outcome.drop:
            self.close_connection = True
        return sent

    def _trickle(self, body: bytes) -> int:
        """One byte every ``trickle_interval`` seconds, until done or the client hangs up."""
        interval = self.server.app.trickle_interval
        self.wfile.flush()
        for n in range(len(body)):
            if self.server.stopping.wait(interval):
                self.close_connection = True
                return n
            self.wfile.write(body[n : n + 1])
            self.wfile.flush()
        return len(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], app: App) -> None:
        super().__init__(address, _Handler)
        self.app = app
        self.stopping = threading.Event()  # ends trickling responses on shutdown

    @override
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
        self.httpd.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
