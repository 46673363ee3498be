"""Errors the tap raises: user-facing ones end the run with a single clear line."""

from __future__ import annotations

import random
import typing as t

from singer_sdk.exceptions import FatalAPIError

#: The longest the tap waits before a retry, whatever the server or the backoff says.
MAX_RETRY_WAIT_SECONDS = 120.0
#: Server text quoted in a log line is cut to this many characters by default.
SERVER_TEXT_LIMIT = 200


def quote_server_text(text: str, limit: int = SERVER_TEXT_LIMIT) -> str:
    """Text a server sent (an error message, a reason), made safe for one log line.

    A hostile or broken server controls this text: a newline in it would forge a log
    line of its own, an escape sequence would drive the terminal, a megabyte would
    flood the log. Newlines, control and other unprintable characters (U+2028, bidi
    overrides, lone surrogates) are escaped as `repr` does, backslashes doubled so an
    escape cannot be faked, and the result is cut to `limit` characters with an
    ellipsis and the original length.
    """
    text = str(text)
    if text.isprintable() and "\\" not in text and len(text) <= limit:
        return text  # the usual message: nothing to do
    pieces: list[str] = []
    used = 0
    for char in text:
        # repr of one character: `\n`, `\x1b`, `\u2028`, and `\\` for a backslash
        piece = char if char.isprintable() and char != "\\" else repr(char)[1:-1]
        if used + len(piece) > limit:
            return f"{''.join(pieces)}… ({len(text):,} characters)"
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces)


class TapNylasError(Exception):
    """A problem the user can fix; the CLI prints its message as one line and exits 1."""


class ConfigError(TapNylasError):
    """A setting is missing, malformed or inconsistent."""


class ApiKeyRejectedError(TapNylasError, FatalAPIError):
    """Nylas answered 401 to an application-level call: wrong key or wrong region."""


class ApplicationRequestError(TapNylasError, FatalAPIError):
    """An application-level list (grants, connectors) cannot be read: the run stops."""


class RepeatedCursorError(FatalAPIError):
    """Nylas handed back a cursor it had already given: following it would loop."""


class AnswerRefusedError(Exception):
    """An answer the tap will not read, however often asked: a redirect, an oversized body.

    Not retried: the stream turns it into its partition's failure (grant-scoped) or the
    run's (application lists).
    """


class RunIncompleteError(TapNylasError):
    """Some partitions failed; everything else was synced and their bookmarks kept."""


class RetryableError(Exception):
    """A request worth trying again.

    A 429, a 5xx, a dropped or timed-out connection, or a 2xx answer the tap does not
    understand (never read as an empty page).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        scope: t.Literal["grant", "application"] | None = None,
    ) -> None:
        """`scope`: what a 429 throttles (None: only this request waits)."""
        super().__init__(message)
        self.retry_after = retry_after
        self.scope = scope

    def wait(self, retry: int, backoff_factor: float) -> float:
        """Seconds before retry number `retry` (1 for the first).

        `Retry-After` as given, else `backoff_factor` doubling per retry, with up to 25%
        jitter so that retries of many requests do not land at once.
        """
        if self.retry_after is None:
            jitter = random.uniform(1.0, 1.25)  # noqa: S311 - spreads retries, not crypto
            return min(backoff_factor * 2 ** (retry - 1) * jitter, MAX_RETRY_WAIT_SECONDS)
        return min(self.retry_after, MAX_RETRY_WAIT_SECONDS)


class PartitionFailedError(Exception):
    """One grant or calendar kept failing: it is skipped, its bookmark kept, the run fails."""


class PartitionUnavailableError(FatalAPIError):
    """One grant or calendar cannot be read (expired grant, unsupported, deleted)."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        """Keep the HTTP status and the Nylas error for the warning and for callers."""
        self.status = status
        self.error_type = error_type
        super().__init__(f"HTTP {status} {error_type or 'error'}: {message or 'no message'}")


def describe_context(context: t.Mapping[str, t.Any]) -> str:
    """`grant_id g1, calendar_id c1`: a partition as log lines and errors name it."""
    return ", ".join(f"{k} {v}" for k, v in context.items())
