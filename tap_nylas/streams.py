"""The twelve Nylas streams, declared against the real v3 API contract."""

from __future__ import annotations

import itertools
import math
import time
import typing as t
from functools import cached_property

from tap_nylas.client import GrantScopedStream, NylasStream, Slice

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

DAY = 86_400
# iCloud rejects an events window wider than a year; stay a little inside it.
ICLOUD_MAX_WINDOW = 360 * DAY
GOOGLE_EVENT_TYPES = ("default", "outOfOffice", "focusTime", "workingLocation")
UPDATED_AFTER_PROVIDERS = frozenset({"google", "microsoft", "ews"})
# Grants of these providers have no mailbox or contacts behind them.
NO_MAIL = frozenset({"virtual-calendar", "zoom"})
# Time-range slices narrower than this are not split further: the split would cost
# more requests (each piece ends on a short page) than it saves.
MIN_MAIL_SLICE = 3600
# Pages a mailbox must hold below its first page before it is split.
MIN_PAGES_TO_SPLIT = 3
# Pages a range must hold below its first page before it is split again. Each split
# reads the range's first page twice and ends each new range on a short page: splitting
# ranges of 6+ pages made a 20,000-message mailbox cost 397 requests instead of 338 and
# took 12.5 s instead of 11.1 s (scenario C without faults); at 20 only the long pole
# (mail is denser lately) is split.
MIN_PAGES_TO_SPLIT_AGAIN = 20
MIN_EVENTS_SLICE = 7 * DAY


# Application-level lists (API key only, offset paging).


class GrantsStream(NylasStream):
    """Every grant of the application, valid or not; the source of grant partitions."""

    name = "grants"
    path = "/v3/grants"
    primary_keys = ("id",)
    paging = "offset"
    admin_endpoint = True

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Grants of this run (`grant_ids`, or all), from the one listing of the run."""
        return self.directory.grant_records()


class ConnectorsStream(NylasStream):
    """Provider connectors of the application; parent of `credentials`."""

    name = "connectors"
    path = "/v3/connectors"
    primary_keys = ("provider",)
    paging = "offset"
    admin_endpoint = True
    read_per_grant = False

    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Connectors (and so credentials) once per application: on grant shard 1."""
        return super().get_records(context) if self.directory.shard.first else ()

    def get_child_context(self, record: dict, context: Context | None) -> dict:
        """Credentials are listed per connector provider found, never a fixed list."""
        return {"provider": record["provider"]}


class CredentialsStream(NylasStream):
    """Credentials of each connector; `provider` comes from the parent connector."""

    name = "credentials"
    path = "/v3/connectors/{provider}/creds"
    primary_keys = ("provider", "id")
    paging = "offset"
    admin_endpoint = True
    parent_stream_type = ConnectorsStream
    read_per_grant = False


# Grant-scoped lists (cursor paging, one partition per grant).


class CalendarsStream(GrantScopedStream):
    """Calendars of each grant; their IDs are the partitions of `events`."""

    name = "calendars"
    path = "/v3/grants/{grant_id}/calendars"
    unsupported_providers = frozenset({"imap", "zoom"})

    def partition_started(self, context: Context) -> None:
        """Collect the grant's calendar IDs as they are written."""
        self._calendar_ids: list[str] = []

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """The calendar, its ID noted for the events stream."""
        self._calendar_ids.append(row["id"])
        return super().post_process(row, context)

    def partition_written(self, context: Context) -> None:
        """All calendars of the grant are known: events need not list them again."""
        self.directory.remember_calendars(context["grant_id"], self._calendar_ids)


class ContactsStream(GrantScopedStream):
    """Address-book contacts of each grant."""

    name = "contacts"
    path = "/v3/grants/{grant_id}/contacts"
    unsupported_providers = NO_MAIL


class ContactGroupsStream(GrantScopedStream):
    """Contact groups of each grant (EWS has none)."""

    name = "contact_groups"
    path = "/v3/grants/{grant_id}/contacts/groups"
    unsupported_providers = NO_MAIL | {"ews"}


class DraftsStream(GrantScopedStream):
    """Drafts of each grant."""

    name = "drafts"
    path = "/v3/grants/{grant_id}/drafts"
    unsupported_providers = NO_MAIL


class FoldersStream(GrantScopedStream):
    """Folders and labels of each grant, sub-folders flattened by Nylas."""

    name = "folders"
    path = "/v3/grants/{grant_id}/folders"
    unsupported_providers = NO_MAIL


