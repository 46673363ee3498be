"""Routing and the JSON payload of every supported endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .admin import GrantProfile
from .bigmail import LazyRecords
from .changes import DELETABLE, MESSAGE_FIELDS
from .dataset import Dataset, GrantData
from .filters import (
    check_access,
    filter_contacts,
    filter_drafts,
    filter_messages,
    filter_threads,
    select_events,
)
from .mail import message_headers, raw_mime, tracking_options
from .query import (
    ApiError,
    Query,
    bad_request,
    cursor_page,
    not_found,
    offset_page,
    select_fields,
)
from .util import Record

#: Providers whose mail Nylas caches for a rolling 90 days; older mail needs query_imap.
IMAP_PROVIDERS = ("imap", "yahoo", "icloud")
DAY = 86_400

# Sub-paths of /v3/grants/{grant_id}/ that list a stream.
GRANT_LIST_ROUTES: dict[str, str] = {
    "calendars": "calendars",
    "contacts": "contacts",
    "contacts/groups": "contact_groups",
    "drafts": "drafts",
    "events": "events",
    "folders": "folders",
    "messages": "messages",
    "messages/schedules": "scheduled_messages",
    "threads": "threads",
}
_OBJECT_ROUTES = ("calendars", "contacts", "drafts", "events", "folders", "messages", "threads")
# (default, maximum) page size; threads are capped at 50 by the API.
_LIMITS: dict[str, tuple[int, int]] = {"threads": (20, 50)}
_DEFAULT_LIMITS = (50, 200)
_SORT_KEYS = ("created_at", "updated_at")
_ORDERS = ("desc", "asc")


@dataclass(frozen=True)
class Route:
    """What a request path addresses."""

    kind: str  # grants | grant | grant_list | grant_object | connectors | connector | creds
    grant_ref: str | None = None
    stream: str | None = None
    name: str | None = None  # connector provider or object id


def parse_route(path: str) -> Route | None:
    """The route of a ``/v3/...`` path, or None when nothing lives there."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if len(parts) < 2 or parts[0] != "v3":
        return None
    head, rest = parts[1], parts[2:]
    if head == "grants":
        return _grant_route(rest)
    if head == "connectors":
        if not rest:
            return Route("connectors")
        if len(rest) == 1:
            return Route("connector", name=rest[0])
        if len(rest) == 2 and rest[1] == "creds":
            return Route("creds", name=rest[0])
    return None


def _grant_route(rest: list[str]) -> Route | None:
    if not rest:
        return Route("grants")
    ref, sub = rest[0], rest[1:]
    if not sub:
        return Route("grant", grant_ref=ref)
    stream = GRANT_LIST_ROUTES.get("/".join(sub))
    if stream:
        return Route("grant_list", grant_ref=ref, stream=stream)
    if len(sub) == 2 and sub[0] in _OBJECT_ROUTES:
        return Route("grant_object", grant_ref=ref, stream=sub[0], name=sub[1])
    return None


