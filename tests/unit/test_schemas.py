"""Static checks of the stream JSON Schemas in tap_nylas/schemas (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from singer_sdk.schema.source import SchemaDirectory

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "tap_nylas" / "schemas"

KEYS = {
    "grants": ["id"],
    "connectors": ["provider"],
    "credentials": ["provider", "id"],
    "calendars": ["grant_id", "id"],
    "contacts": ["grant_id", "id"],
    "contact_groups": ["grant_id", "id"],
    "drafts": ["grant_id", "id"],
    "events": ["grant_id", "calendar_id", "id"],
    "folders": ["grant_id", "id"],
    "messages": ["grant_id", "id"],
    "scheduled_messages": ["grant_id", "schedule_id"],
    "threads": ["grant_id", "id"],
}

GRANT = "41009df5-bf11-4c97-aa18-b285b5f2e386"

MESSAGE = {
    "attachments": [
        {
            "content_disposition": 'attachment; filename="invite.ics"',
            "content_id": None,
            "content_type": "application/ics",
            "filename": "invite.ics",
            "grant_id": GRANT,
            "id": "70jcsv367jaiavt4njeu4xswg",
            "is_inline": False,
            "size": 1708,
        },
    ],
    "bcc": [],
    "body": "<div>Hello, I just sent a message using Nylas!</div>",
    "cc": [{"email": "arya.stark@example.com"}],
    "created_at": 1635355739,
    "date": 1635355739,
    "folders": ["INBOX", "UNREAD"],
    "from": [{"name": "Daenerys Targaryen", "email": "daenerys.t@example.com"}],
    "grant_id": GRANT,
    "headers": [
        {"name": "Message-ID", "value": "<CAE=abc123@mail.gmail.com>"},
        {"name": "Subject", "value": "=?Windows-1252?Q?Hello_from_Nylas!?="},
    ],
    "id": "18c7f6a5b3e9d2a1",
    "metadata": {"key1": "campaign-42"},
    "object": "message",
    "reply_to": [{"name": "Daenerys Targaryen", "email": "daenerys.t@example.com"}],
    "snippet": "Hello, I just sent a message using Nylas!",
    "starred": False,
    "subject": "Hello from Nylas!",
    "thread_id": "18c7f6a5b3e9d2a0",
    "to": [{"name": "Jon Snow", "email": "j.snow@example.com"}],
    "tracking_options": {"label": "hey", "links": True, "opens": True, "thread_replies": False},
    "unread": True,
}

EVENT = {
    "busy": True,
    "calendar_id": "nyla@example.com",
    "conferencing": {
        "provider": "Zoom Meeting",
        "details": {
            "meeting_code": "code-123456",
            "password": "password-123456",
            "phone": ["+1 234 555 6789"],
            "url": "https://zoom.us/j/1234567890?pwd=1234567890",
        },
    },
    "created_at": 1661874192,
    "creator": {"email": "nyla@example.com", "name": "Nyla"},
    "description": "<p>Come ready to skate</p>",
    "grant_id": GRANT,
    "hide_participants": False,
    "html_link": "https://www.google.com/calendar/event?eid=bTMzcGJrNW4yYjk4bjk3OWE4",
    "ical_uid": "5d3qmne77v32r8l4phyuksl2x@google.com",
    "id": "5d3qmne77v32r8l4phyuksl2x",
    "location": "Roller Rink",
    "master_event_id": None,
    "metadata": {"your_key": "your_value"},
    "notetaker": {
        "id": "notetaker-123456",
        "name": "Nylas Notetaker",
        "meeting_settings": {
            "audio_recording": True,
            "transcription": True,
            "transcription_settings": {"expected_languages": ["en", "es"]},
            "video_recording": True,
        },
    },
    "object": "event",
    "organizer": {"email": "organizer@example.com", "name": ""},
    "participants": [
        {"email": "aristotle@example.com", "name": "Aristotle", "status": "maybe"},
        {"name": "Room-less guest", "status": "noreply"},
    ],
    "read_only": False,
    "recurrence": ["RRULE:FREQ=WEEKLY;BYDAY=MO", "EXDATE:20211011T000000Z"],
    "reminders": {
        "use_default": False,
        "overrides": [{"reminder_minutes": 10, "reminder_method": "email"}],
    },
    "resources": [{"email": "conference-room@resources.google.com", "name": "Room 1"}],
    "sequence": 2,
    "status": "confirmed",
    "title": "Birthday Party",
    "updated_at": 1661874192,
    "visibility": "private",
    "when": {
        "object": "timespan",
        "start_time": 1661874192,
        "end_time": 1661877792,
        "start_timezone": "America/New_York",
        "end_timezone": "America/New_York",
    },
}

EXAMPLES: dict[str, list[dict]] = {
    "grants": [
        {
            "id": GRANT,
            "provider": "google",
            "grant_status": "valid",
            "email": "nyla@example.com",
            "scope": ["https://www.googleapis.com/auth/gmail.readonly", "openid"],
            "user_agent": "Mozilla/5.0",
            "ip": "192.0.2.10",
            "state": "my-state",
            "blocked": False,
            "created_at": 1617817109,
            "updated_at": 1617817109,
            "provider_user_id": "115617843920349584928",
            "settings": {},
            "workspace_id": None,
        },
    ],
    "connectors": [
        {
            "name": "Google",
            "provider": "google",
            "settings": {"client_id": "abc123.apps.googleusercontent.com", "topic_name": "t"},
            "scope": ["openid", "https://www.googleapis.com/auth/calendar"],
            "active_credential_id": "e19f8e1a-eb1c-41c0-b6a6-d2e59daf7f47",
        },
    ],
    "credentials": [
        {
            "provider": "microsoft",
            "id": "e19f8e1a-eb1c-41c0-b6a6-d2e59daf7f47",
            "name": "My Microsoft Admin Consent credential",
            "credential_type": "adminconsent",
            "created_at": 1656082371,
            "updated_at": 1656082371,
        },
    ],
    "calendars": [
        {
            "description": None,
            "grant_id": GRANT,
            "hex_color": "#039BE5",
            "hex_foreground_color": "#000000",
            "id": "nyla@example.com",
            "is_owned_by_user": True,
            "is_primary": True,
            "metadata": {"key1": "team"},
            "name": "nyla@example.com",
            "notetaker": {
                "name": "Nylas Notetaker",
                "meeting_settings": {"video_recording": False, "transcription": True},
                "rules": {
                    "event_selection": ["internal", "external"],
                    "participant_filter": {"participants_gte": 3},
                },
            },
            "object": "calendar",
            "read_only": False,
            "timezone": "America/Los_Angeles",
        },
    ],
    "contacts": [
        {
            "birthday": "1960-12-31",
            "company_name": "Nylas",
            "emails": [{"type": "work", "email": "john-work@example.com"}],
            "given_name": "John",
            "grant_id": GRANT,
            "groups": [{"id": "starred"}],
            "id": "5d3qmne77v32r8l4phyuksl2x",
            "im_addresses": None,
            "object": "contact",
            "phone_numbers": None,
            "physical_addresses": [
                {
                    "type": "work",
                    "street_address": "123 Main Street",
                    "postal_code": "94107",
                    "state": "CA",
                    "country": "US",
                    "city": "San Francisco",
                },
            ],
            "source": "address_book",
            "surname": "Doe",
            "web_pages": None,
        },
    ],
    "contact_groups": [
        {
            "grant_id": GRANT,
            "group_type": "system",
            "id": "starred",
            "name": "starred",
            "object": "contact_group",
            "path": "parentId/starred",
        },
    ],
    "drafts": [
        {
            **{k: v for k, v in MESSAGE.items() if k not in ("headers", "created_at")},
            "id": "r:8c1e9a2b7f",
            "object": "draft",
            "folders": ["DRAFT"],
        },
    ],
    "events": [
        EVENT,
        {**EVENT, "when": {"object": "time", "time": 1661874192, "timezone": "Europe/Paris"}},
        {**EVENT, "when": {"object": "date", "date": "2024-12-01"}, "conferencing": {}},
        {
            **EVENT,
            "when": {"object": "datespan", "start_date": "2024-12-01", "end_date": "2024-12-02"},
            "conferencing": {"provider": "Google Meet", "autocreate": {"conf_settings": {}}},
        },
    ],
    "folders": [
        {
            "attributes": ["\\Sent"],
            "grant_id": GRANT,
            "id": "SENT",
            "name": "SENT",
            "object": "folder",
            "system_folder": True,
            "total_count": 1412,
            "unread_count": 0,
        },
        {
            "child_count": 2,
            "grant_id": GRANT,
            "id": "AAMkADE2NmE0YjA3LWNlNTMtNDUzMC1hOGQ2",
            "name": "Projects",
            "parent_id": "AAMkADE2NmE0YjA3LWNlNTMtNDUzMC1hOGQ1",
            "attributes": None,
        },
    ],
    "messages": [
        MESSAGE,
        # fields=raw_mime returns only these four fields.
        {"grant_id": GRANT, "object": "message", "id": "18c7f6a5", "raw_mime": "TUlNRS1WZXJzaW9u"},
    ],
    "scheduled_messages": [
        {
            "grant_id": GRANT,
            "schedule_id": "8cd56334-6d95-432c-86d1-c5dab0ce98be",
            "status": {"code": "pending", "description": "schedule send awaiting send at time"},
        },
        {
            "grant_id": GRANT,
            "schedule_id": "rb856334-6d95-432c-86d1-c5dab0ce98be",
            "status": {"code": "success", "description": "schedule send succeeded"},
            "close_time": 1690579819,
        },
    ],
    "threads": [
        {
            "grant_id": GRANT,
            "id": "7ml84jdmfnw20sq59f30hirhe",
            "object": "thread",
            "has_attachments": False,
            "has_drafts": True,
            "earliest_message_date": 1634149514,
            "latest_message_received_date": 1634832749,
            "latest_message_sent_date": None,
            "participants": [{"email": "daenerys.t@example.com", "name": "Daenerys Targaryen"}],
            "snippet": "jnlnnn --Sent with Nylas",
            "starred": False,
            "subject": "Dinner Wednesday?",
            "unread": False,
            "message_ids": ["njeb79kFFzli09", "998abue3mGH4sk"],
            "draft_ids": ["a809kmmoW90Dx"],
            "folders": ["8l6c4d11y1p4dm4fxj52whyr9"],
            "latest_draft_or_message": {
                **MESSAGE,
                "object": "draft",
                "id": "a809kmmoW90Dx",
                "thread_id": "7ml84jdmfnw20sq59f30hirhe",
            },
        },
    ],
}


def _load(stream: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{stream}.json").read_text(encoding="utf-8"))


def _allows_null(node: dict) -> bool:
    types = node.get("type")
    return isinstance(types, list) and "null" in types


def _walk(node: dict, path: str):
    """Yield (path, subschema) for every nested property and array item."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield f"{path}[]", node["items"]
        yield from _walk(node["items"], f"{path}[]")


