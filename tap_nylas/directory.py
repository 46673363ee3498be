"""Which grants, and which calendars of each grant, the grant-scoped streams read.

`/v3/grants` is listed once per run, here; the `grants` stream and every grant-scoped
stream's partitions come from that one listing.
"""

from __future__ import annotations

import hashlib
import typing as t
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tap_nylas.errors import ConfigError, PartitionFailedError, PartitionUnavailableError

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Iterable


@dataclass(frozen=True)
class Grant:
    """What partitioning needs to know of a grant."""

    id: str
    provider: str
    valid: bool


@dataclass(frozen=True)
class Shard:
    """This process's share of the grants: `index` of `count` (1-based), by stable hash."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """`"K/N"` → shard K of N; None → the whole application."""
        if not text:
            return cls()
        index, _, count = str(text).partition("/")
        if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
            msg = f"grant_shard must be 'K/N' with 1 <= K <= N (e.g. '2/8'), got {text!r}"
            raise ConfigError(msg)
        return cls(int(index), int(count))

    def owns(self, grant_id: str) -> bool:
        """Whether this shard syncs `grant_id`: the same answer on every machine, every run."""
        digest = hashlib.sha256(grant_id.encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    @property
    def first(self) -> bool:
        """Application-level streams (connectors, credentials) are synced by shard 1 only."""
        return self.index == 1


@dataclass(frozen=True)
class ReadableGrants:
    """The grants a stream reads, and how many it leaves out and why."""

    grant_ids: list[str]
    invalid: int
    unsupported: int


class GrantDirectory:
    """The grants of this run (`grant_ids`, `grant_shard`) and the calendars per grant.

    It reads through the callables it is given (the grants and calendars streams'
    listings), so it knows no stream class.
    """

    def __init__(
        self,
        list_grants: Callable[[], Iterable[dict]],
        list_calendars: Callable[[str], Iterable[dict]],
        *,
        list_folders: Callable[[str], Iterable[dict]] | None = None,
        grant_ids: Iterable[str] | None,
        shard: Shard,
        workers: int,
        logger: logging.Logger,
    ) -> None:
        """Directory restricted to `grant_ids` (when given) and to `shard`.

        `workers`: grants whose calendars are listed at once.
        """
        self._list_grants = list_grants
        self._list_calendars = list_calendars
        self._wanted = frozenset(grant_ids or ())
        self.shard = shard
        self._workers = workers
        self._logger = logger
        self._records: list[dict] | None = None
        self._grants: dict[str, Grant] = {}
        self._calendars: dict[str, list[str]] = {}
        self._list_folders = list_folders
        self._folders: dict[str, list[str]] = {}

    def grant_records(self) -> list[dict]:
        """Every grant record of this run, in API order, listed once."""
        if self._records is None:
            records = []
            for record in self._list_grants():
                if record.get("id"):
                    records.append(record)
                else:
                    self._logger.warning("Skipping a grant without an id: %s", sorted(record))
            found = {r["id"] for r in records}
            if missing := self._wanted - found:
                msg = (
                    f"grant_ids: not found in this Nylas application: {', '.join(sorted(missing))}"
                )
                raise ConfigError(msg)
            self._records = [
                r
                for r in records
                if (not self._wanted or r["id"] in self._wanted) and self.shard.owns(r["id"])
            ]
            self._grants = {
                r["id"]: Grant(
                    id=r["id"],
                    provider=str(r.get("provider") or ""),
                    valid=r.get("grant_status", "valid") == "valid",
                )
                for r in self._records
            }
        return self._records

    @property
    def grants(self) -> list[Grant]:
        """Every grant of this run, in API order."""
        self.grant_records()
        return list(self._grants.values())

    def provider(self, grant_id: str) -> str:
        """The provider of a grant of this run."""
        self.grant_records()
        return self._grants[grant_id].provider

    def readable_grants(self, unsupported_providers: frozenset[str]) -> ReadableGrants:
        """Valid grants whose provider is not one of `unsupported_providers`."""
        grants = self.grants
        readable = [g.id for g in grants if g.valid and g.provider not in unsupported_providers]
        invalid = sum(not g.valid for g in grants)
        return ReadableGrants(readable, invalid, len(grants) - len(readable) - invalid)

    def remember_calendars(self, grant_id: str, calendar_ids: list[str]) -> None:
        """Keep the calendar IDs of a grant read in full by the calendars stream."""
        self._calendars[grant_id] = calendar_ids

    def remember_folders(self, grant_id: str, folder_ids: list[str]) -> None:
        """Keep the folder IDs of a grant read in full by the folders stream."""
        self._folders[grant_id] = folder_ids

    def folder_ids(self, grant_id: str) -> list[str]:
        """The grant's folder IDs: as the folders stream read them, else listed now.

        Raises what the listing raises (the grant's folders cannot be read).
        """
        if (known := self._folders.get(grant_id)) is not None:
            return known
        if self._list_folders is None:
            return []
        listed = [r["id"] for r in self._list_folders(grant_id) if r.get("id")]
        self._folders[grant_id] = listed
        return listed

    def calendar_partitions(
        self, grants: list[dict], on_failure: Callable[[str, Exception], None]
    ) -> list[dict]:
        """One context per calendar of every grant in `grants` (grant contexts).

        Calendars the calendars stream already read in full this run are reused; the
        others are listed here, `workers` grants at a time. A grant whose calendars
        cannot be listed has none, and `on_failure` hears why.
        """
        missing = [g["grant_id"] for g in grants if g["grant_id"] not in self._calendars]
        with ThreadPoolExecutor(self._workers, thread_name_prefix="tap-nylas-cal") as pool:
            listed = pool.map(lambda grant_id: self._calendar_ids(grant_id, on_failure), missing)
            self._calendars.update(zip(missing, listed, strict=True))
        return [{**g, "calendar_id": c} for g in grants for c in self._calendars[g["grant_id"]]]

    def _calendar_ids(
        self, grant_id: str, on_failure: Callable[[str, Exception], None]
    ) -> list[str]:
        try:
            return [r["id"] for r in self._list_calendars(grant_id) if r.get("id")]
        except (PartitionUnavailableError, PartitionFailedError) as error:
            on_failure(grant_id, error)
            return []