class Endpoints:
    """Builds response payloads from the dataset; raises ``ApiError`` on errors."""

    def __init__(
        self, dataset: Dataset, now: Callable[[], float], imap_cache_days: int | None = None
    ) -> None:
        self.ds = dataset
        self.now = now
        self.imap_cache_days = imap_cache_days
        self._grant_orders: dict[tuple[str, str], list[GrantProfile]] = {}

    def dispatch(self, route: Route, query: Query, rid: str) -> Any:
        """The JSON payload for a routed request."""
        if route.kind == "grants":
            return self._grants(query, rid)
        if route.kind == "connectors":
            return self._offset_envelope(self.ds.connectors(), query, rid)
        if route.kind == "connector":
            return {"request_id": rid, "data": self._connector(route.name or "")}
        if route.kind == "creds":
            return self._credentials(route.name or "", query, rid)
        return self._grant_scoped(route, query, rid)

    def _grant_scoped(self, route: Route, query: Query, rid: str) -> Any:
        profile = self._profile(route.grant_ref or "")
        if route.kind == "grant":
            return {"request_id": rid, "data": select_fields(self.ds.grant_record(profile), query)}
        if route.kind == "grant_list":
            return self._grant_list(profile, route.stream or "", query, rid)
        return self._grant_object(profile, route.stream or "", route.name or "", query, rid)

    def write(self, route: Route, method: str, query: Query, body: bytes, rid: str) -> Any:
        """``DELETE`` a message, event, contact or folder; ``PUT`` a message's flags.

        As Nylas does: deleting an event needs ``calendar_id``; a message's ``unread``,
        ``starred`` and ``folders`` can be set.
        """
        profile = self._profile(route.grant_ref or "")
        stream, object_id = route.stream or "", route.name or ""
        check_access(profile, stream)
        if method == "DELETE":
            if stream not in DELETABLE:
                raise ApiError(405, "invalid_request_error", f"{stream} cannot be deleted here")
            calendar_id = query.one("calendar_id")
            if stream == "events" and not calendar_id:
                raise bad_request("calendar_id is required")
            if not self.ds.delete(profile, stream, object_id, calendar_id):
                raise not_found(f"{stream[:-1].capitalize()} not found")
            return {"request_id": rid}
        if stream != "messages":
            raise ApiError(405, "invalid_request_error", f"{stream} cannot be updated here")
        try:
            fields = json.loads(body or b"{}")
        except ValueError:
            raise bad_request("the request body is not JSON") from None
        if not isinstance(fields, dict) or set(fields) - set(MESSAGE_FIELDS):
            raise bad_request(f"only {', '.join(MESSAGE_FIELDS)} can be updated here")
        if not self.ds.update_message(profile, object_id, fields):
            raise not_found("Message not found")
        return self._grant_object(profile, stream, object_id, query, rid)

    # -- admin endpoints ------------------------------------------------

    def _offset_envelope(self, items: list[Record], query: Query, rid: str) -> Record:
        page, limit, offset = offset_page(items, query)
        data = [select_fields(r, query) for r in page]
        return {"request_id": rid, "data": data, "limit": limit, "offset": offset}

    def _grants(self, query: Query, rid: str) -> Record:
        profiles = self._filter_grants(self._ordered_profiles(query), query)
        page, limit, offset = offset_page(profiles, query)
        data = [select_fields(self.ds.grant_record(p), query) for p in page]
        return {"request_id": rid, "data": data, "limit": limit, "offset": offset}

    def _ordered_profiles(self, query: Query) -> list[GrantProfile]:
        # Profiles never change, so each ordering is sorted once.
        order = _ordering(query)
        if order not in self._grant_orders:
            self._grant_orders[order] = _sorted(self.ds.profiles, *order)
        return self._grant_orders[order]

    def _filter_grants(self, profiles: list[GrantProfile], query: Query) -> list[GrantProfile]:
        status = query.one("grant_status") or query.one("grantStatus")
        if status is not None and status not in ("valid", "invalid"):
            raise bad_request("grant_status must be valid or invalid")
        provider, email = query.one("provider"), query.one("email")
        since, before = query.integer("since"), query.integer("before")
        if all(v is None for v in (status, provider, email, since, before)):
            return profiles
        return [
            p
            for p in profiles
            if (status is None or p.status == status)
            and (provider is None or p.provider == provider)
            and (email is None or p.email == email)
            and (since is None or p.created_at >= since)
            and (before is None or p.created_at <= before)
        ]

    def _connector(self, provider: str) -> Record:
        for c in self.ds.connectors():
            if c["provider"] == provider:
                return c
        raise not_found("Connector not found")

    def _credentials(self, provider: str, query: Query, rid: str) -> Record:
        creds = self.ds.credentials(provider)
        if creds is None:
            raise not_found("Connector not found")
        return self._offset_envelope(_sorted(creds, *_ordering(query)), query, rid)

    # -- grant-scoped endpoints -------------------------------------------

    def _profile(self, ref: str) -> GrantProfile:
        profile = self.ds.resolve(ref)
        if profile is None:
            raise not_found("Grant not found")
        return profile

    def _grant_list(self, profile: GrantProfile, stream: str, query: Query, rid: str) -> Any:
        check_access(profile, stream)
        data = self.ds.grant_data(profile)
        if stream == "scheduled_messages":
            return self._schedules(profile, data, query, rid)
        default, maximum = _LIMITS.get(stream, _DEFAULT_LIMITS)
        limit = query.limit(default, maximum)
        items = self._items(profile, data, stream, query)
        page = cursor_page(items, query, limit, scope=f"{profile.id}/{stream}")
        body: Record = {
            "request_id": rid,
            "data": [self._view(stream, r, query) for r in page.items],
        }
        _set_next_cursor(body, page.next_cursor, profile)
        return body

    def _items(
        self, profile: GrantProfile, data: GrantData, stream: str, query: Query
    ) -> Sequence[Record]:
        if stream == "events":
            return select_events(self.ds, profile, data, query, self.now())
        if stream in ("messages", "drafts") and query.boolean("query_imap"):
            return self._imap_items(profile, data, stream, query)
        filters = {
            "messages": filter_messages,
            "threads": filter_threads,
            "drafts": filter_drafts,
            "contacts": filter_contacts,
        }
        records = data.stream(stream)
        if stream == "messages" and self.imap_cache_days and profile.provider in IMAP_PROVIDERS:
            records = _recent(records, int(self.now()) - self.imap_cache_days * DAY)
        return filters[stream](records, query) if stream in filters else records

    def _imap_items(
        self, profile: GrantProfile, data: GrantData, stream: str, query: Query
    ) -> Sequence[Record]:
        """The IMAP server's own listing of one folder: any age, oldest first (UID order).

        Each record names only the queried folder. The date filters are ignored: Nylas
        does not document that they hold under ``query_imap``, so the simulator assumes
        the worst.
        """
        if profile.provider not in IMAP_PROVIDERS:
            raise bad_request("query_imap is only supported for IMAP, Yahoo and iCloud grants")
        folder = query.one("in")
        if not folder:
            raise bad_request("in is required when query_imap is true")
        if stream == "messages" and data.large is not None:
            return data.large.folder_listing(folder)
        records = [r for r in data.stream(stream) if folder in (r.get("folders") or [])]
        records.sort(key=lambda r: (r.get("date") or 0, r["id"]))
        return [{**r, "folders": [folder]} for r in records]

    def _view(self, stream: str, record: Record, query: Query) -> Record:
        if stream == "messages":
            record = _message_view(record, query)
        return select_fields(record, query)

    def _schedules(self, profile: GrantProfile, data: GrantData, query: Query, rid: str) -> Any:
        items = [select_fields(s, query) for s in data.scheduled_messages]
        shape = self.ds.schedule_shape(profile)
        # All three shapes are documented by one source or another.
        if shape == "list":
            return items
        if shape == "data":
            return {"request_id": rid, "data": items}
        return {"request_id": rid, "data": {"schedules": items}}

    def _grant_object(
        self, profile: GrantProfile, stream: str, object_id: str, query: Query, rid: str
    ) -> Record:
        check_access(profile, stream)
        data = self.ds.grant_data(profile)
        records: Sequence[Record]
        if stream == "events":
            records = [e.record for entries in data.events.values() for e in entries]
        else:
            records = data.stream(stream)
        for record in records:
            if record["id"] == object_id:
                return {"request_id": rid, "data": self._view(stream, record, query)}
        raise not_found(f"{stream[:-1].capitalize()} not found")


