"""The catalog decides what records carry and what Nylas is asked for (`select=`)."""

from __future__ import annotations

import typing as t

import pytest
from jsonschema import Draft7Validator

from nylas_simulator import NylasSimulator
from tap_nylas.tap import TapNylas
from tests.support import API_URL, SyncResult, run_sync
from tests.support.fake_api import FakeNylas, query

SELECT_STREAMS = (
    "calendars",
    "contacts",
    "contact_groups",
    "drafts",
    "events",
    "folders",
    "messages",
    "threads",
)


@pytest.fixture
def api(requests_mock: object) -> FakeNylas:
    return FakeNylas(requests_mock)  # type: ignore[arg-type]


def catalog_for(config: dict, streams: t.Iterable[str]) -> dict:
    """The discovered catalog with only `streams` selected."""
    wanted = set(streams)
    catalog = TapNylas(config=config, validate_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


def entry(catalog: dict, stream: str) -> dict:
    return next(e for e in catalog["streams"] if e["tap_stream_id"] == stream)


def deselect(catalog: dict, stream: str, *fields: str) -> None:
    for metadata in entry(catalog, stream)["metadata"]:
        if metadata["breadcrumb"][-1:] and metadata["breadcrumb"][-1] in fields:
            metadata["metadata"]["selected"] = False


def remove(catalog: dict, stream: str, *fields: str) -> None:
    """As an older `--discover` would have it: the property is not in the schema at all."""
    found = entry(catalog, stream)
    for field in fields:
        del found["schema"]["properties"][field]
    found["metadata"] = [m for m in found["metadata"] if m["breadcrumb"][-1:] != [field]]


def sync(config: dict, catalog: dict) -> SyncResult:
    return run_sync(config, catalog=catalog)


def schemas(result: SyncResult) -> dict[str, dict]:
    return {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}


def assert_records_match_schema(result: SyncResult) -> None:
    sent = schemas(result)
    for stream, records in result.records.items():
        validator = Draft7Validator(sent[stream])
        declared = set(sent[stream]["properties"])
        for record in records:
            assert set(record) <= declared, (stream, set(record) - declared)
            validator.validate(record)


# -- records match the catalog ----------------------------------------------------------------


def test_removed_and_deselected_properties_are_not_emitted(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    api.pages["g1", "messages"] = [
        [{"id": "m1", "subject": "Hi", "body": "<p>x</p>", "snippet": "x", "unread": True}]
    ]
    api.pages["g1", "calendars"] = [[{"id": "c1", "name": "Work"}]]
    api.pages["g1", "events"] = [[{"id": "e1", "title": "Standup", "busy": True}]]
    catalog = catalog_for(config, ["messages", "events"])
    remove(catalog, "messages", "subject")
    remove(catalog, "events", "title")
    deselect(catalog, "messages", "body")

    result = sync(config, catalog)

    assert "subject" not in schemas(result)["messages"]["properties"]
    assert "title" not in schemas(result)["events"]["properties"]
    assert "body" not in schemas(result)["messages"]["properties"]
    [message] = result.records["messages"]
    assert message == {
        "grant_id": "g1",
        "id": "m1",
        "snippet": "x",
        "unread": True,
        "date": 1700000000,
    }
    [event] = result.records["events"]
    assert "title" not in event
    assert event["busy"] is True
    assert_records_match_schema(result)


def test_nested_properties_removed_from_the_catalog_are_not_emitted(
    api: FakeNylas, config: dict
) -> None:
    api.add_grant("g1")
    api.pages["g1", "messages"] = [
        [{"id": "m1", "from": [{"name": "Ann", "email": "ann@example.com"}], "folders": ["INBOX"]}]
    ]
    catalog = catalog_for(config, ["messages"])
    del entry(catalog, "messages")["schema"]["properties"]["from"]["items"]["properties"]["name"]

    result = sync(config, catalog)

    [message] = result.records["messages"]
    assert message["from"] == [{"email": "ann@example.com"}]
    assert message["folders"] == ["INBOX"]
    assert_records_match_schema(result)


def test_keys_and_replication_key_stay_even_when_deselected(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    api.pages["g1", "messages"] = [[{"id": "m1", "subject": "Hi"}]]
    catalog = catalog_for(config, ["messages"])
    deselect(catalog, "messages", "subject", "date", "id", "grant_id")

    [message] = sync(config, catalog).records["messages"]

    assert message == {"grant_id": "g1", "id": "m1", "date": 1700000000}


def test_unknown_fields_from_nylas_are_still_dropped(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    api.pages["g1", "folders"] = [[{"id": "f1", "name": "Inbox", "brand_new_field": 1}]]

    [folder] = sync(config, catalog_for(config, ["folders"])).records["folders"]

    assert "brand_new_field" not in folder


def test_fields_left_out_by_application_field_selection_are_absent_not_errors(
    api: FakeNylas, config: dict
) -> None:
    """Nylas can enforce field selection app-wide: then only the keys may come back."""
    streams = [*SELECT_STREAMS, "scheduled_messages"]
    api.add_grant("g1")
    for name in streams:
        resource = {"contact_groups": "contacts/groups", "scheduled_messages": "messages/schedules"}
        key = "schedule_id" if name == "scheduled_messages" else "id"
        api.pages["g1", resource.get(name, name)] = [[{key: f"{name}-1"}]]
    api.pages["g1", "calendars"] = [[{"id": "c1"}]]
    # even the replication key can be missing (FakeNylas would add it)
    api.mocker.get(f"{API_URL}/v3/grants/g1/threads", json={"data": [{"id": "t1"}]})

    result = sync(config, catalog_for(config, streams))

    assert {s for s, records in result.records.items() if records} == set(streams)
    assert_records_match_schema(result)
    assert result.records["threads"][0]["latest_message_received_date"] is None


# -- select= on the wire ---------------------------------------------------------------------


def test_nothing_is_selected_on_the_wire_when_every_field_is_wanted(
    api: FakeNylas, config: dict
) -> None:
    api.add_grant("g1")
    sync(config, catalog_for(config, [*SELECT_STREAMS, "scheduled_messages", "grants"]))
    assert api.mocker.request_history
    assert not [r.url for r in api.mocker.request_history if "select" in query(r)]


def test_select_asks_for_the_selected_fields_and_what_the_tap_needs(
    api: FakeNylas, config: dict
) -> None:
    api.add_grant("g1")
    api.pages["g1", "calendars"] = [[{"id": "c1"}]]
    catalog = catalog_for(config, ["messages", "threads", "events", "folders"])
    for stream in ("messages", "threads", "events"):
        properties = entry(catalog, stream)["schema"]["properties"]
        deselect(catalog, stream, *(p for p in properties if p not in {"subject", "title"}))
    deselect(catalog, "folders", "text_color", "system_folder")

    sync(config, catalog)

    def selected(fragment: str) -> set[str]:
        [request] = api.requests_to(fragment)
        return set(query(request)["select"][0].split(","))

    assert selected("/messages") == {"grant_id", "id", "date", "subject"}
    assert selected("/threads") == {"grant_id", "id", "latest_message_received_date", "subject"}
    assert selected("/events") == {"grant_id", "calendar_id", "id", "updated_at", "title"}
    # calendars are not selected, yet listed for the events partitions: ids only
    assert selected("/calendars") == {"grant_id", "id"}
    folder_fields = set(TapNylas(config=config).streams["folders"].schema["properties"])
    # system_folder_role is derived from system_folder: still asked for while the role is wanted
    assert selected("/folders") == folder_fields - {"system_folder_role", "text_color"}


def test_deselecting_the_derived_role_and_its_source_drops_both(
    api: FakeNylas, config: dict
) -> None:
    api.add_grant("g1")
    catalog = catalog_for(config, ["folders"])
    deselect(catalog, "folders", "system_folder", "system_folder_role")
    sync(config, catalog)
    [request] = api.requests_to("/folders")
    assert "system_folder" not in query(request)["select"][0].split(",")


def test_endpoints_without_field_selection_never_get_select(api: FakeNylas, config: dict) -> None:
    api.add_grant("g1")
    api.connectors = [{"provider": "google"}]
    catalog = catalog_for(config, ["grants", "connectors", "credentials", "scheduled_messages"])
    for stream in ("grants", "connectors", "credentials", "scheduled_messages"):
        deselect(catalog, stream, *entry(catalog, stream)["schema"]["properties"])
    sync(config, catalog)
    assert len(api.mocker.request_history) >= 4
    assert not [r.url for r in api.mocker.request_history if "select" in query(r)]


def test_select_is_worked_out_once_per_stream(config: dict) -> None:
    catalog = catalog_for(config, ["messages"])
    deselect(catalog, "messages", "body")
    stream = TapNylas(config=config, catalog=catalog).streams["messages"]
    assert stream.field_selection is stream.field_selection
    assert "body" not in stream.select_params()["select"].split(",")


def test_a_deselected_body_is_not_downloaded_from_the_simulator() -> None:
    """The bundled simulator honours `select`: bodies never cross the wire."""
    with NylasSimulator(seed=3, grants=4, records_per_grant=10, api_key="k") as sim:
        config = {"api_key": "k", "api_url": sim.url, "start_date": "2024-01-01T00:00:00Z"}
        catalog = catalog_for(config, ["messages"])
        deselect(catalog, "messages", "body")
        result = sync(config, catalog)
        requests = [e for e in sim.request_log if e["path"].endswith("/messages")]
    assert result.records["messages"]
    assert all("body" not in r for r in result.records["messages"])
    assert requests
    assert all("body" not in e["params"]["select"][0].split(",") for e in requests)
    assert_records_match_schema(result)
