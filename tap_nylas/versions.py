"""ACTIVATE_VERSION: only after a stream's last record, and only when the run read it all.

A target acting on ACTIVATE_VERSION (target-postgres `activate_version`) deletes, or marks
with `_sdc_deleted_at`, every row of the table this run did not write. That is right only
when the run read the whole stream: a run restricted by `grant_ids` or `grant_shard`, or
one that skipped a grant or calendar, would wipe the rows it did not read. And it must
come after the records: the SDK sends it before the first one, which empties the table
for the length of the run.
"""

from __future__ import annotations

import threading
import typing as t

from singer_sdk import typing as th

if t.TYPE_CHECKING:
    from singer_sdk import Stream, Tap
    from singer_sdk.helpers.types import Context

    _Stream = Stream
    _Tap = Tap
else:
    _Stream = _Tap = object

# The SDK (0.54.9) defines this setting (helpers/capabilities.py) and reads it in
# `Stream.sync`, but declares it for no tap; declared here with what it does in this tap.
EMIT_ACTIVATE_VERSION_SETTING = th.PropertiesList(
    th.Property(
        "emit_activate_version_messages",
        th.BooleanType,
        default=False,
        title="Emit `ACTIVATE_VERSION` messages",
        description="Full-table streams end with ACTIVATE_VERSION, so a target can drop or "
        "soft-delete rows that are gone from Nylas; skipped for a stream whenever the run "
        "did not read all of it (grant_ids, grant_shard, a skipped grant or calendar).",
    ),
).to_dict()

MAX_REASONS_SHOWN = 3


class ActivateVersionSetting(_Tap):
    """For the Tap: declares `emit_activate_version_messages` (shown by `--about`)."""

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        """The SDK's built-in settings, plus this one."""
        super().append_builtin_config(config_jsonschema)
        for name, prop in EMIT_ACTIVATE_VERSION_SETTING["properties"].items():
            config_jsonschema["properties"].setdefault(name, prop)


class ActivateVersionMixin(_Stream):
    """For NylasStream: ACTIVATE_VERSION deferred to the end, and dropped when incomplete."""

    #: Whether `grant_ids`/`grant_shard` limit what this stream reads (connectors and
    #: credentials are read whole by shard 1).
    read_per_grant: t.ClassVar[bool] = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """The stream, with nothing noted against this run yet."""
        super().__init__(*args, **kwargs)
        self._incomplete: list[str] = []
        self._incomplete_lock = threading.Lock()  # partitions are read in worker threads
        self._pending_version: int | None = None

    def note_incomplete(self, reason: str) -> None:
        """Record that this run did not read all of the stream (thread-safe)."""
        with self._incomplete_lock:
            self._incomplete.append(reason)

    def incomplete_reasons(self) -> list[str]:
        """Why this run must not activate a version of the stream (empty: it may)."""
        reasons = []
        # Declared by the stream class (the catalog may drop it): read by date, never whole.
        if isinstance(getattr(type(self), "replication_key", None), str):
            reasons.append("it is read by date (start_date, incremental bookmarks)")
        if scope := self._restricted_scope():
            reasons.append(scope)
        with self._incomplete_lock:
            reasons += self._incomplete
        return reasons

    def _restricted_scope(self) -> str | None:
        shard = str(self.config.get("grant_shard") or "1/1")
        index, _, count = shard.partition("/")
        if not self.read_per_grant:
            return None if index == "1" else f"grant_shard {shard} leaves it to shard 1"
        if grant_ids := self.config.get("grant_ids"):
            return f"grant_ids restricts the run to {len(grant_ids)} grant(s)"
        return None if count == "1" else f"grant_shard {shard} reads a share of the grants"

    # The one place SDK internals are touched. `Stream.sync` (SDK 0.54.9) stamps every
    # RECORD with the version and calls `_write_activate_version_message` BEFORE the
    # first record; here the call only keeps the version, and `_sync_records` writes it
    # after the last record of the whole stream, if the run read all of it.

    def _write_activate_version_message(self, full_table_version: int) -> None:
        self._pending_version = full_table_version

    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> t.Generator[dict, t.Any, t.Any]:
        yield from super()._sync_records(context, write_messages=write_messages)
        # A child stream's sync covers one parent record: its parent activates it.
        if context is None and self.parent_stream_type is None:
            for stream in (self, *self.descendent_streams):
                if isinstance(stream, ActivateVersionMixin):
                    stream.activate_pending_version()

    def activate_pending_version(self) -> None:
        """Write the version `Stream.sync` held back, or one line saying why not."""
        version, self._pending_version = self._pending_version, None
        if version is None:
            return
        if reasons := self.incomplete_reasons():
            more = len(reasons) - MAX_REASONS_SHOWN
            shown = "; ".join(reasons[:MAX_REASONS_SHOWN]) + (
                f"; and {more} more" if more > 0 else ""
            )
            self.logger.warning(
                "%s: no ACTIVATE_VERSION (rows gone from Nylas stay in the target): "
                "this run did not read all of it: %s",
                self.name,
                shown,
            )
            return
        super()._write_activate_version_message(version)
