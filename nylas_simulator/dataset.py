"""The simulated Nylas application: grants listed eagerly, their data made lazily."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from .admin import (
    CONNECTOR_PROVIDERS,
    GRANT_STREAMS,
    GrantProfile,
    connectors,
    credentials,
    grant_record,
    make_profile,
)
from .bigmail import LargeMailbox
from .calendars import EventEntry, build_calendars, build_events, calendar_ids, primary_calendar
from .changes import DELETABLE, GrantChanges, apply, contains
from .contacts import build_contact_groups, build_contacts
from .context import GrantContext
from .mail import build_mail, build_schedules
from .util import Record, epoch

DEFAULT_EVENTS_START = epoch(2024, 1, 1)
DEFAULT_EVENTS_END = epoch(2028, 1, 1)
LARGE_BODY_SIZES = (1_200_000, 2_100_000, 2_900_000)
SCHEDULE_SHAPES = ("list", "data", "data.schedules")

# Primary-key fields per stream, in the order the truth tuples use.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "grants": ("id",),
    "connectors": ("provider",),
    "credentials": ("provider", "id"),
    "scheduled_messages": ("grant_id", "schedule_id"),
    **{s: ("grant_id", "id") for s in GRANT_STREAMS if s != "scheduled_messages"},
}
STREAMS: tuple[str, ...] = tuple(sorted(KEY_FIELDS))


@dataclass
class GrantData:
    """Every record of one grant, in serving order."""

    profile: GrantProfile
    folders: list[Record] = field(default_factory=list)
    messages: Sequence[Record] = field(default_factory=list)  # LazyRecords when large
    threads: Sequence[Record] = field(default_factory=list)
    drafts: list[Record] = field(default_factory=list)
    calendars: list[Record] = field(default_factory=list)
    events: dict[str, list[EventEntry]] = field(default_factory=dict)
    contacts: list[Record] = field(default_factory=list)
    contact_groups: list[Record] = field(default_factory=list)
    scheduled_messages: list[Record] = field(default_factory=list)
    primary_calendar: str | None = None
    large: LargeMailbox | None = None

    def stream(self, name: str) -> Sequence[Record]:
        """The record list of a non-event grant-scoped stream."""
        records: Sequence[Record] = getattr(self, name)
        return records


def _default_cache_size(records_per_grant: int) -> int:
    # Bound memory by records, not grants: big grants get a smaller cache. No cap on
    # grants below that: at 400 grants a cap of 256 regenerated a grant's data on most
    # requests (a client reads stream by stream, every grant in turn), 70% of the
    # simulator's CPU, and the benchmarks measured the simulator instead of the client.
    return max(8, 20_000 // max(records_per_grant, 1))


class Dataset:
    """Deterministic data for (seed, grants, records_per_grant)."""

    def __init__(
        self,
        seed: int = 7,
        grants: int = 24,
        records_per_grant: int = 20,
        large_bodies: bool = True,
        cache_size: int | None = None,
        *,
        large_mailbox: int | None = None,
        large_mailbox_provider: str | None = None,
    ) -> None:
        self.seed = seed
        self.records_per_grant = records_per_grant
        self.profiles = [make_profile(seed, g, grants) for g in range(grants)]
        self.missing_calendar = self._pick_missing_calendar()
        self.expired_grant = self._pick_expired()
        self._by_ref = {p.id: p.index for p in self.profiles}
        self._by_ref.update({p.email: p.index for p in self.profiles})
        self._large = self._pick_large_bodies() if large_bodies else {}
        self._nul_grant = next(self._mail_grants(0), None)
        self.large_mailbox = large_mailbox or 0
        self._large_providers = (
            (large_mailbox_provider,) if large_mailbox_provider else ("google", "microsoft")
        )
        self.large_mailbox_grant = self._pick_large_mailbox() if large_mailbox else None
        self._schedule_rank = self._rank_schedule_grants()
        self._cache: OrderedDict[int, GrantData] = OrderedDict()
        self._cache_size = cache_size or _default_cache_size(records_per_grant)
        self._lock = threading.Lock()
        self._connectors = connectors(seed)
        self._credentials = {p: credentials(seed, p) for p in CONNECTOR_PROVIDERS}
        self.generated = 0  # how many times a grant's data was generated
        self._changes: dict[int, GrantChanges] = {}

    # -- special grants -------------------------------------------------

    def _first(self, wanted: Callable[[GrantProfile], bool]) -> GrantProfile | None:
        """The first matching grant, preferring google and microsoft ones."""
        if len(self.profiles) < 6:
            return None
        # A stable sort keeps index order within each group; the scan stops early.
        ordered = sorted(self.profiles, key=lambda p: p.provider not in ("google", "microsoft"))
        return next((p for p in ordered if wanted(p)), None)

    def _pick_missing_calendar(self) -> tuple[str, str] | None:
        """(grant_id, calendar_id) listed by /calendars but 404 on /events."""
        found = self._first(lambda p: p.serving and len(calendar_ids(self.seed, p)) >= 2)
        return None if found is None else (found.id, calendar_ids(self.seed, found)[1])

    def _pick_expired(self) -> GrantProfile | None:
        """One grant listed as valid that answers 401 (expired since listing)."""
        spared = self.missing_calendar[0] if self.missing_calendar else None
        # Virtual calendars never expire; index 0 stays valid for simple demos.
        found = self._first(
            lambda p: (
                p.index > 0 and p.serving and p.provider != "virtual-calendar" and p.id != spared
            )
        )
        if found is None:
            return None
        expired = replace(found, expired=True)
        self.profiles[found.index] = expired
        return expired

    def _pick_large_mailbox(self) -> GrantProfile | None:
        """The first valid google or microsoft grant (or of ``large_mailbox_provider``)."""
        return next(
            (
                p
                for p in self.profiles
                if p.serving and p.provider in self._large_providers and p.supports("messages")
            ),
            None,
        )

    def _mail_grants(self, start: int) -> Iterator[int]:
        n = len(self.profiles)
        for k in range(n):
            p = self.profiles[(start + k) % n]
            if p.serving and p.supports("messages") and self.records_per_grant > 0:
                yield p.index

    def _pick_large_bodies(self) -> dict[int, int]:
        wanted = 3 if len(self.profiles) >= 6 else 2
        picked: dict[int, int] = {}
        for index in self._mail_grants(self.seed % max(len(self.profiles), 1)):
            picked[index] = LARGE_BODY_SIZES[len(picked)]
            if len(picked) == wanted:
                break
        return picked

    def _rank_schedule_grants(self) -> dict[int, int]:
        # Consecutive google/microsoft grants cycle through the three shapes.
        ranks: dict[int, int] = {}
        for p in self.profiles:
            if p.supports("scheduled_messages"):
                ranks[p.index] = len(ranks)
        return ranks

    def schedule_shape(self, profile: GrantProfile) -> str:
        """Which documented response shape this grant's schedules use."""
        return SCHEDULE_SHAPES[self._schedule_rank.get(profile.index, 0) % 3]

    # -- lookups ----------------------------------------------------------

    def resolve(self, ref: str) -> GrantProfile | None:
        """A grant by id, ``grant:<id>``, email or ``email:<addr>``."""
        for prefix in ("grant:", "email:"):
            if ref.startswith(prefix):
                ref = ref[len(prefix) :]
        index = self._by_ref.get(ref)
        return None if index is None else self.profiles[index]

    def grant_record(self, profile: GrantProfile) -> Record:
        """The grant object as listed."""
        return grant_record(self.seed, profile)

    def connectors(self) -> list[Record]:
        """All connectors."""
        return self._connectors

    def credentials(self, provider: str) -> list[Record] | None:
        """A connector's credentials, or None for an unknown connector."""
        return self._credentials.get(provider)

    # -- per-grant data ---------------------------------------------------

    def context(self, profile: GrantProfile) -> GrantContext:
        """The generation inputs of one grant."""
        g, n = profile.index, len(self.profiles)
        pair_base = g - g % 2
        paired = pair_base + 1 < n
        large = self.large_mailbox_grant is not None and profile.id == self.large_mailbox_grant.id
        return GrantContext(
            seed=self.seed,
            profile=profile,
            records=self.large_mailbox if large else self.records_per_grant,
            large_body=self._large.get(g, 0),
            nul=g == self._nul_grant,
            shared_message=g // 4 if paired and g % 4 in (0, 1) else None,
            shared_event=g // 4 if paired and g % 4 in (2, 3) else None,
        )

    def grant_data(self, profile: GrantProfile) -> GrantData:
        """The grant's records, from a bounded LRU cache."""
        with self._lock:
            cached = self._cache.get(profile.index)
            if cached is not None:
                self._cache.move_to_end(profile.index)
                return cached
        data = self._generate(profile)
        with self._lock:
            self.generated += 1
            self._cache[profile.index] = data
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return data

    def _generate(self, profile: GrantProfile) -> GrantData:
        ctx = self.context(profile)
        data = GrantData(profile=profile)
        if ctx.records != self.records_per_grant:
            big = LargeMailbox(ctx, drafts=self.records_per_grant // 5)
            data.large = big
            data.folders, data.messages = big.folders, big.messages
            data.threads, data.drafts = big.threads, big.drafts
            # Only the mailbox is large: calendars, contacts and schedules stay ordinary.
            ctx = replace(ctx, records=self.records_per_grant)
        elif profile.supports("messages"):
            mail = build_mail(ctx)
            data.folders, data.messages = mail.folders, mail.messages
            data.threads, data.drafts = mail.threads, mail.drafts
        if profile.supports("calendars"):
            data.calendars = build_calendars(ctx)
            data.events = build_events(ctx, data.calendars)
            data.primary_calendar = primary_calendar(profile, [c["id"] for c in data.calendars])
        if profile.supports("contacts"):
            groups = build_contact_groups(ctx)
            data.contacts = build_contacts(ctx, groups)
            if profile.supports("contact_groups"):
                data.contact_groups = groups
        if profile.supports("scheduled_messages"):
            data.scheduled_messages = build_schedules(ctx)
        changes = self._changes.get(profile.index)
        if changes is not None:
            apply(data, changes)
        return data

    # -- changes between syncs ------------------------------------------------

    def expire(self, profile: GrantProfile) -> GrantProfile:
        """The grant's token expires: still listed as valid, every grant call answers 401."""
        expired = replace(profile, expired=True)
        self.profiles[profile.index] = expired
        return expired

    def delete(
        self, profile: GrantProfile, stream: str, object_id: str, calendar_id: str | None = None
    ) -> bool:
        """Delete an object of a grant (events: of `calendar_id`, or of every calendar).

        False when there is no such object. The large mailbox cannot be changed.
        """
        if stream not in DELETABLE:
            raise ValueError(f"{stream} cannot be deleted here; one of {DELETABLE}")
        return self._change(
            profile,
            lambda data: contains(data, stream, object_id, calendar_id),
            lambda changes: changes.delete(stream, object_id, calendar_id),
        )

    def update_message(self, profile: GrantProfile, message_id: str, fields: Record) -> bool:
        """Set `unread`, `starred` or `folders` of a message; False when it does not exist."""
        return self._change(
            profile,
            lambda data: contains(data, "messages", message_id, None),
            lambda changes: changes.update_message(message_id, fields),
        )

    def _change(
        self,
        profile: GrantProfile,
        exists: Callable[[GrantData], bool],
        change: Callable[[GrantChanges], None],
    ) -> bool:
        data = self.grant_data(profile)
        if data.large is not None:
            raise ValueError("the large mailbox cannot be changed")
        if not exists(data):
            return False
        with self._lock:
            change(self._changes.setdefault(profile.index, GrantChanges()))
            self._cache.pop(profile.index, None)  # made again, with every change applied
        return True

    def calendar_gone(self, grant_id: str, calendar_id: str) -> bool:
        """Whether /events answers 404 for this listed calendar."""
        return self.missing_calendar == (grant_id, calendar_id)

    # -- truth ------------------------------------------------------------

    def truth_records(
        self,
        events_start: int = DEFAULT_EVENTS_START,
        events_end: int = DEFAULT_EVENTS_END,
        keys_only: bool = False,
    ) -> dict[str, list[Record]]:
        """Every record a complete sync must emit, per stream.

        Credentials carry the injected ``provider`` and scheduled messages the
        injected ``grant_id``, so every record holds its own primary key. With
        ``keys_only``, the large mailbox's messages and threads are ``{grant_id, id}``.
        """
        out: dict[str, list[Record]] = {s: [] for s in STREAMS}
        out["grants"] = [self.grant_record(p) for p in self.profiles]
        out["connectors"] = [dict(c) for c in self._connectors]
        for provider, creds in self._credentials.items():
            out["credentials"] += [{**c, "provider": provider} for c in creds]
        for p in self.profiles:
            if p.serving:
                self._grant_truth(p, out, events_start, events_end, keys_only)
        return out

    def _grant_truth(
        self, p: GrantProfile, out: dict[str, list[Record]], start: int, end: int, keys_only: bool
    ) -> None:
        data = self.grant_data(p)
        for stream in GRANT_STREAMS:
            if not p.supports(stream):
                continue
            if keys_only and data.large is not None and stream in ("messages", "threads"):
                big = data.large
                out[stream] += big.message_keys() if stream == "messages" else big.thread_keys()
            elif stream == "events":
                for cal_id, entries in data.events.items():
                    if not self.calendar_gone(p.id, cal_id):
                        out[stream] += [dict(e.record) for e in entries if e.overlaps(start, end)]
            elif stream == "scheduled_messages":
                out[stream] += [{**s, "grant_id": p.id} for s in data.scheduled_messages]
            else:
                out[stream] += [dict(r) for r in data.stream(stream)]


def truth_keys(records: dict[str, list[Record]]) -> dict[str, set[tuple[str, ...]]]:
    """Primary-key tuples per stream."""
    return {
        stream: {tuple(rec[f] for f in KEY_FIELDS[stream]) for rec in recs}
        for stream, recs in records.items()
    }
