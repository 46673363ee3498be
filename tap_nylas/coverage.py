"""Completion records: which partitions this run read in full, and what that read covered.

A partition (a grant, a grant's calendar, an application-level list) read completely and
written gets one record in the `sync_coverage` stream. The warehouse models read it as
"every row of this grant and stream not written since `read_started_at`, within this
range and window, is gone from Nylas" (README: "Deletions, changed flags and a warehouse
that stays true"). A leaf: it knows no stream, only what streams report to it.
"""

from __future__ import annotations

import threading
import time
import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone

if t.TYPE_CHECKING:
    from collections.abc import Mapping

PartitionKey = tuple[tuple[str, t.Any], ...]


def iso(moment: float) -> str:
    """Epoch seconds (with a fraction) as an ISO 8601 UTC date-time, microseconds kept."""
    return datetime.fromtimestamp(moment, timezone.utc).isoformat()


def partition_key(context: Mapping[str, t.Any]) -> PartitionKey:
    """A partition's context as a hashable key."""
    return tuple(sorted(context.items()))


@dataclass(frozen=True)
class Read:
    """What one partition's read asked for, noted when its first request is prepared.

    `range_start`/`range_end`: the replication-key bounds sent (records whose key is
    greater than `range_start` and less than `range_end` were listed; None: no bound).
    `window_start`/`window_end`: the events time window listed (None: not an events read).
    """

    started_at: float
    replication_key: str | None = None
    range_start: int | None = None
    range_end: int | None = None
    window_start: int | None = None
    window_end: int | None = None


class CoverageLedger:
    """The completion records of a run, collected from any thread, written at the end.

    Nothing is collected while `enabled` is false (`sync_coverage` deselected, a dry run).
    """

    def __init__(self, run_started_at: float, *, enabled: bool) -> None:
        """A ledger for the run that started at `run_started_at` (epoch seconds)."""
        self.run_started_at = run_started_at
        self.enabled = enabled
        self._lock = threading.Lock()
        self._reads: dict[tuple[str, PartitionKey], Read] = {}
        self._records: list[dict] = []

    def started(self, stream: str, context: Mapping[str, t.Any], read: Read) -> None:
        """A partition's read starts (its first request is about to go out)."""
        if self.enabled:
            with self._lock:
                self._reads[stream, partition_key(context)] = read

    def completed(self, stream: str, context: Mapping[str, t.Any], records: int) -> None:
        """A partition was read in full and every record of it written."""
        if not self.enabled:
            return
        with self._lock:
            read = self._reads.pop((stream, partition_key(context)), None)
        if read is None:  # never started here: nothing to vouch for
            return
        self.add(stream, context, read, records)

    def forget(self, stream: str, context: Mapping[str, t.Any]) -> None:
        """A partition that failed or was skipped: it gets no completion record."""
        with self._lock:
            self._reads.pop((stream, partition_key(context)), None)

    def add(
        self, stream: str, context: Mapping[str, t.Any], read: Read, records: int | None
    ) -> None:
        """One completion record (application-level lists report here directly)."""
        if not self.enabled:
            return
        record = {
            "stream": stream,
            "grant_id": str(context.get("grant_id") or ""),
            "calendar_id": str(context.get("calendar_id") or ""),
            "read_started_at": iso(read.started_at),
            "read_ended_at": iso(time.time()),
            "run_started_at": iso(self.run_started_at),
            "replication_key": read.replication_key,
            "range_start": read.range_start,
            "range_end": read.range_end,
            "window_start": read.window_start,
            "window_end": read.window_end,
            "records": records,
        }
        with self._lock:
            self._records.append(record)

    def records(self) -> list[dict]:
        """Every completion record so far, in completion order."""
        with self._lock:
            return list(self._records)


def bookmark_index(state: Mapping[str, t.Any]) -> dict[tuple[str, PartitionKey], t.Any]:
    """Each partition's bookmark in a Singer STATE (the SDK's format), by stream and context.

    Read once, when the run starts: what the run's reads are filtered on, whatever the
    run writes later.
    """
    index: dict[tuple[str, PartitionKey], t.Any] = {}
    bookmarks = state.get("bookmarks") if isinstance(state, dict) else None
    for stream, entry in (bookmarks or {}).items():
        if not isinstance(entry, dict):
            continue
        for partition in entry.get("partitions") or []:
            context = partition.get("context") if isinstance(partition, dict) else None
            value = partition.get("replication_key_value") if context else None
            if isinstance(context, dict) and value is not None:
                index[stream, partition_key(context)] = value
    return index
