"""An IMAP grant's history: when it is needed, and how one slice indexes, dedupes, resumes."""

from __future__ import annotations

import typing as t

from tap_nylas.history import (
    POSITION,
    TRUSTED_CACHE_DAYS,
    HistoryPlan,
    HistorySlice,
    plan_history,
    position_state,
)
from tap_nylas.slicing import DAY

NOW = 1_800_000_000
BEFORE = NOW - TRUSTED_CACHE_DAYS * DAY


class FakePaginator:
    """A paginator the test finishes by hand."""

    def __init__(self, cursor: str | None) -> None:
        self.current_value = cursor
        self.finished = False


def history(plan: HistoryPlan, folders: list[str]) -> HistorySlice:
    logged: list[tuple[int, int, str]] = []
    piece = HistorySlice(
        {"grant_id": "g", "imap_history": True},
        FakePaginator(None),  # type: ignore[arg-type]
        plan=plan,
        new_paginator=FakePaginator,  # type: ignore[arg-type]
        on_folder=lambda *args: logged.append(args),
    )
    piece.start(folders)
    piece.logged = logged  # type: ignore[attr-defined]
    return piece


def page(piece: HistorySlice, records: list[dict], *, last: bool) -> list[dict]:
    """One page of the folder being listed; `last` ends the folder."""
    cursor = t.cast("FakePaginator", piece.paginator).current_value
    if last:
        t.cast("FakePaginator", piece.paginator).finished = True
    return piece.take([dict(r) for r in records], cursor)


def msg(mid: str, date: int) -> dict:
    return {"id": mid, "date": date}


def test_history_is_planned_once_per_grant_and_only_when_start_reaches_past_the_cache() -> None:
    assert plan_history(None, None, NOW) == HistoryPlan(before=BEFORE, after=None)
    assert plan_history({}, 1_000, NOW) == HistoryPlan(before=BEFORE, after=1_000)
    assert plan_history({"done": True}, 1_000, NOW) is None
    assert plan_history(None, BEFORE, NOW) is None  # start_date within the cache
    saved = {"before": 1_700_000_000, "folder": "INBOX", "cursor": "c2"}
    assert plan_history(saved, 1_000, NOW) == HistoryPlan(1_700_000_000, 1_000, "INBOX", "c2")
    # Whatever else a hand-edited state holds is not trusted.
    assert plan_history({"before": "x", "folder": 3}, None, NOW) == HistoryPlan(BEFORE, None)


def test_the_state_of_a_history_is_a_few_fields() -> None:
    plan = HistoryPlan(before=BEFORE, after=None)
    assert plan.state() == {"before": BEFORE}
    assert position_state(plan, ("INBOX", None)) == {"before": BEFORE, "folder": "INBOX"}
    assert position_state(plan, ("Sent", "c9")) == {
        "before": BEFORE,
        "folder": "Sent",
        "cursor": "c9",
    }
    assert position_state(plan, None) is None


def test_folders_are_indexed_then_read_and_a_message_is_emitted_once_with_every_folder() -> None:
    piece = history(HistoryPlan(before=BEFORE, after=1_000), ["Sent", "INBOX", "Receipts"])
    assert piece.folders == ["INBOX", "Receipts", "Sent"]  # ID order, the same every run
    old, older = BEFORE - 10, BEFORE - 20
    listing = {
        "INBOX": [msg("a", old), msg("b", older), msg("cached", BEFORE), msg("ancient", 999)],
        "Receipts": [msg("b", older)],
        "Sent": [msg("c", old)],
    }
    params = []
    for _ in listing:  # the index pass: nothing goes to the writer
        params.append(piece.params())
        assert page(piece, listing[piece.folder_id], last=True) == []
    assert [p["in"] for p in params] == ["INBOX", "Receipts", "Sent"]
    assert all(p["select"] == "id,date" and p["query_imap"] == "true" for p in params)
    emitted: list[dict] = []
    for _ in listing:
        assert "select" not in piece.params()
        emitted += page(piece, listing[piece.folder_id], last=True)
    assert piece.finished
    real = [r for r in emitted if r["id"]]
    assert {r["id"]: r["folders"] for r in real} == {
        "a": ["INBOX"],
        "b": ["INBOX", "Receipts"],
        "c": ["Sent"],
    }
    assert len(real) == 3  # b once; the cache's mail and mail before start_date not at all
    # Receipts emitted nothing of its own: its position still reaches the writer.
    assert {"id": "", POSITION: ("Receipts", None)} in emitted
    assert [step for *_, step in piece.logged] == ["indexed"] * 3 + ["read"] * 3  # type: ignore[attr-defined]


def test_a_resumed_history_reads_from_the_page_in_progress() -> None:
    plan = HistoryPlan(before=BEFORE, after=None, folder="Receipts", cursor="p2")
    piece = history(plan, ["INBOX", "Receipts", "Sent"])
    listing = {
        "INBOX": [msg("a", 1), msg("b", 2)],
        "Receipts": [msg("b", 2), msg("r", 3)],
        "Sent": [msg("s", 4), msg("r", 3)],
    }
    for _ in listing:
        page(piece, listing[piece.folder_id], last=True)
    # The message pass starts at Receipts, page p2: INBOX was emitted by the killed run.
    assert piece.folder_id == "Receipts"
    assert t.cast("FakePaginator", piece.paginator).current_value == "p2"
    assert piece.resuming  # were that page's cursor refused, the folder restarts:
    piece.restart_folder()
    assert t.cast("FakePaginator", piece.paginator).current_value is None
    assert not piece.resuming
    piece.paginator = FakePaginator("p2")  # type: ignore[assignment]
    emitted = page(piece, listing["Receipts"], last=True)
    emitted += page(piece, listing["Sent"], last=True)
    real = {r["id"]: r["folders"] for r in emitted if r["id"]}
    assert real == {"r": ["Receipts", "Sent"], "s": ["Sent"]}  # b went out with INBOX


def test_a_resume_folder_gone_restarts_the_message_pass() -> None:
    piece = history(HistoryPlan(BEFORE, None, folder="Gone", cursor="p7"), ["INBOX"])
    page(piece, [msg("a", 1)], last=True)
    assert piece.folder_id == "INBOX"
    assert t.cast("FakePaginator", piece.paginator).current_value is None


def test_a_grant_without_folders_has_no_history_to_read() -> None:
    assert history(HistoryPlan(BEFORE, None), []).finished


def test_a_message_moved_between_the_passes_is_still_emitted_once() -> None:
    piece = history(HistoryPlan(BEFORE, None), ["A", "B", "C"])
    for records in ([msg("m", 1), msg("n", 2)], [msg("o", 3)], []):  # index: m, n in A; o in B
        page(piece, records, last=True)
    emitted = page(piece, [msg("n", 2)], last=True)  # A: m moved out of it, to C
    emitted += page(piece, [msg("o", 3), msg("n", 2)], last=True)  # B: n copied into it
    emitted += page(piece, [msg("m", 1)], last=True)  # C
    real = [r for r in emitted if r["id"]]
    assert sorted(r["id"] for r in real) == ["m", "n", "o"]
    assert {r["id"]: r["folders"] for r in real} == {"m": ["C"], "n": ["A"], "o": ["B"]}
