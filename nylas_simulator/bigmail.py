"""One grant with a very large mailbox, made lazily: compact arrays, records per page.

Only dates, directions and the serving order are held (about 40 bytes a message); a
message or thread record is built when a page asks for it, from the same generators as
every other grant. Dates grow denser toward the present, so time-range slicing matters.
"""

from __future__ import annotations

import bisect
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from typing import overload

from typing_extensions import override

from .context import GrantContext
from .mail import (
    Topic,
    _draft,
    _mail_folders,
    _message,
    _message_id,
    _object_id,
    _thread,
    build_folders,
)
from .people import person, subject
from .util import Record, epoch, rng

# Mail of the large mailbox: 2024-01-02 .. 2026-10-01, density rising with the square of time.
LARGE_SPAN = (epoch(2024, 1, 2), epoch(2026, 10, 1))
_MAX_REPLY_GAP = 72 * 3600


class LazyRecords(Sequence[Record]):
    """Records in serving order, built on access; ``keys`` (negated sort field) for bisect."""

    def __init__(
        self, build: Callable[[int], Record], order: array, keys: array, lo: int = 0, hi: int = -1
    ) -> None:
        self._build, self._order, self._keys = build, order, keys
        self._lo, self._hi = lo, len(order) if hi < 0 else hi

    @override
    def __len__(self) -> int:
        return self._hi - self._lo

    @overload
    def __getitem__(self, index: int) -> Record: ...
    @overload
    def __getitem__(self, index: slice) -> list[Record]: ...
    @override
    def __getitem__(self, index: int | slice) -> Record | list[Record]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return [self._build(self._order[self._lo + k]) for k in range(start, stop, step)]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._build(self._order[self._lo + index])

    @override
    def __iter__(self) -> Iterator[Record]:
        for k in range(self._lo, self._hi):
            yield self._build(self._order[k])

    def between(self, after: int | None, before: int | None) -> LazyRecords:
        """Records whose sort field is strictly inside (after, before); None = open."""
        lo, hi = self._lo, self._hi
        # Keys are negated dates, ascending: "date < before" is "key > -before".
        if before is not None:
            lo = max(lo, bisect.bisect_right(self._keys, -before, self._lo, self._hi))
        if after is not None:
            hi = min(hi, bisect.bisect_left(self._keys, -after, self._lo, self._hi))
        return LazyRecords(self._build, self._order, self._keys, lo, max(lo, hi))


class _Topics(Sequence[Topic]):
    """Subject, counterpart and id of each thread, derived from its index alone."""

    def __init__(self, ctx: GrantContext, count: int) -> None:
        self._ctx, self._count = ctx, count

    @override
    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Topic: ...
    @overload
    def __getitem__(self, index: slice) -> list[Topic]: ...
    @override
    def __getitem__(self, index: int | slice) -> Topic | list[Topic]:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(self._count))]
        r = rng(self._ctx.seed, self._ctx.grant_id, "large-topic", index)
        return subject(r), person(r), _object_id(self._ctx, "thread", index)


class _Cyclic(Sequence[int]):
    """``i % n`` (thread of message i) or ``i // n`` (its position in the thread)."""

    def __init__(self, n: int, length: int, position: bool) -> None:
        self._n, self._length, self._position = n, length, position

    @override
    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    @override
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(self._length))]
        return index // self._n if self._position else index % self._n


