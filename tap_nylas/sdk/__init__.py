"""The one seam to singer-sdk internals.

Every override of a final or private SDK member, and every import from a private SDK
module, lives in this package, each with a comment naming the SDK behaviour it changes
and why. Elsewhere ruff's banned-api rule (TID251, pyproject.toml) forbids the private
SDK modules, and tests/unit/test_sdk_seam.py fails when a name below disappears or
changes its signature: an SDK upgrade is one red test and this one folder to read.
"""

from __future__ import annotations

from singer_sdk.helpers._catalog import get_selected_schema
from singer_sdk.helpers._state import StateWriter

from tap_nylas.sdk.state import IndexedStateManager
from tap_nylas.sdk.stream import StreamSeam
from tap_nylas.sdk.tap import TapSeam, user_errors

#: SDK members the seam overrides or calls, as `module:Class.member` → the parameters
#: it was written against (singer-sdk 0.54; annotations left out, they are not API).
TOUCHED: dict[str, str] = {
    "singer_sdk.streams.core:Stream._sync_records": "(self, context=None, *, write_messages=True)",
    "singer_sdk.streams.core:Stream._write_activate_version_message": "(self, full_table_version)",
    "singer_sdk.streams.core:Stream._generate_record_messages": "(self, record)",
    "singer_sdk.streams.core:Stream._check_max_record_limit": "(self, current_record_index)",
    "singer_sdk.streams.core:Stream._write_record_message": "(self, record)",
    "singer_sdk.streams.core:Stream._increment_stream_state": (
        "(self, latest_record, *, context=None)"
    ),
    "singer_sdk.streams.core:Stream._write_state_message": "(self)",
    "singer_sdk.streams.core:Stream._finalize_state": "(self, state=None)",
    "singer_sdk.streams.core:Stream.state_manager": "(self)",
    "singer_sdk.tap_base:Tap.load_streams": "(self)",
    "singer_sdk.tap_base:Tap.sync_all": "(self)",
    "singer_sdk.tap_base:Tap.run_sync_dry_run": "(self, dry_run_record_limit=1, streams=None)",
    "singer_sdk.tap_base:Tap._handle_termination": "(self, signum, frame)",
    "singer_sdk.plugin_base:PluginBase._validate_config": "(self, *, raise_errors=True)",
    "singer_sdk.plugin_base:PluginBase.cb_config": "(ctx, param, value)",
    "singer_sdk.plugin_base:_ConfigInput": "(config=<factory>, parse_env=False)",
    "singer_sdk.helpers._catalog:get_selected_schema": "(stream_name, schema, mask)",
    "singer_sdk.helpers._state:StateWriter.write_state": "(self, state)",
    "singer_sdk.streams._state:StreamStateManager.get_state_partition_context": "(self, context)",
    "singer_sdk.streams._state:StreamStateManager.finalize_state": "(self, state=None)",
    "singer_sdk.streams._state:StreamStateManager.get_context_state": "(self, context)",
}

#: Private attributes of the SDK's stream and tap that the seam reads or sets.
TOUCHED_ATTRIBUTES = (
    "_state_manager",
    "_tap_state",
    "_stream_version",
    "_state_writer",
    "_config",
)

__all__ = [
    "TOUCHED",
    "TOUCHED_ATTRIBUTES",
    "IndexedStateManager",
    "StateWriter",
    "StreamSeam",
    "TapSeam",
    "get_selected_schema",
    "user_errors",
]
