"""Changes made to a grant's data between syncs: deletions and message flag edits.

Grant data is generated lazily and may be evicted from the cache, so changes are kept
apart and applied to every fresh copy (``apply``): a change made once stays made, and
the truth (``Dataset.truth_records``) includes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .util import Record

if TYPE_CHECKING:
    from .dataset import GrantData

#: Grant-scoped streams whose objects can be deleted.
DELETABLE = ("messages", "events", "contacts", "folders")
#: Message fields a PUT may change.
MESSAGE_FIELDS = ("unread", "starred", "folders")


@dataclass
class GrantChanges:
    """Everything changed in one grant."""

    #: stream -> ids deleted; events: (calendar_id or None for every calendar, id)
    deleted: dict[str, set[Any]] = field(default_factory=dict)
    #: message id -> fields set on it
    messages: dict[str, Record] = field(default_factory=dict)

    def delete(self, stream: str, object_id: str, calendar_id: str | None = None) -> None:
        """Remember a deletion."""
        key: Any = (calendar_id, object_id) if stream == "events" else object_id
        self.deleted.setdefault(stream, set()).add(key)
        if stream == "messages":
            self.messages.pop(object_id, None)

    def update_message(self, message_id: str, fields: Record) -> None:
        """Remember new values of a message's flags or folders."""
        unknown = set(fields) - set(MESSAGE_FIELDS)
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} of a message")
        self.messages.setdefault(message_id, {}).update(fields)


def contains(data: GrantData, stream: str, object_id: str, calendar_id: str | None) -> bool:
    """Whether the object exists in this copy of the grant's data."""
    if stream == "events":
        return any(
            e.record["id"] == object_id
            for cal, entries in data.events.items()
            if calendar_id in (None, cal)
            for e in entries
        )
    return any(r["id"] == object_id for r in data.stream(stream))


def apply(data: GrantData, changes: GrantChanges) -> None:
    """Apply `changes` to a freshly generated copy of a grant's data, in place."""
    gone = changes.deleted
    folders = gone.get("folders", set())
    if folders:
        data.folders = [f for f in data.folders if f["id"] not in folders]
    data.contacts = [c for c in data.contacts if c["id"] not in gone.get("contacts", set())]
    events = gone.get("events", set())
    if events:
        data.events = {
            cal: [
                e
                for e in entries
                if (cal, e.record["id"]) not in events and (None, e.record["id"]) not in events
            ]
            for cal, entries in data.events.items()
        }
    messages = gone.get("messages", set())
    if not (messages or folders or changes.messages):
        return
    kept = []
    touched: set[str] = set()
    for original in data.messages:
        if original["id"] in messages:
            touched.add(original["thread_id"])
            continue
        update = changes.messages.get(original["id"])
        message = original
        if update or any(f in folders for f in original.get("folders") or []):
            message = {**original, **(update or {})}
            message["folders"] = [f for f in message.get("folders") or [] if f not in folders]
            touched.add(message["thread_id"])
        kept.append(message)
    data.messages = kept
    _refresh_threads(data, touched)


def _refresh_threads(data: GrantData, touched: set[str]) -> None:
    """Threads made of their messages again: flags, folders, IDs and dates.

    A thread left without a message is gone.
    """
    by_thread: dict[str, list[Record]] = {}
    for message in data.messages:
        if message["thread_id"] in touched:
            by_thread.setdefault(message["thread_id"], []).append(message)
    owner = data.profile.email
    threads = []
    for thread in data.threads:
        if thread["id"] not in touched:
            threads.append(thread)
            continue
        msgs = sorted(by_thread.get(thread["id"], []), key=lambda m: (m["date"], m["id"]))
        if not msgs:
            continue
        received = [m["date"] for m in msgs if m["from"][0]["email"] != owner]
        sent = [m["date"] for m in msgs if m["from"][0]["email"] == owner]
        folders: dict[str, None] = {}
        for m in msgs:
            folders.update(dict.fromkeys(m.get("folders") or []))
        threads.append(
            {
                **thread,
                "message_ids": [m["id"] for m in msgs],
                "unread": any(m["unread"] for m in msgs),
                "starred": any(m["starred"] for m in msgs),
                "folders": list(folders),
                "earliest_message_date": msgs[0]["date"],
                "latest_message_received_date": max(received or [msgs[0]["date"]]),
                "latest_message_sent_date": max(sent) if sent else None,
            }
        )
    threads.sort(key=lambda t: (-t["latest_message_received_date"], t["id"]))
    data.threads = threads