class _LargePlan:
    """A ``PlanView`` over arrays: message i is in thread i % T at position i // T."""

    def __init__(self, ctx: GrantContext, n: int) -> None:
        self.n_threads = max(1, n // 2)
        self.thread = _Cyclic(self.n_threads, n, position=False)
        self.position = _Cyclic(self.n_threads, n, position=True)
        r = rng(ctx.seed, ctx.grant_id, "large-plan")
        lo, hi = LARGE_SPAN
        span = hi - lo - 30 * 86400
        # u ** (1/3): density proportional to t^2, so recent months hold the most mail.
        anchors = [lo + int(span * r.random() ** (1 / 3)) for _ in range(self.n_threads)]
        self.dates = array("q", bytes(8 * n))
        self.sent = bytearray(n)
        for i in range(n):
            t, k = i % self.n_threads, i // self.n_threads
            self.dates[i] = anchors[t] + k * r.randint(3600, _MAX_REPLY_GAP) + r.randrange(3600)
            # The first message of a thread is received, so a thread always has a
            # latest_message_received_date.
            self.sent[i] = k > 0 and r.random() < 0.45
        self.latest_received = array("q", bytes(8 * self.n_threads))
        for i in range(n):
            t = i % self.n_threads
            if not self.sent[i] and self.dates[i] > self.latest_received[t]:
                self.latest_received[t] = self.dates[i]


def _sorted_desc(values: array) -> tuple[array, array]:
    """(indices by value descending then index, the negated values in that order)."""
    order = array("l", sorted(range(len(values)), key=lambda i: (-values[i], i)))
    return order, array("q", (-values[i] for i in order))


class LargeMailbox:
    """Folders, lazy messages and threads, and (few, eager) drafts of one big grant."""

    def __init__(self, ctx: GrantContext, drafts: int) -> None:
        self.ctx = ctx
        self.n = ctx.records
        self.folders = build_folders(ctx)
        self._mf = _mail_folders(self.folders)
        self._plan = _LargePlan(ctx, self.n)
        self._topics = _Topics(ctx, self._plan.n_threads)
        self._thread_drafts: dict[int, list[Record]] = {}
        self.drafts = self._build_drafts(drafts)
        order, keys = _sorted_desc(self._plan.dates)
        self.messages = LazyRecords(self.message, order, keys)
        torder, tkeys = _sorted_desc(self._plan.latest_received)
        self.threads = LazyRecords(self.thread, torder, tkeys)
        self._folder_members: dict[str, array] = {}
        self._folder_lock = threading.Lock()

    def folder_listing(self, folder: str) -> LazyRecords:
        """The messages of ``folder``, oldest first, each naming only that folder.

        Which messages each folder holds is worked out on the first call (building every
        message once); pages then build only their own records.
        """
        with self._folder_lock:
            if not self._folder_members:  # every folder's members, building each message once
                ascending = sorted(range(self.n), key=lambda i: (self._plan.dates[i], i))
                members_of: dict[str, array] = {f["id"]: array("l") for f in self.folders}
                for i in ascending:
                    for name in self.message(i)["folders"]:
                        members_of.setdefault(name, array("l")).append(i)
                self._folder_members = members_of
            members = self._folder_members.get(folder, array("l"))
        keys = array("q", (self._plan.dates[i] for i in members))
        return LazyRecords(lambda i: {**self.message(i), "folders": [folder]}, members, keys)

    def message(self, i: int) -> Record:
        """Message ``i`` (generation order, not serving order)."""
        return _message(self.ctx, i, self._plan, self._topics, self._mf)

    def _base_thread(self, t: int) -> Record:
        members = range(t, self.n, self._plan.n_threads)
        msgs = [self.message(i) for i in members]
        sent = [self._plan.sent[i] for i in members]
        return _thread(self.ctx, self._topics[t][2], msgs, sent)

    def thread(self, t: int) -> Record:
        """Thread ``t`` with its drafts applied, as ``build_mail`` does."""
        record = self._base_thread(t)
        for draft in self._thread_drafts.get(t, []):
            _attach_draft(record, draft)
        return record

    def _build_drafts(self, count: int) -> list[Record]:
        # Same rule as build_mail: even drafts reply to thread d % T, odd ones stand alone.
        touched: dict[int, Record] = {}
        out = []
        for d in range(count):
            t = d % self._plan.n_threads
            thread = None
            if d % 2 == 0:
                thread = touched.get(t) or self._base_thread(t)
                touched[t] = thread
            draft = _draft(self.ctx, d, thread, self._mf)
            if thread is not None:
                _attach_draft(thread, draft)
                self._thread_drafts.setdefault(t, []).append(draft)
            out.append(draft)
        return out

    def message_keys(self) -> list[Record]:
        """``{grant_id, id}`` of every message, without building one."""
        gid = self.ctx.grant_id
        return [{"grant_id": gid, "id": _message_id(self.ctx, i)} for i in range(self.n)]

    def thread_keys(self) -> list[Record]:
        """``{grant_id, id}`` of every thread."""
        gid = self.ctx.grant_id
        return [
            {"grant_id": gid, "id": _object_id(self.ctx, "thread", t)}
            for t in range(self._plan.n_threads)
        ]


def _attach_draft(thread: Record, draft: Record) -> None:
    thread["draft_ids"].append(draft["id"])
    thread["has_drafts"] = True
    thread["latest_draft_or_message"] = draft
