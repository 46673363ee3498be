"""Application-level data: grant profiles and records, connectors, credentials."""

from __future__ import annotations

from dataclasses import dataclass

from .people import PEOPLE
from .util import Record, base36_id, epoch, hex_id, rng, uuid_like

# The grant list cycles through this mix; google and microsoft appear twice
# because they dominate real deployments.
PROVIDER_CYCLE: tuple[str, ...] = (
    "google",
    "microsoft",
    "imap",
    "ews",
    "icloud",
    "virtual-calendar",
    "google",
    "microsoft",
    "yahoo",
)

GRANT_STREAMS: tuple[str, ...] = (
    "calendars",
    "contacts",
    "contact_groups",
    "drafts",
    "events",
    "folders",
    "messages",
    "threads",
    "scheduled_messages",
)
_ALL = frozenset(GRANT_STREAMS)
_NO_CALENDAR = _ALL - {"calendars", "events", "scheduled_messages"}

# Which grant-scoped streams each provider answers; others get
# 400 "Method not supported for provider".
SUPPORT: dict[str, frozenset[str]] = {
    "google": _ALL,
    "microsoft": _ALL,
    "imap": _NO_CALENDAR,
    "yahoo": _NO_CALENDAR,
    "icloud": _ALL - {"scheduled_messages"},
    "ews": _ALL - {"contact_groups", "scheduled_messages"},
    "virtual-calendar": frozenset({"calendars", "events"}),
}

_EMAIL_DOMAINS: dict[str, str] = {
    "google": "gmail.example",
    "microsoft": "contoso.onmicrosoft.example",
    "imap": "fastmail.example",
    "ews": "exchange.corp.example",
    "icloud": "icloud.example",
    "yahoo": "yahoo.example",
    "virtual-calendar": "rooms.nylas.example",
}

_SCOPES: dict[str, list[str]] = {
    "google": [
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/calendar.readonly",
        "https://www.googleapis.com/auth/contacts.readonly",
        "openid",
    ],
    "microsoft": [
        "Mail.Read",
        "Calendars.Read",
        "Contacts.Read",
        "User.Read",
        "offline_access",
    ],
    "ews": ["ews.messages", "ews.calendars", "ews.contacts"],
}

GRANTS_START = epoch(2024, 1, 1)
GRANTS_SPAN = epoch(2025, 12, 31) - GRANTS_START


@dataclass(frozen=True, slots=True)
class GrantProfile:
    """The cheap, always-present facts about one grant (no mail data)."""

    index: int
    id: str
    provider: str
    status: str
    email: str
    name: str
    created_at: int
    updated_at: int
    expired: bool = False

    @property
    def serving(self) -> bool:
        """Whether grant-scoped calls answer with data rather than 401."""
        return self.status == "valid" and not self.expired

    def supports(self, stream: str) -> bool:
        """Whether the provider answers this grant-scoped stream."""
        return stream in SUPPORT[self.provider]


def make_profile(seed: int, index: int, count: int) -> GrantProfile:
    """Derive a grant's profile from (seed, index) alone."""
    provider = PROVIDER_CYCLE[index % len(PROVIDER_CYCLE)]
    # About one grant in eight is invalid; virtual calendars never expire.
    invalid = provider != "virtual-calendar" and (index + seed) % 8 == 3
    r = rng(seed, "grant", index)
    name, slug = PEOPLE[r.randrange(len(PEOPLE))]
    step = GRANTS_SPAN // max(count, 1)
    # created_at grows with the index so default sorting is easy to reason about.
    created = GRANTS_START + index * step + r.randrange(max(step, 1))
    updated = created if r.random() < 0.3 else created + r.randrange(1, 90 * 86400)
    return GrantProfile(
        index=index,
        id=uuid_like(seed, "grant-id", index),
        provider=provider,
        status="invalid" if invalid else "valid",
        email=f"{slug}.{index}@{_EMAIL_DOMAINS[provider]}",
        name=name,
        created_at=created,
        updated_at=updated,
    )


