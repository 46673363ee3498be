"""One request on the wire: a session, a deadline for the whole answer, a size cap, no redirect.

`requests` bounds each socket operation, not a request: headers trickled a byte a second
never time out. Here one watchdog thread shuts a connection's socket once its request
outlives its deadline (connect, headers and body together), and the body is read
decoded, counted against a cap, before anything parses it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
import typing as t
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from typing_extensions import override
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from tap_nylas.errors import AnswerRefusedError, RetryableError

if t.TYPE_CHECKING:
    from urllib3.poolmanager import PoolManager

#: Largest slice of the body read at once.
CHUNK_BYTES = 1 << 16


class Deadlines:
    """One thread that shuts the socket of a request that outlived its deadline."""

    def __init__(self) -> None:
        """No request watched yet; the thread starts with the first."""
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._watched: dict[int, socket.socket] = {}
        self._expired: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, at: float) -> int:
        """Shut `sock` at `at` (monotonic seconds) unless `release`d first; a token."""
        with self._cv:
            token = next(self._tokens)
            self._watched[token] = sock
            heapq.heappush(self._heap, (at, token))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="tap-nylas-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][1] == token:
                self._cv.notify()
        return token

    def release(self, token: int) -> bool:
        """Stop watching; whether the deadline had passed (the socket was shut)."""
        with self._cv:
            self._watched.pop(token, None)
            if token in self._expired:
                self._expired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._cv:
            while True:
                while self._heap and self._heap[0][1] not in self._watched:
                    heapq.heappop(self._heap)  # released before its deadline
                if not self._heap:
                    self._cv.wait()
                    continue
                at, token = self._heap[0]
                now = time.monotonic()
                if at > now:
                    self._cv.wait(at - now)
                    continue
                heapq.heappop(self._heap)
                sock = self._watched.pop(token)
                self._expired.add(token)
                with contextlib.suppress(OSError):  # closed meanwhile
                    sock.shutdown(socket.SHUT_RDWR)  # the blocked read ends at once


DEADLINES = Deadlines()
_request = threading.local()  # the deadline of the request this thread is sending


class _DeadlineConnection(HTTPConnection):
    """A connection whose answer is watched from the moment the request is sent."""

    @override
    def getresponse(self) -> t.Any:
        at = getattr(_request, "deadline", None)
        if at is not None and self.sock is not None:
            _request.token = DEADLINES.watch(self.sock, at)
        return super().getresponse()


class _DeadlineHTTPSConnection(_DeadlineConnection, HTTPSConnection):
    pass


class _DeadlinePool(HTTPConnectionPool):
    ConnectionCls = _DeadlineConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": _DeadlinePool, "https": _DeadlineHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with connections whose answers the watchdog can cut off."""

    @override
    def init_poolmanager(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    @override
    def proxy_manager_for(self, proxy: str, **proxy_kwargs: t.Any) -> PoolManager:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:  # SOCKS managers keep their own pools
            manager.pool_classes_by_scheme = _POOLS
        return manager


def new_session(base_url: str) -> requests.Session:
    """A session for `base_url`: proxy and CA settings from the environment, read once.

    With `trust_env`, requests re-reads the whole environment on every request (a fifth
    of the tap's CPU time, measured at 1,000 grants).
    """
    session = requests.Session()
    adapter = DeadlineAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.proxies = requests.utils.get_environ_proxies(base_url)
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = ca_bundle or True
    session.trust_env = False
    return session


def send(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    *,
    timeout: float,
    max_bytes: int,
) -> requests.Response:
    """The whole answer to `prepared` within `timeout` seconds, its body read and decoded.

    Raises `RetryableError` when the connection fails or the deadline passes, and
    `AnswerRefusedError` for an answer the tap will not read: a redirect (the key must
    not follow it, nor its answer be trusted) or a body over `max_bytes` decoded.
    """
    path = urlsplit(prepared.url or "").path or "?"
    _request.deadline = time.monotonic() + timeout
    _request.token = None
    try:
        try:
            response = session.send(
                prepared, stream=True, timeout=(min(timeout, 30.0), timeout), allow_redirects=False
            )
        except requests.exceptions.RequestException as error:
            msg = f"request to {path} failed ({type(error).__name__})"
            raise RetryableError(msg) from None
        try:
            _refuse_redirect(response, path)
            _read_body(response, path, max_bytes)
        except Exception:
            response.close()
            raise
    except RetryableError:
        if _release():  # the watchdog cut it off: say so, not "connection lost"
            msg = f"no whole answer on {path} within request_timeout_seconds"
            raise RetryableError(msg) from None
        raise
    finally:
        _release()
        _request.deadline = None
    return response


def _release() -> bool:
    token = getattr(_request, "token", None)
    _request.token = None
    return token is not None and DEADLINES.release(token)


def _refuse_redirect(response: requests.Response, path: str) -> None:
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location") or ""
        host = urlsplit(location).hostname or "the same host"
        msg = (
            f"HTTP {response.status_code} on {path}: a redirect to {host}, which the tap "
            "does not follow (the API key goes only to api_url's host; check api_url)"
        )
        raise AnswerRefusedError(msg)


def _read_body(response: requests.Response, path: str, max_bytes: int) -> None:
    """Read the body, decoded, into `response.content`; refuse it past `max_bytes`."""
    declared = response.headers.get("Content-Length") or ""
    if declared.isdigit() and int(declared) > max_bytes:
        raise AnswerRefusedError(_too_large(path, max_bytes))
    chunks = []
    size = 0
    try:
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            size += len(chunk)
            if size > max_bytes:
                raise AnswerRefusedError(_too_large(path, max_bytes))
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        msg = f"connection lost while reading {path} ({type(error).__name__})"
        raise RetryableError(msg) from None
    response._content = b"".join(chunks)  # what `response.content` returns from now on


def _too_large(path: str, max_bytes: int) -> str:
    return (
        f"the answer on {path} is larger than max_response_megabytes "
        f"({max_bytes >> 20} MB decoded); it was not read"
    )
