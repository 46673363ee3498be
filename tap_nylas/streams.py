"""The twelve Nylas streams, declared against the real v3 API contract."""

from __future__ import annotations

import time
import typing as t
from functools import cached_property

from tap_nylas.client import GrantScopedStream, NylasStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

DAY = 86_400
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

    def partition_records(self, context: Context) -> Iterator[dict]:
        """Calendars of one grant, remembered for the events stream once all are read."""
        ids = []
        for record in super().partition_records(context):
            ids.append(record["id"])
            yield record
        self.directory.remember_calendars(context["grant_id"], ids)


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


class MessagesStream(GrantScopedStream):
    """Messages of each grant, newest first."""

    name = "messages"
    path = "/v3/grants/{grant_id}/messages"
    unsupported_providers = NO_MAIL
    replication_key = "date"
    since_param = "received_after"


class ThreadsStream(GrantScopedStream):
    """Threads of each grant; Nylas caps this endpoint's `limit` at 50."""

    name = "threads"
    path = "/v3/grants/{grant_id}/threads"
    unsupported_providers = NO_MAIL
    max_page_size = 50
    replication_key = "latest_message_received_date"
    since_param = "latest_message_after"


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

    def partition_records(self, context: Context) -> Iterator[dict]:
        """Events of one calendar, window chunk by chunk where the provider needs it."""
        start, end = self.window
        icloud = self.directory.provider(context["grant_id"]) == "icloud"
        step = ICLOUD_MAX_WINDOW if icloud else max(end - start, 1)
        seen: set[str] = set()  # an event spanning two chunks comes back in both
        for chunk_start in range(start, end, step):
            chunk = {**context, "start": chunk_start, "end": min(chunk_start + step, end)}
            for record in self.request_records(chunk):
                if record["id"] not in seen:
                    seen.add(record["id"])
                    yield record

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