def _grant_settings(profile: GrantProfile) -> Record:
    if profile.provider in ("imap", "yahoo", "icloud"):
        return {
            "imap_host": f"imap.{_EMAIL_DOMAINS[profile.provider]}",
            "imap_port": 993,
            "smtp_host": f"smtp.{_EMAIL_DOMAINS[profile.provider]}",
            "smtp_port": 465,
        }
    if profile.provider == "microsoft":
        return {"tenant": "common"}
    if profile.provider == "ews":
        return {"ews_url": "https://exchange.corp.example/EWS/Exchange.asmx"}
    return {}


def grant_record(seed: int, profile: GrantProfile) -> Record:
    """The grant object as ``GET /v3/grants`` returns it."""
    r = rng(seed, "grant-record", profile.index)
    migrated = r.random() < 0.2
    return {
        "id": profile.id,
        "provider": profile.provider,
        "grant_status": profile.status,
        "email": profile.email,
        "name": profile.name,
        "scope": list(_SCOPES.get(profile.provider, [])),
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
        "settings": _grant_settings(profile),
        "blocked": False,
        "ip": f"203.0.113.{profile.index % 250 + 1}",
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15",
        "state": f"state-{hex_id(seed, 'state', profile.index, length=8)}"
        if r.random() < 0.5
        else None,
        "provider_user_id": hex_id(seed, "puid", profile.index, length=21),
        "account_id": base36_id(seed, "v2", profile.index) if migrated else None,
        "workspace_id": None,
        "credential_id": None,
    }


# One connector per provider; microsoft carries 205+ credentials so that
# offset paging over credentials really needs several pages.
CONNECTOR_PROVIDERS: tuple[str, ...] = (
    "google",
    "microsoft",
    "imap",
    "icloud",
    "ews",
    "yahoo",
    "virtual-calendar",
    "zoom",
)

_CONNECTOR_NAMES: dict[str, str] = {
    "google": "Google Connector",
    "microsoft": "Microsoft 365 Connector",
    "imap": "IMAP Connector",
    "icloud": "iCloud Connector",
    "ews": "Exchange (EWS) Connector",
    "yahoo": "Yahoo Connector",
    "virtual-calendar": "Virtual Calendar Connector",
    "zoom": "Zoom Connector 🎥",
}

CREDENTIALS_START = epoch(2024, 1, 2)


def credential_count(seed: int, provider: str) -> int:
    """How many credentials the provider's connector holds."""
    if provider == "microsoft":
        return 205 + seed % 11
    if provider in ("imap", "yahoo", "virtual-calendar"):
        return 0
    return rng(seed, "cred-count", provider).randint(1, 15)


def credentials(seed: int, provider: str) -> list[Record]:
    """All credential records of one connector, oldest first."""
    ctype = {"microsoft": "adminconsent", "google": "serviceaccount"}.get(provider, "connector")
    out = []
    for i in range(credential_count(seed, provider)):
        r = rng(seed, "cred", provider, i)
        created = CREDENTIALS_START + i * 86400 + r.randrange(86400)
        out.append(
            {
                "id": uuid_like(seed, "cred-id", provider, i),
                "name": f"{provider} credential {i + 1}",
                "created_at": created,
                "updated_at": created + (r.randrange(30 * 86400) if i % 3 else 0),
                "credential_type": ctype,
                "hashed_data": hex_id(seed, "cred-hash", provider, i, length=64),
            }
        )
    return out


def connectors(seed: int) -> list[Record]:
    """All connector records."""
    out = []
    for provider in CONNECTOR_PROVIDERS:
        creds = credentials(seed, provider)
        record: Record = {
            "name": _CONNECTOR_NAMES[provider],
            "provider": provider,
            "settings": _connector_settings(seed, provider),
            "scope": list(_SCOPES.get(provider, [])),
        }
        if creds:
            record["active_credential_id"] = creds[0]["id"]
        out.append(record)
    return out


def _connector_settings(seed: int, provider: str) -> Record:
    if provider == "google":
        return {
            "client_id": f"{hex_id(seed, 'gcid', length=12)}.apps.googleusercontent.com",
            "project_id": "nylas-sim-project",
            "topic_name": "projects/nylas-sim-project/topics/nylas",
        }
    if provider == "microsoft":
        return {"client_id": uuid_like(seed, "mscid"), "tenant": "common"}
    if provider == "zoom":
        return {"client_id": hex_id(seed, "zoomcid", length=22)}
    return {}