class TimeRangeSlicedStream(GrantScopedStream):
    """A mailbox list that can be read as disjoint ranges of its replication key.

    After the first page, a grant with more pages is split into time ranges read at
    once, each paging its own cursor (`max_requests_per_grant` bounds how many run).
    Nylas documents neither whether `*_after`/`*_before` are inclusive nor the order of
    threads, so the tap relies on neither: each range is asked one second wider on each
    side and keeps only records inside it, and the records of the page before the
    split are excluded by ID from the ranges. Splitting needs a lower bound
    (`start_date` or a bookmark): without one, adding filters could change what is read.
    """

    #: Query parameter bounding `replication_key` from above.
    until_param: t.ClassVar[str]

    def split_slice(self, piece: Slice, records: list[dict], capacity: int) -> list[Slice] | None:
        """After a first page with more to come, ranges covering what the slice covers.

        How many ranges comes from the first page: Nylas lists mail newest first, so the
        dates it spans tell how many pages lie below it (`MIN_PAGES_TO_SPLIT` at least,
        else the split costs more requests than it saves). The order only steers this
        estimate; what is read does not depend on it.
        """
        key = self.replication_key or ""
        low = self._lower_bound(piece)
        if piece.pages != 1 or piece.finished or low is None or capacity < 1:
            return None
        pages_below = self.estimate_pages_left(piece, records)
        if pages_below is None:
            return None  # records a range cannot place would come back in every range
        oldest = min(int(r[key]) for r in records)
        # A range split before splits again only when it still holds many pages: mail
        # is denser lately, so equal time ranges hold unequal mail.
        below = min(
            2 * capacity if piece.depth == 0 else capacity,
            math.ceil(pages_below / 2),
            (oldest - low) // MIN_MAIL_SLICE,
        )
        threshold = MIN_PAGES_TO_SPLIT_AGAIN if piece.depth else MIN_PAGES_TO_SPLIT
        if pages_below < threshold or below < 2:
            return None
        exclude = piece.exclude | {r["id"] for r in records}
        step = (oldest - low) // below
        # Ranges below the first page, then one from its oldest date up, where its own
        # records come back once more and are dropped by ID.
        edges: list[int | None] = [low + step * n for n in range(below)]
        edges += [oldest, piece.high]
        base = {
            k: v for k, v in piece.context.items() if k not in {self.since_param, self.until_param}
        }
        slices = []
        for n, (start, end) in enumerate(itertools.pairwise(edges)):
            assert start is not None  # noqa: S101 - only the last edge is open
            first = n == 0
            context = dict(base)
            # The lowest range keeps the parent's lower filter exactly; the others own
            # [start, end] and ask one second wider.
            context[self.since_param or ""] = (
                piece.context[self.since_param or ""] if first else start - 1
            )
            own_end = None if end is None else (end if n == below else end - 1)
            if own_end is not None:
                context[self.until_param] = own_end + 1
            slices.append(
                Slice(
                    context,
                    self.get_new_paginator(),
                    low=piece.low if first else start,
                    high=own_end,
                    exclude=frozenset(exclude),
                    depth=piece.depth + 1,
                )
            )
        return slices

    def estimate_pages_left(self, piece: Slice, records: list[dict]) -> float | None:
        """Pages below this one, if the mail below is as dense as on it (newest first)."""
        key = self.replication_key or ""
        dates = [date for r in records if isinstance(date := r.get(key), int)]
        low = self._lower_bound(piece)
        if low is None or not dates or len(dates) < len(records):
            return None  # a record without a date could lie anywhere
        oldest, newest = min(dates), max(dates)
        return max(oldest - low, 0) / max(newest - oldest, 1)

    def _lower_bound(self, piece: Slice) -> int | None:
        low = piece.low if piece.low is not None else piece.context.get(self.since_param or "")
        return low if isinstance(low, int) else None

    def initial_slices(self, context: Context) -> list[Slice]:
        """One slice from the partition's lower bound, when it has one."""
        lower = self.lower_bound(context)
        bound = {} if lower is None else {self.since_param or "": lower}
        return [self.new_slice({**context, **bound})]

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """The incremental filter, and the upper end of a time-range slice."""
        params = super().get_url_params(context, next_page_token)
        if context and self.until_param in context:
            params[self.until_param] = context[self.until_param]
        return params


class MessagesStream(TimeRangeSlicedStream):
    """Messages of each grant, newest first."""

    name = "messages"
    path = "/v3/grants/{grant_id}/messages"
    unsupported_providers = NO_MAIL
    replication_key = "date"
    since_param = "received_after"
    until_param = "received_before"


class ThreadsStream(TimeRangeSlicedStream):
    """Threads of each grant; Nylas caps this endpoint's `limit` at 50."""

    name = "threads"
    path = "/v3/grants/{grant_id}/threads"
    unsupported_providers = NO_MAIL
    max_page_size = 50
    replication_key = "latest_message_received_date"
    since_param = "latest_message_after"
    until_param = "latest_message_before"


