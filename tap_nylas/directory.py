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
    from collections.abc import Iterable

    from singer_sdk import Tap

    from tap_nylas.client import GrantScopedStream


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


class GrantDirectory:
    """The grants of this run (`grant_ids`, `grant_shard`) and the calendars per grant."""

    def __init__(self, tap: Tap, grant_ids: Iterable[str] | None, shard: Shard) -> None:
        """Directory for `tap`, restricted to `grant_ids` (when given) and to `shard`."""
        self._tap = tap
        self._wanted = frozenset(grant_ids or ())
        self.shard = shard
        self._records: list[dict] | None = None
        self._grants: dict[str, Grant] = {}
        self._calendars: dict[str, list[str]] = {}

    def grant_records(self) -> list[dict]:
        """Every grant record of this run, in API order, listed once."""
        if self._records is None:
            grants = self._tap.streams["grants"]
            records = []
            for record in grants.request_records(None):  # type: ignore[attr-defined]
                if record.get("id"):
                    records.append(record)
                else:
                    grants.logger.warning("Skipping a grant without an id: %s", sorted(record))
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

    def grant_partitions(self, stream: GrantScopedStream) -> list[dict]:
        """One context per valid grant whose provider has `stream`'s endpoint."""
        grants = self.grants
        readable = [g for g in grants if g.valid and g.provider not in stream.unsupported_providers]
        if skipped := len(grants) - len(readable):
            invalid = sum(not g.valid for g in grants)
            if invalid:
                stream.note_incomplete(f"{invalid} invalid grant(s) not read")
            stream.logger.info(
                "%s: reading %d grants; skipping %d invalid grants and %d whose provider "
                "has no %s endpoint",
                stream.name,
                len(readable),
                invalid,
                skipped - invalid,
                stream.name,
            )
        return [{"grant_id": g.id} for g in readable]

    def remember_calendars(self, grant_id: str, calendar_ids: list[str]) -> None:
        """Keep the calendar IDs of a grant read in full by the calendars stream."""
        self._calendars[grant_id] = calendar_ids

    def calendar_partitions(self, events: GrantScopedStream) -> list[dict]:
        """One context per calendar of every grant `events` reads.

        Calendars the calendars stream already read in full this run are reused; the
        others are listed here, `max_concurrency` grants at a time.
        """
        grants = events.grant_contexts()
        missing = [g["grant_id"] for g in grants if g["grant_id"] not in self._calendars]
        workers = int(events.config["max_concurrency"])
        with ThreadPoolExecutor(workers, thread_name_prefix="tap-nylas-cal") as pool:
            listed = pool.map(lambda grant_id: self._list_calendars(events, grant_id), missing)
            self._calendars.update(zip(missing, listed, strict=True))
        return [{**g, "calendar_id": c} for g in grants for c in self._calendars[g["grant_id"]]]

    def _list_calendars(self, events: GrantScopedStream, grant_id: str) -> list[str]:
        calendars = self._tap.streams["calendars"]
        try:
            calendar_ids = [
                r["id"]
                for r in calendars.request_records({"grant_id": grant_id})  # type: ignore[attr-defined]
                if r.get("id")
            ]
        except PartitionUnavailableError as error:
            events.logger.warning("Skipping events for grant %s: %s", grant_id, error)
        except PartitionFailedError as error:
            events.logger.error("Skipping events for grant %s: %s", grant_id, error)
            self._tap.report_failure(events, {"grant_id": grant_id}, error)  # type: ignore[attr-defined]
        else:
            return calendar_ids
        events.note_incomplete(f"grant {grant_id}: its calendars could not be listed")
        return []
