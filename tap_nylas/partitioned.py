"""Grant-scoped streams: one partition per grant (or calendar), written as it completes."""

from __future__ import annotations

import contextlib
import time
import typing as t
from functools import cached_property

from typing_extensions import override

from tap_nylas.client import NylasStream
from tap_nylas.coverage import Read
from tap_nylas.errors import (
    PartitionFailedError,
    PartitionUnavailableError,
    RepeatedCursorError,
    TapNylasError,
    describe_context,
)
from tap_nylas.slicing import Slice, Slicing

if t.TYPE_CHECKING:
    from collections.abc import Generator

    from singer_sdk.helpers.types import Context

    from tap_nylas.scheduler import Partition, Scheduler


class GrantScopedStream(NylasStream):
    """A list under `/v3/grants/{grant_id}/...`, synced once per valid, supporting grant.

    The grant list comes from the tap's grant directory (one listing of `/v3/grants` per
    run). Each grant is a stream partition, which keeps one bookmark per grant while the
    tap writes STATE at a linear cost (README: "State, scale, concurrency and sharding").
    Pages are fetched by the tap's scheduler (`scheduler.py`), as slices the stream's
    `slicing` strategy cuts (`slicing.py`); partitions are written as they complete.
    """

    primary_keys: t.ClassVar[tuple[str, ...]] = ("grant_id", "id")
    #: Providers whose grants do not have this endpoint at all.
    unsupported_providers: t.ClassVar[frozenset[str]] = frozenset()
    #: Context keys of a bookmark: per grant, whatever else a request's context carries.
    bookmark_keys: t.ClassVar[tuple[str, ...]] = ("grant_id",)
    #: A stream whose partitions can only be worked out once that stream is written.
    depends_on: t.ClassVar[str | None] = None
    #: How a partition is read: one slice, or a strategy that splits it (slicing.py).
    slicing: t.ClassVar[Slicing] = Slicing()
    supports_select = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """The stream, with no partition being written yet."""
        super().__init__(*args, **kwargs)
        #: IDs written in the current partition, where the slicing makes slices overlap.
        self._seen_ids: set[t.Any] = set()
        #: Records written of the partition being written.
        self._written = 0

    @property  # type: ignore[misc]
    @override
    def state_partitioning_keys(self) -> list[str]:
        """Bookmark keys for incremental streams, none for full-table ones.

        Thousands of empty partition entries would only bloat every STATE message.
        """
        return list(self.bookmark_keys) if self.replication_key else []

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> int | None:
        """No bookmark may pass the moment this run started (epoch seconds)."""
        return self.run.initialized_at // 1000 if self.replication_key else None

    def bookmark_floor(self, context: Context) -> int | None:
        """The partition's bookmark minus the look-back (for late arrivals), if any.

        Only a partition's own bookmark counts: a grant added later starts from
        `start_date`, not from another grant's progress.
        """
        bookmark = self.state_manager.bookmark(context)
        if bookmark is None:
            return None
        return int(bookmark) - int(self.config["incremental_lookback_seconds"])

    def lower_bound(self, context: Context) -> int | None:
        """What the incremental filter asks for: bookmark minus look-back, never before start."""
        bounds = [b for b in (self.bookmark_floor(context), self.run.start_epoch) if b is not None]
        return max(bounds) if bounds else None

    @cached_property
    @override
    def partitions(self) -> list[dict] | None:
        """The stream's partitions, worked out once per run."""
        return self.partition_contexts()

    def partition_contexts(self) -> list[dict]:
        """One context per grant: each is read and bookmarked on its own."""
        return self.grant_contexts()

    def grant_contexts(self) -> list[dict]:
        """One context per valid grant whose provider has this endpoint."""
        readable = self.directory.readable_grants(self.unsupported_providers)
        if readable.invalid:
            self.note_incomplete(f"{readable.invalid} invalid grant(s) not read")
        if readable.invalid or readable.unsupported:
            self.logger.info(
                "%s: reading %d grants; skipping %d invalid grants and %d whose provider "
                "has no %s endpoint",
                self.name,
                len(readable.grant_ids),
                readable.invalid,
                readable.unsupported,
                self.name,
            )
        return [{"grant_id": grant_id} for grant_id in readable.grant_ids]

    # How a partition is read, as the scheduler asks it: the stream's slicing strategy.

    def initial_slices(self, context: Context) -> list[Slice]:
        """How a partition is read at first; its read starts now (`sync_coverage`)."""
        self.run.coverage.started(self.name, context, self.read_of(context))
        return self.slicing.initial(self, dict(context))

    def read_of(self, context: Context) -> Read:
        """What a read of the partition starting now covers (`sync_coverage`).

        Incremental streams: records whose replication key is above the lower bound the
        read is filtered on (none: everything). Full-table streams: everything.
        """
        if not self.replication_key:
            return Read(time.time())
        return Read(time.time(), self.replication_key, self.lower_bound(context))

    def split_slice(self, piece: Slice, records: list[dict], capacity: int) -> list[Slice] | None:
        """Slices replacing `piece` after a page, to read it in parallel; None to go on."""
        return self.slicing.split(self, piece, records, capacity)

    def estimate_pages_left(self, piece: Slice, records: list[dict]) -> float | None:
        """Pages `piece` still has to read after `records` (None: no idea)."""
        return self.slicing.pages_left(self, piece, records)

    def keep_keyed(self, records: list[dict], context: Context) -> tuple[list[dict], int]:
        """Records that carry their key, and how many did not (they cannot be merged)."""
        needed = [k for k in self.primary_keys if k not in context]
        kept = [r for r in records if all(r.get(k) is not None for k in needed)]
        return kept, len(records) - len(kept)

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Key every record by its partition; once only where slices overlap.

        Adds `grant_id` (scheduled messages carry none) and, for events, the calendar the
        event was listed under when Nylas leaves `calendar_id` null.
        """
        if self.slicing.overlapping:
            if row.get("id") in self._seen_ids:
                return None
            self._seen_ids.add(row.get("id"))
        for key, value in (context or {}).items():
            if row.get(key) is None:
                row[key] = value
        return super().post_process(row, context)

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Paging, `select`, and the filters the slice carries (time range, window)."""
        params = super().get_url_params(context, next_page_token)
        params.update(self.select_params())
        if context:
            params.update({k: context[k] for k in self.slicing.query_keys if k in context})
        return params

    def partition_started(self, context: Context) -> None:
        """Called before the first record of a partition is written."""

    def partition_written(self, context: Context) -> None:
        """Called once every record of a partition was written, if it was read in full."""

    @property
    def scheduler(self) -> Scheduler:
        """The tap's scheduler, shared by every grant-scoped stream."""
        return self.run.scheduler

    @override
    def sync_records(
        self, context: Context | None, *, write_messages: bool
    ) -> Generator[dict, t.Any, t.Any]:
        """Partitions in the order the scheduler completes them, each bookmarked if whole.

        Per record this does what the SDK's loop does (post-process, write, bookmark,
        dry-run limit); per partition it finalises the bookmark only when the partition
        was read in full, and otherwise keeps the old one and reports why.
        """
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        index = 0
        selected = self.selected
        stats = self.scheduler.stats[self.name]
        with record_counter, timer:
            while (partition := self.scheduler.next_partition(self)) is not None:
                current = partition.context
                if signpost := self.get_replication_key_signpost(current):
                    self.state_manager.write_replication_key_signpost(signpost, context=current)
                self._seen_ids.clear()
                self._written = 0
                self.partition_started(current)
                try:
                    # closing(): a dry run's record limit stops the partition's requests now
                    with contextlib.closing(self._partition_rows(partition)) as rows:
                        for record in rows:
                            self.check_record_limit(index)
                            if selected:
                                if write_messages:
                                    self.write_record(record)
                                self.advance_bookmark(record, current)
                                record_counter.increment()
                                stats.records += 1
                                self._written += 1
                                yield record
                            index += 1
                except (PartitionUnavailableError, PartitionFailedError, TapNylasError) as error:
                    self._partition_done(partition, error)
                except RepeatedCursorError as error:
                    self._partition_done(partition, PartitionFailedError(str(error)))
                else:
                    self._partition_done(partition, None)
                # Every partition written so far is complete: a STATE may vouch for them
                # (the tap's state writer decides whether one goes out, see output.py).
                if write_messages:
                    self.write_state()
        if write_messages:
            self.write_state()

    def _partition_rows(self, partition: Partition) -> Generator[dict, None, None]:
        """A partition's records as they arrive, post-processed (None: left out)."""
        for page in self.scheduler.pages(partition):
            for row in page:
                if (record := self.post_process(row, partition.context)) is not None:
                    yield record

    def _partition_done(self, partition: Partition, error: Exception | None) -> None:
        """Finalise a written partition's bookmark, or keep the old one and say why."""
        current = partition.context
        if error is not None or partition.keyless:
            self.run.coverage.forget(self.name, current)
        if isinstance(error, PartitionUnavailableError):
            self._keep_old_bookmark(current, f"skipped: {error}", logging_level="warning")
        elif error is not None:
            self._keep_old_bookmark(current, f"failed: {error}", logging_level="error")
            self.run.report_failure(self.name, current, error)
        elif partition.keyless:
            keys = ", ".join(self.primary_keys)
            why = f"{partition.keyless} records without their key ({keys}) were left out"
            self._keep_old_bookmark(current, why, logging_level="warning")
        else:
            if self.replication_key:
                self.finalize_partition(current)
            self.partition_written(current)
            # After the last record and the bookmark: a completion record never vouches
            # for a partition that was not written in full (it is written at the run's end).
            self.run.coverage.completed(self.name, current, self._written)

    def _keep_old_bookmark(self, context: Context, why: str, *, logging_level: str) -> None:
        """What was read of a partition must not move its bookmark past unread records."""
        where = describe_context(context)
        keeps = "; its bookmark stays where it was" if self.replication_key else ""
        getattr(self.logger, logging_level)("%s for %s %s%s", self.name, where, why, keeps)
        self.note_incomplete(f"{where} {why}")
        if self.replication_key:
            self.get_context_state(context).pop("progress_markers", None)


class IdIndex(GrantScopedStream):
    """A stream whose IDs a later stream needs: noted per grant once written whole.

    Events list a grant's calendars, IMAP history its folders: each is read once, by
    the stream that already lists them, and the directory keeps the IDs of every grant
    whose partition was read in full (a partly read one is listed again when needed).
    """

    def remember_ids(self, grant_id: str, ids: list[str]) -> None:
        """Hand a grant's IDs, read in full, to the directory."""
        raise NotImplementedError

    @override
    def partition_started(self, context: Context) -> None:
        """No ID of the partition seen yet."""
        self._partition_ids: list[str] = []

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """The record, its ID noted."""
        self._partition_ids.append(row["id"])
        return super().post_process(row, context)

    @override
    def partition_written(self, context: Context) -> None:
        """Every ID of the grant is known: the directory keeps them."""
        self.remember_ids(context["grant_id"], self._partition_ids)
