"""``NylasSimulator``: a local Nylas v3 API on 127.0.0.1 with a known truth."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from .admin import GrantProfile
from .dataset import (
    DEFAULT_EVENTS_END,
    DEFAULT_EVENTS_START,
    STREAMS,
    Dataset,
    truth_keys,
)
from .faults import FaultInjector, Faults
from .server import App, ServerThread
from .util import Record


class NylasSimulator:
    """A deterministic Nylas v3 API server for tests, benchmarks and demos."""

    def __init__(
        self,
        seed: int = 7,
        *,
        grants: int = 24,
        records_per_grant: int = 20,
        api_key: str = "sim-key",
        latency: float = 0.0,
        faults: Faults | None = None,
        large_bodies: bool = True,
        rate_limits: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        cache_size: int | None = None,
    ) -> None:
        self.seed = seed
        self.host, self._port = host, port
        self.dataset = Dataset(seed, grants, records_per_grant, large_bodies, cache_size)
        injector = FaultInjector(faults, seed) if faults and faults.rate > 0 else None
        self.app = App(
            self.dataset, api_key, latency=latency, faults=injector, rate_limits=rate_limits
        )
        self._server: ServerThread | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> NylasSimulator:
        """Bind and serve from a daemon thread; returns self."""
        if self._server is None:
            self._server = ServerThread(self.app, self.host, self._port)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> NylasSimulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._server is None:
            raise RuntimeError("simulator is not started")
        return self._server.port

    @property
    def url(self) -> str:
        """Base URL without ``/v3``, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    # -- request log -----------------------------------------------------------

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """A snapshot of every request served so far."""
        return self.app.snapshot_log()

    def reset_log(self) -> None:
        """Clear the request log."""
        self.app.reset_log()

    # -- truth -------------------------------------------------------------------

    def truth(
        self, events_start: int | None = None, events_end: int | None = None
    ) -> dict[str, set[tuple[str, ...]]]:
        """Primary keys a complete sync must produce, per stream."""
        return truth_keys(self._truth_records(events_start, events_end))

    def records(
        self, stream: str, events_start: int | None = None, events_end: int | None = None
    ) -> list[Record]:
        """The truth records of one stream (as served with default parameters).

        Credentials carry ``provider`` and scheduled messages ``grant_id``, as a
        tap injects them.
        """
        if stream not in STREAMS:
            raise KeyError(f"unknown stream {stream!r}; expected one of {STREAMS}")
        return self._truth_records(events_start, events_end)[stream]

    def _truth_records(
        self, events_start: int | None, events_end: int | None
    ) -> dict[str, list[Record]]:
        start = DEFAULT_EVENTS_START if events_start is None else events_start
        end = DEFAULT_EVENTS_END if events_end is None else events_end
        return self.dataset.truth_records(start, end)

    # -- conveniences for tests --------------------------------------------------

    @property
    def grants(self) -> list[GrantProfile]:
        """Every grant's profile (id, provider, status, expired, email, ...)."""
        return list(self.dataset.profiles)

    @property
    def expired_grant_id(self) -> str | None:
        """The grant listed as valid that answers 401."""
        expired = self.dataset.expired_grant
        return expired.id if expired else None

    @property
    def missing_calendar(self) -> tuple[str, str] | None:
        """(grant_id, calendar_id) listed by /calendars but 404 on /events."""
        return self.dataset.missing_calendar
