"""Calendar data for one grant: calendars and their events."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .admin import GrantProfile
from .context import GrantContext
from .people import TIMEZONES, paragraphs, person
from .util import Record, base36_id, day_start, epoch, hex_id, iso_date, ms_id, pick, rng

EVENTS_RANGE = (epoch(2024, 6, 1), epoch(2027, 6, 20))
HOLIDAY_CALENDAR = "en.usa#holiday@group.v.calendar.google.com"
GOOGLE_EVENT_TYPES = ("default", "outOfOffice", "focusTime", "workingLocation")
_CANCELLABLE = ("google", "microsoft", "virtual-calendar")
_DAY = 86400

_TITLES = (
    "Birthday Party 🎂",
    "Sprint planning",
    "1:1 with {name}",
    "Quarterly business review",
    "Déjeuner d'équipe",
    "Roadmap sync 🚀",
    "Interview: senior engineer",
    "Dentist 🦷",
    "All hands",
    "チーム会議",
)
_HOLIDAYS = (
    "New Year's Day",
    "Independence Day 🎆",
    "Labor Day",
    "Thanksgiving Day 🦃",
    "Christmas Day 🎄",
    "Juneteenth",
)
_LOCATIONS = ("Roller Rink", "Room 4.01 \N{EN DASH} Ørsted", "Zoom", "Café Müller", None)
_COLORS = ("#039BE5", "#7986CB", "#33B679", "#F6BF26", "#E67C73")


@dataclass(slots=True)
class EventEntry:
    """An event record plus the facts the filters need, precomputed."""

    record: Record
    start: int  # first second the event covers (UTC)
    end: int  # last second the event covers, inclusive
    event_type: str

    def overlaps(self, start: int, end: int) -> bool:
        """Whether any part of the event lies in ``[start, end]``."""
        return self.start <= end and self.end >= start

    @property
    def cancelled(self) -> bool:
        """Whether the event's status is ``cancelled``."""
        return bool(self.record.get("status") == "cancelled")


def calendar_ids(seed: int, profile: GrantProfile) -> list[str]:
    """The grant's calendar ids, primary first; computable without generation."""
    p, gid = profile.provider, profile.id
    if p in ("imap", "yahoo"):
        return []
    r = rng(seed, gid, "calendar-count")
    # Google and Microsoft always have a second, subscribed calendar.
    count = r.randint(2, 3) if p in ("google", "microsoft") else r.randint(1, 3)
    if p == "google":
        team = f"c_{hex_id(seed, gid, 'cal', 2, length=26)}@group.calendar.google.com"
        return [profile.email, HOLIDAY_CALENDAR, team][:count]
    if p in ("microsoft", "ews"):
        return [ms_id(seed, gid, "cal", k) for k in range(count)]
    if p == "icloud":
        return [base36_id(seed, gid, "cal", k, length=32).upper() for k in range(count)]
    return [f"vc-{base36_id(seed, gid, 'cal', k, length=20)}" for k in range(count)]


def primary_calendar(profile: GrantProfile, ids: list[str]) -> str | None:
    """What ``calendar_id=primary`` maps to; iCloud has no primary."""
    if profile.provider == "icloud" or not ids:
        return None
    return ids[0]


_CAL_NAMES = ("Work 💼", "Family 👪", "Team calendar", "Personal")


def _calendar(ctx: GrantContext, k: int, cid: str) -> Record:
    r = rng(ctx.seed, ctx.grant_id, "calendar", k)
    p = ctx.provider
    primary = k == 0 and p != "icloud"
    holiday = cid == HOLIDAY_CALENDAR or (p == "microsoft" and k == 1)
    name = ctx.profile.email if primary and p == "google" else _CAL_NAMES[k]
    if holiday:
        name = "Holidays in United States"
    rec: Record = {
        "id": cid,
        "grant_id": ctx.grant_id,
        "object": "calendar",
        "name": name,
        "hex_color": pick(r, _COLORS),
        "is_primary": primary,
        "is_owned_by_user": not holiday,
        "read_only": holiday,
        "metadata": {"key1": "team-cal"} if r.random() < 0.2 else None,
    }
    if p not in ("icloud", "ews"):
        rec["description"] = None if holiday else "Shared calendar \N{EN DASH} «équipe» 📅"
        rec["location"] = pick(r, _LOCATIONS)
    if p in ("google", "virtual-calendar"):
        rec["timezone"] = pick(r, TIMEZONES)
    if p == "google":
        rec["hex_foreground_color"] = "#000000"
    if p == "microsoft":
        rec["owner_email"] = ctx.profile.email
    if r.random() < 0.15:
        rec["notetaker"] = _notetaker_settings()
    return rec


def _notetaker_settings() -> Record:
    return {
        "name": "Nylas Notetaker",
        "meeting_settings": {
            "video_recording": True,
            "audio_recording": True,
            "transcription": True,
        },
        "rules": {
            "event_selection": ["internal"],
            "participant_filter": {"participants_gte": 2, "participants_lte": 10},
        },
    }


