"""Fetch the pages of every selected grant-scoped stream on worker threads.

Workers take single page requests, not whole grants: a partition (a grant, or a grant's
calendar) is read as one or more slices, each following its own cursor, and a big
mailbox is split into time-range slices that run at once (see `streams.py`). What a
worker runs next is the most urgent runnable request:

* the partition being written first, then partitions in stream and list order, so the
  next stream's partitions are fetched while the current one drains (no stream barrier);
* at most `per_grant` requests of one grant in flight, across its streams and slices;
* a slice in a `lane` (a grant's IMAP history) has a budget of its own inside the
  grant's: at most `Lane.per_grant` of the grant's requests in it, and `Lane.total` of
  all grants', so slow requests of a lane never fill every worker;
* a request that failed waits out its backoff in the queue, not on a thread, and only
  it waits; a 429 on a grant path with a `Retry-After` holds that grant's other
  requests for that long (never another grant's; a 429 in a lane holds only the
  grant's requests in that lane); on an application
  endpoint it holds every request and halves the number in flight until successes grow
  it back.

Partitions are written in completion order (`next_partition`): a finished one first,
else one that filled its buffer, streamed as its pages arrive. Memory is bounded by
bytes of unwritten pages, never by mailbox size or grant count: a partition holds at
most `PARTITION_BYTES`, all of them together `BUFFER_BYTES` (the partition being
written has no cap: the writer drains it), and at most `open_limit` are being fetched.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
import typing as t
from collections import Counter, deque
from dataclasses import dataclass, field

from tap_nylas.errors import PartitionFailedError, PartitionUnavailableError, RetryableError
from tap_nylas.progress import ProgressReporter, StreamStats

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tap_nylas.slicing import Slice

LOGGER = logging.getLogger("tap-nylas.scheduler")

#: Unwritten response bytes a partition may hold before its slices wait for the writer:
#: a few full pages of mail. Counted in bytes, not pages: a mailbox split into time
#: ranges returns many short pages.
PARTITION_BYTES = 4 << 20
#: Unwritten response bytes of all partitions together.
BUFFER_BYTES = 64 << 20
#: Open partitions per worker: enough that one slow partition leaves others to fetch.
OPEN_PER_WORKER = 4
#: Successes after which a concurrency cut (application 429) grows back by one. Nylas's
#: application limit is per second: at 8 workers and ~100 ms a request, 10 successes
#: bring one more back about every quarter second (20 took 2.7 s from 4 to 8, measured).
SUCCESSES_PER_STEP = 10


@dataclass(frozen=True)
class Lane:
    """A budget for some slices of a grant, within its `per_grant` budget."""

    #: Requests of one grant in this lane in flight at most.
    per_grant: int
    #: Requests of all grants in this lane in flight at most.
    total: int


class PagedStream(t.Protocol):
    """What the scheduler asks of a stream (partitioned.py implements it)."""

    @property
    def name(self) -> str:
        """The stream's name."""

    @property
    def logger(self) -> logging.Logger:
        """Where retries are logged."""

    @property
    def depends_on(self) -> str | None:
        """A stream that must be written before this one's partitions are known."""

    @property
    def partitions(self) -> list[dict] | None:
        """The stream's partitions (worked out on first use)."""

    def initial_slices(self, context: dict) -> list[Slice]:
        """How a partition is read at first."""

    def fetch_slice_page(self, piece: Slice) -> list[dict]:
        """One attempt at the next page of `piece`."""

    def split_slice(self, piece: Slice, records: list[dict], capacity: int) -> list[Slice] | None:
        """Slices replacing `piece` after a page, or None."""

    def estimate_pages_left(self, piece: Slice, records: list[dict]) -> float | None:
        """Pages `piece` still has to read, if known."""

    def keep_keyed(self, records: list[dict], context: dict) -> tuple[list[dict], int]:
        """Records carrying their key, and how many did not."""


