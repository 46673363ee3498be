"""Singer output: whole lines, even when a stop signal lands, and STATE in proportion."""

from __future__ import annotations

import sys
import typing as t

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.helpers._state import StateWriter

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk.helpers.types import TapState
    from singer_sdk.singerlib import Message


class WholeLineWriter(MsgSpecWriter):
    """msgspec writer (fast) that finishes a message before honouring SIGTERM/SIGINT.

    A signal can arrive while a large record is half written to a full pipe. Writing the
    final STATE from the signal handler at that moment would splice it into the record
    and hand the target a broken line; instead the stop waits for the line's end.
    """

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """A writer with no message in progress and no stop pending."""
        super().__init__(*args, **kwargs)
        self.writing = False
        self.pending_stop: Callable[[], None] | None = None
        self.bytes_written = 0

    def write_message(self, message: Message) -> None:
        """Write one whole line, then carry out a stop requested meanwhile."""
        self.writing = True
        try:
            line = self.format_message(message)
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            self.bytes_written += len(line)
        finally:
            self.writing = False
        if stop := self.pending_stop:
            self.pending_stop = None
            stop()


class ProportionalStateWriter(StateWriter):
    """Write STATE once the output since the last one outweighs it RATIO to 1.

    Each STATE carries every grant's bookmark of every stream (megabytes at 10,000
    grants), while the SDK asks for one after each stream and every 10,000 records.
    Holding a STATE back until enough records followed keeps STATE to 1/RATIO of the
    output; the one held last is written when the sync ends or is stopped (`flush`).
    """

    RATIO = 20

    def __init__(self, writer: WholeLineWriter) -> None:
        """Write through `writer`, whose byte count paces the STATE messages."""
        super().__init__(writer)
        self._writer = writer
        self._held: TapState | None = None
        self._state_bytes: int | None = None
        self._output_at_last_state = 0

    def write_state(self, state: TapState) -> None:
        """Write `state` now if enough output followed the last STATE, else hold it."""
        self._held = state
        if self._state_bytes is None:  # learn what a STATE costs once; then from each write
            self._state_bytes = len(msgspec.json.encode(state))
        since_last = self._writer.bytes_written - self._output_at_last_state
        if since_last >= self.RATIO * self._state_bytes:
            self.flush()

    def flush(self, state: TapState | None = None) -> None:
        """Write `state`, or the one held back, now."""
        state = self._held if state is None else state
        self._held = None
        if state is None:
            return
        before = self._writer.bytes_written
        super().write_state(state)  # the SDK's writer skips a STATE equal to the last one
        if written := self._writer.bytes_written - before:
            self._state_bytes = written
        self._output_at_last_state = self._writer.bytes_written