def _undeclared(value: object, node: dict, path: str) -> list[str]:
    """List the record paths that the schema does not declare (free-form objects aside)."""
    if isinstance(value, dict) and "properties" in node:
        return [
            miss
            for name, child in value.items()
            for miss in (
                _undeclared(child, node["properties"][name], f"{path}.{name}")
                if name in node["properties"]
                else [f"{path}.{name}"]
            )
        ]
    if isinstance(value, list) and "items" in node:
        return [miss for item in value for miss in _undeclared(item, node["items"], f"{path}[]")]
    return []


# Streams the tap derives rather than lists (sweeps, completion records), checked in
# tests/unit/test_warehouse_streams.py.
DERIVED = {"message_flags", "thread_flags", "event_states", "sync_coverage"}


def test_schema_files_match_streams():
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} == set(KEYS) | DERIVED
    assert (SCHEMA_DIR / "__init__.py").exists()


@pytest.mark.parametrize("stream", sorted(KEYS))
def test_schema(stream: str):
    text = (SCHEMA_DIR / f"{stream}.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    assert text == json.dumps(schema, indent=2, sort_keys=True) + "\n"
    Draft202012Validator.check_schema(schema)
    assert SchemaDirectory(SCHEMA_DIR).get_schema(stream, key_properties=KEYS[stream]) == schema

    assert schema["type"] == "object"
    keys = KEYS[stream]
    assert schema["required"] == keys
    for key in keys:
        assert schema["properties"][key] == {"type": "string"}, key
    for name, prop in schema["properties"].items():
        if name not in keys:
            assert _allows_null(prop), f"{stream}.{name} must allow null"

    for path, sub in _walk(schema, stream):
        types = sub["type"] if isinstance(sub["type"], list) else [sub["type"]]
        assert "number" not in types, path  # epoch seconds are integers
        assert "format" not in sub, path  # no date-time: values are sent as epoch ints
        if path.removeprefix(f"{stream}.") not in keys:
            assert _allows_null(sub), f"{path} must allow null"
        if "object" in types:
            assert "properties" in sub or sub.get("additionalProperties") is True, path
        if "array" in types:
            assert "items" in sub, path

    validator = Draft202012Validator(schema)
    for record in EXAMPLES[stream]:
        validator.validate(record)
        assert not _undeclared(record, schema, stream)


def test_examples_reject_wrong_types():
    messages = Draft202012Validator(_load("messages"))
    assert not messages.is_valid({**MESSAGE, "date": "2021-10-27T17:28:59Z"})
    assert not messages.is_valid({k: v for k, v in MESSAGE.items() if k != "grant_id"})
    assert not messages.is_valid({**MESSAGE, "id": None})
    events = Draft202012Validator(_load("events"))
    assert not events.is_valid({**EVENT, "when": {"object": "date", "date": 20241201}})
