"""The stream's side of the seam: every final or private `Stream` member the tap touches."""

from __future__ import annotations

import typing as t
from datetime import datetime, timezone

from singer_sdk import RESTStream
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from tap_nylas.sdk.state import IndexedStateManager

if t.TYPE_CHECKING:
    from collections.abc import Generator

    from singer_sdk.helpers.types import Context


class StreamSeam(RESTStream[t.Any]):
    """The SDK's REST stream, with the few internal behaviours the tap changes.

    Elsewhere the tap calls only the public names defined here (`write_record`,
    `finalize_partition`, …), never the SDK's private members behind them.
    """

    #: ACTIVATE_VERSION held back from the start of the sync (see below).
    pending_version: int | None = None

    def stream_finished(self) -> None:
        """Hook: the stream and its children wrote their last record (versions.py)."""

    def sync_records(
        self, context: Context | None, *, write_messages: bool
    ) -> Generator[dict, t.Any, t.Any]:
        """The SDK's record loop: partitions in list order, one after another."""
        return super()._sync_records(context, write_messages=write_messages)

    # SDK (`Stream.sync`): `_sync_records` is the whole record loop, private. Wrapped so
    # a stream can replace the loop (`sync_records`: grant-scoped streams write
    # partitions in completion order) and so `stream_finished` runs after the last
    # record of every stream, whichever loop it used.
    @override
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> Generator[dict, t.Any, t.Any]:
        yield from self.sync_records(context, write_messages=write_messages)
        # A child stream's sync covers one parent record: its parent finishes it.
        if context is None and self.parent_stream_type is None:
            for stream in (self, *self.descendent_streams):
                if isinstance(stream, StreamSeam):
                    stream.stream_finished()

    # SDK (`Stream.sync`): writes ACTIVATE_VERSION before the first record, which
    # empties a target's table for the length of the run. Held here instead; versions.py
    # writes it (`write_activate_version`) after the last record, if the run read it all.
    @override
    def _write_activate_version_message(self, full_table_version: int) -> None:
        self.pending_version = full_table_version

    def write_activate_version(self, version: int) -> None:
        """Write ACTIVATE_VERSION `version` now."""
        super()._write_activate_version_message(version)

    # SDK: `_generate_record_messages` walks every record against the selection mask and
    # the schema (`pop_deselected_record_properties`, `conform_record_data_types`).
    # `post_process` (selection.py `shape_record`) already cut the record to exactly
    # that, so the walk found nothing and took a sixth of the writer's time (profile at
    # latency 0). Stream maps still apply, as in the SDK.
    @override
    def _generate_record_messages(self, record: dict) -> Generator[RecordMessage, None, None]:
        for stream_map in self.stream_maps:
            if (mapped := stream_map.transform(record)) is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(timezone.utc),
                )

    # SDK: one `StreamStateManager` per stream, which finds a partition's entry by
    # scanning a list, for every record; at thousands of grants that scan dominated the
    # run. The indexed manager (sdk/state.py) writes the same STATE.
    @property
    @override
    def state_manager(self) -> IndexedStateManager:
        if self._state_manager is None:
            self._state_manager = IndexedStateManager(
                tap_name=self.tap_name,
                stream_name=self.name,
                tap_state=self._tap_state,
                state_partitioning_keys=self.state_partitioning_keys,
                is_sorted=self.is_sorted,
                check_sorted=self.check_sorted,
                keeps_bookmark=self.keeps_bookmark,
            )
        return t.cast("IndexedStateManager", self._state_manager)

    def keeps_bookmark(self, partition: Context) -> bool:
        """Whether the partition keeps a bookmark of its own (its requests filter on it)."""
        return True

    # The steps of the SDK's record loop, for a loop of the tap's own (partitioned.py):
    # each is what `Stream._sync_records` (0.54) does at that point.

    def check_record_limit(self, index: int) -> None:
        """Stop a dry run (`--test`) at its record limit."""
        self._check_max_record_limit(current_record_index=index)

    def write_record(self, record: dict) -> None:
        """Write the RECORD message(s) of `record` (stream maps applied)."""
        self._write_record_message(record)

    def advance_bookmark(self, record: dict, context: Context) -> None:
        """Move the partition's bookmark to `record`'s replication key."""
        self._increment_stream_state(record, context=context)

    def write_state(self) -> None:
        """Hand the tap's state to its state writer (which decides whether it goes out)."""
        self._write_state_message()

    def finalize_partition(self, context: Context) -> None:
        """Make a partition's bookmark final: every record up to it was written."""
        self._finalize_state(self.get_context_state(context))