class ScheduledMessagesStream(GrantScopedStream):
    """Scheduled sends of each grant: one unpaginated list, records without a grant id."""

    name = "scheduled_messages"
    path = "/v3/grants/{grant_id}/messages/schedules"
    primary_keys = ("grant_id", "schedule_id")
    unsupported_providers = NO_MAIL
    paging = None
    supports_select = False


class EventsStream(GrantScopedStream):
    """Events of each calendar of each grant, in an explicit time window.

    The API needs `calendar_id` and, without `start`/`end`, returns only the next 30
    days; cancelled events and Google's non-default event types are hidden unless asked.
    """

    name = "events"
    path = "/v3/grants/{grant_id}/events"
    # One event can sit in several calendars of a grant under the same ID.
    primary_keys = ("grant_id", "calendar_id", "id")
    unsupported_providers = frozenset({"imap", "zoom"})
    bookmark_keys = ("grant_id", "calendar_id")
    replication_key = "updated_at"
    depends_on = "calendars"

    def partition_contexts(self) -> list[dict]:
        """One context per (grant, calendar): the API lists events of one calendar."""
        return self.directory.calendar_partitions(self)

    @cached_property
    def window(self) -> tuple[int, int]:
        """From `start_date` (or now minus the look-back) to now plus the look-ahead."""
        now = int(time.time())
        start = self._tap.start_epoch  # type: ignore[attr-defined]
        if start is None:
            start = now - int(self.config["events_lookback_days"]) * DAY
        return start, now + int(self.config["events_lookahead_days"]) * DAY

    def initial_slices(self, context: Context) -> list[Slice]:
        """The window as one slice, or in chunks where the provider needs it (iCloud)."""
        start, end = self.window
        icloud = self.directory.provider(context["grant_id"]) == "icloud"
        step = ICLOUD_MAX_WINDOW if icloud else max(end - start, 1)
        return [
            self.new_slice({**context, "start": chunk, "end": min(chunk + step, end)})
            for chunk in range(start, end, step)
        ]

    def split_slice(self, piece: Slice, records: list[dict], capacity: int) -> list[Slice] | None:
        """A window chunk with more than a page is read again as shorter chunks at once.

        Nothing is assumed about the order of events: the chunks cover the whole window
        again and the first page's events come back once more, dropped by ID like the
        events that overlap two chunks (`partition_started`).
        """
        if piece.pages != 1 or piece.finished or capacity < 1 or piece.depth > 0:
            return None
        start, end = piece.context["start"], piece.context["end"]
        parts = min(2 * capacity, (end - start) // MIN_EVENTS_SLICE)
        if parts < 2:
            return None
        step = -(-(end - start) // parts)
        return [
            Slice(
                {**piece.context, "start": chunk, "end": min(chunk + step, end)},
                self.get_new_paginator(),
                depth=1,
            )
            for chunk in range(start, end, step)
        ]

    def partition_started(self, context: Context) -> None:
        """An event overlapping two chunks is listed in both; it is written once."""
        self._seen: set[str] = set()

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """The event, unless a previous chunk of its calendar already had it."""
        if row["id"] in self._seen:
            return None
        self._seen.add(row["id"])
        return super().post_process(row, context)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Calendar, window, cancelled events and, on Google, every event type."""
        assert context is not None  # noqa: S101 - always partitioned
        params = super().get_url_params(context, next_page_token)
        params.update(
            calendar_id=context["calendar_id"], start=context["start"], end=context["end"]
        )
        provider = self.directory.provider(context["grant_id"])
        if provider not in {"icloud", "ews"}:  # these do not support show_cancelled
            params["show_cancelled"] = "true"
        if provider == "google":
            params["event_type"] = list(GOOGLE_EVENT_TYPES)
        # Elsewhere `updated_after` is not supported: the whole window is read again.
        if self.keeps_bookmark(context) and (since := self.since(context)) is not None:
            params["updated_after"] = since
        return params

    def keeps_bookmark(self, partition: Context) -> bool:
        """Only calendars of providers with `updated_after` keep a bookmark.

        Elsewhere it would be unused, and at 10,000 grants such entries are a large share
        of every STATE.
        """
        return self.directory.provider(partition["grant_id"]) in UPDATED_AFTER_PROVIDERS


STREAM_TYPES: tuple[type[NylasStream], ...] = (
    GrantsStream,
    ConnectorsStream,
    CredentialsStream,
    CalendarsStream,
    ContactsStream,
    ContactGroupsStream,
    DraftsStream,
    EventsStream,
    FoldersStream,
    MessagesStream,
    ScheduledMessagesStream,
    ThreadsStream,
)
