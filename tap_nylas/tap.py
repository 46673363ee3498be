"""The tap: its settings, their checks, and the streams it offers."""

from __future__ import annotations

import logging
import sys
import typing as t
from datetime import datetime, timezone
from functools import cached_property
from urllib.parse import urlparse

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError

from tap_nylas.client import REGION_URLS, ThrottleGate
from tap_nylas.directory import GrantDirectory, Shard
from tap_nylas.errors import ConfigError, TapNylasError
from tap_nylas.output import ProportionalStateWriter, WholeLineWriter
from tap_nylas.streams import STREAM_TYPES
from tap_nylas.versions import ActivateVersionSetting

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk import Stream

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class RepeatedWarningFilter(logging.Filter):
    """Let the SDK's per-partition "assumed to be unsorted" warning through once.

    The SDK logs it for every grant of every incremental stream: 30,000 identical lines
    at 10,000 grants. Once says it; the README explains resumability.
    """

    def __init__(self) -> None:
        """No message seen yet."""
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """True the first time a message is logged."""
        message = record.getMessage()
        if "assumed to be unsorted" not in message:
            return True
        first = message not in self._seen
        self._seen.add(message)
        return first

    @classmethod
    def install(cls) -> None:
        """A fresh filter on the SDK's logger, replacing the one of an earlier run."""
        sdk_logger = logging.getLogger("singer_sdk")
        for old in [f for f in sdk_logger.filters if isinstance(f, cls)]:
            sdk_logger.removeFilter(old)
        sdk_logger.addFilter(cls())


