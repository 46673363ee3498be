"""A stop signal never cuts a Singer line in half."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import typing as t

import pytest
from singer_sdk.singerlib import RecordMessage, StateMessage

from tap_nylas.output import ProportionalStateWriter, WholeLineWriter, write_all
from tap_nylas.tap import TapNylas
from tests.support import BASE_CONFIG


def test_sigterm_during_a_write_waits_for_the_line_then_writes_state_and_exits() -> None:
    tap = TapNylas(config=BASE_CONFIG)
    writer = tap.message_writer
    assert isinstance(writer, WholeLineWriter)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    record = RecordMessage(stream="messages", record={"id": "m1", "body": "x" * 100_000})

    with contextlib.redirect_stdout(out):
        writer.writing = True  # as if the signal landed inside the write below
        tap._handle_termination(signal.SIGTERM, None)  # deferred: no exit yet
        writer.writing = False
        with pytest.raises(SystemExit) as stopped:
            writer.write_message(record)  # finishes its line, then the stop happens

    assert stopped.value.code == 128 + signal.SIGTERM  # 143: stopped, not finished
    out.flush()
    lines = out.buffer.getvalue().decode().split("\n")  # type: ignore[attr-defined]
    messages = [json.loads(line) for line in lines if line]
    assert [m["type"] for m in messages] == ["RECORD", "STATE"]
    assert messages[0]["record"]["body"] == "x" * 100_000


def test_records_go_out_in_batches_and_always_before_a_state() -> None:
    writer = WholeLineWriter()
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")

    def written() -> list[str]:
        out.flush()
        text = out.buffer.getvalue().decode()  # type: ignore[attr-defined]
        return [json.loads(line)["type"] for line in text.splitlines()]

    with contextlib.redirect_stdout(out):
        for n in range(3):
            writer.write_message(RecordMessage(stream="s", record={"id": n}))
        assert written() == []  # held: one write per line was a quarter of the writer's time
        writer.write_message(StateMessage(value={"bookmarks": {}}))
        assert written() == ["RECORD"] * 3 + ["STATE"]  # never ahead of its records
        big = "x" * WholeLineWriter.BATCH_BYTES
        writer.write_message(RecordMessage(stream="s", record={"id": 3, "body": big}))
        assert written()[-1] == "RECORD"  # a full batch goes out at once
        writer.write_message(RecordMessage(stream="s", record={"id": 4}))
        writer.flush()  # at the end of a run
        assert written() == ["RECORD"] * 3 + ["STATE"] + ["RECORD"] * 2


def test_sigint_between_writes_stops_at_once() -> None:
    tap = TapNylas(config=BASE_CONFIG)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stopped:
        tap._handle_termination(signal.SIGINT, None)
    assert stopped.value.code == 130  # 128 + SIGINT
    out.flush()
    (line,) = out.buffer.getvalue().decode().splitlines()  # type: ignore[attr-defined]
    assert json.loads(line)["type"] == "STATE"


def test_state_is_held_back_until_the_output_outweighs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ProportionalStateWriter, "INTERVAL_SECONDS", 0)
    writer = WholeLineWriter()
    states = ProportionalStateWriter(writer)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    big_state = {"bookmarks": {"messages": {"partitions": [{"n": n} for n in range(300)]}}}

    with contextlib.redirect_stdout(out):
        for n in range(2000):
            writer.write_message(RecordMessage(stream="messages", record={"id": n, "x": "y" * 200}))
            big_state["bookmarks"]["messages"]["at"] = n  # a new state after every record
            states.write_state(big_state)
        states.flush()
    out.flush()

    lines = out.buffer.getvalue().decode().split("\n")  # type: ignore[attr-defined]
    state_bytes = sum(len(line) for line in lines if '"type":"STATE"' in line)
    record_bytes = sum(len(line) for line in lines if '"type":"RECORD"' in line)
    state_lines = [json.loads(line) for line in lines if '"type":"STATE"' in line]
    assert 2 <= len(state_lines) < 2000 / 10
    assert state_bytes <= record_bytes / ProportionalStateWriter.RATIO + len(lines[-2]) + 1
    assert state_lines[-1]["value"]["bookmarks"]["messages"]["at"] == 1999  # the last one


def test_state_waits_for_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("tap_nylas.output.time.monotonic", lambda: clock[0])
    writer = WholeLineWriter()
    states = ProportionalStateWriter(writer)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out):
        for n in range(10):
            writer.write_message(RecordMessage(stream="s", record={"x": "y" * 10_000}))
            clock[0] += 60
            states.write_state({"n": n})  # output outweighs the state, but 5 min must pass
        out.flush()
        text = out.buffer.getvalue().decode()  # type: ignore[attr-defined]
    written = [json.loads(line)["value"]["n"] for line in text.splitlines() if "STATE" in line]
    assert written == [4, 9]  # after 300 s, then after the next 300 s


def test_a_line_is_written_whole_even_when_a_write_stops_part_way() -> None:
    """A raw (unbuffered) stdout may take part of a write when a signal lands."""

    class Raw(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, chunk: t.Any) -> int:
            taken = bytes(chunk[:4096])  # at most a page a call, as an interrupted write(2)
            self.data += taken
            return len(taken)

    raw = Raw()
    line = b'{"type":"RECORD","record":{"body":"' + b"x" * 90_000 + b'"}}\n'
    write_all(raw, line)  # type: ignore[arg-type]
    assert bytes(raw.data) == line
