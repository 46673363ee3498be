"""tap-nylas with ONE bookmark per stream instead of one per grant (benchmark baseline).

Run exactly like `tap-nylas`: `python benchmarks/one_bookmark_tap.py --config c.json ...`.
It patches class attributes only (no tap file is edited): an empty
`state_partitioning_keys` (a class attribute here, overriding the tap's attribute or
property) makes every partition of a grant-scoped stream share the stream-level
bookmark, which is what `state_scale.py` compares per-grant bookmarks with.
Not a correct tap: a grant added later would start from another grant's bookmark.
"""

from tap_nylas.partitioned import GrantScopedStream
from tap_nylas.streams import EventsStream
from tap_nylas.tap import TapNylas

GrantScopedStream.state_partitioning_keys = []
EventsStream.state_partitioning_keys = []

if __name__ == "__main__":
    TapNylas.cli()
