"""Name, address and text pools; unicode and emoji are deliberate."""

from __future__ import annotations

import random

from .util import Record, pick

# (display name, ascii slug for the address); the display names exercise unicode.
PEOPLE: tuple[tuple[str, str], ...] = (
    ("Ada Lovelace", "ada.lovelace"),
    ("Jon Snow", "jon.snow"),
    ("Arya Stark", "arya.stark"),
    ("José García", "jose.garcia"),
    ("Zoë Ørsted", "zoe.orsted"),
    ("Søren Kierkegaard", "soren.k"),
    ("Łukasz Nowak", "lukasz.nowak"),
    ("Chloé Müller", "chloe.mueller"),
    ("Дмитрий Иванов", "dmitri.ivanov"),
    ("李雷", "li.lei"),
    ("さくら 田中", "sakura.tanaka"),
    ("Ngozi Okafor", "ngozi.okafor"),
    ("Priya Patel", "priya.patel"),
    ("Seán O'Brien", "sean.obrien"),
    ("Mónica Núñez", "monica.nunez"),
    ("Rebecca Lee Crumpler", "dr.crumpler"),
    ("Daenerys Targaryen", "daenerys.t"),
    ("François Dupont 🎨", "francois.dupont"),
    ("Olumide Adeyemi", "olumide.a"),
    ("Grace Hopper", "grace.hopper"),
)

DOMAINS: tuple[str, ...] = (
    "example.com",
    "acme.example",
    "globex.example",
    "initech.example",
    "müller.example",
)

SUBJECTS: tuple[str, ...] = (
    "Quarterly report 📊",
    "Lunch on Friday? 🍕",
    "Invoice #{n} from Acme",
    "Überweisung bestätigt",
    "会议纪要 {n}",
    "Trip itinerary ✈️",
    "Café meetup ☕",
    "Project Phoenix \N{EN DASH} status update",
    "Welcome to the team 🎉",
    "Your order #{n} has shipped 📦",
    "Reunión de planificación",
    "Security alert for your account",
    "Dinner Wednesday?",
    "Контракт на подпись",
    "Weekly digest: {n} new updates",
)

SENTENCES: tuple[str, ...] = (
    "Hello, I just sent a message using Nylas!",
    "Please find the attached documents for your review.",
    "Let me know if Thursday afternoon works for you.",
    "Thanks again for your help with the migration — much appreciated.",
    "Können wir das Meeting auf nächste Woche verschieben?",
    "见面的时间和地点请确认一下。",
    "The numbers look good 👍 but we should double-check Q3.",
    "Attaching the revised proposal; changes are highlighted.",
    "Reminder: the office is closed on Monday 🏖️.",
    "Sent from my phone, please excuse typos.",
)

TIMEZONES: tuple[str, ...] = (
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
    "UTC",
    "America/Los_Angeles",
    "Australia/Sydney",
)


def person(r: random.Random) -> Record:
    """A ``{name, email}`` participant drawn from the pool."""
    name, slug = pick(r, PEOPLE)
    return {"name": name, "email": f"{slug}@{pick(r, DOMAINS)}"}


def subject(r: random.Random) -> str:
    """A subject line, some with a number, emoji or non-Latin script."""
    return pick(r, SUBJECTS).format(n=r.randint(100, 9999))


def paragraphs(r: random.Random, count: int) -> list[str]:
    """Plain-text paragraphs for bodies and descriptions."""
    return [pick(r, SENTENCES) for _ in range(count)]
