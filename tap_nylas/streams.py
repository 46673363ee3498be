"""The Nylas streams, declared against the real v3 API contract.

Twelve streams replicate the API's lists; three sweeps re-read a recent window of mail
and events with field selection, and `sync_coverage` records which partitions the run
read in full (README: "Deletions, changed flags and a warehouse that stays true").
"""

from __future__ import annotations

import time
import typing as t
from functools import cached_property

from typing_extensions import override

from tap_nylas.client import NylasStream
from tap_nylas.coverage import Read
from tap_nylas.errors import PartitionUnavailableError
from tap_nylas.history import FolderIndex, ImapHistory
from tap_nylas.partitioned import GrantScopedStream, IdIndex
from tap_nylas.slicing import DAY, Since, TimeRanges, WindowChunks

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

# iCloud rejects an events window wider than a year; stay a little inside it.
ICLOUD_MAX_WINDOW = 360 * DAY
GOOGLE_EVENT_TYPES = ("default", "outOfOffice", "focusTime", "workingLocation")
UPDATED_AFTER_PROVIDERS = frozenset({"google", "microsoft", "ews"})
# Grants of these providers have no mailbox or contacts behind them.
NO_MAIL = frozenset({"virtual-calendar", "zoom"})


# Application-level lists (API key only, offset paging).


class ApplicationList(NylasStream):
    """An application-level list: one completion record when the run read all of it."""

    @override
    def stream_finished(self) -> None:
        """ACTIVATE_VERSION if due, then the completion record (`sync_coverage`).

        Application lists stop the run when they fail, so a finished one was read in full
        unless this run was restricted (`grant_ids`, `grant_shard`): no record then. The
        read counts as started when the run started.
        """
        super().stream_finished()
        if self.selected and not self.incomplete_reasons():
            started = Read(self.run.initialized_at / 1000)
            self.run.coverage.add(self.name, {}, started, records=None)


