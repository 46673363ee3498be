"""Lanes: a budget of their own for some slices of a grant (its IMAP history)."""

from __future__ import annotations

import time
import typing as t

from tap_nylas.errors import RetryableError
from tap_nylas.scheduler import Lane, Partition, _Task
from tap_nylas.slicing import Slice
from tests.unit.test_scheduler import FakeStream, _Pages, make, write_all


class LanedStream(FakeStream):
    """Grants whose name starts with `h` read their slices in the `history` lane.

    With `lane=False`, none does.
    """

    def __init__(self, *args: t.Any, lane: bool = True, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.lane = lane
        self.max_lane: dict[str, int] = {}
        self.lane_now: dict[str, int] = {}
        self.max_lane_total = 0

    def initial_slices(self, context: dict) -> list[Slice]:
        slices = []
        for n in range(self.slices_per_partition):
            history = self.lane and context["grant_id"].startswith("h")
            lane = "history" if history else None
            slices.append(Slice({**context, "slice": n}, _Pages(self.pages), lane=lane))
        return slices

    def fetch_slice_page(self, piece: Slice) -> list[dict]:
        grant = piece.context["grant_id"]
        if piece.lane:
            with self._lock:
                self.lane_now[grant] = self.lane_now.get(grant, 0) + 1
                self.max_lane[grant] = max(self.max_lane.get(grant, 0), self.lane_now[grant])
                self.max_lane_total = max(self.max_lane_total, sum(self.lane_now.values()))
        try:
            return super().fetch_slice_page(piece)
        finally:
            if piece.lane:
                with self._lock:
                    self.lane_now[grant] -= 1


def test_a_lane_caps_a_grants_requests_in_it_and_all_grants_together() -> None:
    stream = LanedStream("messages", ["h1", "h2", "h3", "h4", "a", "b"], pages=4)
    stream.slices_per_partition = 3
    scheduler = make([stream], workers=8, per_grant=3, lanes={"history": Lane(1, 2)})

    _, errors = write_all(scheduler, stream)

    assert not errors
    assert max(stream.max_lane.values()) == 1  # one history request of a grant at a time
    assert stream.max_lane_total == 2  # and two of all grants
    assert stream.max_in_flight["a"] == 3  # other grants keep their whole budget


def test_a_429_in_a_lane_holds_only_that_grants_lane() -> None:
    cache = LanedStream("messages", ["h1", "g2"], pages=4, lane=False)
    history = LanedStream("messages_history", ["h1", "h2"], pages=3)
    throttled = RetryableError("HTTP 429", retry_after=0.6, scope="grant")
    history.script["h1"] = [throttled]
    scheduler = make([history, cache], workers=4, per_grant=2, lanes={"history": Lane(1, 4)})
    started = time.monotonic()

    _, errors = write_all(scheduler, history)
    _, cache_errors = write_all(scheduler, cache)

    assert not errors
    assert not cache_errors
    h1 = [at - started for grant, at in history.requests if grant == "h1"]
    others = [at - started for grant, at in history.requests if grant != "h1"]
    assert h1[1] >= 0.6  # its retry waited for Retry-After
    assert max(others) < 0.6  # another grant's history did not wait
    assert min(at - started for _, at in cache.requests) < 0.6  # nor h1's cache read


def _task(
    scheduler_stream: FakeStream, grant: str, order: tuple[int, int], lane: str | None
) -> _Task:
    partition = Partition(scheduler_stream, {"grant_id": grant}, order)  # type: ignore[arg-type]
    return _Task(partition, Slice({"grant_id": grant}, _Pages(1), lane=lane), order[1])


def test_a_request_waiting_on_its_lane_leaves_the_grant_slot_and_runs_when_the_lane_frees() -> None:
    history = LanedStream("messages_history", ["h1", "h2"])
    cache = LanedStream("messages", ["h2"], lane=False)
    scheduler = make([history, cache], per_grant=1, lanes={"history": Lane(1, 1)})
    other = _task(history, "h1", (0, 0), "history")  # h1's history holds the lane's one slot
    scheduler._grant_busy["h1"] = 1
    scheduler._lane_busy["h1", "history"] = 1
    scheduler._lane_total["history"] = 1
    ended = _task(cache, "h2", (1, 9), None)  # and a cache read holds h2's one slot
    scheduler._grant_busy["h2"] = 1
    waiting_history = _task(history, "h2", (0, 1), "history")
    waiting_cache = _task(cache, "h2", (1, 2), None)
    scheduler._enqueue(waiting_history)
    scheduler._enqueue(waiting_cache)
    now = time.monotonic()
    assert scheduler._pop_runnable(now) is None  # both wait for h2's slot

    scheduler._free_slot(ended)  # h2's slot frees: its history is first, but the lane is full

    assert scheduler._pop_runnable(now) is waiting_cache  # the cache read takes the slot
    scheduler._free_slot(other)  # the lane's slot frees: the history waiting on it runs
    assert scheduler._pop_runnable(now) is waiting_history
