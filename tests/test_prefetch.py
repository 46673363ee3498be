"""The partition prefetcher: concurrent fetching, in-order delivery, bounded read-ahead."""

from __future__ import annotations

import threading
import time
import typing as t

import pytest

from tap_nylas.prefetch import BATCH_SIZE, PartitionPrefetcher


class Source:
    """Partitions of `size` records each; each record takes `delay` to fetch."""

    def __init__(self, size: int = 3, delay: float = 0.0) -> None:
        self.size = size
        self.delay = delay
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[int] = []
        self.produced = 0

    def fetch(self, partition: t.Mapping[str, t.Any]) -> t.Iterator[dict]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.started.append(partition["n"])
        try:
            for i in range(self.size):
                time.sleep(self.delay)
                with self.lock:
                    self.produced += 1
                yield {"n": partition["n"], "i": i}
        finally:
            with self.lock:
                self.in_flight -= 1


def partitions(count: int) -> list[dict]:
    return [{"n": n} for n in range(count)]


def test_records_come_out_in_partition_order_while_fetched_at_once() -> None:
    source = Source(size=3, delay=0.01)
    parts = partitions(12)
    prefetcher = PartitionPrefetcher(source.fetch, parts, workers=4)

    out = [r for p in parts for r in prefetcher.records(p)]

    assert out == [{"n": n, "i": i} for n in range(12) for i in range(3)]
    assert source.max_in_flight == 4


def test_read_ahead_is_bounded() -> None:
    source = Source(size=BATCH_SIZE * 50)  # far more than the queues may hold
    parts = partitions(10)
    prefetcher = PartitionPrefetcher(source.fetch, parts, workers=3, batches_ahead=2)

    first = prefetcher.records(parts[0])
    next(first)
    time.sleep(0.3)  # let the workers fill what they may

    assert sorted(source.started) == [0, 1, 2]  # only `workers` partitions started
    # each started partition holds at most the queued batches, one in hand and one consumed
    assert source.produced <= 3 * (2 + 2) * BATCH_SIZE
    first.close()


def test_an_error_is_raised_with_its_partition_and_later_ones_still_arrive() -> None:
    def fetch(partition: t.Mapping[str, t.Any]) -> t.Iterator[dict]:
        if partition["n"] == 1:
            msg = "grant expired"
            raise LookupError(msg)
        yield {"n": partition["n"]}

    parts = partitions(4)
    prefetcher = PartitionPrefetcher(fetch, parts, workers=3)

    assert list(prefetcher.records(parts[0])) == [{"n": 0}]
    with pytest.raises(LookupError, match="grant expired"):
        list(prefetcher.records(parts[1]))
    assert list(prefetcher.records(parts[2])) == [{"n": 2}]
    assert list(prefetcher.records(parts[3])) == [{"n": 3}]


def test_a_consumer_that_stops_early_stops_the_workers() -> None:
    source = Source(size=BATCH_SIZE * 100)
    parts = partitions(6)
    prefetcher = PartitionPrefetcher(source.fetch, parts, workers=3, batches_ahead=1)

    records = prefetcher.records(parts[0])
    next(records)
    records.close()
    time.sleep(1.2)  # workers notice within their 0.5 s put timeout

    assert source.in_flight == 0
    assert sorted(source.started) == [0, 1, 2]


def test_an_unexpected_partition_is_fetched_directly() -> None:
    source = Source(size=2)
    prefetcher = PartitionPrefetcher(source.fetch, partitions(3), workers=2)
    assert list(prefetcher.records({"n": 9})) == [{"n": 9, "i": 0}, {"n": 9, "i": 1}]


def test_one_slow_partition_does_not_idle_the_other_workers() -> None:
    done: list[int] = []

    def fetch(partition: t.Mapping[str, t.Any]) -> t.Iterator[dict]:
        time.sleep(0.6 if partition["n"] == 0 else 0.01)
        done.append(partition["n"])
        yield {"n": partition["n"]}

    parts = partitions(20)
    prefetcher = PartitionPrefetcher(fetch, parts, workers=2)
    first = prefetcher.records(parts[0])
    assert next(first) == {"n": 0}
    # while partition 0 was slow, the other worker went on through the read-ahead window
    assert len(done) >= 2 * PartitionPrefetcher.AHEAD_PER_WORKER - 1
    first.close()