class GrantsStream(ApplicationList):
    """Every grant of the application, valid or not; the source of grant partitions."""

    name = "grants"
    path = "/v3/grants"
    primary_keys = ("id",)
    paging = "offset"
    admin_endpoint = True

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Grants of this run (`grant_ids`, or all), from the one listing of the run."""
        return self.directory.grant_records()


class ConnectorsStream(ApplicationList):
    """Provider connectors of the application; parent of `credentials`."""

    name = "connectors"
    path = "/v3/connectors"
    primary_keys = ("provider",)
    paging = "offset"
    admin_endpoint = True
    read_per_grant = False

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """Connectors (and so credentials) once per application: on grant shard 1."""
        return super().get_records(context) if self.directory.shard.first else ()

    @override
    def get_child_context(self, record: dict, context: Context | None) -> dict:
        """Credentials are listed per connector provider found, never a fixed list."""
        return {"provider": record["provider"]}


class CredentialsStream(ApplicationList):
    """Credentials of each connector; `provider` comes from the parent connector."""

    name = "credentials"
    path = "/v3/connectors/{provider}/creds"
    primary_keys = ("provider", "id")
    paging = "offset"
    admin_endpoint = True
    parent_stream_type = ConnectorsStream
    read_per_grant = False


# Grant-scoped lists (cursor paging, one partition per grant).


class CalendarsStream(IdIndex):
    """Calendars of each grant; their IDs are the partitions of `events`."""

    name = "calendars"
    path = "/v3/grants/{grant_id}/calendars"
    unsupported_providers = frozenset({"imap", "zoom"})

    @override
    def remember_ids(self, grant_id: str, ids: list[str]) -> None:
        """All calendars of the grant are known: events need not list them again."""
        self.directory.remember_calendars(grant_id, ids)


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


class FoldersStream(FolderIndex):
    """Folders and labels of each grant, sub-folders flattened by Nylas.

    Their IDs are noted as they are written, for the IMAP history (`history.py`).
    """

    name = "folders"
    path = "/v3/grants/{grant_id}/folders"
    unsupported_providers = NO_MAIL


class MessagesStream(ImapHistory):
    """Messages of each grant, newest first; a big mailbox is read as time ranges at once.

    IMAP, Yahoo and iCloud grants also have a history partition while their mail older
    than Nylas's 90-day cache is not read yet (`ImapHistory`; setting `imap_history`).
    """

    name = "messages"
    path = "/v3/grants/{grant_id}/messages"
    unsupported_providers = NO_MAIL
    replication_key = "date"
    slicing = TimeRanges(since="received_after", until="received_before")


class ThreadsStream(GrantScopedStream):
    """Threads of each grant; Nylas caps this endpoint's `limit` at 50."""

    name = "threads"
    path = "/v3/grants/{grant_id}/threads"
    unsupported_providers = NO_MAIL
    max_page_size = 50
    replication_key = "latest_message_received_date"
    slicing = TimeRanges(since="latest_message_after", until="latest_message_before")


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
    slicing = WindowChunks()

    @override
    def partition_contexts(self) -> list[dict]:
        """One context per (grant, calendar): the API lists events of one calendar."""
        return self.directory.calendar_partitions(self.grant_contexts(), self._unlisted)

    def _unlisted(self, grant_id: str, error: Exception) -> None:
        """A grant whose calendars could not be listed: its events are not read."""
        if isinstance(error, PartitionUnavailableError):
            self.logger.warning("Skipping events for grant %s: %s", grant_id, error)
        else:
            self.logger.error("Skipping events for grant %s: %s", grant_id, error)
            self.run.report_failure(self.name, {"grant_id": grant_id}, error)
        self.note_incomplete(f"grant {grant_id}: its calendars could not be listed")

    @cached_property
    def window(self) -> tuple[int, int]:
        """[start, end) of the events this run lists."""
        return self.full_window()

    def full_window(self) -> tuple[int, int]:
        """From `start_date` (or now minus the look-back) to now plus the look-ahead."""
        now = int(time.time())
        start = self.run.start_epoch
        if start is None:
            start = now - int(self.config["events_lookback_days"]) * DAY
        return start, now + int(self.config["events_lookahead_days"]) * DAY

    def max_window(self, context: Context) -> int | None:
        """The widest window the grant's provider accepts: a year less a bit on iCloud."""
        icloud = self.directory.provider(context["grant_id"]) == "icloud"
        return ICLOUD_MAX_WINDOW if icloud else None

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Calendar, window, cancelled events and, on Google, every event type."""
        assert context is not None  # noqa: S101 - always partitioned
        params = super().get_url_params(context, next_page_token)
        params["calendar_id"] = context["calendar_id"]
        provider = self.directory.provider(context["grant_id"])
        if provider not in {"icloud", "ews"}:  # these do not support show_cancelled
            params["show_cancelled"] = "true"
        if provider == "google":
            params["event_type"] = list(GOOGLE_EVENT_TYPES)
        # Elsewhere `updated_after` is not supported: the whole window is read again.
        if self.keeps_bookmark(context) and (since := self.bookmark_floor(context)) is not None:
            params["updated_after"] = since
        return params

    @override
    def read_of(self, context: Context) -> Read:
        """The window, and the events updated after `updated_after` where it is sent."""
        since = self.bookmark_floor(context) if self.keeps_bookmark(context) else None
        start, end = self.window
        return Read(time.time(), "updated_at", since, None, start, end)

    @override
    def keeps_bookmark(self, partition: Context) -> bool:
        """Only calendars of providers with `updated_after` keep a bookmark.

        Elsewhere it would be unused, and at 10,000 grants such entries are a large share
        of every STATE.
        """
        return self.directory.provider(partition["grant_id"]) in UPDATED_AFTER_PROVIDERS


# Sweeps: a recent window re-read with field selection, for what dates cannot see.


class Sweep(GrantScopedStream):
    """A cheap re-read of a recent window (`sweep_days`) with `select=` of a few fields.

    Its records go to a table of its own: partial records in the swept stream's table
    would blank the other columns on upsert. Each partition read in full gets a
    completion record like any other, which is how the models see what was deleted.
    """

    #: The stream whose records this one re-reads, and the field its window is on.
    sweeps: t.ClassVar[str]
    window_key: t.ClassVar[str]
    never_activated = "it is a sweep: each row is when the record was last seen, for the models"

    @cached_property
    def sweep_start(self) -> int:
        """Now minus `sweep_days`, never before `start_date`."""
        start = self.run.initialized_at // 1000 - self.run.sweep_days * DAY
        return max(start, self.run.start_epoch or start)

    @override
    def partition_contexts(self) -> list[dict]:
        """The swept stream's partitions whose main read this run leaves part of the window."""
        if self.run.sweep_days <= 0:
            return []
        return [c for c in super().partition_contexts() if self.needs_sweep(c)]

    def needs_sweep(self, context: Context) -> bool:
        """Whether the swept stream's read of this partition starts inside the window.

        Without a bookmark when the run started (a new grant, a full refresh) the main
        read lists everything from `start_date`, window included: no sweep needed.
        """
        bookmark = self.run.bookmark_at_start(self.sweeps, context)
        if bookmark is None:
            return False
        lower = int(bookmark) - int(self.config["incremental_lookback_seconds"])
        return max(lower, self.run.start_epoch or lower) > self.sweep_start

    @override
    def lower_bound(self, context: Context) -> int | None:
        """The window's start."""
        return self.sweep_start

    @override
    def read_of(self, context: Context) -> Read:
        """Everything of the partition whose `window_key` is after the window's start."""
        return Read(time.time(), self.window_key, self.sweep_start)

    @override
    def select_params(self) -> dict[str, str]:
        """Always `select=`: the stream's fields are a few of the endpoint's."""
        return {"select": ",".join(sorted(self.field_selection.fields))}


