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
from typing_extensions import override

from tap_nylas.directory import Shard

if t.TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_nylas.sdk import StreamSeam

    _Stream = StreamSeam
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

    @override
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
    #: Why a stream must never be activated: its table keeps rows older runs wrote on
    #: purpose (sweeps, completion records), which the models need.
    never_activated: t.ClassVar[str | None] = None

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """The stream, with nothing noted against this run yet."""
        super().__init__(*args, **kwargs)
        self._incomplete: list[str] = []
        self._incomplete_lock = threading.Lock()  # partitions are read in worker threads

    def note_incomplete(self, reason: str) -> None:
        """Record that this run did not read all of the stream (thread-safe)."""
        with self._incomplete_lock:
            self._incomplete.append(reason)

    def incomplete_reasons(self) -> list[str]:
        """Why this run must not activate a version of the stream (empty: it may)."""
        reasons = [self.never_activated] if self.never_activated else []
        # Declared by the stream class (the catalog may drop it): read by date, never whole.
        if isinstance(getattr(type(self), "replication_key", None), str):
            reasons.append("it is read by date (start_date, incremental bookmarks)")
        if scope := self._restricted_scope():
            reasons.append(scope)
        with self._incomplete_lock:
            reasons += self._incomplete
        return reasons

    def _restricted_scope(self) -> str | None:
        shard = Shard.parse(self.config.get("grant_shard"))
        where = f"grant_shard {shard.index}/{shard.count}"
        if not self.read_per_grant:
            return None if shard.first else f"{where} leaves it to shard 1"
        if grant_ids := self.config.get("grant_ids"):
            return f"grant_ids restricts the run to {len(grant_ids)} grant(s)"
        return None if shard.count == 1 else f"{where} reads a share of the grants"

    @override
    def stream_finished(self) -> None:
        """Write the version `Stream.sync` held back (sdk/stream.py), or say why not."""
        version, self.pending_version = self.pending_version, None
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
        self.write_activate_version(version)
