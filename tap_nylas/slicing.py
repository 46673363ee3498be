"""How a partition is read: as slices, each paging on its own, split while it is read.

A grant-scoped stream declares its strategy (`slicing = TimeRanges(...)`); the
scheduler asks the stream, the stream asks its strategy. A leaf: it knows paginators and
records, not streams (what it needs of one is the `SlicedStream` protocol below).
"""

from __future__ import annotations

import itertools
import math
import typing as t
from dataclasses import dataclass

from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.pagination import BaseAPIPaginator

DAY = 86_400
# Time-range slices narrower than this are not split further: the split would cost
# more requests (each piece ends on a short page) than it saves.
MIN_MAIL_SLICE = 3600
# Pages a mailbox must hold below its first page before it is split.
MIN_PAGES_TO_SPLIT = 3
# Pages a range must hold below its first page before it is split again. Each split
# reads the range's first page twice and ends each new range on a short page: splitting
# ranges of 6+ pages made a 20,000-message mailbox cost 397 requests instead of 338 and
# took 12.5 s instead of 11.1 s (scenario C without faults); at 20 only the long pole
# (mail is denser lately) is split.
MIN_PAGES_TO_SPLIT_AGAIN = 20
MIN_EVENTS_SLICE = 7 * DAY


@dataclass
class Slice:
    """A part of a partition that pages on its own: its cursor, its filters, its range.

    `context` is the partition's context plus this slice's query parameters. A slice
    of a time-range split keeps only records whose replication key lies in
    [`low`, `high`] (bounds sent one second wider, as Nylas does not document whether
    they are inclusive) and none whose ID `exclude` names (emitted by the slice it was
    split from).
    """

    context: dict
    paginator: BaseAPIPaginator
    low: int | None = None
    high: int | None = None
    exclude: frozenset[str] = frozenset()
    pages: int = 0
    depth: int = 0
    #: Response bytes of the last page: what its records weigh in memory, roughly.
    last_size: int = 0
    #: Pages still to read, as the last page suggests (None: not known yet).
    pages_left: float | None = None
    #: A request budget of its own within the grant's (the scheduler's `lanes`), if any.
    lane: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the slice has no more pages."""
        return self.paginator.finished

    def holds(self, record: dict, key: str | None) -> bool:
        """Whether `record` belongs to this slice (and to no slice it overlaps)."""
        if self.exclude and record.get("id") in self.exclude:
            return False
        value = record.get(key) if key else None
        if not isinstance(value, int):
            return True
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


class SlicedStream(t.Protocol):
    """What a slicing strategy needs of the stream it reads."""

    @property
    def replication_key(self) -> str | None:
        """The field a time-range split cuts on."""

    def new_slice(self, context: dict) -> Slice:
        """A slice reading `context` from its first page."""

    def lower_bound(self, context: dict) -> int | None:
        """The partition's incremental lower bound (bookmark or start), if any."""


class WindowedStream(SlicedStream, t.Protocol):
    """A stream read inside a time window (events)."""

    @property
    def window(self) -> tuple[int, int]:
        """[start, end) of the run's window, epoch seconds."""

    def max_window(self, context: dict) -> int | None:
        """The widest window the partition's provider accepts, if it has a limit."""


class Slicing:
    """Read a partition as one slice, never split: the default strategy."""

    #: Whether slices overlap, so a record may come back and must be written once.
    overlapping: t.ClassVar[bool] = False

    @property
    def query_keys(self) -> tuple[str, ...]:
        """Keys of a slice's context that are sent as query parameters."""
        return ()

    def initial(self, stream: t.Any, context: dict) -> list[Slice]:
        """How a partition is read at first."""
        return [stream.new_slice(context)]

    def split(
        self, stream: t.Any, piece: Slice, records: list[dict], capacity: int
    ) -> list[Slice] | None:
        """Slices replacing `piece` after a page, to read it in parallel; None to go on.

        `capacity`: requests of the grant that may run at once (`max_requests_per_grant`).
        """
        return None

    def pages_left(self, stream: t.Any, piece: Slice, records: list[dict]) -> float | None:
        """Pages `piece` still has to read after `records` (None: no idea)."""
        return None


