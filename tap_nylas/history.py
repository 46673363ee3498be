"""The whole history of an IMAP, Yahoo or iCloud mailbox, read once per grant (issue #18).

Nylas keeps only a rolling 90 days of these mailboxes. Older mail is listed by the IMAP
server itself, with `query_imap=true`, one folder (`in=<folder_id>`) at a time, each
message naming only the folder it was listed in. Nylas does not document whether the
date filters or the newest-first order hold there, so the tap relies on neither.

A grant's history is one partition of the `messages` stream, read by one `HistorySlice`
in two passes over the grant's folders (in ID order):

1. an index: every folder listed with `select=id,date`, to learn which folders hold
   each message older than the cache (a few dozen bytes a message: 20,000 messages
   are about 2 MB, held only while the grant's history is read);
2. the messages: every folder listed again in full; a message is emitted once, where
   it is met first (the first folder that holds it, unless it moved since the index),
   with every folder it was found in.

History keeps `[start_date, before)`, where `before` is fixed when a grant's history
starts (`TRUSTED_CACHE_DAYS` before that run) and kept in its state; the grant's cache
reads keep `[before, ...)` meanwhile, so nothing is emitted by both. Per grant the state
holds `{"before", "folder", "cursor"}` (where the message pass is: the page whose records
are being written) until the history is read whole, then only `{"done": true}`.

`ImapHistory` is the strategy a stream declares to read it (`messages`), as its base:
the history partitions, their slice, their state, their bounds against the cache. It
reads the folder IDs that `FolderIndex` (`folders`) noted as they were written.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field, replace

from typing_extensions import override

from tap_nylas.errors import PartitionFailedError
from tap_nylas.pagination import CursorPaginator, new_paginator
from tap_nylas.partitioned import GrantScopedStream, IdIndex
from tap_nylas.slicing import DAY, Slice

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from singer_sdk.helpers.types import Context
    from singer_sdk.pagination import BaseAPIPaginator

    from tap_nylas.coverage import Read

#: Providers whose mail Nylas caches for a rolling 90 days only.
IMAP_PROVIDERS = frozenset({"imap", "yahoo", "icloud"})
#: Days of mail read from Nylas's cache; older mail is history. Nylas keeps 90 days on a
#: rolling basis without saying to the minute where the edge lies: two days short of it,
#: mail at the edge is still in the cache when the cache is read.
TRUSTED_CACHE_DAYS = 88
#: Key of a grant's history in its `messages` state entry.
STATE_KEY = "imap_history"
#: The scheduler lane of history requests (their own budget, their own 429 holds).
LANE = "imap_history"
#: History requests in flight across all grants by default (`imap_history_max_requests`).
REQUESTS = 16
#: Key of a history partition's context.
CONTEXT_KEY = "imap_history"
#: Where in the history a record was read (folder, cursor): carried to the writer.
POSITION = "_imap_history_position"
#: Context key of a history page's query parameters (folder, `query_imap`, `select`).
PARAMS = "_history_params"
#: Fields the index pass asks for.
INDEX_FIELDS = ("id", "date")


@dataclass(frozen=True)
class HistoryPlan:
    """What is left of a grant's history: its upper bound and where to resume."""

    before: int
    after: int | None
    folder: str | None = None
    cursor: str | None = None

    def state(self, folder: str | None = None, cursor: str | None = None) -> dict:
        """The state entry of a history read up to (folder, cursor)."""
        entry: dict[str, t.Any] = {"before": self.before}
        if folder is not None:
            entry["folder"] = folder
            if cursor is not None:
                entry["cursor"] = cursor
        return entry


def plan_history(saved: object, start: int | None, now: int) -> HistoryPlan | None:
    """The history a grant still needs, from its saved state; None if it needs none.

    None once it is done, or when `start` lies within the cache (nothing older wanted).
    """
    if not isinstance(saved, dict):
        saved = {}
    if saved.get("done") is True:
        return None
    before = saved.get("before")
    if not isinstance(before, int) or isinstance(before, bool) or before <= 0:
        before = now - TRUSTED_CACHE_DAYS * DAY
    if start is not None and start >= before:
        return None
    folder, cursor = saved.get("folder"), saved.get("cursor")
    return HistoryPlan(
        before=before,
        after=start,
        folder=folder if isinstance(folder, str) and folder else None,
        cursor=cursor if isinstance(cursor, str) and cursor else None,
    )


