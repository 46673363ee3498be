"""Singer output: whole lines, even when a stop signal lands, and STATE kept in proportion."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import typing as t

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from tap_nylas.sdk import StateWriter

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from singer_sdk.helpers.types import TapState
    from singer_sdk.singerlib import Message

#: Exit code when the target stops reading: 128 + SIGPIPE, as a shell reports it.
EXIT_TARGET_STOPPED = 141
#: Characters valid raw in JSON that `str.splitlines()` (and some JSON-lines readers)
#: take for line ends, as msgspec writes them (UTF-8), and as the tap writes them.
LINE_BREAKS_IN_JSON = (
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
    (b"\xc2\x85", b"\\u0085"),
)
# Occurrences of a lead byte checked one by one before searching for the sequences.
LEADS_CHECKED = 16
logger = logging.getLogger("tap-nylas")


class WholeLineWriter(MsgSpecWriter):
    """msgspec writer (fast) that writes RECORDs in batches and whole lines only.

    RECORD lines are batched up to `BATCH_BYTES`: one write per line was a quarter of
    the writer's time (profile, latency 0). Any other message (SCHEMA, STATE,
    ACTIVATE_VERSION) goes out at once with the records before it, so a STATE never
    reaches the target ahead of the records it vouches for; records still held when a
    run dies are after the last STATE, and are read again by the next run.

    A signal can arrive while a large record is half written to a full pipe. Writing the
    final STATE from the signal handler at that moment would splice it into the record
    and hand the target a broken line; instead the stop waits for the line's end.
    """

    BATCH_BYTES = 1 << 16

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """A writer with no message in progress and no stop pending."""
        super().__init__(*args, **kwargs)
        self.writing = False
        self.pending_stop: Callable[[], None] | None = None
        self.bytes_written = 0
        self._batch = bytearray()

    @override
    def format_message(self, message: Message) -> bytearray:
        """The message as one JSON line, U+2028, U+2029 and U+0085 escaped.

        JSON allows them raw inside strings, but a target splitting its input with
        Python's `str.splitlines()` would cut the record in two there.
        """
        line = super().format_message(message)
        # `int in bytearray` is a bare memchr (25 ns): most lines have neither lead byte.
        if (0xE2 in line or 0xC2 in line) and holds_line_break(line):
            for raw, escaped in LINE_BREAKS_IN_JSON:
                line = line.replace(raw, escaped)
        return line

    @override
    def write_message(self, message: Message) -> None:
        """Write one whole line (a RECORD maybe later), then carry out a stop requested."""
        with self._uninterrupted():
            line = self.format_message(message)
            self._batch += line
            self.bytes_written += len(line)
            if not isinstance(message, RecordMessage) or len(self._batch) >= self.BATCH_BYTES:
                self.flush()

    def flush(self) -> None:
        """Write the lines held back."""
        if not self._batch:
            return
        with self._uninterrupted():
            try:
                write_all(sys.stdout.buffer, self._batch)
                sys.stdout.flush()
            except BrokenPipeError:
                target_stopped_reading()
            self._batch.clear()

    @contextlib.contextmanager
    def _uninterrupted(self) -> Iterator[None]:
        """Hold a stop signal (`pending_stop`) until the outermost write is done."""
        outermost = not self.writing
        self.writing = True
        try:
            yield
        finally:
            if outermost:
                self.writing = False
        if outermost and (stop := self.pending_stop):
            self.pending_stop = None
            stop()


def holds_line_break(line: bytearray) -> bool:
    r"""Whether the UTF-8 `line` holds U+2028 (E2 80 A8), U+2029 (E2 80 A9) or U+0085 (C2 85).

    On the writer's hot path: each lead byte is found with `find(int)`, a memchr, and
    the bytes after it compared. Searching for the sequences (`b"\xe2\x80\xa8" in
    line`) took 22 µs each on a 34 KB message, twice the cost of encoding it: CPython's
    search crawls over JSON text. E2 also starts typographic quotes and dashes: past
    `LEADS_CHECKED` of them, the line is searched for the sequences after all.
    """
    end = len(line)
    at, checked = line.find(0xE2), 0
    while 0 <= at < end - 2:
        if line[at + 1] == 0x80 and line[at + 2] in {0xA8, 0xA9}:
            return True
        checked += 1
        if checked == LEADS_CHECKED:
            if b"\xe2\x80\xa8" in line or b"\xe2\x80\xa9" in line:
                return True
            break
        at = line.find(0xE2, at + 3)
    at, checked = line.find(0xC2), 0
    while 0 <= at < end - 1:
        if line[at + 1] == 0x85:
            return True
        checked += 1
        if checked == LEADS_CHECKED:
            return b"\xc2\x85" in line
        at = line.find(0xC2, at + 2)
    return False


def write_all(out: t.BinaryIO, data: bytes | bytearray) -> None:
    """Write all of `data`, however many writes it takes.

    Unbuffered (`python -u`), stdout is a raw file, whose write may stop part-way when
    a signal lands and says so only in its return value: a SIGTERM in a 90 KB record
    once spliced the final STATE into it (seen in CI).
    """
    # Views released at once, even on error: msgspec re-fills the same buffer next time.
    with memoryview(data) as whole:
        start = 0
        while start < len(whole):
            with whole[start:] as rest:
                start += out.write(rest) or 0


def target_stopped_reading() -> t.NoReturn:
    """End the run at once, in one line: nothing more can reach the target.

    SystemExit, so the SDK does not log it as a stream's failure with a traceback. As
    the Python docs advise (signal module, "Note on SIGPIPE"), stdout is pointed at
    /dev/null first: the interpreter's own flush at exit would otherwise fail again and
    print "Exception ignored ... BrokenPipeError".
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # stdout is not a file descriptor (tests): nothing will flush it at exit
    logger.error(
        "The target stopped reading (stdout closed): ending the run. The last STATE the "
        "target stored is where the next run resumes."
    )
    raise SystemExit(EXIT_TARGET_STOPPED)


