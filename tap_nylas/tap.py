"""The tap: its settings, their checks, and the streams it offers."""

from __future__ import annotations

import io
import logging
import signal
import sys
import threading
import typing as t
from functools import cached_property

import click
from singer_sdk import typing as th
from typing_extensions import override

from tap_nylas import inputs
from tap_nylas.client import NylasStream
from tap_nylas.coverage import CoverageLedger, bookmark_index, partition_key
from tap_nylas.directory import GrantDirectory, Shard
from tap_nylas.errors import ConfigError, RunIncompleteError, describe_context
from tap_nylas.history import LANE as HISTORY_LANE
from tap_nylas.history import REQUESTS as HISTORY_REQUESTS
from tap_nylas.normalize import iso_epoch
from tap_nylas.output import ProportionalStateWriter, WholeLineWriter
from tap_nylas.partitioned import GrantScopedStream
from tap_nylas.scheduler import Lane, Scheduler
from tap_nylas.sdk import TapSeam, user_errors
from tap_nylas.streams import STREAM_TYPES
from tap_nylas.throttle import ApplicationThrottle
from tap_nylas.versions import ActivateVersionSetting

if t.TYPE_CHECKING:
    from singer_sdk import Stream

MAX_LOOKBACK_DAYS = 3650
MAX_LOOKAHEAD_DAYS = 1825
MAX_INCREMENTAL_LOOKBACK = 30 * 86400
#: Requests in flight at once, at most and by default. At 400 grants (lognormal 300 ms,
#: 6% faults, 4 per grant, 2 cores) 64 took 20 s, 128 12 s, 256 11 s, 512 12 s: past
#: 256 the tap's own CPU, not the API, sets the pace. A 5-grant run takes as long at 256
#: as at 8 (its grants allow 20 at most; idle workers cost 4 MB). README "Performance".
MAX_CONCURRENCY = 512
DEFAULT_CONCURRENCY = 256
#: Streams synced before the others (which follow by name, as the SDK orders them).
#: Calendars are one page per grant, and events can only be listed once they are
#: written. Connectors and credentials are read on the writer's thread, one request after
#: another: early, the workers fetch grant streams meanwhile; last, they idled 2.4 s
#: (scenario C). A mailbox's threads and messages are a run's longest work, capped per
#: grant by `max_requests_per_grant`: started before the other grant streams, those fill
#: the workers around a big mailbox instead of queueing in front of it (its first request
#: moved from 2.0 s to 0.3 s into scenario C).
SYNC_FIRST = ("calendars", "connectors", "threads", "messages")
#: Streams synced after all others: completion records vouch only for what was written.
SYNC_LAST = ("sync_coverage",)
DEFAULT_SWEEP_DAYS = 7
MAX_SWEEP_DAYS = 90


class RepeatedWarningFilter(logging.Filter):
    """Let the SDK's per-partition "assumed to be unsorted" warning through once.

    The SDK logs it for every grant of every incremental stream: 30,000 identical lines
    at 10,000 grants. Once says it; the README explains resumability.
    """

    def __init__(self) -> None:
        """No message seen yet."""
        super().__init__()
        self._seen: set[str] = set()

    @override
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


def replication_keys() -> dict[str, str]:
    """The replication key of each incremental stream, from the stream classes."""
    keys = {}
    for stream_type in STREAM_TYPES:
        # Class attributes of the stream classes; the SDK types them as instance properties.
        key = getattr(stream_type, "replication_key", None)
        if isinstance(key, str):
            keys[str(getattr(stream_type, "name"))] = key  # noqa: B009
    return keys


