"""Values Nylas really sends in other types than its spec still fit the SCHEMA, and load.

The shapes come from Nylas's own fixtures (README, "Types"): Microsoft's `system_folder`
as a role name, `postal_code` as a number (Python/Ruby/Java SDK tests), grant timestamps
as RFC 3339 text (the CLI parses both), `attributes` as one string (Python SDK model),
`schedule_id` as a number (Node SDK model).
"""

from __future__ import annotations

import os
import time

import pytest
from jsonschema import Draft7Validator

from tests.support import run_sync
from tests.support.fake_api import FakeNylas
from tests.support.target_postgres import connect, load

STREAMS = ["grants", "folders", "contacts", "scheduled_messages"]


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    fake = FakeNylas(requests_mock)  # type: ignore[arg-type]
    fake.grants = [
        {"id": "g-ms", "provider": "microsoft", "grant_status": "valid", "created_at": 1700000000},
        {
            "id": "g-go",
            "provider": "google",
            "grant_status": "valid",
            "created_at": "2024-01-02T03:04:05Z",
            "updated_at": "2024-01-02T03:04:05.000+00:00",
        },
    ]
    fake.pages["g-ms", "folders"] = [
        [
            {"id": "AAMk-inbox", "name": "Inbox", "system_folder": "inbox"},
            {"id": "AAMk-sent", "name": "Sent Items", "system_folder": "sent"},
            {"id": "AAMk-proj", "name": "Projects", "system_folder": ""},
            {"id": "AAMk-misc", "name": "Misc", "attributes": "\\HasNoChildren"},
        ]
    ]
    fake.pages["g-go", "folders"] = [
        [
            {"id": "INBOX", "name": "INBOX", "system_folder": True, "attributes": ["\\Inbox"]},
            {"id": "Label_1", "name": "Receipts", "system_folder": False},
        ]
    ]
    fake.pages["g-go", "contacts"] = [
        [
            {
                "id": "c-number",
                "physical_addresses": [
                    {"type": "work", "city": "San Francisco", "postal_code": 94107},
                    {"type": "home", "postal_code": "02139"},
                    {"type": "other", "postal_code": None},
                ],
            },
            {"id": "c-none", "physical_addresses": None},
        ]
    ]
    fake.pages["g-go", "messages/schedules"] = [
        [{"schedule_id": 8675309, "status": {"code": "pending", "description": "queued"}}]
    ]
    return fake


def test_every_record_fits_the_schema_it_was_sent_with(api: FakeNylas, config: dict) -> None:
    result = run_sync(config, streams=STREAMS)
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    for stream in STREAMS:
        assert result.records[stream], stream
        validator = Draft7Validator(schemas[stream])
        for record in result.records[stream]:
            assert not list(validator.iter_errors(record)), (stream, record)

    folders = {r["id"]: r for r in result.records["folders"]}
    assert (
        folders["AAMk-inbox"]["system_folder"],
        folders["AAMk-inbox"]["system_folder_role"],
    ) == (
        True,
        "inbox",
    )
    assert folders["AAMk-sent"]["system_folder_role"] == "sent"
    assert folders["AAMk-proj"]["system_folder"] is False
    assert folders["AAMk-proj"]["system_folder_role"] is None
    assert folders["AAMk-misc"]["attributes"] == ["\\HasNoChildren"]
    assert folders["INBOX"]["system_folder"] is True
    assert "system_folder_role" not in folders["INBOX"]  # Google sends the boolean only

    contacts = {r["id"]: r for r in result.records["contacts"]}
    postal = [a["postal_code"] for a in contacts["c-number"]["physical_addresses"]]
    assert postal == ["94107", "02139", None]

    grants = {r["id"]: r for r in result.records["grants"]}
    assert grants["g-go"]["created_at"] == 1704164645
    assert grants["g-go"]["updated_at"] == 1704164645
    assert result.records["scheduled_messages"][0]["schedule_id"] == "8675309"


def test_variants_load_into_typed_postgres_columns(
    api: FakeNylas, config: dict, postgres_dsn: str
) -> None:
    """`tap | target-postgres`: the load succeeds and the columns hold the right values."""
    lines = run_sync(config, streams=STREAMS).raw.split("\n")
    schema = f"types_{os.getpid()}_{int(time.time())}"
    conn = connect(postgres_dsn)
    try:
        load(lines, postgres_dsn, schema)

        def column_type(table: str, column: str) -> str:
            return conn.execute(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s AND column_name = %s",
                (schema, table, column),
            ).fetchone()[0]

        assert column_type("folders", "system_folder") == "boolean"
        assert column_type("grants", "created_at") == "bigint"
        folders = dict(
            conn.execute(
                f'SELECT id, (system_folder, system_folder_role)::text FROM "{schema}".folders'  # noqa: S608
            ).fetchall()
        )
        assert folders == {
            "AAMk-inbox": "(t,inbox)",
            "AAMk-sent": "(t,sent)",
            "AAMk-proj": "(f,)",
            "AAMk-misc": "(,)",
            "INBOX": "(t,)",
            "Label_1": "(f,)",
        }
        postal = conn.execute(
            f"SELECT a->>'postal_code', jsonb_typeof(a->'postal_code') "  # noqa: S608
            f'FROM "{schema}".contacts, jsonb_array_elements(to_jsonb(physical_addresses)) a '
            "WHERE id = 'c-number'"
        ).fetchall()
        assert postal == [("94107", "string"), ("02139", "string"), (None, "null")]
        created = dict(conn.execute(f'SELECT id, created_at FROM "{schema}".grants').fetchall())  # noqa: S608
        assert created == {"g-ms": 1700000000, "g-go": 1704164645}
        schedule = conn.execute(f'SELECT schedule_id FROM "{schema}".scheduled_messages').fetchall()  # noqa: S608
        assert schedule == [("8675309",)]
    finally:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()
