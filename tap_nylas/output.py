"""Singer output that a stop signal cannot cut in half."""

from __future__ import annotations

import typing as t

from singer_sdk.contrib.msgspec import MsgSpecWriter

if t.TYPE_CHECKING:
    from collections.abc import Callable

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

    def write_message(self, message: Message) -> None:
        """Write one whole line, then carry out a stop requested meanwhile."""
        self.writing = True
        try:
            super().write_message(message)
        finally:
            self.writing = False
        if stop := self.pending_stop:
            self.pending_stop = None
            stop()
