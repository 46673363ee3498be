"""Per-grant bookmarks at a linear cost.

The SDK keeps one state entry per partition in a list and finds an entry by scanning
that list, for every record. With thousands of grants that scan dominates the run, so
the state manager here keeps a dict index over the same list: the STATE the tap emits
is exactly the SDK's format.
"""

from __future__ import annotations

import logging
import threading
import typing as t

from singer_sdk.streams._state import StreamStateManager
from typing_extensions import override

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

PartitionKey = tuple[tuple[str, t.Any], ...]


class IndexedStateManager(StreamStateManager):
    """`StreamStateManager` whose partition lookup is a dict hit, not a list scan."""

    def __init__(
        self, *, keeps_bookmark: t.Callable[[Context], bool] = lambda _: True, **kwargs: t.Any
    ) -> None:
        """The SDK manager's arguments, and which partitions keep a bookmark of their own."""
        super().__init__(**kwargs)
        self._keeps_bookmark = keeps_bookmark
        # The SDK logs each partition's starting bookmark at INFO: a line per grant and
        # stream. Here they go to `<tap>.<stream>.bookmarks`, shown from WARNING up.
        self._logger = self._logger.getChild("bookmarks")
        self._logger.setLevel(logging.WARNING)
        self._partitions: list[dict] | None = None
        self._index: dict[PartitionKey, dict] = {}
        self._lock = threading.Lock()  # scheduler workers read bookmarks concurrently

    @override
    def get_state_partition_context(self, context: Context | None) -> Context | None:  # type: ignore[override]
        """The partition's bookmark keys; none (stream level) where it keeps no bookmark."""
        partition = super().get_state_partition_context(context)
        if partition and not self._keeps_bookmark(partition):
            return {}
        return partition

    @override
    def finalize_state(self, state: dict | None = None) -> None:
        """The SDK's finalisation, with the replication key once per stream, not per grant.

        Repeated in every partition it was a fifth of a 10,000-grant STATE; bookmarks are
        read from each partition's `replication_key_value`.
        """
        super().finalize_state(state)
        if state is not None and "context" in state and "replication_key" in state:
            self.stream_state["replication_key"] = state.pop("replication_key")

    @override
    def get_context_state(self, context: Context | None) -> dict:
        """The state entry of a partition, created on first use."""
        partition = self.get_state_partition_context(context)
        if not partition:
            return self.stream_state
        with self._lock:
            entry = self._lookup(partition)
            if entry is None:
                entry = {"context": dict(partition)}
                self.stream_state["partitions"].append(entry)
                self._index[_key(partition)] = entry
            return entry

    def partition_entry(self, context: Context) -> dict | None:
        """A partition's state entry, if it has one, without creating it."""
        partition = self.get_state_partition_context(context)
        if not partition:
            return None
        with self._lock:
            return self._lookup(partition)

    def bookmark(self, context: Context) -> t.Any:
        """A partition's bookmark, if any, without creating its entry.

        Prefetch threads read bookmarks ahead of the SDK; creating entries then would
        make STATE written meanwhile differ from a sequential run's.
        """
        partition = self.get_state_partition_context(context)
        if not partition:
            return None  # the partition keeps no bookmark of its own
        with self._lock:
            entry = self._lookup(partition)
        return None if entry is None else entry.get("replication_key_value")

    def _lookup(self, partition: Context) -> dict | None:
        partitions: list[dict] = self.stream_state.setdefault("partitions", [])
        if partitions is not self._partitions or len(self._index) != len(partitions):
            # First use, or the list was replaced or edited outside this manager.
            self._partitions = partitions
            self._index = {_key(entry["context"]): entry for entry in partitions}
        return self._index.get(_key(partition))


def _key(context: t.Mapping[str, t.Any]) -> PartitionKey:
    return tuple(sorted(context.items()))
