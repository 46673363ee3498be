"""Server-side filters of the grant-scoped list endpoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .admin import GrantProfile
from .bigmail import LazyRecords
from .calendars import GOOGLE_EVENT_TYPES, EventEntry
from .dataset import Dataset, GrantData
from .query import ApiError, Query, bad_request, not_found
from .util import Record

DEFAULT_WINDOW = 30 * 86400  # the API's default events window: now .. now + ~1 month
ICLOUD_MAX_SPAN = 365 * 86400
_UPDATED_FILTER_PROVIDERS = ("google", "microsoft", "ews")
_CANCELLED_IGNORED = ("icloud", "ews")

Predicate = Callable[[Record], bool]


def _timestamp_filters(query: Query, field: str, after: str, before: str) -> list[Predicate]:
    """Strict ``after``/``before`` bounds on an integer field."""
    preds: list[Predicate] = []
    lo, hi = query.integer(after), query.integer(before)
    if lo is not None:
        preds.append(lambda r: r.get(field) is not None and r[field] > lo)
    if hi is not None:
        preds.append(lambda r: r.get(field) is not None and r[field] < hi)
    return preds


def _flag_is(flag: str, value: bool) -> Predicate:
    return lambda r: bool(r.get(flag)) == value


def _common_mail_filters(query: Query) -> list[Predicate]:
    preds: list[Predicate] = []
    for flag in ("unread", "starred"):
        value = query.boolean(flag)
        if value is not None:
            preds.append(_flag_is(flag, value))
    folder = query.one("in")
    if folder:
        preds.append(lambda r: folder in (r.get("folders") or []))
    text = query.one("subject")
    if text:
        preds.append(lambda r: text.lower() in (r.get("subject") or "").lower())
    thread_id = query.one("thread_id")
    if thread_id:
        preds.append(lambda r: r.get("thread_id") == thread_id)
    has_attachment = query.boolean("has_attachment")
    if has_attachment is not None:
        preds.append(lambda r: bool(r.get("attachments")) == has_attachment)
    return preds


def _apply(records: Sequence[Record], preds: list[Predicate]) -> Sequence[Record]:
    if not preds:
        return records
    return [r for r in records if all(p(r) for p in preds)]


def _dated(
    records: Sequence[Record], query: Query, field: str, after: str, before: str
) -> Sequence[Record]:
    """Strict time bounds, then the flag and text filters.

    A large mailbox is cut by binary search on its serving order (newest first); only
    the other filters make it build records.
    """
    if isinstance(records, LazyRecords):
        window = records.between(query.integer(after), query.integer(before))
        return _apply(window, _common_mail_filters(query))
    preds = _timestamp_filters(query, field, after, before)
    return _apply(records, preds + _common_mail_filters(query))


def filter_messages(records: Sequence[Record], query: Query) -> Sequence[Record]:
    """``received_after``/``received_before`` compare ``date`` strictly."""
    return _dated(records, query, "date", "received_after", "received_before")


def filter_threads(records: Sequence[Record], query: Query) -> Sequence[Record]:
    """``latest_message_after``/``_before`` compare ``latest_message_received_date``."""
    return _dated(
        records,
        query,
        "latest_message_received_date",
        "latest_message_after",
        "latest_message_before",
    )


def filter_drafts(records: Sequence[Record], query: Query) -> Sequence[Record]:
    """Drafts have no date filter, only the flag and text ones."""
    return _apply(records, _common_mail_filters(query))


def filter_contacts(records: Sequence[Record], query: Query) -> Sequence[Record]:
    """``email`` and ``group`` filters."""
    preds: list[Predicate] = []
    email = query.one("email")
    if email:
        preds.append(lambda r: any(e["email"] == email for e in r.get("emails") or []))
    group = query.one("group")
    if group:
        preds.append(lambda r: any(g["id"] == group for g in r.get("groups") or []))
    return _apply(records, preds)


def _resolve_calendar(ds: Dataset, profile: GrantProfile, data: GrantData, query: Query) -> str:
    calendar_id = query.one("calendar_id")
    if not calendar_id:
        raise bad_request("calendar_id is required")
    if calendar_id == "primary":
        if data.primary_calendar is None:
            raise bad_request("calendar_id=primary is not supported for this provider")
        calendar_id = data.primary_calendar
    if calendar_id not in data.events or ds.calendar_gone(profile.id, calendar_id):
        raise not_found("Calendar not found")
    return calendar_id


def _window(profile: GrantProfile, query: Query, now: float) -> tuple[int, int]:
    start = query.integer_or("start", int(now))
    end = query.integer_or("end", int(now) + DEFAULT_WINDOW)
    if end < start:
        raise bad_request("end must be greater than or equal to start")
    if profile.provider == "icloud" and end - start > ICLOUD_MAX_SPAN:
        raise bad_request("The time range between start and end cannot exceed one year for iCloud")
    return start, end


def _event_types(profile: GrantProfile, query: Query) -> frozenset[str] | None:
    if profile.provider != "google":
        return None  # event_type is Google-only; other providers ignore it
    wanted = query.many("event_type")
    unknown = set(wanted) - set(GOOGLE_EVENT_TYPES)
    if unknown:
        raise bad_request(f"invalid event_type: {sorted(unknown)[0]}")
    return frozenset(wanted or ["default"])


def _updated_bounds(profile: GrantProfile, query: Query) -> tuple[int | None, int | None]:
    if profile.provider not in _UPDATED_FILTER_PROVIDERS:
        return None, None
    return query.integer("updated_after"), query.integer("updated_before")


def select_events(
    ds: Dataset, profile: GrantProfile, data: GrantData, query: Query, now: float
) -> list[Record]:
    """Events of one calendar matching the window and the event filters."""
    calendar_id = _resolve_calendar(ds, profile, data, query)
    start, end = _window(profile, query, now)
    show_cancelled = bool(query.boolean("show_cancelled"))
    if profile.provider in _CANCELLED_IGNORED:
        show_cancelled = True  # ignored there; their calendars hold no cancelled events
    types = _event_types(profile, query)
    after, before = _updated_bounds(profile, query)

    def keep(e: EventEntry) -> bool:
        updated = e.record["updated_at"]
        return (
            e.overlaps(start, end)
            and (show_cancelled or not e.cancelled)
            and (types is None or e.event_type in types)
            and (after is None or updated > after)
            and (before is None or updated < before)
        )

    return [e.record for e in data.events[calendar_id] if keep(e)]


def check_access(profile: GrantProfile, stream: str) -> None:
    """401 for invalid or expired grants, 400 for unsupported provider/stream pairs."""
    if not profile.serving:
        raise ApiError(
            401,
            "unauthorized",
            "Grant is invalid or expired",
            provider_error={
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            },
        )
    if not profile.supports(stream):
        raise bad_request("Method not supported for provider")
