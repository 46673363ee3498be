"""Progress lines a person can read: how far each running stream is, and how fast."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

LOGGER = logging.getLogger("tap-nylas.progress")


@dataclass
class StreamStats:
    """What a stream's progress line reports; updated by workers and the writer."""

    partitions: int = 0
    partitions_done: int = 0
    records: int = 0
    requests: int = 0
    retries: int = 0
    failed: int = 0
    skipped: int = 0
    started_at: float | None = None
    finished_at: float | None = None


def progress_line(name: str, stats: StreamStats, now: float) -> str:
    """`messages: 12/50 partitions, 3,400 records (283/s), 60 requests, 2 retries, ~40 s left`."""
    elapsed = max(now - (stats.started_at or now), 1e-9)
    line = (
        f"{name}: {stats.partitions_done}/{stats.partitions} partitions, "
        f"{stats.records:,} records ({stats.records / elapsed:,.0f}/s), "
        f"{stats.requests:,} requests, {stats.retries:,} retries"
    )
    if stats.failed or stats.skipped:
        line += f", {stats.failed} failed, {stats.skipped} skipped"
    if stats.finished_at is not None:
        return f"{line}; done in {elapsed:,.1f} s"
    if 0 < stats.partitions_done < stats.partitions:
        left = elapsed / stats.partitions_done * (stats.partitions - stats.partitions_done)
        line += f", about {left:,.0f} s left"
    return line


class ProgressReporter:
    """Logs a progress line per running stream every `interval` seconds (0: never)."""

    def __init__(self, stats: dict[str, StreamStats], interval: float) -> None:
        """Report on `stats` (updated by the scheduler's workers and the writer)."""
        self._stats = stats
        self._interval = interval
        self._stop = threading.Event()
        if interval > 0:
            threading.Thread(target=self._run, name="tap-nylas-progress", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            now = time.monotonic()
            for name, stats in self._stats.items():
                if stats.started_at is not None and stats.finished_at is None:
                    LOGGER.info("%s", progress_line(name, stats, now))

    def finished(self, name: str) -> None:
        """A stream is written in full: its summary line."""
        stats = self._stats[name]
        stats.finished_at = time.monotonic()
        LOGGER.info("%s", progress_line(name, stats, stats.finished_at))

    def close(self) -> None:
        """No more lines."""
        self._stop.set()
