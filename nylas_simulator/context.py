"""The inputs one grant's data is generated from."""

from __future__ import annotations

from dataclasses import dataclass

from .admin import GrantProfile


@dataclass(frozen=True, slots=True)
class GrantContext:
    """Everything a generator needs; equal contexts give equal data."""

    seed: int
    profile: GrantProfile
    records: int
    large_body: int = 0  # bytes of the one oversized message body, 0 for none
    nul: bool = False  # put a NUL character into one message subject
    shared_message: int | None = None  # key of a message id shared with a peer grant
    shared_event: int | None = None  # key of an event id shared with a peer grant

    @property
    def grant_id(self) -> str:
        """The grant's id."""
        return self.profile.id

    @property
    def provider(self) -> str:
        """The grant's provider."""
        return self.profile.provider

    @property
    def owner(self) -> dict[str, str]:
        """The grant's own ``{name, email}``."""
        return {"name": self.profile.name, "email": self.profile.email}
