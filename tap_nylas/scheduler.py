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
  grant's requests in that lane). An application endpoint's 429
  holds only application requests (`throttle.py`): nothing here waits for it.

Partitions are written in completion order (`next_partition`): a finished one first,
else one that filled its buffer, streamed as its pages arrive. Memory is bounded by
bytes of unwritten pages, never by mailbox size or grant count: a partition holds at
most `PARTITION_BYTES`, all of them together `BUFFER_BYTES` (the partition being
written has no cap: the writer drains it), and at most `open_limit` are being fetched.

Taking a request costs O(log n) whatever the number of queued requests and workers:
runnable requests wait in one heap by urgency; a request that cannot run yet waits where
what it waits for will find it (its backoff in a heap by time, its grant's free slot in
that grant's heap, a free slot of its lane in that lane's heap, room in its partition's
buffer in that partition's list), and only as
many idle workers are woken as there are requests to take. Walking every queued request
under one lock on each take, and waking every worker after each request, kept 256
workers to about 100 requests in flight and tripled the CPU per request (measured).
"""

from __future__ import annotations

import heapq
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
    #: Its requests waiting to be taken, wherever they wait.
    queued: set[_Task] = field(default_factory=set)
    #: Its requests waiting for room in its buffer.
    parked: list[_Task] = field(default_factory=list)

    @property
    def grant_id(self) -> str:
        """The grant whose request budget this partition's requests use."""
        return str(self.context["grant_id"])


@dataclass(eq=False)
class _Task:
    """The next page of one slice."""

    partition: Partition
    slice: Slice
    seq: int
    not_before: float = 0.0
    attempt: int = 0
    #: Bumped each time the task is queued anew: entries of earlier queuings are stale.
    version: int = 0


_Entry = tuple[tuple[bool, tuple[int, int], float, int], int, _Task]
#: What a 429 with `Retry-After` holds: a grant's requests (lane "") or those in one lane.
_HoldKey = tuple[str, str]


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
        self._lock = threading.Lock()
        #: The writer waits on this one; every worker waits on its own (see `_wake`).
        self._cv = threading.Condition(self._lock)
        #: Requests that may run now, most urgent first (entries may be stale).
        self._ready: list[_Entry] = []
        #: Requests waiting out a backoff, by the time they may run.
        self._delayed: list[tuple[float, int, int, _Task]] = []
        #: Per grant: its requests waiting for a free slot or for its Retry-After.
        self._grant_queue: dict[str, list[_Entry]] = {}
        #: Per grant and lane: its requests in the lane waiting for a free lane slot of
        #: the grant, or for the lane's Retry-After.
        self._lane_queue: dict[_HoldKey, list[_Entry]] = {}
        #: Per lane: its requests waiting for a free slot of the lane over all grants.
        self._lane_total_queue: dict[str, list[_Entry]] = {}
        #: Grants (key: grant ID, "") and grants' lanes (key: grant ID, lane) held by a
        #: Retry-After, by the time they may run again.
        self._holds: list[tuple[float, _HoldKey]] = []
        #: Requests of partitions waiting for room in the buffer of all partitions.
        self._buffer_queue: list[_Task] = []
        #: Partitions over `PARTITION_BYTES` not being written: the writer's candidates.
        self._full: set[Partition] = set()
        self._open: dict[Partition, None] = {}  # a set in opening order
        #: Open partitions not finished yet (finished ones only wait to be written): a
        #: count, not a walk over `_open`, as every request that ends asks (10,000
        #: grants took 7x as long with the walk, measured).
        self._fetching = 0
        self._seq = itertools.count()
        self._grant_busy: Counter[str] = Counter()
        self._lanes = dict(lanes or {})
        self._lane_busy: Counter[_HoldKey] = Counter()
        self._lane_total: Counter[str] = Counter()
        self._grant_resume: dict[_HoldKey, float] = {}
        self._writing_index = -1
        self._buffered = 0
        #: Idle workers' conditions, the last to go idle last (woken first: its cache is warm).
        self._idle: dict[threading.Condition, None] = {}
        #: The idle worker that wakes for the next backoff or hold to end, if any.
        self._timekeeper: threading.Condition | None = None
        self._timer_deadline = math.inf
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
                chosen = feed.ready.popleft() if feed.ready else self._blocked(feed)
                if chosen is not None:
                    self._start_writing(chosen)
                    return chosen
                if feed.exhausted and not feed.open:
                    self.progress.finished(stream.name)
                    break
                if feed.fetching:
                    self._cv.wait(1.0)
        # Streams that waited for this one (events for calendars) can start now, not
        # once the writer comes back from the application lists it reads next.
        self._fill(feed)
        return None

    def _blocked(self, feed: _Feed) -> Partition | None:
        """A partition of `feed` whose buffer is full (or all buffers together are)."""
        if self._read_ahead and self._buffered < BUFFER_BYTES:
            candidates: t.Iterable[Partition] = (p for p in self._full if p.stream is feed.stream)
        else:
            candidates = feed.fetching
        blocked = [p for p in candidates if p.pages and not p.writing and not self._may_buffer(p)]
        return min(blocked, key=lambda p: (-p.size, p.order)) if blocked else None

    def _start_writing(self, partition: Partition) -> None:
        """Hand `partition` to the writer: its requests go first and past the buffer cap."""
        partition.writing = True
        self._full.discard(partition)
        if self._read_ahead:
            for task in list(partition.queued):
                self._enqueue(task)  # anew: its urgency changed
            self._release_parked(partition)
            self._wake_for_ready()

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
                    full = self._buffered >= BUFFER_BYTES
                    self._buffered -= size
                    self._release_parked(partition)  # room in the partition's buffer
                    if full and self._buffered < BUFFER_BYTES:
                        self._release_buffer_queue()
                yield page
        finally:
            with self._cv:
                if not partition.done:
                    self._finish(partition, None)
                full = self._buffered >= BUFFER_BYTES
                self._buffered -= partition.size
                if full and self._buffered < BUFFER_BYTES:
                    self._release_buffer_queue()
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
            self._wake(len(self._idle))

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
            self._release_buffer_queue()

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
        for feed in self._feeds.values():  # in stream order
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
                self._open_from(feed, current)
                self._wake_for_ready()

    def _open_more(self) -> None:
        """On a worker, the lock held: open partitions of streams whose list is known."""
        for feed in self._feeds.values():
            if not feed.exhausted and feed.pending is not None:
                self._open_from(feed, None)

    def _open_from(self, feed: _Feed, current: _Feed | None) -> None:
        assert feed.pending is not None  # noqa: S101 - callers check
        while (
            (self._fetching < self._open_limit and self._buffered < BUFFER_BYTES)
            or (feed is current and feed.open < self._open_limit)
        ) and (self._read_ahead or not self._open):
            item = next(feed.pending, None)
            if item is None:
                feed.exhausted = True
                break
            self._open_partition(feed, *item)

    def _open_partition(self, feed: _Feed, index: int, context: dict) -> None:
        partition = Partition(feed.stream, context, (feed.index, index))
        self._open[partition] = None
        feed.open += 1
        feed.fetching.add(partition)
        self._fetching += 1
        stats = self.stats[feed.stream.name]
        stats.started_at = stats.started_at or time.monotonic()
        slices = feed.stream.initial_slices(context)
        if not slices:
            self._finish(partition, None)
        for piece in slices:
            self._add_slice(partition, piece)

    # -- the workers' side ---------------------------------------------------

    def _start(self) -> None:
        if self._threads:
            return
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"tap-nylas-fetch-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _work(self) -> None:
        me = threading.Condition(self._lock)
        with self._lock:
            task = self._take(me)
        while task is not None:
            outcome: list[dict] | Exception
            try:
                outcome = task.partition.stream.fetch_slice_page(task.slice)
            except Exception as error:  # classified in _settle, under the lock
                outcome = error
            with self._lock:
                self._free_slot(task)
                try:
                    self._settle(task, outcome)
                except Exception as error:  # a stream hook failed: its partition fails,
                    if not task.partition.done:  # not the worker (the run would hang)
                        self._finish(task.partition, error)
                if self._read_ahead:
                    self._open_more()
                task = self._take(me)

    def _take(self, me: threading.Condition) -> _Task | None:
        """The most urgent runnable task, waiting until there is one (the lock held)."""
        while not self._closed:
            now = time.monotonic()
            task = self._pop_runnable(now)
            if self._timekeeper is me:
                self._timekeeper, self._timer_deadline = None, math.inf
            if task is not None:
                self._grant_busy[task.partition.grant_id] += 1
                if (lane := task.slice.lane) is not None:
                    self._lane_busy[task.partition.grant_id, lane] += 1
                    self._lane_total[lane] += 1
                # Wake the next idle worker if there may be more to take, or if nobody
                # else keeps time for the requests waiting out a backoff.
                if self._idle and (
                    self._ready or (self._timekeeper is None and self._next_deadline() < math.inf)
                ):
                    self._wake(1)
                return task
            deadline = self._next_deadline()
            timeout = None
            if deadline < math.inf and self._timekeeper is None:
                self._timekeeper, self._timer_deadline = me, deadline
                timeout = max(deadline - now, 0.0005)
            self._idle[me] = None
            me.wait(timeout)
            self._idle.pop(me, None)  # woken by its timeout, not by `_wake`
        return None

    def _wake(self, count: int) -> None:
        """Wake up to `count` idle workers, each exactly once."""
        for _ in range(min(count, len(self._idle))):
            worker, _ = self._idle.popitem()
            worker.notify()

    def _wake_for_ready(self) -> None:
        """After the writer queued requests: wake as many idle workers as may take one."""
        if self._ready and self._idle:
            self._wake(len(self._ready))

    def _next_deadline(self) -> float:
        """When the first request waiting out a backoff or a grant's hold may run."""
        deadline = self._delayed[0][0] if self._delayed else math.inf
        return min(deadline, self._holds[0][0]) if self._holds else deadline

    def _pop_runnable(self, now: float) -> _Task | None:
        """The most urgent task that may run now; those that may not wait where they belong."""
        self._release_due(now)
        while self._ready:
            entry = heapq.heappop(self._ready)
            task = entry[2]
            if entry[1] != task.version or task.partition.done:
                continue
            partition = task.partition
            grant = partition.grant_id
            lane = task.slice.lane
            if (
                self._grant_busy[grant] >= self.per_grant
                or self._grant_resume.get((grant, ""), 0.0) > now
            ):
                heapq.heappush(self._grant_queue.setdefault(grant, []), entry)
                if lane is not None:
                    self._pass_on(grant, lane, now)
            elif lane is not None and not self._lane_admits(grant, lane, entry, now):
                continue
            elif not (partition.writing and self._read_ahead) and not self._may_buffer(partition):
                if self._read_ahead and partition.size < PARTITION_BYTES:
                    self._buffer_queue.append(task)  # all buffers together are full
                else:
                    partition.parked.append(task)
            else:
                partition.queued.discard(task)
                return task
        return None

    def _lane_admits(self, grant: str, lane: str, entry: _Entry, now: float) -> bool:
        """Whether the lane has room for a request of `grant`; if not, it waits there.

        The grant's slot it leaves free goes to the grant's next request: a cache read
        of the grant must not wait for the history lane of every grant.
        """
        budget = self._lane_budget(lane)
        key = (grant, lane)
        if self._lane_busy[key] >= budget.per_grant or self._grant_resume.get(key, 0.0) > now:
            heapq.heappush(self._lane_queue.setdefault(key, []), entry)
        elif self._lane_total[lane] >= budget.total:
            heapq.heappush(self._lane_total_queue.setdefault(lane, []), entry)
        else:
            return True
        self._pass_on(grant, lane, now)
        return False

    def _pass_on(self, grant: str, lane: str, now: float) -> None:
        """A request of `grant` in `lane` waits: let another one through each open gate it passed.

        It may have been let through a gate (a freed slot of its grant, of its lane) that
        it did not use; without this the gate's next request would wait for a slot to
        free again, maybe never while nothing of the grant is in flight.
        """
        budget = self._lane_budget(lane)
        if (
            self._grant_busy[grant] < self.per_grant
            and self._grant_resume.get((grant, ""), 0.0) <= now
        ):
            self._release_from(self._grant_queue, grant)
        key = (grant, lane)
        if self._lane_busy[key] < budget.per_grant and self._grant_resume.get(key, 0.0) <= now:
            self._release_from(self._lane_queue, key)
        if self._lane_total[lane] < budget.total:
            self._release_from(self._lane_total_queue, lane)

    def _lane_budget(self, lane: str) -> Lane:
        """The lane's budget; a lane without one is capped by its grant's budget only."""
        return self._lanes.get(lane) or Lane(per_grant=self.per_grant, total=self._workers)

    def _release_due(self, now: float) -> None:
        """Requests whose backoff ended, and grants (or lanes) whose hold ended, may run again."""
        while self._delayed and self._delayed[0][0] <= now:
            _, _, version, task = heapq.heappop(self._delayed)
            if version == task.version and not task.partition.done:
                self._enqueue(task)
        while self._holds and self._holds[0][0] <= now:
            _, key = heapq.heappop(self._holds)
            if self._grant_resume.get(key, 0.0) <= now:
                self._grant_resume.pop(key, None)
                grant, lane = key
                if lane:
                    room = self._lane_budget(lane).per_grant - self._lane_busy[key]
                    queues: dict[t.Any, list[_Entry]] = self._lane_queue
                else:
                    room, queues = self.per_grant - self._grant_busy[grant], self._grant_queue
                for _ in range(room):
                    if not self._release_from(queues, key if lane else grant):
                        break

    def _enqueue(self, task: _Task) -> None:
        """Queue `task` to run as soon as it may (its earlier entries go stale)."""
        task.version += 1
        task.partition.queued.add(task)
        if task.not_before > time.monotonic():
            heapq.heappush(self._delayed, (task.not_before, task.seq, task.version, task))
            self._note_deadline(task.not_before)
        else:
            heapq.heappush(self._ready, (_urgency(task), task.version, task))

    def _note_deadline(self, deadline: float) -> None:
        """Make sure an idle worker wakes at `deadline`."""
        if deadline >= self._timer_deadline or not self._idle:
            return
        if self._timekeeper is not None and self._timekeeper in self._idle:
            del self._idle[self._timekeeper]
            self._timekeeper.notify()  # it takes the earlier deadline
        elif self._timekeeper is None:
            self._wake(1)

    def _free_slot(self, task: _Task) -> None:
        """`task`'s request ended: the most urgent request waiting for its slot may run.

        A slot of a lane frees too: the grant's next request in the lane, and the lane's
        next one of any grant, may run (else they would wait for good once the lane's
        requests in flight all ended).
        """
        grant = task.partition.grant_id
        now = time.monotonic()
        self._grant_busy[grant] -= 1
        if not self._grant_busy[grant]:
            del self._grant_busy[grant]
        if self._grant_resume.get((grant, ""), 0.0) <= now:
            self._release_from(self._grant_queue, grant)
        if (lane := task.slice.lane) is not None:
            key = (grant, lane)
            self._lane_busy[key] -= 1
            if not self._lane_busy[key]:
                del self._lane_busy[key]
            self._lane_total[lane] -= 1
            if self._grant_resume.get(key, 0.0) <= now:
                self._release_from(self._lane_queue, key)
            self._release_from(self._lane_total_queue, lane)

    def _release_from(self, queues: dict[t.Any, list[_Entry]], key: t.Hashable) -> bool:
        """Move the most urgent live request waiting in `queues[key]` to the ready heap."""
        queue = queues.get(key)
        while queue:
            entry = heapq.heappop(queue)
            task = entry[2]
            if entry[1] == task.version and not task.partition.done:
                heapq.heappush(self._ready, entry)
                if not queue:
                    del queues[key]
                return True
        queues.pop(key, None)
        return False

    def _release_parked(self, partition: Partition) -> None:
        """Requests that waited for room in `partition`'s buffer try again."""
        if partition.parked and (
            (partition.writing and self._read_ahead) or self._may_buffer(partition)
        ):
            parked, partition.parked = partition.parked, []
            for task in parked:
                if not partition.done and task in partition.queued:
                    self._enqueue(task)
            self._wake_for_ready()

    def _release_buffer_queue(self) -> None:
        """Requests that waited for room in all buffers together try again."""
        waiting, self._buffer_queue = self._buffer_queue, []
        for task in waiting:
            if not task.partition.done and task in task.partition.queued:
                self._enqueue(task)
        self._wake_for_ready()

    def _may_buffer(self, partition: Partition) -> bool:
        if not self._read_ahead:  # a page only once the writer took the previous one
            return not partition.pages
        return partition.size < PARTITION_BYTES and self._buffered < BUFFER_BYTES

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
        records, keyless = stream.keep_keyed(outcome, partition.context)
        partition.keyless += keyless
        if records:
            size = task.slice.last_size
            partition.pages.append((records, size))
            partition.size += size
            self._buffered += size
            if partition.size >= PARTITION_BYTES and not partition.writing:
                self._full.add(partition)
            if partition.writing or partition in self._full or self._buffered >= BUFFER_BYTES:
                self._cv.notify_all()  # the writer reads it, or may stream it now
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
            self._enqueue(_Task(partition, piece, next(self._seq)))

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
        # Without Retry-After only this request waits. Cutting the grant's requests in
        # flight after each 429 instead took a 20,000-message mailbox under 6% faults
        # from 17.5 s to 28 s (measured). An application 429 cannot come from a grant's
        # path: were it to, only this request would wait (application requests are
        # held by `throttle.py`, never the grants' ones).
        if error.scope == "grant" and error.retry_after is not None:
            # The mailbox said how long to stay away; in a lane (an IMAP server behind
            # query_imap) only the grant's requests in that lane wait.
            key = (partition.grant_id, task.slice.lane or "")
            resume = max(self._grant_resume.get(key, 0.0), now + wait)
            self._grant_resume[key] = resume
            heapq.heappush(self._holds, (resume, key))
            self._note_deadline(resume)
        task.not_before = now + wait
        self._enqueue(task)
        stream.logger.warning(
            "Retrying %s in %.1f s (try %d): %s", stream.name, wait, task.attempt, error
        )

    def _add_slice(self, partition: Partition, piece: Slice) -> None:
        partition.open_slices += 1
        self._enqueue(_Task(partition, piece, next(self._seq)))

    def _finish(self, partition: Partition, error: Exception | None) -> None:
        """Mark a partition complete (or failed); its queued requests are dropped."""
        if partition.done:  # dropped after its end (a dry run moved on): finished already
            return
        partition.done = True  # its entries in the queues are skipped from now on
        partition.error = error
        partition.queued.clear()
        partition.parked.clear()
        self._full.discard(partition)
        feed = self._feeds[partition.stream.name]
        if partition in feed.fetching:
            feed.fetching.discard(partition)
            self._fetching -= 1
        if not partition.writing:
            feed.ready.append(partition)
        stats = self.stats[partition.stream.name]
        stats.partitions_done += 1
        if isinstance(error, PartitionUnavailableError):
            stats.skipped += 1
        elif error is not None:
            stats.failed += 1
        self._cv.notify_all()  # the writer may take it, or read its end


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
