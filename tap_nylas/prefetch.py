"""Read the next grants' pages in worker threads while the current grant is written.

The SDK syncs one partition after another on one thread. Nylas calls take hundreds
of milliseconds each (Nylas waits on Google, Microsoft or IMAP), so most of a
sequential run is spent waiting. Here up to `workers` partitions are fetched at once,
each still page after page (a cursor is sequential), while the SDK consumes them in
their original order: Singer messages, their order and STATE are the same as with one
worker. Read-ahead is bounded: `workers` threads fetch at most `workers` *
AHEAD_PER_WORKER partitions ahead of the one being written, each holding at most
`batches_ahead` batches.
"""

from __future__ import annotations

import itertools
import queue
import threading
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

Context = t.Mapping[str, t.Any]
_DONE = object()
BATCH_SIZE = 100


class _Cancelled(Exception):
    """The consumer went away; the worker stops quietly."""


class PartitionPrefetcher:
    """Fetch partitions ahead, in worker threads, and hand their records out in order."""

    #: Partitions queued ahead of the one being written, per worker: one slow partition
    #: (several pages, iCloud window chunks) must not leave the other workers idle.
    AHEAD_PER_WORKER = 4

    def __init__(
        self,
        fetch: Callable[[Context], Iterable[dict]],
        partitions: Sequence[Mapping[str, t.Any]],
        workers: int,
        batches_ahead: int = 4,
    ) -> None:
        """Prefetch `fetch(partition)` for `partitions` with `workers` threads."""
        self._fetch = fetch
        self._partitions = partitions
        self._workers = workers
        self._batches_ahead = batches_ahead
        self._queues: dict[int, queue.Queue] = {}
        self._tasks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._next_index = 0  # the partition the consumer is expected to ask for next
        self._queued = 0  # partitions before this index have been handed to the workers
        self._stop = threading.Event()
        self._started = False

    def records(self, partition: Context) -> Iterator[dict]:
        """Records of `partition`, fetched ahead; errors are raised here, in order."""
        index = self._next_index
        if index >= len(self._partitions) or self._partitions[index] != partition:
            yield from self._fetch(partition)  # not the expected order: fetch it directly
            return
        self._next_index += 1
        self._queue_up_to(index + self._workers * self.AHEAD_PER_WORKER)
        finished = False
        try:
            while (item := self._queues[index].get()) is not _DONE:
                if isinstance(item, BaseException):
                    finished = True  # the worker is done; the error belongs to this partition
                    raise item
                yield from item
            finished = True
        finally:
            del self._queues[index]
            if not finished:  # the consumer gave up mid-partition: stop all workers
                self.close()
        if self._next_index == len(self._partitions):
            self.close()

    def _queue_up_to(self, end: int) -> None:
        """Queue partitions up to `end` for the workers, which take them in order.

        In order, so the partition being written has always been started: workers
        blocked on full queues of later partitions can never starve it.
        """
        for index in range(self._queued, min(end, len(self._partitions))):
            self._queues[index] = queue.Queue(self._batches_ahead)
            self._tasks.put(index)
            self._queued = index + 1
        if not self._started:
            self._started = True
            for n in range(self._workers):
                # Daemon threads: a tap stopped by a signal exits without waiting on them.
                threading.Thread(
                    target=self._work, name=f"tap-nylas-fetch-{n}", daemon=True
                ).start()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                index = self._tasks.get(timeout=0.5)
            except queue.Empty:
                continue
            self._run(self._partitions[index], self._queues[index])

    def close(self) -> None:
        """Stop the workers: each ends at its next hand-over or idle check."""
        self._stop.set()

    def _run(self, partition: Context, out: queue.Queue) -> None:
        try:
            records = iter(self._fetch(partition))
            while batch := list(itertools.islice(records, BATCH_SIZE)):
                self._put(out, batch)
            self._put(out, _DONE)
        except _Cancelled:
            return
        except Exception as error:  # handed to the consumer, which raises it in order
            try:
                self._put(out, error)
            except _Cancelled:
                return

    def _put(self, out: queue.Queue, item: object) -> None:
        # Block while the consumer is behind, but notice when it has gone away.
        while not self._stop.is_set():
            try:
                out.put(item, timeout=0.5)
            except queue.Full:
                continue
            else:
                return
        raise _Cancelled
