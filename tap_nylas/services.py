"""What streams need of the running tap: the protocol the tap implements.

Streams are handed the tap at construction; typing it as this protocol, not as the tap
class, keeps imports running one way (tap → streams → machinery).
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from tap_nylas.coverage import CoverageLedger
    from tap_nylas.directory import GrantDirectory
    from tap_nylas.scheduler import Scheduler
    from tap_nylas.throttle import ApplicationThrottle


class TapServices(t.Protocol):
    """The run's shared parts, and where streams report to it."""

    @property
    def directory(self) -> GrantDirectory:
        """The grants (and calendars) this run reads."""

    @property
    def scheduler(self) -> Scheduler:
        """Fetches the pages of every grant-scoped stream."""

    @property
    def coverage(self) -> CoverageLedger:
        """Where partitions read in full are recorded (`sync_coverage`)."""

    @property
    def sweep_days(self) -> int:
        """Days of recent mail and events the sweep streams re-read (0: no sweep)."""

    def bookmark_at_start(self, stream: str, context: t.Mapping[str, t.Any]) -> t.Any:
        """A partition's bookmark as the run's state had it when the run started."""

    @property
    def start_epoch(self) -> int | None:
        """`start_date` as epoch seconds."""

    @property
    def initialized_at(self) -> int:
        """When the run started, epoch milliseconds."""

    @property
    def application_throttle(self) -> ApplicationThrottle:
        """Holds application requests (never grant ones) after the application's 429s."""

    def application_throttled(self, wait: float) -> None:
        """A 429 on an application endpoint: application requests hold back for `wait` s."""

    def report_failure(self, stream: str, context: dict, error: Exception) -> None:
        """A partition failed: the run ends non-zero once all else is synced."""
