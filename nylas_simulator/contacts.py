"""Contact data for one grant: contacts and contact groups."""

from __future__ import annotations

import random

from .context import GrantContext
from .people import DOMAINS, PEOPLE
from .util import Record, base36_id, hex_id, ms_id, pick, rng

_GROUPS = (
    ("starred", "starred", "system"),
    ("myContacts", "myContacts", "system"),
    (None, "Family 👪", "user"),
    (None, "Coworkers", "user"),
    (None, "Book club 📚", "user"),
)
_JOBS = ("Software Engineer", "Directrice financière", "Account Executive", None)


def build_contact_groups(ctx: GrantContext) -> list[Record]:
    """2-4 groups; the system ids repeat on every grant."""
    r = rng(ctx.seed, ctx.grant_id, "contact-groups")
    out = []
    for k in range(r.randint(2, 4)):
        gid, name, gtype = _GROUPS[k]
        group_id = gid or hex_id(ctx.seed, ctx.grant_id, "group", k, length=12)
        out.append(
            {
                "id": group_id,
                "grant_id": ctx.grant_id,
                "object": "contact_group",
                "group_type": gtype,
                "name": name,
                "path": f"contactGroups/{group_id}",
            }
        )
    return out


def _contact_id(ctx: GrantContext, i: int) -> str:
    if ctx.provider in ("microsoft", "ews"):
        return ms_id(ctx.seed, ctx.grant_id, "contact", i)
    if ctx.provider == "google":
        return f"c{int(hex_id(ctx.seed, ctx.grant_id, 'contact', i), 16)}"
    return base36_id(ctx.seed, ctx.grant_id, "contact", i)


def _optional_arrays(r: random.Random, slug: str, domain: str) -> Record:
    # Roughly one contact in five has null arrays, which the API documents.
    if r.random() < 0.2:
        return {"phone_numbers": None, "web_pages": None, "im_addresses": None}
    return {
        "phone_numbers": [
            {"number": f"+1-555-{r.randint(100, 999)}-{r.randint(1000, 9999)}", "type": t}
            for t in ("work", "mobile")[: r.randint(0, 2)]
        ],
        "web_pages": [{"url": f"https://www.{domain}/~{slug}", "type": "work"}],
        "im_addresses": [{"im_address": f"{slug}@jabber.example", "type": "jabber"}]
        if r.random() < 0.3
        else [],
    }


def _contact(ctx: GrantContext, i: int, groups: list[Record]) -> Record:
    r = rng(ctx.seed, ctx.grant_id, "contact", i)
    name, slug = pick(r, PEOPLE)
    given, _, surname = name.partition(" ")
    domain = pick(r, DOMAINS)
    rec: Record = {
        "id": _contact_id(ctx, i),
        "grant_id": ctx.grant_id,
        "object": "contact",
        "given_name": given,
        "middle_name": None,
        "surname": surname or None,
        "suffix": None if ctx.provider == "ews" else pick(r, (None, "Jr.", "PhD")),
        "nickname": pick(r, (None, slug.split(".")[0])),
        "display_name": name,
        "birthday": f"19{r.randint(50, 99)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        if r.random() < 0.4
        else None,
        "company_name": pick(r, ("Nylas", "Acme Corp.", "Müller GmbH", None)),
        "job_title": pick(r, _JOBS),
        "manager_name": None,
        "office_location": pick(r, (None, "123 Main Street")),
        "notes": pick(r, (None, "Loves ramen 🍜", "Met at PyCon")),
        "picture_url": f"https://pictures.example/{slug}.jpg" if r.random() < 0.3 else None,
        "source": "address_book",
        "emails": [{"email": f"{slug}@{domain}", "type": pick(r, ("work", "home", "other"))}],
        "physical_addresses": _addresses(r),
        "groups": _groups_of(r, groups),
    }
    rec.update(_optional_arrays(r, slug, domain))
    return rec


def _addresses(r: random.Random) -> list[Record] | None:
    roll = r.random()
    if roll < 0.15:
        return None
    if roll < 0.6:
        return []
    return [
        {
            "format": "structured",
            "type": "work",
            "street_address": "123 Main Street",
            "city": pick(r, ("San Francisco", "München", "Zürich")),
            "postal_code": "94107",
            "state": "CA",
            "country": "US",
        }
    ]


def _groups_of(r: random.Random, groups: list[Record]) -> list[Record] | None:
    if not groups:
        return None
    return [{"id": g["id"]} for g in groups if r.random() < 0.3]


def build_contacts(ctx: GrantContext, groups: list[Record]) -> list[Record]:
    """About ``records / 2`` address-book contacts."""
    return [_contact(ctx, i, groups) for i in range(ctx.records // 2)]