@dataclass(eq=False)  # identity: removing one of thousands must not compare their fields
class Partition:
    """One grant (or calendar) of one stream, read as slices, written as a whole."""

    stream: PagedStream
    context: dict
    order: tuple[int, int]
    open_slices: int = 0
    pages: deque[tuple[list[dict], int]] = field(default_factory=deque)
    error: Exception | None = None
    done: bool = False
    #: Response bytes of the pages not yet written.
    size: int = 0
    writing: bool = False
    #: Records dropped because they lacked their key: the bookmark must not move.
    keyless: int = 0

    @property
    def grant_id(self) -> str:
        """The grant whose request budget this partition's requests use."""
        return str(self.context["grant_id"])


@dataclass
class _Task:
    """The next page of one slice."""

    partition: Partition
    slice: Slice
    seq: int
    not_before: float = 0.0
    attempt: int = 0


class _Feed:
    """One stream's partitions, worked out when the scheduler first needs them."""

    def __init__(self, index: int, stream: PagedStream) -> None:
        self.index = index
        self.stream = stream
        self.pending: Iterator[tuple[int, dict]] | None = None
        self.exhausted = False
        self.open = 0
        #: Open partitions still being fetched, and finished ones in the order they
        #: finished, not handed to the writer yet: the writer picks from these without
        #: walking every open partition (thousands wait at 10,000 grants).
        self.fetching: set[Partition] = set()
        self.ready: deque[Partition] = deque()


