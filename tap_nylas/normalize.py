"""Values some providers send in another type than the Nylas spec, made to fit the schema.

Each case comes from Nylas's own SDK and CLI fixtures (README, "Types"). A value that
does not fit its schema type fails a typed load (target-postgres validates every
record), so it is converted here, in place, before the record is cut to the catalog.

The free-form `settings` of grants and connectors also lose their secret-looking keys
here (README, "Security"), unless `keep_secret_settings` is set.
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


#: A `settings` key is secret-looking when its name, lower-cased and without `_`, `-`,
#: `.` or spaces, contains one of these (`client_secret`, `clientSecret`, `imap_password`,
#: `refresh_token`, `api-key`, `private_key_id`, ...). Erring on the side of dropping:
#: a warehouse keeps what it is given, and these would let anyone who reads it act as
#: the application or the user.
SECRET_NAME_FRAGMENTS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "apikey",
    "privatekey",
)
#: Streams whose records carry a free-form `settings` object.
SETTINGS_STREAMS = frozenset({"grants", "connectors"})
#: Nesting checked for secrets; anything deeper is dropped unread (a hostile answer
#: can nest up to the decoder's limit, ~1,000 levels).
MAX_SETTINGS_DEPTH = 16
_SEPARATORS = str.maketrans("", "", "_-. ")


def is_secret_name(name: str) -> bool:
    """Whether a settings key looks like it holds a secret (`SECRET_NAME_FRAGMENTS`)."""
    folded = str(name).lower().translate(_SEPARATORS)
    return any(fragment in folded for fragment in SECRET_NAME_FRAGMENTS)


def without_secrets(value: t.Any, depth: int = 0) -> t.Any:
    """`value` with every secret-looking key of every object in it left out (a copy)."""
    if isinstance(value, dict):
        return {
            name: without_secrets(item, depth + 1)
            for name, item in value.items()
            if not is_secret_name(name)
            and (depth < MAX_SETTINGS_DEPTH or not isinstance(item, (dict, list)))
        }
    if isinstance(value, list):
        return [
            without_secrets(item, depth + 1)
            for item in value
            if depth < MAX_SETTINGS_DEPTH or not isinstance(item, (dict, list))
        ]
    return value


def drop_secret_settings(row: dict) -> None:
    """`settings` (grants, connectors) without its secret-looking keys, at any depth."""
    if isinstance(settings := row.get("settings"), (dict, list)):
        row["settings"] = without_secrets(settings)


NORMALIZERS: dict[str, Callable[[dict], None]] = {
    "folders": folder,
    "contacts": contact,
    "grants": grant,
    "scheduled_messages": scheduled_message,
}
# Fields the tap derives from another one: `select=` must ask for the source instead.
DERIVED: dict[str, dict[str, str]] = {"folders": {"system_folder_role": "system_folder"}}


def normalizer(stream: str, *, keep_secret_settings: bool = False) -> Callable[[dict], None] | None:
    """The stream's type fixes, then (grants, connectors) the dropping of secret settings."""
    fix = NORMALIZERS.get(stream)
    if keep_secret_settings or stream not in SETTINGS_STREAMS:
        return fix
    if fix is None:
        return drop_secret_settings

    def fix_and_drop(row: dict) -> None:
        fix(row)
        drop_secret_settings(row)

    return fix_and_drop


def derived_fields(stream: str) -> dict[str, str]:
    """Derived field → the Nylas field it comes from."""
    return DERIVED.get(stream, {})
