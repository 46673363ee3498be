"""A stop signal never cuts a Singer line in half."""

from __future__ import annotations

import contextlib
import io
import json
import signal

import pytest
from singer_sdk.singerlib import RecordMessage

from tap_nylas.output import WholeLineWriter
from tap_nylas.tap import TapNylas
from tests.conftest import BASE_CONFIG


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

    assert stopped.value.code == 0
    out.flush()
    lines = out.buffer.getvalue().decode().split("\n")  # type: ignore[attr-defined]
    messages = [json.loads(line) for line in lines if line]
    assert [m["type"] for m in messages] == ["RECORD", "STATE"]
    assert messages[0]["record"]["body"] == "x" * 100_000


def test_sigterm_between_writes_stops_at_once() -> None:
    tap = TapNylas(config=BASE_CONFIG)
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        tap._handle_termination(signal.SIGTERM, None)
    out.flush()
    (line,) = out.buffer.getvalue().decode().splitlines()  # type: ignore[attr-defined]
    assert json.loads(line)["type"] == "STATE"