def _recent(records: Sequence[Record], cutoff: int) -> Sequence[Record]:
    """Messages dated at or after ``cutoff``: what Nylas caches of an IMAP mailbox."""
    if isinstance(records, LazyRecords):
        return records.between(cutoff - 1, None)
    return [r for r in records if (r.get("date") or 0) >= cutoff]


def _ordering(query: Query) -> tuple[str, str]:
    """``sort_by`` (created_at default) and ``order_by`` (desc default), validated."""
    sort_by = query.one("sort_by") or query.one("sortBy") or "created_at"
    order = query.one("order_by") or query.one("orderBy") or "desc"
    if sort_by not in _SORT_KEYS:
        raise bad_request("sort_by must be created_at or updated_at")
    if order not in _ORDERS:
        raise bad_request("order_by must be asc or desc")
    return sort_by, order


def _sorted(items: list[Any], sort_by: str, order: str) -> list[Any]:
    """Items sorted by ``sort_by`` then id, in ``order``."""

    def key(item: Any) -> tuple[int, str]:
        if isinstance(item, dict):
            return item[sort_by], item["id"]
        return getattr(item, sort_by), item.id

    return sorted(items, key=key, reverse=order == "desc")


def _set_next_cursor(body: Record, cursor: str | None, profile: GrantProfile) -> None:
    if cursor:
        body["next_cursor"] = cursor
        return
    # The end of a list is signalled three ways in the wild; vary it by grant.
    style = profile.index % 3
    if style == 0:
        body["next_cursor"] = None
    elif style == 2:
        body["next_cursor"] = ""


def _message_view(record: Record, query: Query) -> Record:
    fields = set(query.many("fields"))
    if "raw_mime" in fields:
        keys = ("grant_id", "object", "id")
        return {**{k: record[k] for k in keys}, "raw_mime": raw_mime(record)}
    if "include_headers" in fields:
        record = {**record, "headers": message_headers(record)}
    elif "include_basic_headers" in fields:
        record = {**record, "headers": message_headers(record, basic=True)}
    if "include_tracking_options" in fields:
        record = {**record, "tracking_options": tracking_options(record)}
    return record