class Scheduler:
    """Worker threads fetching pages for every selected grant-scoped stream."""

    def __init__(
        self,
        streams: Sequence[PagedStream],
        *,
        workers: int,
        per_grant: int,
        max_retries: int,
        backoff_factor: float,
        open_limit: int | None = None,
        progress_interval: float = 0,
        read_ahead: bool = True,
        lanes: dict[str, Lane] | None = None,
    ) -> None:
        """Schedule `streams` (in sync order) on `workers` threads.

        Without `read_ahead` (a dry run, which stops after a record per stream) one
        partition is open at a time, of the stream being written only, and its next page
        is asked for once the writer took the previous one.
        """
        self._feeds = {s.name: _Feed(i, s) for i, s in enumerate(streams)}
        self.stats = {s.name: StreamStats() for s in streams}
        self._workers = workers
        self.per_grant = per_grant
        self._max_retries = max_retries
        self._backoff_factor = backoff_factor
        self._open_limit = open_limit or workers * OPEN_PER_WORKER
        self._read_ahead = read_ahead
        self._cv = threading.Condition()
        self._tasks: list[_Task] = []
        self._open: dict[Partition, None] = {}  # a set in opening order
        self._seq = itertools.count()
        self._grant_busy: Counter[str] = Counter()
        self._lanes = dict(lanes or {})
        self._lane_busy: Counter[tuple[str, str]] = Counter()
        self._lane_total: Counter[str] = Counter()
        #: When a grant's requests (key: grant ID) or its requests in a lane (key: grant
        #: ID, lane) may run again after a 429 with `Retry-After`.
        self._grant_resume: dict[str | tuple[str, str], float] = {}
        self._app_resume = 0.0
        self._in_flight = 0
        self._writing_index = -1
        self._buffered = 0
        self._limit = workers
        self._successes = 0
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.progress = ProgressReporter(self.stats, progress_interval)

    # -- the writer's side ---------------------------------------------------

    def next_partition(self, stream: PagedStream) -> Partition | None:
        """The next partition of `stream` to write: a finished one, else one with a full buffer.

        None once every partition of the stream was handed out.
        """
        self._start()
        feed = self._feeds[stream.name]
        self._abandon_before(feed)
        while True:
            self._fill(feed)
            with self._cv:
                # A partition whose buffer is full (or all buffers together are) waits
                # for the writer: stream it.
                blocked = [
                    p
                    for p in feed.fetching
                    if p.pages and not p.writing and not self._may_buffer(p)
                ]
                if feed.ready or blocked:
                    chosen = (
                        feed.ready.popleft()
                        if feed.ready
                        else min(blocked, key=lambda p: (-p.size, p.order))
                    )
                    chosen.writing = True
                    self._cv.notify_all()  # its slices may run past the buffer cap now
                    return chosen
                if feed.exhausted and not feed.open:
                    self.progress.finished(stream.name)
                    return None
                if feed.fetching:
                    self._cv.wait(1.0)

    def pages(self, partition: Partition) -> Iterator[list[dict]]:
        """The partition's pages as they arrive; its error, if any, after the last one.

        A writer that stops early (a dry run's record limit) stops the partition's
        requests too.
        """
        try:
            while True:
                with self._cv:
                    while not partition.pages and not partition.done:
                        self._cv.wait()
                    if not partition.pages:
                        break
                    page, size = partition.pages.popleft()
                    partition.size -= size
                    self._buffered -= size
                    self._cv.notify_all()  # room in the partition's buffer
                yield page
        finally:
            with self._cv:
                if not partition.done:
                    self._finish(partition, None)
                self._buffered -= partition.size
                partition.pages.clear()
                partition.size = 0
                del self._open[partition]
                self._feeds[partition.stream.name].open -= 1
                self._cv.notify_all()
        if partition.error is not None:
            raise partition.error

    def close(self) -> None:
        """Stop the workers (daemon threads: a stopped tap never waits on them)."""
        self.progress.close()
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _abandon_before(self, feed: _Feed) -> None:
        """Drop what earlier streams left open (a dry run stops after one record)."""
        with self._cv:
            if feed.index == self._writing_index:  # once per stream: `_open` may be long
                return
            self._writing_index = feed.index
            for partition in [p for p in self._open if p.order[0] < feed.index]:
                self._buffered -= partition.size
                self._finish(partition, partition.error)
                del self._open[partition]
                self._feeds[partition.stream.name].open -= 1
            for earlier in self._feeds.values():
                if earlier.index < feed.index:
                    earlier.exhausted = True
                    earlier.ready.clear()

    def _fill(self, current: _Feed | None) -> None:
        """Open partitions, in stream order, up to the limit.

        Working out a stream's partitions may list calendars: only the writer does it
        (`current` is the stream it writes), for every stream as soon as it can, so
        that workers can open partitions on their own while the writer is busy
        elsewhere (connectors, credentials). A stream that needs another one's results
        (events need calendars) waits until that one is written, and later streams go
        ahead. The stream being written may always open partitions of its own, so
        partitions of later streams fetched ahead can never starve it.
        """
        if not self._read_ahead and (current is None or self._open):
            return
        for feed in sorted(self._feeds.values(), key=lambda f: f.index):
            if feed.exhausted or (not self._read_ahead and feed is not current):
                continue
            if feed.pending is None:
                depends_on = self._feeds.get(feed.stream.depends_on or "")
                if current is None or (
                    depends_on is not None and not (depends_on.exhausted and not depends_on.open)
                ):
                    continue
                partitions = feed.stream.partitions or []
                with self._cv:
                    self.stats[feed.stream.name].partitions = len(partitions)
                    feed.pending = enumerate(partitions)
            with self._cv:
                while (
                    (self._fetching() < self._open_limit and self._buffered < BUFFER_BYTES)
                    or (feed is current and feed.open < self._open_limit)
                ) and (self._read_ahead or not self._open):
                    item = next(feed.pending, None)
                    if item is None:
                        feed.exhausted = True
                        break
                    self._open_partition(feed, *item)

    def _open_partition(self, feed: _Feed, index: int, context: dict) -> None:
        partition = Partition(feed.stream, context, (feed.index, index))
        slices = feed.stream.initial_slices(context)
        with self._cv:
            self._open[partition] = None
            feed.open += 1
            feed.fetching.add(partition)
            stats = self.stats[feed.stream.name]
            stats.started_at = stats.started_at or time.monotonic()
            if not slices:
                self._finish(partition, None)
            for piece in slices:
                self._add_slice(partition, piece)
            self._cv.notify_all()

    # -- the workers' side ---------------------------------------------------

    def _start(self) -> None:
        if self._threads:
            return
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"tap-nylas-fetch-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        while (task := self._take()) is not None:
            outcome: list[dict] | Exception
            try:
                outcome = task.partition.stream.fetch_slice_page(task.slice)
            except Exception as error:  # classified in _settle, under the lock
                outcome = error
            with self._cv:
                self._in_flight -= 1
                self._grant_busy[task.partition.grant_id] -= 1
                if (lane := task.slice.lane) is not None:
                    self._lane_busy[task.partition.grant_id, lane] -= 1
                    self._lane_total[lane] -= 1
                try:
                    self._settle(task, outcome)
                except Exception as error:  # a stream hook failed: its partition fails,
                    if not task.partition.done:  # not the worker (the run would hang)
                        self._finish(task.partition, error)
                self._fill(None)
                self._cv.notify_all()

    def _take(self) -> _Task | None:
        """The most urgent runnable task, waiting until there is one."""
        with self._cv:
            while not self._closed:
                now = time.monotonic()
                wake = now + 1.0
                best: _Task | None = None
                if self._in_flight < self._limit and self._app_resume <= now:
                    for task in self._tasks:
                        ready_at = max(task.not_before, self._resume_at(task))
                        if ready_at > now:
                            wake = min(wake, ready_at)
                        elif self._runnable(task) and (
                            best is None or _urgency(task) < _urgency(best)
                        ):
                            best = task
                elif self._app_resume > now:
                    wake = self._app_resume
                if best is not None:
                    self._tasks.remove(best)
                    self._in_flight += 1
                    self._grant_busy[best.partition.grant_id] += 1
                    if (lane := best.slice.lane) is not None:
                        self._lane_busy[best.partition.grant_id, lane] += 1
                        self._lane_total[lane] += 1
                    return best
                self._cv.wait(max(wake - now, 0.001))
            return None

    def _resume_at(self, task: _Task) -> float:
        """When a 429 lets the task's grant (or the grant's lane of it) run again."""
        grant = task.partition.grant_id
        held = self._grant_resume.get(grant, 0.0)
        if task.slice.lane is not None:
            held = max(held, self._grant_resume.get((grant, task.slice.lane), 0.0))
        return held

    def _runnable(self, task: _Task) -> bool:
        partition = task.partition
        if self._grant_busy[partition.grant_id] >= self.per_grant:
            return False
        if (lane := task.slice.lane) is not None and (budget := self._lanes.get(lane)):
            if self._lane_busy[partition.grant_id, lane] >= budget.per_grant:
                return False
            if self._lane_total[lane] >= budget.total:
                return False
        return (partition.writing and self._read_ahead) or self._may_buffer(partition)

    def _may_buffer(self, partition: Partition) -> bool:
        if not self._read_ahead:  # a page only once the writer took the previous one
            return not partition.pages
        return partition.size < PARTITION_BYTES and self._buffered < BUFFER_BYTES

    def _fetching(self) -> int:
        """Open partitions not finished yet: finished ones only wait to be written.

        Each stream's set, not a walk over `_open`: thousands of finished partitions may
        wait there, and every request that ends asks (10,000 grants took 7x as long with
        the walk, measured).
        """
        return sum(len(feed.fetching) for feed in self._feeds.values())

    def _settle(self, task: _Task, outcome: list[dict] | Exception) -> None:
        """Record a request's outcome: pages, follow-up requests, retries, failures."""
        partition, stream = task.partition, task.partition.stream
        stats = self.stats[stream.name]
        stats.requests += 1
        if partition.done:  # the partition failed meanwhile: drop what its slices bring
            return
        if isinstance(outcome, RetryableError):
            self._retry(task, outcome)
            return
        if isinstance(outcome, Exception):
            self._finish(partition, outcome)
            return
        self._grow_back()
        records, keyless = stream.keep_keyed(outcome, partition.context)
        partition.keyless += keyless
        if records:
            size = task.slice.last_size
            partition.pages.append((records, size))
            partition.size += size
            self._buffered += size
        piece = task.slice
        followers = (
            stream.split_slice(piece, outcome, self.per_grant) if self.per_grant > 1 else None
        )
        if followers:
            partition.open_slices -= 1
            for follower in followers:
                self._add_slice(partition, follower)
        elif piece.finished:
            partition.open_slices -= 1
            if not partition.open_slices:
                self._finish(partition, None)
        else:
            piece.pages_left = stream.estimate_pages_left(piece, outcome)
            self._tasks.append(_Task(partition, piece, next(self._seq)))

    def _retry(self, task: _Task, error: RetryableError) -> None:
        partition, stream = task.partition, task.partition.stream
        task.attempt += 1
        if task.attempt > self._max_retries:
            self._finish(
                partition,
                PartitionFailedError(f"{error} (still failing after {self._max_retries} retries)"),
            )
            return
        self.stats[stream.name].retries += 1
        wait = error.wait(task.attempt, self._backoff_factor)
        now = time.monotonic()
        if error.scope == "grant":
            grant = partition.grant_id
            # Without Retry-After only this request waits. Cutting the grant's requests in
            # flight after each 429 instead took a 20,000-message mailbox under 6% faults
            # from 17.5 s to 28 s (measured).
            if error.retry_after is not None:  # the mailbox said how long to stay away
                # In a lane (an IMAP server behind query_imap), only that lane waits.
                key = grant if task.slice.lane is None else (grant, task.slice.lane)
                self._grant_resume[key] = max(self._grant_resume.get(key, 0.0), now + wait)
        elif error.scope == "application":
            self.throttle_application(wait)
        task.not_before = now + wait
        self._tasks.append(task)
        stream.logger.warning(
            "Retrying %s in %.1f s (try %d): %s", stream.name, wait, task.attempt, error
        )

    def throttle_application(self, wait: float) -> None:
        """After an application-level 429: hold every request, then run half as many."""
        with self._cv:
            self._app_resume = max(self._app_resume, time.monotonic() + wait)
            self._cut_concurrency()
            self._cv.notify_all()

    def _cut_concurrency(self) -> None:
        if self._limit > 1:
            self._limit = max(1, self._limit // 2)
            self._successes = 0
            LOGGER.warning(
                "Nylas throttled the application: %d requests in flight at most, for now",
                self._limit,
            )

    def _grow_back(self) -> None:
        if self._limit >= self._workers:
            return
        self._successes += 1
        if self._successes >= SUCCESSES_PER_STEP:
            self._successes = 0
            self._limit += 1
            LOGGER.info("Requests in flight back up to %d of %d", self._limit, self._workers)

    def _add_slice(self, partition: Partition, piece: Slice) -> None:
        partition.open_slices += 1
        self._tasks.append(_Task(partition, piece, next(self._seq)))

    def _finish(self, partition: Partition, error: Exception | None) -> None:
        """Mark a partition complete (or failed) and drop its queued requests."""
        if partition.done:  # dropped after its end (a dry run moved on): finished already
            return
        partition.done = True
        partition.error = error
        feed = self._feeds[partition.stream.name]
        feed.fetching.discard(partition)
        if not partition.writing:
            feed.ready.append(partition)
        self._tasks = [task for task in self._tasks if task.partition is not partition]
        stats = self.stats[partition.stream.name]
        stats.partitions_done += 1
        if isinstance(error, PartitionUnavailableError):
            stats.skipped += 1
        elif error is not None:
            stats.failed += 1


def _urgency(task: _Task) -> tuple[bool, tuple[int, int], float, int]:
    """Sort key: the partition being written first, then stream and list order.

    Within a partition a slice's first page goes first (it tells how much the slice
    holds), then the slice with the most pages left: a long range started last is read
    one page after another at the end, while the grant's other slots idle.
    """
    piece = task.slice
    return (
        not task.partition.writing,
        task.partition.order,
        -math.inf if piece.pages == 0 else -(piece.pages_left or 0.0),
        task.seq,
    )