class ProportionalStateWriter(StateWriter):
    """Write STATE at most every few minutes, and only once the output outweighs it.

    Each STATE carries every grant's bookmark of every stream (megabytes at 10,000
    grants), while the SDK asks for one after each stream and every 10,000 records: 10
    STATE messages made up 15% of a 10,000-grant run's output (measured). A STATE is
    held back until INTERVAL_SECONDS passed since the last one and RATIO times its size
    of output followed it; the one held last is written when the sync ends or is
    stopped (`flush`). A run killed in between resumes from the last STATE written:
    nothing is lost, a few minutes of work are redone.
    """

    RATIO = 20
    INTERVAL_SECONDS = 300.0

    def __init__(self, writer: WholeLineWriter) -> None:
        """Write through `writer`, whose byte count paces the STATE messages."""
        super().__init__(writer)
        self._writer = writer
        self._held: TapState | None = None
        self._state_bytes: int | None = None
        self._entries_at_last_state = 0
        self._output_at_last_state = 0
        self._time_of_last_state = time.monotonic()

    @override
    def write_state(self, state: TapState) -> None:
        """Write `state` now if the last STATE is old and small enough, else hold it."""
        self._held = state
        if time.monotonic() - self._time_of_last_state < self.INTERVAL_SECONDS:
            return
        if self._state_bytes is None:  # learn what a STATE costs once; then from each write
            self._state_bytes = len(msgspec.json.encode(state))
            self._entries_at_last_state = _partition_entries(state)
        # The state grows with every grant read: scale the last size by its entry count.
        growth = max(_partition_entries(state), 1) / max(self._entries_at_last_state, 1)
        since_last = self._writer.bytes_written - self._output_at_last_state
        if since_last >= self.RATIO * self._state_bytes * growth:
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
            self._entries_at_last_state = _partition_entries(state)
        self._output_at_last_state = self._writer.bytes_written
        self._time_of_last_state = time.monotonic()


def _partition_entries(state: TapState) -> int:
    """Bookmark entries in a tap state: what its size grows with."""
    streams = state.get("bookmarks") or {}
    return sum(len(stream.get("partitions") or ()) for stream in streams.values())