@dataclass(frozen=True)
class TimeRanges(Slicing):
    """A mailbox list read as disjoint ranges of its replication key.

    After the first page, a grant with more pages is split into time ranges read at
    once, each paging its own cursor (`max_requests_per_grant` bounds how many run).
    Nylas documents neither whether `*_after`/`*_before` are inclusive nor the order of
    threads, so the tap relies on neither: each range is asked one second wider on each
    side and keeps only records inside it, and the records of the page before the
    split are excluded by ID from the ranges. Splitting needs a lower bound
    (`start_date` or a bookmark): without one, adding filters could change what is read.
    """

    #: Query parameters bounding the replication key from below and from above; the
    #: partition's incremental filter is `since` at its lower bound.
    since: str
    until: str

    @property
    @override
    def query_keys(self) -> tuple[str, ...]:
        """The range's bounds."""
        return (self.since, self.until)

    @override
    def initial(self, stream: SlicedStream, context: dict) -> list[Slice]:
        """One slice from the partition's lower bound, when it has one."""
        lower = stream.lower_bound(context)
        bound = {} if lower is None else {self.since: lower}
        return [stream.new_slice({**context, **bound})]

    @override
    def split(
        self, stream: SlicedStream, piece: Slice, records: list[dict], capacity: int
    ) -> list[Slice] | None:
        """After a first page with more to come, ranges covering what the slice covers.

        How many ranges comes from the first page: Nylas lists mail newest first, so the
        dates it spans tell how many pages lie below it (`MIN_PAGES_TO_SPLIT` at least,
        else the split costs more requests than it saves). The order only steers this
        estimate; what is read does not depend on it.
        """
        key = stream.replication_key or ""
        low = self._low(piece)
        if piece.pages != 1 or piece.finished or low is None or capacity < 1:
            return None
        pages_below = self.pages_left(stream, piece, records)
        if pages_below is None:
            return None  # records a range cannot place would come back in every range
        oldest = min(int(r[key]) for r in records)
        # A range split before splits again only when it still holds many pages: mail
        # is denser lately, so equal time ranges hold unequal mail.
        below = min(
            2 * capacity if piece.depth == 0 else capacity,
            math.ceil(pages_below / 2),
            (oldest - low) // MIN_MAIL_SLICE,
        )
        threshold = MIN_PAGES_TO_SPLIT_AGAIN if piece.depth else MIN_PAGES_TO_SPLIT
        if pages_below < threshold or below < 2:
            return None
        exclude = frozenset(piece.exclude | {r["id"] for r in records})
        step = (oldest - low) // below
        # Ranges below the first page, then one from its oldest date up, where its own
        # records come back once more and are dropped by ID.
        edges: list[int | None] = [low + step * n for n in range(below)]
        edges += [oldest, piece.high]
        base = {k: v for k, v in piece.context.items() if k not in {self.since, self.until}}
        slices = []
        for n, (start, end) in enumerate(itertools.pairwise(edges)):
            assert start is not None  # noqa: S101 - only the last edge is open
            first = n == 0
            context = dict(base)
            # The lowest range keeps the parent's lower filter exactly; the others own
            # [start, end] and ask one second wider.
            context[self.since] = piece.context[self.since] if first else start - 1
            own_end = None if end is None else (end if n == below else end - 1)
            if own_end is not None:
                context[self.until] = own_end + 1
            part = stream.new_slice(context)
            part.low = piece.low if first else start
            part.high = own_end
            part.exclude = exclude
            part.depth = piece.depth + 1
            slices.append(part)
        return slices

    @override
    def pages_left(self, stream: SlicedStream, piece: Slice, records: list[dict]) -> float | None:
        """Pages below this one, if the mail below is as dense as on it (newest first)."""
        key = stream.replication_key or ""
        dates = [date for r in records if isinstance(date := r.get(key), int)]
        low = self._low(piece)
        if low is None or not dates or len(dates) < len(records):
            return None  # a record without a date could lie anywhere
        oldest, newest = min(dates), max(dates)
        return max(oldest - low, 0) / max(newest - oldest, 1)

    def _low(self, piece: Slice) -> int | None:
        """The slice's own lower end, else the filter it was asked with."""
        low = piece.low if piece.low is not None else piece.context.get(self.since)
        return low if isinstance(low, int) else None


@dataclass(frozen=True)
class WindowChunks(Slicing):
    """An events window read in chunks: at the provider's limit, and shorter once busy.

    Nothing is assumed about the order of events: chunks cover the window again and the
    first page's events come back once more, dropped by ID like the events that overlap
    two chunks (`overlapping`).
    """

    overlapping: t.ClassVar[bool] = True

    @property
    @override
    def query_keys(self) -> tuple[str, ...]:
        """The chunk's window."""
        return ("start", "end")

    @override
    def initial(self, stream: WindowedStream, context: dict) -> list[Slice]:
        """The window as one slice, or in chunks where the provider needs it (iCloud)."""
        start, end = stream.window
        step = stream.max_window(context) or max(end - start, 1)
        return _chunks(stream, context, start, end, step, depth=0)

    @override
    def split(
        self, stream: WindowedStream, piece: Slice, records: list[dict], capacity: int
    ) -> list[Slice] | None:
        """A window chunk with more than a page is read again as shorter chunks at once."""
        if piece.pages != 1 or piece.finished or capacity < 1 or piece.depth > 0:
            return None
        start, end = piece.context["start"], piece.context["end"]
        parts = min(2 * capacity, (end - start) // MIN_EVENTS_SLICE)
        if parts < 2:
            return None
        return _chunks(stream, piece.context, start, end, -(-(end - start) // parts), depth=1)


def _chunks(
    stream: SlicedStream, context: dict, start: int, end: int, step: int, *, depth: int
) -> list[Slice]:
    """Slices for [start, end) in chunks of `step` seconds."""
    slices = []
    for chunk in range(start, end, step):
        part = stream.new_slice({**context, "start": chunk, "end": min(chunk + step, end)})
        part.depth = depth
        slices.append(part)
    return slices


@dataclass(frozen=True)
class Since(Slicing):
    """One slice listing records after the stream's lower bound (a sweep's window).

    Never split: a sweep reads a few days, a page or two with field selection.
    """

    #: The query parameter the lower bound is sent as (`received_after`, …).
    since: str

    @property
    @override
    def query_keys(self) -> tuple[str, ...]:
        """The lower bound."""
        return (self.since,)

    @override
    def initial(self, stream: SlicedStream, context: dict) -> list[Slice]:
        """One slice from the stream's lower bound, when it has one."""
        lower = stream.lower_bound(context)
        bound = {} if lower is None else {self.since: lower}
        return [stream.new_slice({**context, **bound})]
