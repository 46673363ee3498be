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
from .server import IMAP_CONCURRENCY, App, ServerThread
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
        latency_distribution: str = "fixed",
        large_mailbox: int | None = None,
        grant_concurrency: int | None = None,
        grant_concurrency_retry_after: float = 1,
        trickle_interval: float = 2.0,
        imap_cache_days: int | None = None,
        imap_latency: float | None = None,
        imap_concurrency: int | None = IMAP_CONCURRENCY,
        large_mailbox_provider: str | None = None,
    ) -> None:
        """A simulator; besides the basics, these options make it realistic.

        * ``latency_distribution``: ``"fixed"`` (every request takes ``latency``) or
          ``"lognormal"`` (``latency`` is the mean, sigma 0.8, drawn in arrival order
          from a seeded generator).
        * ``large_mailbox``: give one grant (``large_mailbox_grant_id``, the first valid
          google/microsoft grant) this many messages, threads to match, made lazily.
        * ``grant_concurrency``: a request of a grant that already has this many in
          flight answers 429 ``rate_limit_error`` with a ``provider_error``; every other
          such 429 carries ``Retry-After: grant_concurrency_retry_after``.
        * ``trickle_interval``: seconds between the bytes of a ``trickle`` fault's body.
        * ``imap_cache_days``: IMAP, Yahoo and iCloud grants list only the messages of
          the last this many days (Nylas keeps 90), unless asked with ``query_imap=true``
          and ``in=<folder>``. ``query_imap`` always answers as the IMAP server would: that
          folder's messages of any age, oldest first, each naming only that folder, date
          filters ignored; without ``in`` it is a 400.
        * ``imap_latency``: seconds a query_imap request takes (default 4x ``latency``);
          ``imap_concurrency``: query_imap requests of one grant in flight before a 429.
        * ``large_mailbox_provider``: the provider of the large mailbox's grant.
        """
        self.seed = seed
        self.host, self._port = host, port
        self.dataset = Dataset(
            seed,
            grants,
            records_per_grant,
            large_bodies,
            cache_size,
            large_mailbox=large_mailbox,
            large_mailbox_provider=large_mailbox_provider,
        )
        injector = FaultInjector(faults, seed) if faults and faults.rate > 0 else None
        self.app = App(
            self.dataset,
            api_key,
            latency=latency,
            faults=injector,
            rate_limits=rate_limits,
            latency_distribution=latency_distribution,
            seed=seed,
            grant_concurrency=grant_concurrency,
            grant_concurrency_retry_after=grant_concurrency_retry_after,
            trickle_interval=trickle_interval,
            retry_after=faults.retry_after if faults else 1,
            imap_cache_days=imap_cache_days,
            imap_latency=imap_latency,
            imap_concurrency=imap_concurrency,
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

    # -- scripted faults ---------------------------------------------------------

    def add_fault_rule(self, path_regex: str, kind: str, times: int | None = None) -> None:
        r"""Answer ``kind`` to requests whose target matches ``path_regex``.

        ``path_regex`` is searched (``re.search``) in the request target as sent: the path
        and the query string, e.g. ``r"/messages\?.*page_token"``. ``times=None`` applies
        forever, else to the next ``times`` matching requests. Rules are checked in the
        order added, before anything else (auth included); a hit is logged with
        ``fault=kind`` and ``fault_source="rule"``. Kinds: ``RULE_KINDS``.
        """
        self.app.rules.add(path_regex, kind, times)

    def clear_fault_rules(self) -> None:
        """Drop every scripted fault rule."""
        self.app.rules.clear()

    # -- changes between syncs ---------------------------------------------------

    def delete(
        self, stream: str, grant_id: str, object_id: str, calendar_id: str | None = None
    ) -> None:
        """Delete a message, event, contact or folder of a grant (as ``DELETE /v3/...``).

        Events: of ``calendar_id``, or of every calendar of the grant when None. Deleting
        a message updates its thread (gone with its last message); deleting a folder
        takes it off every message. Raises KeyError when there is no such object.
        """
        if not self.dataset.delete(self._profile(grant_id), stream, object_id, calendar_id):
            raise KeyError(f"no {stream} {object_id!r} in grant {grant_id}")

    def update_message(
        self,
        grant_id: str,
        message_id: str,
        *,
        unread: bool | None = None,
        starred: bool | None = None,
        folders: list[str] | None = None,
    ) -> None:
        """Mark a message read or unread, starred or not, or move it (as ``PUT /v3/...``)."""
        fields = {
            k: v
            for k, v in {"unread": unread, "starred": starred, "folders": folders}.items()
            if v is not None
        }
        if not self.dataset.update_message(self._profile(grant_id), message_id, fields):
            raise KeyError(f"no message {message_id!r} in grant {grant_id}")

    def expire(self, grant_id: str) -> None:
        """Expire a grant's token: still listed, as valid; its data answers 401 from now on.

        Its records leave the truth (``records``, ``truth``), as a sync can no longer read them.
        """
        self.dataset.expire(self._profile(grant_id))

    def _profile(self, grant_id: str) -> GrantProfile:
        profile = self.dataset.resolve(grant_id)
        if profile is None:
            raise KeyError(f"no grant {grant_id!r}")
        return profile

    # -- truth -------------------------------------------------------------------

    def truth(
        self, events_start: int | None = None, events_end: int | None = None
    ) -> dict[str, set[tuple[str, ...]]]:
        """Primary keys a complete sync must produce, per stream.

        The large mailbox's messages and threads count by id alone, never built.
        """
        start = DEFAULT_EVENTS_START if events_start is None else events_start
        end = DEFAULT_EVENTS_END if events_end is None else events_end
        return truth_keys(self.dataset.truth_records(start, end, keys_only=True))

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
    def large_mailbox_grant_id(self) -> str | None:
        """The grant holding the large mailbox, when there is one."""
        profile = self.dataset.large_mailbox_grant
        return profile.id if profile else None

    @property
    def expired_grant_id(self) -> str | None:
        """The grant listed as valid that answers 401."""
        expired = self.dataset.expired_grant
        return expired.id if expired else None

    @property
    def missing_calendar(self) -> tuple[str, str] | None:
        """(grant_id, calendar_id) listed by /calendars but 404 on /events."""
        return self.dataset.missing_calendar