class MessageFlagsStream(Sweep):
    """Recent messages' read, starred and folder state (`select=`), seen or not by date."""

    name = "message_flags"
    path = "/v3/grants/{grant_id}/messages"
    unsupported_providers = NO_MAIL
    sweeps = "messages"
    window_key = "date"
    slicing = Since("received_after")


class ThreadFlagsStream(Sweep):
    """Recent threads' flags, folders and message IDs (`select=`)."""

    name = "thread_flags"
    path = "/v3/grants/{grant_id}/threads"
    unsupported_providers = NO_MAIL
    max_page_size = 50
    sweeps = "threads"
    window_key = "latest_message_received_date"
    slicing = Since("latest_message_after")


class EventStatesStream(Sweep, EventsStream):
    """Events from `sweep_days` ago to the window's end, without `updated_after`.

    Only for providers whose events are read with `updated_after` (Google, Microsoft,
    EWS): elsewhere the whole window is read every run anyway, and no calendar keeps a
    bookmark, so `needs_sweep` leaves those out.
    """

    name = "event_states"
    replication_key = None  # type: ignore[assignment]
    sweeps = "events"
    window_key = "updated_at"

    @cached_property
    @override
    def window(self) -> tuple[int, int]:
        """The events window from the sweep's start on."""
        start, end = self.full_window()
        return max(start, self.sweep_start), end

    @override
    def read_of(self, context: Context) -> Read:
        """Every event of the calendar in the window, whatever its `updated_at`."""
        start, end = self.window
        return Read(time.time(), None, None, None, start, end)

    @override
    def keeps_bookmark(self, partition: Context) -> bool:
        """A sweep keeps no bookmark, and so sends no `updated_after`."""
        return False

    @override
    def needs_sweep(self, context: Context) -> bool:
        """Wherever `events` reads the calendar with `updated_after` (it has a bookmark).

        That read lists events by the time they were updated, not by when they take
        place: however old its bound, it does not list an unchanged event, so it cannot
        see one deleted. Without a bookmark the whole window is read.
        """
        return self.run.bookmark_at_start(self.sweeps, context) is not None


class SyncCoverageStream(NylasStream):
    """One record per partition this run read in full: what the models judge deletions by.

    Written last, after every other stream (`tap.SYNC_LAST`): a run killed part-way
    writes none.
    """

    name = "sync_coverage"
    path = "/"  # never requested: the records come from the run's coverage ledger
    primary_keys = ("stream", "grant_id", "calendar_id", "read_started_at")
    read_per_grant = False
    never_activated = "it keeps the history of complete reads, which the models need"

    @override
    def get_records(self, context: Context | None) -> Iterable[dict]:
        """The run's completion records."""
        return self.run.coverage.records()


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
    MessageFlagsStream,
    ThreadFlagsStream,
    EventStatesStream,
    SyncCoverageStream,
)
