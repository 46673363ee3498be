"""Errors the tap raises: user-facing ones end the run with a single clear line."""

from __future__ import annotations

from singer_sdk.exceptions import FatalAPIError


class TapNylasError(Exception):
    """A problem the user can fix; the CLI prints its message as one line and exits 1."""


class ConfigError(TapNylasError):
    """A setting is missing, malformed or inconsistent."""


class ApiKeyRejectedError(TapNylasError, FatalAPIError):
    """Nylas answered 401 to an application-level call: wrong key or wrong region."""


class RepeatedCursorError(TapNylasError, FatalAPIError):
    """Nylas handed back a cursor it had already given: following it would loop."""


class PartitionUnavailableError(FatalAPIError):
    """One grant or calendar cannot be read (expired grant, unsupported, deleted)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        """Keep the HTTP status and the Nylas error for the warning and for callers."""
        self.status = status
        self.error_type = error_type
        super().__init__(f"HTTP {status} {error_type or 'error'}: {message or 'no message'}")
