"""The scheduler on its own: throttling scope, per-grant limit, completion order, failures.

And the application throttle (throttle.py), which holds application requests only.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import typing as t
from collections import Counter

import pytest
from singer_sdk.pagination import BaseAPIPaginator

from tap_nylas.errors import PartitionFailedError, RetryableError
from tap_nylas.scheduler import Scheduler
from tap_nylas.slicing import Slice
from tap_nylas.throttle import SUCCESSES_PER_STEP, ApplicationThrottle

Outcome = t.Union[list[dict], Exception, float]  # noqa: UP007 - a float is a delay in seconds


class _Pages(BaseAPIPaginator[int]):
    """Page n of a scripted slice; finished after `pages` pages."""

    def __init__(self, pages: int) -> None:
        super().__init__(0)
        self._pages = pages

    def get_next(self, response: t.Any) -> int | None:
        return None


class FakeStream:
    """Just what the scheduler asks of a grant-scoped stream, with scripted answers."""

    depends_on = None

    def __init__(self, name: str, grants: list[str], pages: int = 1) -> None:
        self.name = name
        self.partitions = [{"grant_id": g} for g in grants]
        self.pages = pages
        self.script: dict[str, list[Outcome]] = {}
        self.requests: list[tuple[str, float]] = []
        self.started: list[tuple[str, float, int]] = []  # grant, when, its requests in flight
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.slices_per_partition = 1
        self.page_bytes = 0
        self.split_error: Exception | None = None
        self.estimates = False
        self.logger = logging.getLogger(f"test.{name}")
        self._lock = threading.Lock()

    def initial_slices(self, context: dict) -> list[Slice]:
        return [
            Slice({**context, "slice": n}, _Pages(self.pages))
            for n in range(self.slices_per_partition)
        ]

    def fetch_slice_page(self, piece: Slice) -> list[dict]:
        grant = piece.context["grant_id"]
        with self._lock:
            self.requests.append((grant, time.monotonic()))
            self.in_flight[grant] += 1
            self.max_in_flight[grant] = max(self.max_in_flight[grant], self.in_flight[grant])
            self.started.append((grant, time.monotonic(), self.in_flight[grant]))
            outcome = self.script.get(grant, []).pop(0) if self.script.get(grant) else 0.01
        try:
            if isinstance(outcome, float):
                time.sleep(outcome)
                outcome = [{"id": f"{grant}-{piece.context['slice']}-{piece.pages}"}]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        finally:
            with self._lock:
                self.in_flight[grant] -= 1
            piece.pages += 1
            piece.last_size = self.page_bytes
            if piece.pages >= self.pages:
                piece.paginator._finished = True

    def split_slice(self, piece: Slice, records: list[dict], capacity: int) -> None:
        if isinstance(self.split_error, Exception) and piece.context["grant_id"] == "g2":
            raise self.split_error

    def estimate_pages_left(self, piece: Slice, records: list[dict]) -> float | None:
        return self.pages - piece.pages if self.estimates else None

    def keep_keyed(self, records: list[dict], context: dict) -> tuple[list[dict], int]:
        return records, 0


def write_all(scheduler: Scheduler, stream: FakeStream) -> tuple[list[str], dict[str, Exception]]:
    """Grant IDs in the order their partitions were written, and the errors raised."""
    order, errors = [], {}
    while (partition := scheduler.next_partition(stream)) is not None:  # type: ignore[arg-type]
        try:
            for _ in scheduler.pages(partition):
                pass
        except Exception as error:
            errors[partition.grant_id] = error
        order.append(partition.grant_id)
    return order, errors


def make(streams: list[FakeStream], **kwargs: t.Any) -> Scheduler:
    options = {"workers": 4, "per_grant": 2, "max_retries": 3, "backoff_factor": 0.2} | kwargs
    return Scheduler(streams, **options)  # type: ignore[arg-type]


def test_a_grant_429_delays_that_grant_only() -> None:
    stream = FakeStream("messages", ["slow", "a", "b", "c"], pages=3)
    throttled = RetryableError("HTTP 429", retry_after=0.6, scope="grant")
    stream.script["slow"] = [throttled]
    scheduler = make([stream])
    started = time.monotonic()

    _, errors = write_all(scheduler, stream)

    assert not errors
    slow = [at - started for grant, at in stream.requests if grant == "slow"]
    others = [at - started for grant, at in stream.requests if grant != "slow"]
    assert slow[1] >= 0.6  # the retry waited for Retry-After
    assert max(others) < 0.6  # nobody else waited for it


def test_an_application_429_does_not_hold_grant_requests() -> None:
    throttle = ApplicationThrottle(8)
    throttle.throttled(60)  # the application is held for a minute
    stream = FakeStream("messages", ["a", "b", "c", "d"], pages=2)
    scheduler = make([stream])

    result: list[tuple[list[str], dict[str, Exception]]] = []
    writer = threading.Thread(target=lambda: result.append(write_all(scheduler, stream)))
    writer.daemon = True
    writer.start()
    writer.join(10)

    assert result, "grant requests waited for the application's hold"
    order, errors = result[0]
    assert sorted(order) == ["a", "b", "c", "d"]
    assert not errors
    assert len(stream.requests) == 8
    entered = threading.Event()

    def application_request() -> None:
        with throttle.slot():
            entered.set()

    threading.Thread(target=application_request, daemon=True).start()
    assert not entered.wait(0.2)  # application requests are still held


def test_application_requests_halve_on_429_and_grow_back(caplog: pytest.LogCaptureFixture) -> None:
    throttle = ApplicationThrottle(8)
    with caplog.at_level(logging.INFO, logger="tap-nylas.throttle"):
        throttle.throttled(0)
        assert throttle.limit == 4
        throttle.throttled(0)
        assert throttle.limit == 2
        for _ in range(SUCCESSES_PER_STEP * 6):
            throttle.succeeded()
    assert throttle.limit == 8  # back up, never past the ceiling
    assert "Nylas throttled the application: 4 application requests in flight" in caplog.text
    assert "Application requests in flight back up to 8 of 8" in caplog.text


def test_halved_application_requests_run_that_many_at_once() -> None:
    throttle = ApplicationThrottle(4)
    throttle.throttled(0)  # 2 at once
    inside, peak, lock, release = 0, 0, threading.Lock(), threading.Event()

    def application_request() -> None:
        nonlocal inside, peak
        with throttle.slot():
            with lock:
                inside += 1
                peak = max(peak, inside)
            release.wait(5)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=application_request, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    with lock:
        assert inside == 2
    release.set()
    for thread in threads:
        thread.join(5)
    assert peak == 2


def test_a_5xx_delays_only_the_request_that_failed() -> None:
    stream = FakeStream("messages", ["a", "b"], pages=1)
    stream.slices_per_partition = 2
    stream.script["a"] = [RetryableError("HTTP 503")]  # no scope: only this request waits
    scheduler = make([stream], backoff_factor=0.5)
    started = time.monotonic()

    _, errors = write_all(scheduler, stream)

    assert not errors
    times = sorted(at - started for grant, at in stream.requests if grant == "a")
    assert len(times) == 3
    assert times[1] < 0.3  # the grant's other slice did not wait
    assert times[2] >= 0.5  # the failed one waited its backoff


def test_requests_per_grant_stay_within_the_limit() -> None:
    stream = FakeStream("messages", ["a", "b"], pages=4)
    stream.slices_per_partition = 5
    scheduler = make([stream], workers=8, per_grant=3)

    write_all(scheduler, stream)

    assert max(stream.max_in_flight.values()) == 3


def test_partitions_are_written_as_they_complete() -> None:
    stream = FakeStream("messages", ["slow", "a", "b", "c"], pages=2)
    stream.script["slow"] = [0.5, 0.5]
    scheduler = make([stream])

    order, _ = write_all(scheduler, stream)

    # the slow first partition is streamed once nothing else is finished: it comes last
    assert order[0] != "slow"
    assert sorted(order) == ["a", "b", "c", "slow"]


def test_the_next_stream_is_fetched_while_the_current_one_drains() -> None:
    first = FakeStream("contacts", ["a"], pages=1)
    first.script["a"] = [0.4]
    second = FakeStream("messages", ["b", "c"], pages=1)
    scheduler = make([first, second])
    started = time.monotonic()

    write_all(scheduler, first)

    fetched = [at - started for _, at in second.requests]
    assert len(fetched) == 2
    assert max(fetched) < 0.3  # before the first stream's only partition was done


def test_a_partition_that_keeps_failing_fails_alone() -> None:
    stream = FakeStream("messages", ["bad", "good"], pages=2)
    stream.script["bad"] = [RetryableError("HTTP 502")] * 10
    scheduler = make([stream], max_retries=2, backoff_factor=0.01)

    order, errors = write_all(scheduler, stream)

    assert sorted(order) == ["bad", "good"]
    assert isinstance(errors["bad"], PartitionFailedError)
    assert "after 2 retries" in str(errors["bad"])
    assert [g for g, _ in stream.requests].count("bad") == 3
    assert [g for g, _ in stream.requests].count("good") == 2
    assert scheduler.stats["messages"].failed == 1


def test_memory_is_bounded_by_bytes_not_grants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tap_nylas.scheduler.BUFFER_BYTES", 5 << 20)
    stream = FakeStream("messages", [f"g{n}" for n in range(60)], pages=1)
    stream.page_bytes = 1 << 20
    scheduler = make([stream], workers=4)
    peak = 0
    while (partition := scheduler.next_partition(stream)) is not None:  # type: ignore[arg-type]
        time.sleep(0.03)  # a slow writer: fetching runs ahead of it
        peak = max(peak, scheduler._buffered)
        for _ in scheduler.pages(partition):
            pass

    # the budget, plus the pages that were in flight when it filled up
    assert peak <= (5 + 4) << 20
    assert len(stream.requests) == 60


def test_progress_lines_while_running_and_a_summary_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = FakeStream("messages", ["a", "b", "c", "d"], pages=1)
    for grant in "abcd":
        stream.script[grant] = [0.3]
    scheduler = make([stream], workers=1, progress_interval=0.2)

    with caplog.at_level(logging.INFO, logger="tap-nylas.progress"):
        write_all(scheduler, stream)
        scheduler.close()

    lines = [r.getMessage() for r in caplog.records if r.name == "tap-nylas.progress"]
    assert any(re.match(r"messages: [123]/4 partitions, .* about \d+ s left", ln) for ln in lines)
    assert re.match(
        r"messages: 4/4 partitions, 0 records \(0/s\), 4 requests, 0 retries; done in [\d.]+ s",
        lines[-1],
    )


def test_a_stream_hook_that_raises_fails_its_partition_not_the_worker() -> None:
    stream = FakeStream("messages", ["g1", "g2", "g3"], pages=2)
    stream.split_error = KeyError("date")  # a bug in a stream, met on a worker thread
    scheduler = make([stream], workers=1)

    result: list[tuple[list[str], dict[str, Exception]]] = []
    writer = threading.Thread(target=lambda: result.append(write_all(scheduler, stream)))
    writer.daemon = True
    writer.start()
    writer.join(10)

    assert result, "the writer hangs: a worker died holding its request"
    order, errors = result[0]
    assert sorted(order) == ["g1", "g2", "g3"]
    assert list(errors) == ["g2"]
    assert isinstance(errors["g2"], KeyError)


def test_the_slice_with_the_most_pages_left_goes_first() -> None:
    # One grant, one request at a time: the order its slices are read in.
    stream = FakeStream("messages", ["g1"], pages=3)
    stream.estimates = True
    lengths = {0: 1, 1: 4, 2: 2}  # pages of each slice

    def initial_slices(context: dict) -> list[Slice]:
        return [Slice({**context, "slice": n}, _Pages(lengths[n])) for n in lengths]

    fetched: list[int] = []
    fetch = stream.fetch_slice_page

    def fetch_slice_page(piece: Slice) -> list[dict]:
        fetched.append(piece.context["slice"])
        stream.pages = lengths[piece.context["slice"]]
        return fetch(piece)

    stream.initial_slices = initial_slices  # type: ignore[method-assign]
    stream.fetch_slice_page = fetch_slice_page  # type: ignore[method-assign]
    write_all(make([stream], workers=1, per_grant=1), stream)

    # First pages first (they tell the sizes), then the longest slice while it is longest.
    assert fetched[:5] == [0, 1, 2, 1, 1]
    assert sorted(fetched) == [0, 1, 1, 1, 1, 2, 2]


def test_hundreds_of_workers_all_have_a_request_in_flight_when_there_is_work() -> None:
    # Every request waits until 256 are in flight at once: only a scheduler that keeps
    # every worker busy (no take serialised behind a walk of the queue, no wake-up lost)
    # lets the run finish without the 10 s escape hatch.
    workers = 256
    stream = FakeStream("messages", [f"g{n}" for n in range(400)], pages=2)
    everyone_in = threading.Event()
    in_flight, peak, lock = 0, 0, threading.Lock()
    fetch = stream.fetch_slice_page

    def fetch_slice_page(piece: Slice) -> list[dict]:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight >= workers:
                everyone_in.set()
        everyone_in.wait(10)
        try:
            return fetch(piece)
        finally:
            with lock:
                in_flight -= 1

    stream.fetch_slice_page = fetch_slice_page  # type: ignore[method-assign]
    order, errors = write_all(make([stream], workers=workers, per_grant=4), stream)

    assert everyone_in.is_set()
    assert peak == workers
    assert len(order) == 400
    assert not errors
    assert len(stream.requests) == 800


def test_a_held_grant_and_a_backoff_need_no_busy_worker_to_resume() -> None:
    # One worker, idle while the only requests wait out a Retry-After hold and a
    # backoff: it must wake up for them on its own.
    stream = FakeStream("messages", ["a", "b"], pages=2)
    stream.script["a"] = [RetryableError("HTTP 429", retry_after=0.2, scope="grant")]
    stream.script["b"] = [RetryableError("HTTP 503")]
    scheduler = make([stream], workers=1, backoff_factor=0.1)

    order, errors = write_all(scheduler, stream)

    assert sorted(order) == ["a", "b"]
    assert not errors
    assert len(stream.requests) == 4  # a failed try counts as a page in FakeStream
