"""The simulator changes between syncs: deletions and message flags, by API and by HTTP."""

from __future__ import annotations

import json
import typing as t
import urllib.error
import urllib.request

import pytest

from nylas_simulator import NylasSimulator

API_KEY = "sim-key-changes"


@pytest.fixture
def sim() -> t.Iterator[NylasSimulator]:
    # A small cache: changes must survive a grant's data being evicted and made again.
    with NylasSimulator(
        seed=3, grants=10, records_per_grant=12, api_key=API_KEY, cache_size=1
    ) as s:
        yield s


def grant(sim: NylasSimulator, provider: str) -> str:
    return next(g.id for g in sim.grants if g.serving and g.provider == provider)


def call(sim: NylasSimulator, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(  # noqa: S310 - the local simulator
        sim.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def listed(sim: NylasSimulator, path: str) -> list[dict]:
    status, body = call(sim, "GET", path)
    assert status == 200, body
    return body["data"]


def test_a_deleted_message_is_gone_and_its_thread_updated(sim: NylasSimulator) -> None:
    gid = grant(sim, "google")
    messages = sim.records("messages")
    threads = {t["id"]: t for t in sim.records("threads") if t["grant_id"] == gid}
    victim = next(
        m
        for m in messages
        if m["grant_id"] == gid and len(threads[m["thread_id"]]["message_ids"]) > 1
    )
    sim.delete("messages", gid, victim["id"])
    after = {(m["grant_id"], m["id"]) for m in sim.records("messages")}
    assert (gid, victim["id"]) not in after
    assert len(after) == len(messages) - 1
    thread = next(t for t in sim.records("threads") if t["id"] == victim["thread_id"])
    assert victim["id"] not in thread["message_ids"]
    assert thread["message_ids"]
    ids = [m["id"] for m in listed(sim, f"/v3/grants/{gid}/messages?limit=200")]
    assert victim["id"] not in ids
    with pytest.raises(KeyError):
        sim.delete("messages", gid, victim["id"])


def test_a_thread_loses_its_last_message_and_is_gone(sim: NylasSimulator) -> None:
    gid = grant(sim, "microsoft")
    thread = next(t for t in sim.records("threads") if t["grant_id"] == gid)
    for message_id in thread["message_ids"]:
        sim.delete("messages", gid, message_id)
    assert thread["id"] not in {t["id"] for t in sim.records("threads") if t["grant_id"] == gid}


def test_flags_and_folders_of_a_message_change_by_http(sim: NylasSimulator) -> None:
    gid = grant(sim, "google")
    message = next(m for m in sim.records("messages") if m["grant_id"] == gid and m["unread"])
    status, body = call(
        sim,
        "PUT",
        f"/v3/grants/{gid}/messages/{message['id']}",
        {"unread": False, "starred": True, "folders": ["TRASH"]},
    )
    assert status == 200, body
    assert (body["data"]["unread"], body["data"]["starred"], body["data"]["folders"]) == (
        False,
        True,
        ["TRASH"],
    )
    truth = next(m for m in sim.records("messages") if m["id"] == message["id"])
    assert (truth["unread"], truth["starred"], truth["folders"]) == (False, True, ["TRASH"])
    thread = next(t for t in sim.records("threads") if t["id"] == message["thread_id"])
    assert "TRASH" in thread["folders"]
    assert thread["starred"] is True
    # what a sweep reads: select= keeps the new flags
    swept = listed(sim, f"/v3/grants/{gid}/messages?select=id,unread,starred,folders&limit=200")
    assert {"id": message["id"], "unread": False, "starred": True, "folders": ["TRASH"]} in swept
    status, _ = call(sim, "PUT", f"/v3/grants/{gid}/messages/{message['id']}", {"subject": "x"})
    assert status == 400


def test_events_contacts_and_folders_are_deleted_by_http(sim: NylasSimulator) -> None:
    gid = grant(sim, "microsoft")
    event = next(e for e in sim.records("events") if e["grant_id"] == gid)
    path = f"/v3/grants/{gid}/events/{event['id']}"
    assert call(sim, "DELETE", path)[0] == 400  # calendar_id is required
    assert call(sim, "DELETE", f"{path}?calendar_id={event['calendar_id']}")[0] == 200
    keys = {(e["grant_id"], e["calendar_id"], e["id"]) for e in sim.records("events")}
    assert (gid, event["calendar_id"], event["id"]) not in keys
    assert call(sim, "DELETE", f"{path}?calendar_id={event['calendar_id']}")[0] == 404

    contact = next(c for c in sim.records("contacts") if c["grant_id"] == gid)
    assert call(sim, "DELETE", f"/v3/grants/{gid}/contacts/{contact['id']}")[0] == 200
    assert contact["id"] not in {c["id"] for c in sim.records("contacts") if c["grant_id"] == gid}

    folder = next(f for f in sim.records("folders") if f["grant_id"] == gid)
    assert call(sim, "DELETE", f"/v3/grants/{gid}/folders/{folder['id']}")[0] == 200
    assert folder["id"] not in {f["id"] for f in sim.records("folders") if f["grant_id"] == gid}
    # a deleted folder (a Gmail label, say) is taken off every message
    assert not [m for m in sim.records("messages") if folder["id"] in m["folders"]]
    assert call(sim, "DELETE", f"/v3/grants/{gid}/drafts/x")[0] == 405


def test_changes_only_touch_their_own_grant(sim: NylasSimulator) -> None:
    before = sim.records("messages")
    gid = grant(sim, "google")
    other = [m for m in before if m["grant_id"] != gid]
    victim = next(m for m in before if m["grant_id"] == gid)
    sim.delete("messages", gid, victim["id"])
    assert [m for m in sim.records("messages") if m["grant_id"] != gid] == other
