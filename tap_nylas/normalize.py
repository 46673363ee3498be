"""Values some providers send in another type than the Nylas spec, made to fit the schema.

Each case comes from Nylas's own SDK and CLI fixtures (README, "Types"). A value that
does not fit its schema type fails a typed load (target-postgres validates every
record), so it is converted here, in place, before the record is cut to the catalog.
"""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone

if t.TYPE_CHECKING:
    from collections.abc import Callable


def as_text(value: t.Any) -> t.Any:
    """A number where the spec says string (`94107`) → its decimal text (`"94107"`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def iso_epoch(text: str) -> int:
    """An ISO 8601 date-time (`Z` allowed, UTC if no offset) as epoch seconds.

    Raises ValueError for text that is not one.
    """
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def as_epoch(value: t.Any) -> t.Any:
    """An RFC 3339 string where the spec says epoch seconds → epoch seconds (else None)."""
    if not isinstance(value, str):
        return value
    try:
        return iso_epoch(value)
    except ValueError:
        return None  # unreadable: null fits the column, a string would fail the load


def folder(row: dict) -> None:
    """`system_folder`: boolean on Google, a role name ("inbox", "sent") on Microsoft.

    Kept boolean (one column type for every provider) and the role goes to
    `system_folder_role`; `attributes` as one string (Python SDK model) → a list.
    """
    value = row.get("system_folder")
    if isinstance(value, str):
        row["system_folder_role"] = value or None
        row["system_folder"] = bool(value)
    if isinstance(attributes := row.get("attributes"), str):
        row["attributes"] = [attributes]


def contact(row: dict) -> None:
    """`physical_addresses[].postal_code` as a number (SDK fixtures) → string."""
    for address in row.get("physical_addresses") or ():
        if isinstance(address, dict) and not isinstance(address.get("postal_code"), str):
            address["postal_code"] = as_text(address.get("postal_code"))


def grant(row: dict) -> None:
    """`created_at`/`updated_at` as RFC 3339 strings (the CLI parses both) → epoch."""
    for name in ("created_at", "updated_at"):
        if isinstance(row.get(name), str):
            row[name] = as_epoch(row[name])


def scheduled_message(row: dict) -> None:
    """`schedule_id` as a number (Node SDK model) → string: it is part of the key."""
    if not isinstance(row.get("schedule_id"), str):
        row["schedule_id"] = as_text(row.get("schedule_id"))


NORMALIZERS: dict[str, Callable[[dict], None]] = {
    "folders": folder,
    "contacts": contact,
    "grants": grant,
    "scheduled_messages": scheduled_message,
}
# Fields the tap derives from another one: `select=` must ask for the source instead.
DERIVED: dict[str, dict[str, str]] = {"folders": {"system_folder_role": "system_folder"}}


def normalizer(stream: str) -> Callable[[dict], None] | None:
    """The stream's type fixes, if it has any."""
    return NORMALIZERS.get(stream)


def derived_fields(stream: str) -> dict[str, str]:
    """Derived field → the Nylas field it comes from."""
    return DERIVED.get(stream, {})