class TapNylas(ActivateVersionSetting, TapSeam):
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
            allowed_values=sorted(inputs.REGION_URLS),
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
            description="Records per page, 1 to 200. Default: the largest each endpoint allows "
            "(200; 50 for threads).",
        ),
        th.Property(
            "user_agent",
            th.StringType,
            description="User-Agent header. Default: `tap-nylas/<version>`.",
        ),
        th.Property(
            "events_lookback_days",
            th.IntegerType(minimum=0, maximum=MAX_LOOKBACK_DAYS),
            default=365,
            description="Without `start_date`, read events from this many days ago; at most "
            f"{MAX_LOOKBACK_DAYS} (10 years: an iCloud calendar costs a request per 360 days "
            "of window; set `start_date` to reach further back).",
        ),
        th.Property(
            "events_lookahead_days",
            th.IntegerType(minimum=0, maximum=MAX_LOOKAHEAD_DAYS),
            default=365,
            description="Read events up to this many days ahead of now; at most "
            f"{MAX_LOOKAHEAD_DAYS} (5 years: every year ahead adds each recurring event's "
            "occurrences, and a request per iCloud calendar).",
        ),
        th.Property(
            "incremental_lookback_seconds",
            th.IntegerType(minimum=0, maximum=MAX_INCREMENTAL_LOOKBACK),
            default=3600,
            description="Incremental streams (messages, threads, events) re-read this many "
            "seconds before each grant's bookmark, for late arrivals; the warehouse merges the "
            f"overlap on the primary key. At most {MAX_INCREMENTAL_LOOKBACK} (30 days: every "
            "run re-reads the whole window; to re-read more once, clear the state).",
        ),
        th.Property(
            "sweep_days",
            th.IntegerType(minimum=0, maximum=MAX_SWEEP_DAYS),
            default=DEFAULT_SWEEP_DAYS,
            description="Days of recent mail (and events from then to the look-ahead) that the "
            "sweep streams message_flags, thread_flags and event_states re-read every run with "
            "field selection, so changed flags and folders and deleted messages and events "
            f"reach the warehouse; 0 turns sweeps off, at most {MAX_SWEEP_DAYS}.",
        ),
        th.Property(
            "max_concurrency",
            th.IntegerType(minimum=1, maximum=MAX_CONCURRENCY),
            default=DEFAULT_CONCURRENCY,
            description="Requests in flight at once, across all grants, 1 to "
            f"{MAX_CONCURRENCY}. Default {DEFAULT_CONCURRENCY}: a ceiling, not a target; each "
            "grant stays within max_requests_per_grant, and a 429 from an application endpoint "
            "halves application requests only. Output and state are the same as with 1 (one "
            "request after another).",
        ),
        th.Property(
            "max_requests_per_grant",
            th.IntegerType(minimum=1, maximum=32),
            default=4,
            description="Requests in flight at once for one grant, across all its streams and "
            "time slices, 1 to 32. Default 4: Microsoft Graph allows 4 concurrent requests per "
            "mailbox; Google's quota is per user per second.",
        ),
        th.Property(
            "imap_history",
            th.BooleanType,
            default=True,
            description="Read the mail of IMAP, Yahoo and iCloud grants older than Nylas's "
            "90-day cache, once per grant, from the IMAP server (`query_imap`, folder by "
            "folder), when `start_date` (or its absence) reaches further back. Later runs "
            'read the cache only. README: "IMAP, Yahoo and iCloud history".',
        ),
        th.Property(
            "imap_history_max_requests",
            th.IntegerType(minimum=1, maximum=64),
            default=HISTORY_REQUESTS,
            description="History requests (`query_imap`) in flight at once across all grants, "
            "1 to 64; one grant's history is read one request after another, within "
            "`max_requests_per_grant`. A fixed number, not a share of `max_concurrency`: "
            "many grants share one provider's IMAP servers (every Yahoo grant reaches "
            "Yahoo's), so their load must not grow with the tap's workers.",
        ),
        th.Property(
            "request_timeout_seconds",
            th.NumberType(minimum=1, maximum=600),
            default=150,
            description="Overall deadline for one request (connect and the whole body), 1 to "
            "600; a response that takes longer is abandoned and retried. Nylas caps requests "
            "at 120 s server-side.",
        ),
        th.Property(
            "max_response_megabytes",
            th.IntegerType(minimum=1, maximum=4096),
            default=256,
            description="Largest answer the tap reads, in MB once decoded (a small gzip body "
            "can decode to gigabytes); a larger one fails its grant (or the run, for the "
            "application's lists). 1 to 4096; a page of 200 messages with bodies is a few MB.",
        ),
        th.Property(
            "max_retries",
            th.IntegerType(minimum=0, maximum=20),
            default=5,
            description="Retries of a request that got 429, 5xx or a dropped connection, 0 to "
            "20 (waits are capped at 2 minutes each, so 20 is about 40 minutes for one request).",
        ),
        th.Property(
            "backoff_factor",
            th.NumberType(minimum=0, maximum=60),
            default=2,
            description="Seconds before the first retry, 0 to 60, doubling on each next one; a "
            "`Retry-After` header from Nylas takes precedence.",
        ),
        th.Property(
            "progress_interval_seconds",
            th.IntegerType(minimum=0, maximum=86400),
            default=30,
            description="Seconds between progress lines per running stream (partitions "
            "done/total, records, rate, time left), up to 86400; 0 turns them off.",
        ),
        th.Property(
            "keep_secret_settings",
            th.BooleanType,
            default=False,
            description="Keep secret-looking keys (`client_secret`, `password`, `token`, "
            "`api_key`, `private_key`, ...) in the `settings` of grants and connectors. By "
            "default they are dropped from the records, at any depth.",
        ),
    ).to_dict()

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        """Build the tap, then check what JSON Schema cannot."""
        RepeatedWarningFilter.install()
        self._failures: list[str] = []
        self._failures_lock = threading.Lock()  # events report from calendar-listing threads
        super().__init__(*args, **kwargs)
        if kwargs.get("validate_config", True):
            self.check_settings()

    @override
    def make_state_writer(self) -> ProportionalStateWriter:
        """Writes STATE in proportion to the output (see output.py)."""
        return ProportionalStateWriter(self.output)

    def check_settings(self) -> None:
        """Fail fast, with one line, on settings that would fail later or leak the key."""
        inputs.check_api_key(self.config.get("api_key"))
        inputs.check_user_agent(self.config.get("user_agent"))
        if api_url := self.config.get("api_url"):
            inputs.check_api_url(str(api_url))
        if self.start_epoch is not None and self.start_epoch > self.initialized_at // 1000:
            msg = (
                f"start_date {self.config['start_date']} is in the future: the run would read "
                "nothing; set a past date, or leave it out"
            )
            raise ConfigError(msg)
        Shard.parse(self.config.get("grant_shard"))

    @cached_property
    def start_epoch(self) -> int | None:
        """`start_date` as epoch seconds, the unit of every Nylas timestamp filter."""
        value = self.config.get("start_date")
        if not value:
            return None
        try:
            return iso_epoch(str(value))
        except ValueError:
            msg = f"start_date must be an ISO 8601 date-time, got {value!r}"
            raise ConfigError(msg) from None

    @override
    def load_state(self, state: dict[str, t.Any]) -> None:
        """The SDK's state loading, after bookmarks the tap did not write are repaired.

        Done here, at init, so every reader of bookmarks (`lower_bound()`, the SDK's
        `increment_state`) sees epoch-second integers no later than the run's start.
        """
        now = self.initialized_at // 1000
        state = inputs.sanitise_state(state, replication_keys(), now, self.logger)
        self._bookmarks_at_start = bookmark_index(state)
        super().load_state(state)

    def bookmark_at_start(self, stream: str, context: t.Mapping[str, t.Any]) -> t.Any:
        """A partition's bookmark in the state this run started from (None: none)."""
        return getattr(self, "_bookmarks_at_start", {}).get((stream, partition_key(context)))

    @property
    def sweep_days(self) -> int:
        """Days of recent mail and events the sweeps re-read (0: none)."""
        return int(self.config.get("sweep_days", DEFAULT_SWEEP_DAYS))

    @cached_property
    def coverage(self) -> CoverageLedger:
        """The run's completion records: collected when `sync_coverage` is selected.

        Not in a dry run (`--test`), which reads partitions only in part.
        """
        stream = self.streams.get("sync_coverage")
        enabled = stream is not None and stream.selected and not self.dry_run
        return CoverageLedger(self.initialized_at / 1000, enabled=enabled)

    @cached_property
    def scheduler(self) -> Scheduler:
        """Fetches the pages of every selected grant-scoped stream (see scheduler.py).

        A dry run (`--test`) reads one partition at a time on one worker: it stops after
        a record per stream and must not fetch other grants ahead.
        """
        streams = [
            s for s in self.streams.values() if isinstance(s, GrantScopedStream) and s.selected
        ]
        per_grant = int(self.config.get("max_requests_per_grant") or 4)
        # No more workers than the run's grants may keep busy: 256 threads for 5 grants
        # took 0.2 s longer to start than the 20 they can use (100 ms latency, measured).
        usable = max(per_grant * len(self.directory.grants), 1)
        workers = 1 if self.dry_run else min(int(self.config["max_concurrency"]), usable)
        per_grant = min(per_grant, workers)
        history_total = int(self.config.get("imap_history_max_requests") or HISTORY_REQUESTS)
        return Scheduler(
            streams,
            workers=workers,
            per_grant=per_grant,
            max_retries=int(self.config["max_retries"]),
            backoff_factor=float(self.config["backoff_factor"]),
            read_ahead=not self.dry_run,
            progress_interval=float(self.config.get("progress_interval_seconds", 30)),
            # One history request of a grant at a time: IMAP servers allow an account few
            # connections, and Nylas's own sync uses them too.
            lanes={HISTORY_LANE: Lane(per_grant=1, total=min(history_total, workers))},
        )

    @cached_property
    def application_throttle(self) -> ApplicationThrottle:
        """Holds application requests after the application's 429s (see throttle.py)."""
        return ApplicationThrottle(int(self.config["max_concurrency"]))

    def application_throttled(self, wait: float) -> None:
        """A 429 on an application endpoint: application requests only hold back."""
        self.application_throttle.throttled(wait)

    def report_failure(self, stream: str, context: dict, error: Exception) -> None:
        """Remember a partition that failed; the run ends non-zero once all else is synced."""
        with self._failures_lock:
            self._failures.append(f"{stream} for {describe_context(context)}")

    @cached_property
    def directory(self) -> GrantDirectory:
        """The grants (and their calendars) of this run."""
        grants = t.cast("NylasStream", self.streams["grants"])
        calendars = t.cast("NylasStream", self.streams["calendars"])
        folders = t.cast("NylasStream", self.streams["folders"])
        return GrantDirectory(
            lambda: grants.request_records(None),
            lambda grant_id: calendars.request_records({"grant_id": grant_id}),
            list_folders=lambda grant_id: folders.request_records({"grant_id": grant_id}),
            grant_ids=self.config.get("grant_ids"),
            shard=Shard.parse(self.config.get("grant_shard")),
            workers=int(self.config["max_concurrency"]),
            logger=grants.logger,
        )

    @override
    def discover_streams(self) -> list[Stream]:
        """The Nylas streams, the sweeps and `sync_coverage`."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    @override
    def order_streams(self, streams: list[Stream]) -> list[Stream]:
        """The streams in sync order: `SYNC_FIRST`, the SDK's order (by name), `SYNC_LAST`."""

        def rank(stream: Stream) -> int:
            if stream.name in SYNC_FIRST:
                return SYNC_FIRST.index(stream.name)
            if stream.name in SYNC_LAST:
                return len(SYNC_FIRST) + 1 + SYNC_LAST.index(stream.name)
            return len(SYNC_FIRST)

        return sorted(streams, key=rank)

    @property
    def output(self) -> WholeLineWriter:
        """Writes the Singer messages (see output.py)."""
        return t.cast("WholeLineWriter", self.message_writer)

    @property
    @override
    def state_writer(self) -> ProportionalStateWriter:
        """Writes STATE in proportion to the output (see output.py)."""
        return t.cast("ProportionalStateWriter", super().state_writer)

    @override
    def sync_ended(self) -> None:
        """Write what was held back (STATE, records), stop the workers."""
        self.state_writer.flush()
        self.output.flush()
        if "scheduler" in self.__dict__:
            self.scheduler.close()

    @override
    def sync_succeeded(self) -> None:
        """Fail the run, in one line, when partitions failed (everything else synced)."""
        if failures := self._failures:
            shown = ", ".join(failures[:5]) + (
                f", and {len(failures) - 5} more" if len(failures) > 5 else ""
            )
            msg = (
                f"{len(failures)} partition{'s' if len(failures) > 1 else ''} failed: {shown}; "
                "state keeps their old bookmarks, everything else was synced"
            )
            raise RunIncompleteError(msg)

    @override
    def stop_requested(self, signum: int) -> None:
        """Final STATE, then exit; deferred while a line is being written."""
        if self.output.writing:
            self.output.pending_stop = lambda: self._terminate(signum)
        else:
            self._terminate(signum)

    def _terminate(self, signum: int) -> t.NoReturn:
        """Final STATE, then exit 128 + signal (143 for SIGTERM, 130 for SIGINT).

        The SDK's handler exits 0: an orchestrator could not tell a stopped run from a
        finished one.
        """
        self.state_writer.flush(self.state)  # now, whatever the proportional writer held
        self.output.flush()  # records after the last STATE, if it was not written anew
        code = 128 + signum
        self.logger.warning(
            "Stopped by %s: final STATE written, exit code %d", signal.Signals(signum).name, code
        )
        sys.exit(code)

    # The CLI: `--state` and `--catalog` files checked here, and a problem the user can
    # fix ends any command with one line (`user_errors`), never a traceback.

    @classmethod
    def cb_input_file(cls, ctx: click.Context, param: click.Parameter, value: str | None) -> t.Any:
        """`--state` and `--catalog`: checked here, then handed to the SDK as a file."""
        if value is None:
            return None
        with user_errors(cls.logger):
            text, _ = inputs.read_json_object(value, f"{param.name} file")
        return io.StringIO(text)

    @override
    @classmethod
    def get_singer_command(cls) -> click.Command:
        """The SDK's command, with `--state` and `--catalog` read by `cb_input_file`.

        The SDK opens them as `click.File`: a missing file is a three-line usage error and
        an empty or non-JSON one a traceback from deep inside `Tap.invoke`.
        """
        command = super().get_singer_command()
        for option in command.params:
            if option.name in {"state", "catalog"}:
                option.type = click.STRING
                option.callback = cls.cb_input_file
        return command

    @override
    @classmethod
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """The SDK's `--discover`, with one line for a problem the user can fix."""
        with user_errors(cls.logger):
            super().cb_discover(ctx, param, value)

    @override
    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """The SDK's `--test`, with one line for a problem the user can fix."""
        with user_errors(cls.logger):
            super().cb_test(ctx, param, value)

    @override
    @classmethod
    def invoke(cls, *args: t.Any, **kwargs: t.Any) -> None:
        """Run the CLI; a problem the user can fix ends it with one line, not a traceback."""
        with user_errors(cls.logger):
            super().invoke(*args, **kwargs)


if __name__ == "__main__":
    TapNylas.cli()