def build_calendars(ctx: GrantContext) -> list[Record]:
    """Calendar records, primary first."""
    ids = calendar_ids(ctx.seed, ctx.profile)
    return [_calendar(ctx, k, cid) for k, cid in enumerate(ids)]


def build_events(ctx: GrantContext, calendars: list[Record]) -> dict[str, list[EventEntry]]:
    """Events per calendar id, each list sorted by start time."""
    out: dict[str, list[EventEntry]] = {}
    for k, cal in enumerate(calendars):
        r = rng(ctx.seed, ctx.grant_id, "event-count", k)
        n = max(1, ctx.records // 2 + r.randint(-1, 1)) if ctx.records else 0
        if cal["id"] == HOLIDAY_CALENDAR:
            entries = [_holiday(ctx, i) for i in range(n)]
        else:
            entries = _calendar_events(ctx, k, cal, n)
        entries.sort(key=lambda e: (e.start, e.record["id"]))
        out[cal["id"]] = entries
    return out


def _holiday(ctx: GrantContext, i: int) -> EventEntry:
    # Public-holiday events share their ids across every Google grant.
    r = rng(ctx.seed, "holiday", i)
    d0 = day_start(r.randrange(*EVENTS_RANGE))
    date = iso_date(d0)
    eid = f"{date.replace('-', '')}_{base36_id(ctx.seed, 'holiday', i, length=26)}"
    rec = _event_base(ctx, HOLIDAY_CALENDAR, eid, r, d0)
    rec.update(
        title=pick(r, _HOLIDAYS),
        description="Public holiday",
        text_description="Public holiday",
        busy=False,
        read_only=True,
        participants=[],
        organizer={"email": HOLIDAY_CALENDAR, "name": "Holidays in United States"},
        when={"object": "date", "date": date},
        conferencing=None,
    )
    return EventEntry(rec, d0, d0 + _DAY - 1, "default")


def _event_type(ctx: GrantContext, k: int, i: int) -> str:
    # Only Google primary calendars carry the special event types.
    if ctx.provider != "google" or k != 0:
        return "default"
    return {2: "outOfOffice", 4: "focusTime", 6: "workingLocation"}.get(i % 9, "default")


def _calendar_events(ctx: GrantContext, k: int, cal: Record, n: int) -> list[EventEntry]:
    entries: list[EventEntry] = []
    for i in range(n):
        shared = ctx.shared_event is not None and k == 0 and i == 0
        if shared:
            # The same invitation in two grants' calendars keeps one id.
            r = rng(ctx.seed, "shared-evt", ctx.shared_event)
            eid = base36_id(ctx.seed, "shared-evt", ctx.shared_event)
        else:
            r = rng(ctx.seed, ctx.grant_id, "event", k, i)
            eid = _event_id(ctx, k, i)
        etype = _event_type(ctx, k, i)
        start = r.randrange(*EVENTS_RANGE) // 900 * 900
        rec = _event_base(ctx, cal["id"], eid, r, start)
        when, first, last = _when(r, i, etype, start)
        rec["when"] = when
        _apply_type(rec, etype)
        if ctx.provider in _CANCELLABLE and i % 7 == 3:
            rec["status"] = "cancelled"
        if etype == "default" and when["object"] == "timespan" and i % 6 == 1:
            rec["recurrence"] = [
                f"RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT={r.randint(4, 12)}",
                f"EXDATE:{iso_date(start + 7 * _DAY).replace('-', '')}T000000Z",
            ]
        if i % 13 == 12 and entries[1].record.get("recurrence"):
            master = entries[1].record
            rec["master_event_id"] = master["id"]
            rec["original_start_time"] = master["when"]["start_time"] + 7 * _DAY
        entries.append(EventEntry(rec, first, last, etype))
    return entries


def _event_id(ctx: GrantContext, k: int, i: int) -> str:
    if ctx.provider in ("microsoft", "ews"):
        return ms_id(ctx.seed, ctx.grant_id, "event", k, i)
    return base36_id(ctx.seed, ctx.grant_id, "event", k, i, length=26)


def _when(r: random.Random, i: int, etype: str, start: int) -> tuple[Record, int, int]:
    """The ``when`` object and the inclusive [first, last] seconds it covers."""
    tz = pick(r, TIMEZONES)
    shape = {6: "time", 7: "date", 8: "datespan"}.get(i % 10, "timespan")
    shape = {"outOfOffice": "datespan", "workingLocation": "date"}.get(etype, shape)
    if etype == "focusTime":
        shape = "timespan"
    d0 = day_start(start)
    if shape == "time":
        return {"object": "time", "time": start, "timezone": tz}, start, start
    if shape == "date":
        return {"object": "date", "date": iso_date(d0)}, d0, d0 + _DAY - 1
    if shape == "datespan":
        last_day = d0 + r.randint(1, 4) * _DAY
        span: Record = {
            "object": "datespan",
            "start_date": iso_date(d0),
            "end_date": iso_date(last_day),
        }
        return span, d0, last_day + _DAY - 1
    end = start + r.choice((15, 30, 45, 60, 90, 120)) * 60
    when: Record = {
        "object": "timespan",
        "start_time": start,
        "end_time": end,
        "start_timezone": tz,
        "end_timezone": tz,
    }
    return when, start, end


def _apply_type(rec: Record, etype: str) -> None:
    if etype == "outOfOffice":
        rec.update(title="Out of office 🌴", busy=True, participants=[], conferencing=None)
    elif etype == "focusTime":
        rec.update(title="Focus time", busy=True, participants=[], conferencing=None)
    elif etype == "workingLocation":
        rec.update(title="Working location: Home 🏠", busy=False, participants=[])
        rec["conferencing"] = None


def _event_base(
    ctx: GrantContext, calendar_id: str, eid: str, r: random.Random, start: int
) -> Record:
    p = ctx.provider
    created = start - r.randint(1, 60) * _DAY
    organizer = ctx.owner if r.random() < 0.6 else person(r)
    description, text = _description(r)
    rec: Record = {
        "id": eid,
        "grant_id": ctx.grant_id,
        "calendar_id": calendar_id,
        "object": "event",
        "title": pick(r, _TITLES).format(name=person(r)["name"]),
        "description": description,
        "text_description": text,
        "location": pick(r, _LOCATIONS),
        "busy": r.random() < 0.8,
        "read_only": False,
        "hide_participants": False,
        "visibility": pick(r, ("default", "public", "private")),
        "status": "maybe" if r.random() < 0.1 else "confirmed",
        "ical_uid": f"{eid}@{'google.com' if p == 'google' else 'nylas.example'}",
        "master_event_id": None,
        "original_start_time": None,
        "created_at": created,
        "updated_at": created + r.randrange(0, 30 * _DAY),
        "capacity": -1 if p == "virtual-calendar" else None,
        "metadata": {"key1": "on-site"} if r.random() < 0.15 else {},
        "participants": _participants(ctx, r),
        "resources": _resources(r),
        "organizer": dict(organizer),
        "creator": dict(organizer),
        "conferencing": _conferencing(p, r),
        "reminders": _reminders(r),
    }
    if p != "ews":
        rec["html_link"] = f"https://calendar.example/event?eid={hex_id(eid, length=24)}"
    if p == "google":
        rec["color_id"] = str(r.randint(1, 11)) if r.random() < 0.3 else None
    if r.random() < 0.05:
        rec["notetaker"] = {"id": hex_id(eid, "nt", length=20), "name": "Nylas Notetaker"}
    return rec


def _description(r: random.Random) -> tuple[str | None, str | None]:
    """``description`` (sometimes HTML) and its plain ``text_description``."""
    roll = r.random()
    if roll < 0.2:
        return None, None
    text = " ".join(paragraphs(r, r.randint(1, 2)))
    return (f"<p>{text}</p>" if roll < 0.5 else text), text


def _participants(ctx: GrantContext, r: random.Random) -> list[Record]:
    out = []
    for _ in range(r.randint(0, 4)):
        p = person(r)
        entry: Record = {
            "name": p["name"],
            "status": pick(r, ("yes", "no", "maybe", "noreply")),
            "comment": None,
            "phone_number": None,
        }
        # Microsoft sometimes omits a participant's email.
        if ctx.provider != "microsoft" or r.random() < 0.8:
            entry["email"] = p["email"]
        out.append(entry)
    return out


def _resources(r: random.Random) -> list[Record]:
    if r.random() > 0.1:
        return []
    return [
        {
            "email": "room-401@resource.example",
            "name": "Room 4.01 \N{EN DASH} Ørsted",
            "capacity": 8,
            "building": "HQ",
            "floor_name": "4",
            "floor_section": "East",
            "floor_number": 4,
        }
    ]


def _conferencing(provider: str, r: random.Random) -> Record | None:
    roll = r.random()
    if roll < 0.4:
        return None
    if roll < 0.45:
        return {}  # the API does return empty conferencing objects
    if roll < 0.5:
        return {"provider": "unknown"}
    code = hex_id(r.random(), length=10)
    if provider == "google":
        url = f"https://meet.google.com/{code[:3]}-{code[3:7]}-{code[7:]}"
        details: Record = {"url": url, "meeting_code": code, "phone": ["+1 555-0100"]}
        return {"provider": "Google Meet", "details": details}
    if provider in ("microsoft", "ews"):
        url = f"https://teams.microsoft.example/l/meetup-join/{code}"
        return {"provider": "Microsoft Teams", "details": {"url": url}}
    details = {
        "url": f"https://zoom.example/j/{r.randrange(10**9, 10**10)}",
        "meeting_code": code,
        "password": "pw-" + code[:6],
    }
    return {"provider": "Zoom Meeting", "details": details}


def _reminders(r: random.Random) -> Record | None:
    roll = r.random()
    if roll < 0.1:
        return None
    if roll < 0.6:
        return {"use_default": True, "overrides": None}
    method = pick(r, ("popup", "email", "display", "sound"))
    return {
        "use_default": False,
        "overrides": [{"reminder_minutes": r.choice((5, 10, 30)), "reminder_method": method}],
    }