@dataclass(eq=False)
class HistorySlice(Slice):
    """A grant's history as one slice: its folders indexed, then read, one after another.

    `fetch` (the stream's request for the slice's next page) is done on a worker; what
    it hands the writer are records with every folder and their `POSITION`, or a bare
    position when a page left nothing to emit.
    """

    plan: HistoryPlan | None = None
    #: The grant's folder IDs, in read order (listed on the first request).
    folders: list[str] | None = None
    #: Index of the folder being listed.
    folder: int = 0
    indexing: bool = True
    #: Message ID → indexes of the folders it was found in, first one first.
    index: dict[str, list[int]] = field(default_factory=dict)
    #: IDs the message pass emitted (a message moved between the passes is met once).
    emitted: set[str] = field(default_factory=set)
    #: The folder the message pass started from (after the folders a stopped run read).
    first_read: int = 0
    #: A fresh paginator, starting at a cursor (None: the first page).
    new_paginator: Callable[[str | None], BaseAPIPaginator] | None = None
    #: Called with (folders done, folders, pass) as each folder is done.
    on_folder: Callable[[int, int, str], None] | None = None
    #: The next page is the one a stopped run saved (its cursor may have expired since).
    resuming: bool = False
    _done: bool = False

    @property
    @override
    def finished(self) -> bool:
        """Whether every folder was indexed and read."""
        return self._done

    @property
    def folder_id(self) -> str:
        """The folder being listed."""
        assert self.folders is not None  # noqa: S101 - listed before any page
        return self.folders[self.folder]

    def start(self, folders: list[str]) -> None:
        """The grant's folders are known: index them from the first."""
        self.folders = sorted(dict.fromkeys(folders))
        self.folder, self.indexing = 0, True
        self._done = not self.folders
        self._restart(None)

    def params(self) -> dict[str, t.Any]:
        """Query parameters of the next page (besides paging and `select`)."""
        assert self.plan is not None  # noqa: S101 - set at creation
        params: dict[str, t.Any] = {"query_imap": "true", "in": self.folder_id}
        # Asked, though not documented to hold under query_imap: filtered again here.
        params["received_before"] = self.plan.before
        if self.plan.after is not None:
            params["received_after"] = self.plan.after - 1
        if self.indexing:
            params["select"] = ",".join(INDEX_FIELDS)
        return params

    def take(self, records: list[dict], cursor: str | None) -> list[dict]:
        """What of a page (read at `cursor`) goes to the writer; then on to what is next."""
        self.resuming = False
        kept = [r for r in records if self._wanted(r)]
        position = (self.folder_id, cursor)
        out: list[dict] = []
        if self.indexing:
            for record in kept:
                found = self.index.setdefault(record["id"], [])
                if not found or found[-1] != self.folder:
                    found.append(self.folder)
        else:
            assert self.folders is not None  # noqa: S101 - listed before any page
            for record in kept:
                mid = record["id"]
                found = self.index.get(mid, [])
                # Emitted already: this run, or by the stopped run it resumes (from a
                # folder before the one it stopped in).
                if mid in self.emitted or (found and found[0] < self.first_read):
                    continue
                self.emitted.add(mid)
                # Met first here: folders read before this one no longer held it (it
                # moved since the index, or was never indexed), the others may.
                where = sorted({i for i in found if i > self.folder} | {self.folder})
                record["folders"] = [self.folders[i] for i in where]
                record[POSITION] = position
                out.append(record)
            if not out:
                out.append({"id": "", POSITION: position})
        if self.paginator.finished:
            self._next_folder()
        return out

    def _wanted(self, record: dict) -> bool:
        """Older than the cache, not before `start_date`, and an ID to key it by."""
        assert self.plan is not None  # noqa: S101 - set at creation
        date = record.get("date")
        if not isinstance(date, int) or isinstance(date, bool) or not record.get("id"):
            return False
        return date < self.plan.before and (self.plan.after is None or date >= self.plan.after)

    def _next_folder(self) -> None:
        assert self.folders is not None  # noqa: S101 - listed before any page
        assert self.plan is not None  # noqa: S101 - set at creation
        if self.on_folder is not None:
            step = "indexed" if self.indexing else "read"
            self.on_folder(self.folder + 1, len(self.folders), step)
        if self.folder + 1 < len(self.folders):
            self.folder += 1
            self._restart(None)
        elif self.indexing:
            self.indexing = False
            self.folder, cursor = self._resume_point()
            self.first_read = self.folder
            self._restart(cursor)
            self.resuming = cursor is not None
        else:
            self._done = True

    def restart_folder(self) -> None:
        """Read the folder in progress from its first page (its saved cursor was refused).

        What the stopped run emitted of it before that page is emitted again.
        """
        self.resuming = False
        self._restart(None)

    def _resume_point(self) -> tuple[int, str | None]:
        """Where the message pass starts: where the last run stopped, if it did.

        A folder gone since then (or never seen) restarts the pass from the first one.
        """
        assert self.folders is not None  # noqa: S101 - listed before any page
        assert self.plan is not None  # noqa: S101 - set at creation
        if self.plan.folder in self.folders:
            return self.folders.index(self.plan.folder), self.plan.cursor
        return 0, None

    def _restart(self, cursor: str | None) -> None:
        assert self.new_paginator is not None  # noqa: S101 - set at creation
        self.paginator = self.new_paginator(cursor)


