"""The twelve Nylas streams, declared against the real v3 API contract."""

from __future__ import annotations

import time
import typing as t
from functools import cached_property

from typing_extensions import override

from tap_nylas.client import NylasStream
from tap_nylas.errors import PartitionUnavailableError
from tap_nylas.history import FolderIndex, ImapHistory
from tap_nylas.partitioned import GrantScopedStream
from tap_nylas.slicing import DAY, TimeRanges, WindowChunks

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


class GrantsStream(NylasStream):
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


class ConnectorsStream(NylasStream):
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

    @override
    def partition_started(self, context: Context) -> None:
        """Collect the grant's calendar IDs as they are written."""
        self._calendar_ids: list[str] = []

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """The calendar, its ID noted for the events stream."""
        self._calendar_ids.append(row["id"])
        return super().post_process(row, context)

    @override
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