class TapNylas(ActivateVersionSetting, Tap):
    """Singer tap for a whole Nylas v3 application."""

    name = "tap-nylas"
    message_writer_class = WholeLineWriter

    config_jsonschema = th.PropertiesList(
        th.Property(
            "api_key",
            th.StringType(min_length=1),
            required=True,
            secret=True,
            title="API key",
            description="Nylas application API key (sent as a bearer token, never logged).",
        ),
        th.Property(
            "region",
            th.StringType,
            default="us",
            allowed_values=sorted(REGION_URLS),
            description="Region of the Nylas application: `us` (api.us.nylas.com) or `eu` "
            "(api.eu.nylas.com).",
        ),
        th.Property(
            "api_url",
            th.StringType,
            description="Base URL overriding `region`, e.g. a proxy or a local simulator. "
            "Must be https, except for localhost/127.0.0.1.",
        ),
        th.Property(
            "start_date",
            th.DateTimeType,
            description="ISO 8601 date-time. Messages and threads are read from here on, and "
            "events whose time overlaps [start_date, now + events_lookahead_days].",
        ),
        th.Property(
            "grant_ids",
            th.ArrayType(th.StringType),
            description="Only these grants (by ID); all grants of the application if unset.",
        ),
        th.Property(
            "grant_shard",
            th.StringType,
            description="`K/N`: sync only shard K of N of the grants (by a stable hash of the "
            "grant ID), so N processes on N machines cover every grant exactly once. "
            "Connectors and credentials are synced by shard 1 only.",
        ),
        th.Property(
            "page_size",
            th.IntegerType(minimum=1, maximum=200),
            description="Records per page. Default: the largest each endpoint allows "
            "(200; 50 for threads).",
        ),
        th.Property(
            "user_agent",
            th.StringType,
            description="User-Agent header. Default: `tap-nylas/<version>`.",
        ),
        th.Property(
            "events_lookback_days",
            th.IntegerType(minimum=0),
            default=365,
            description="Without `start_date`, read events from this many days ago.",
        ),
        th.Property(
            "events_lookahead_days",
            th.IntegerType(minimum=0),
            default=365,
            description="Read events up to this many days ahead of now.",
        ),
        th.Property(
            "incremental_lookback_seconds",
            th.IntegerType(minimum=0),
            default=3600,
            description="Incremental streams (messages, threads, events) re-read this many "
            "seconds before each grant's bookmark, for late arrivals; the warehouse merges the "
            "overlap on the primary key.",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType(minimum=1, maximum=64),
            default=8,
            description="Grants (or calendars) fetched at once. Output and state are the same "
            "as with 1 (one grant after another); each grant's pages stay sequential.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0),
            default=5,
            description="Retries of a request that got 429, 5xx or a dropped connection.",
        ),
        th.Property(
            "backoff_factor",
            th.NumberType(minimum=0),
            default=2,
            description="Seconds before the first retry, doubling on each next one; a "
            "`Retry-After` header from Nylas takes precedence.",
        ),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Build the tap, then check what JSON Schema cannot."""
        RepeatedWarningFilter.install()
        super().__init__(*args, **kwargs)
        self._state_writer = ProportionalStateWriter(t.cast("WholeLineWriter", self.message_writer))
        if kwargs.get("validate_config", True):
            self.check_settings()

    def check_settings(self) -> None:
        """Fail fast, with one line, on settings that would fail later or leak the key."""
        if api_url := self.config.get("api_url"):
            url = urlparse(str(api_url))
            if url.scheme not in {"http", "https"} or not url.hostname:
                msg = f"api_url must be an http(s) URL, got {api_url!r}"
                raise ConfigError(msg)
            if url.scheme == "http" and url.hostname not in LOCAL_HOSTS:
                msg = "api_url must use https (plain http only for localhost/127.0.0.1)"
                raise ConfigError(msg)
        _ = self.start_epoch
        Shard.parse(self.config.get("grant_shard"))

    @cached_property
    def start_epoch(self) -> int | None:
        """`start_date` as epoch seconds, the unit of every Nylas timestamp filter."""
        value = self.config.get("start_date")
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            msg = f"start_date must be an ISO 8601 date-time, got {value!r}"
            raise ConfigError(msg) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return int(moment.timestamp())

    @cached_property
    def throttle(self) -> ThrottleGate:
        """Shared by every stream and thread: a 429 pauses all requests."""
        return ThrottleGate()

    @cached_property
    def directory(self) -> GrantDirectory:
        """The grants (and their calendars) of this run."""
        return GrantDirectory(
            self, self.config.get("grant_ids"), Shard.parse(self.config.get("grant_shard"))
        )

    def discover_streams(self) -> list[Stream]:
        """The twelve Nylas streams."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @property
    def state_writer(self) -> ProportionalStateWriter:
        """Writes STATE in proportion to the output (see output.py)."""
        return t.cast("ProportionalStateWriter", self._state_writer)

    def sync_all(self) -> None:  # type: ignore[misc]  # final in the SDK; extended, not replaced
        """The SDK's sync, then the STATE the proportional writer may still hold."""
        try:
            super().sync_all()
        finally:
            self.state_writer.flush()

    def run_sync_dry_run(self, *args: t.Any, **kwargs: t.Any) -> bool:  # type: ignore[misc]
        """The SDK's dry run (`--test`, the SDK's tests), then the STATE held back."""
        try:
            return super().run_sync_dry_run(*args, **kwargs)
        finally:
            self.state_writer.flush()

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SDK signal hook (final STATE, then exit), deferred while a line is being written."""
        writer = self.message_writer
        if isinstance(writer, WholeLineWriter) and writer.writing:
            writer.pending_stop = lambda: self._terminate(signum, frame)
        else:
            self._terminate(signum, frame)

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        self.state_writer.flush(self.state)  # now, whatever the proportional writer held
        super()._handle_termination(signum, frame)

    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the CLI; a problem the user can fix ends it with one line, not a traceback."""
        try:
            super().invoke(*args, **kwargs)
        except ConfigValidationError as error:
            cls.logger.error("Invalid config: %s", "; ".join(error.errors) or error)
            sys.exit(1)
        except TapNylasError as error:
            cls.logger.error("%s", error)
            sys.exit(1)


if __name__ == "__main__":
    TapNylas.cli()