def position_state(plan: HistoryPlan, position: object) -> dict | None:
    """The state entry for a record's `POSITION`, None if it carries none."""
    if not isinstance(position, tuple) or len(position) != 2:
        return None
    folder, cursor = position
    return plan.state(folder, cursor)


def done_state() -> dict:
    """The state entry of a grant whose history was read whole."""
    return {"done": True}


def history_entry(entry: Mapping[str, t.Any]) -> object:
    """A grant's saved history, from its `messages` state entry."""
    return entry.get(STATE_KEY)


class FolderIndex(IdIndex):
    """A stream of a grant's folders that notes their IDs for the grant's history."""

    @override
    def remember_ids(self, grant_id: str, ids: list[str]) -> None:
        """All folders of the grant are known: its IMAP history need not list them again."""
        self.directory.remember_folders(grant_id, ids)


class ImapHistory(GrantScopedStream):
    """A stream of a grant's mail that also reads IMAP, Yahoo and iCloud grants' history.

    Each grant whose history is still unread gets a partition (context `CONTEXT_KEY`),
    read by one `HistorySlice` in the history lane; its records move the grant's history
    state, never its bookmark. The grant's cache partition reads `[before, ...)` meanwhile.
    """

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """The stream, with no grant's history planned yet."""
        super().__init__(*args, **kwargs)
        #: Grant ID → its history still to read this run.
        self._history: dict[str, HistoryPlan] = {}

    @override
    def partition_contexts(self) -> list[dict]:
        """One context per grant, then one per grant whose IMAP history is still unread."""
        grants = self.grant_contexts()
        if not self.config.get("imap_history", True):
            return grants
        now = self.run.initialized_at // 1000
        for context in grants:
            grant_id = context["grant_id"]
            if self.directory.provider(grant_id) not in IMAP_PROVIDERS:
                continue
            entry = self.state_manager.partition_entry(context) or {}
            plan = plan_history(history_entry(entry), self.run.start_epoch, now)
            if plan is not None:
                self._history[grant_id] = plan
        if self._history:
            self.logger.info(
                "imap history: %d IMAP, Yahoo or iCloud grants have mail older than the "
                "cache to read",
                len(self._history),
            )
        return grants + [{"grant_id": g, CONTEXT_KEY: True} for g in self._history]

    @override
    def lower_bound(self, context: Context) -> int | None:
        """While a grant's history is read, its cache reads start where history ends."""
        bound = super().lower_bound(context)
        plan = self._history.get(context["grant_id"])
        if plan is None or context.get(CONTEXT_KEY):
            return bound
        return plan.before if bound is None else max(bound, plan.before)

    @override
    def initial_slices(self, context: Context) -> list[Slice]:
        """The cache as the stream slices it; a grant's history as one slice over its folders.

        A history read notes no completion record (`sync_coverage`): one resumed reads only
        part of the grant's history.
        """
        if not context.get(CONTEXT_KEY):
            return super().initial_slices(context)
        grant_id = context["grant_id"]
        piece = HistorySlice(
            dict(context),
            new_paginator(self.paging, self.page_size),
            lane=LANE,
            plan=self._history[grant_id],
            new_paginator=lambda cursor: CursorPaginator(start=cursor),
            on_folder=lambda done, total, step: self.logger.info(
                "imap history: %d/%d folders of grant %s %s", done, total, grant_id, step
            ),
        )
        return [piece]

    @override
    def read_of(self, context: Context) -> Read:
        """A cache read of an IMAP grant vouches for the cache only (`sync_coverage`).

        Nylas lists these grants' last 90 days whatever the filter asks: a read from
        `start_date` must not say that the older mail history wrote is gone.
        """
        read = super().read_of(context)
        if self.directory.provider(context["grant_id"]) not in IMAP_PROVIDERS:
            return read
        edge = self.run.initialized_at // 1000 - TRUSTED_CACHE_DAYS * DAY
        return replace(read, range_start=max(read.range_start or edge, edge))

    @override
    def fetch_slice_page(self, piece: Slice) -> list[dict]:
        """A page of the cache; or of the history, once the grant's folders are known."""
        if not isinstance(piece, HistorySlice):
            return super().fetch_slice_page(piece)
        if piece.folders is None:
            piece.start(self.directory.folder_ids(piece.context["grant_id"]))
            if piece.finished:
                return []
        cursor = piece.paginator.current_value
        piece.context = {**piece.context, PARAMS: piece.params()}
        try:
            records = super().fetch_slice_page(piece)
        except PartitionFailedError as error:
            if not piece.resuming:
                raise
            # A page cursor saved by a stopped run may have expired: that folder again.
            self.logger.warning(
                "imap history: grant %s: the saved page of folder %s was refused (%s); "
                "reading that folder from its first page",
                piece.context["grant_id"],
                piece.folder_id,
                error,
            )
            piece.restart_folder()
            return []
        return piece.take(records, cursor)

    @override
    def split_slice(self, piece: Slice, records: list[dict], capacity: int) -> list[Slice] | None:
        """History is read one page after another: the resume point is one page."""
        if isinstance(piece, HistorySlice):
            return None
        return super().split_slice(piece, records, capacity)

    @override
    def estimate_pages_left(self, piece: Slice, records: list[dict]) -> float | None:
        """Unknown for history."""
        if isinstance(piece, HistorySlice):
            return None
        return super().estimate_pages_left(piece, records)

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """The cache's filters, or the history's folder and `query_imap`."""
        params = super().get_url_params(context, next_page_token)
        if context and (history := context.get(PARAMS)):
            params.update(history)
        return params

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> int | None:
        """History moves no bookmark."""
        if context and context.get(CONTEXT_KEY):
            return None
        return super().get_replication_key_signpost(context)

    @override
    def advance_bookmark(self, record: dict, context: Context) -> None:
        """History moves no bookmark (its mail is older than the cache's)."""
        if not context.get(CONTEXT_KEY):
            super().advance_bookmark(record, context)

    @override
    def finalize_partition(self, context: Context) -> None:
        """A history partition has no bookmark to finalise (`partition_written` marks it done)."""
        if not context.get(CONTEXT_KEY):
            super().finalize_partition(context)

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """A message; one of the history also moves its grant's history state."""
        if context is None or not context.get(CONTEXT_KEY):
            return super().post_process(row, context)
        grant_id = context["grant_id"]
        entry = self.get_context_state(context)
        if (state := position_state(self._history[grant_id], row.pop(POSITION, None))) is not None:
            entry[STATE_KEY] = state
        if not row.get("id"):  # a page with nothing to emit: only where the history is
            return None
        return super().post_process(row, {"grant_id": grant_id})

    @override
    def partition_started(self, context: Context) -> None:
        """A history read from its start keeps its bound in the state before any record."""
        if context.get(CONTEXT_KEY):
            entry = self.get_context_state(context)
            if not isinstance(entry.get(STATE_KEY), dict):
                entry[STATE_KEY] = self._history[context["grant_id"]].state()

    @override
    def partition_written(self, context: Context) -> None:
        """A grant's history read whole is done: later runs never read it again."""
        if context.get(CONTEXT_KEY):
            self.get_context_state(context)[STATE_KEY] = done_state()
            self.logger.info("imap history: grant %s done", context["grant_id"])
