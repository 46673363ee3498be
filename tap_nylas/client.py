"""HTTP for every Nylas stream: base URL, auth, errors, retries, paging and slices."""

from __future__ import annotations

import contextlib
import email.utils
import os
import threading
import time
import typing as t
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from urllib.parse import urlparse

import msgspec
import requests
import urllib3
from singer_sdk import RESTStream
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import BaseAPIPaginator, SinglePagePaginator
from singer_sdk.schema.source import SchemaDirectory, StreamSchema
from singer_sdk.singerlib import RecordMessage
from singer_sdk.streams.rest import PageContext

from tap_nylas import __version__, schemas
from tap_nylas.errors import (
    ApiKeyRejectedError,
    ApplicationRequestError,
    PartitionFailedError,
    PartitionUnavailableError,
    RepeatedCursorError,
    RetryableError,
    TapNylasError,
)
from tap_nylas.selection import CatalogFieldsMixin
from tap_nylas.state import IndexedStateManager
from tap_nylas.versions import ActivateVersionMixin

if t.TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from singer_sdk.helpers.types import Context

    from tap_nylas.directory import GrantDirectory
    from tap_nylas.scheduler import Partition, Scheduler

REGION_URLS = {"us": "https://api.us.nylas.com", "eu": "https://api.eu.nylas.com"}

# Substrings Nylas uses when a provider lacks an endpoint (the API's own typo included).
UNSUPPORTED_MARKERS = (
    "not supported for provider",
    "an internal error ocurred",
    "an internal error occurred",
)
ADMIN_HINTS = {
    403: "the API key is not allowed to read it",
    404: "check api_url: it is the base URL without a path, e.g. https://api.us.nylas.com",
}

_decode_json = msgspec.json.Decoder().decode


def response_body(response: requests.Response) -> t.Any:
    """The decoded JSON body, parsed once per response and shared by parser and paginator.

    A body that is not JSON is an answer the tap does not understand: it is retried,
    never read as an empty page.
    """
    body = getattr(response, "_nylas_body", None)
    if body is None:
        try:
            body = _decode_json(response.content) if response.content else {}
        except msgspec.DecodeError:
            kind = response.headers.get("Content-Type") or "no content type"
            msg = f"HTTP {response.status_code} on {_path(response)}: the body is not JSON ({kind})"
            raise RetryableError(msg) from None
        response._nylas_body = body  # type: ignore[attr-defined]
    return body


def page_records(body: t.Any) -> list[dict] | None:
    """Records of a list response, whatever envelope Nylas chose for it; None if none.

    Nylas answers lists as `data: [...]`, as a bare array (scheduled messages per the
    spec), or nested one level down (`data.threads`, `data.schedules`, `data.items`).
    """
    if isinstance(body, list):
        return body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("items", "threads", "schedules"):
            if isinstance(data.get(key), list):
                return t.cast("list[dict]", data[key])
    return None


def error_type_and_message(response: requests.Response) -> tuple[str, str]:
    """The Nylas error `type` (unprefixed) and `message`, or empty strings."""
    try:
        error = response_body(response).get("error") or {}
    except (RetryableError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", str(error)
    return str(error.get("type") or "").rsplit(".", 1)[-1], str(error.get("message") or "")


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (`Retry-After` as seconds or an HTTP date).

    Anything else (`soon`) is ignored: the usual backoff applies.
    """
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def read_body(response: requests.Response, deadline: float) -> None:
    """Read the whole body before `deadline`, or raise: `timeout` is per socket read.

    A response trickling a byte every few seconds never trips a read timeout; it is
    abandoned here and retried.
    """
    chunks = []
    try:
        while chunk := response.raw.read1(65536, decode_content=True):
            chunks.append(chunk)
            if time.monotonic() > deadline:
                response.close()
                msg = f"no whole answer on {_path(response)} within request_timeout_seconds"
                raise RetryableError(msg)
    except (urllib3.exceptions.HTTPError, OSError) as error:
        msg = f"connection lost while reading {_path(response)} ({type(error).__name__})"
        raise RetryableError(msg) from None
    response._content = b"".join(chunks)  # what `response.content` returns from now on


def _path(response: requests.Response) -> str:
    return urlparse(response.url or "").path or "?"


class CursorPaginator(BaseAPIPaginator["str | None"]):
    """`next_cursor` → `page_token`, until the cursor is null or empty.

    A short (even empty) page does not end the list while a cursor follows, and a cursor
    seen before ends the sync with a clear error instead of looping forever.
    """

    def __init__(self) -> None:
        """Start before the first page."""
        super().__init__(None)
        self._seen: set[str] = set()

    def get_next(self, response: requests.Response) -> str | None:
        """The next page token, or None at the end of the list."""
        cursor = response_body(response).get("next_cursor") or None
        if cursor is not None:
            if cursor in self._seen:
                msg = (
                    f"Nylas returned a page cursor it had already returned while listing "
                    f"{urlparse(response.url).path}; stopping instead of looping forever"
                )
                raise RepeatedCursorError(msg)
            self._seen.add(cursor)
        return cursor


class OffsetPagePaginator(BaseAPIPaginator[int]):
    """`limit`/`offset` paging for the admin lists: ends on a page shorter than its limit."""

    def __init__(self, limit: int) -> None:
        """Start at offset 0 asking for `limit` records a page."""
        super().__init__(0)
        self._limit = limit

    def get_next(self, response: requests.Response) -> int | None:
        """The next offset: past what this page actually held."""
        body = response_body(response)
        count = len(page_records(body) or ())
        # The server echoes the limit it applied, which may be lower than the one asked for.
        applied = body.get("limit") if isinstance(body, dict) else None
        if count == 0 or count < (applied or self._limit):
            return None
        return int(self.current_value) + count


@dataclass
class Slice:
    """A part of a partition that pages on its own: its cursor, its filters, its range.

    `context` is the partition's context plus this slice's query parameters. A slice
    of a time-range split keeps only records whose replication key lies in
    [`low`, `high`] (bounds sent one second wider, as Nylas does not document whether
    they are inclusive) and none whose ID `exclude` names (emitted by the slice it was
    split from).
    """

    context: dict
    paginator: BaseAPIPaginator
    low: int | None = None
    high: int | None = None
    exclude: frozenset[str] = frozenset()
    pages: int = 0
    depth: int = 0
    #: Response bytes of the last page: what its records weigh in memory, roughly.
    last_size: int = 0
    #: Pages still to read, as the last page suggests (None: not known yet).
    pages_left: float | None = None

    @property
    def finished(self) -> bool:
        """Whether the slice has no more pages."""
        return self.paginator.finished

    def keeps(self, record: dict, key: str | None) -> bool:
        """Whether `record` belongs to this slice (and to no slice it overlaps)."""
        if self.exclude and record.get("id") in self.exclude:
            return False
        value = record.get(key) if key else None
        if not isinstance(value, int):
            return True
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


class NylasStream(ActivateVersionMixin, CatalogFieldsMixin, RESTStream[t.Any]):
    """Base stream: one place for the Nylas base URL, auth, errors, retries and paging."""

    #: Largest `limit` the endpoint accepts.
    max_page_size: t.ClassVar[int] = 200
    #: "cursor" for grant-scoped lists, "offset" for admin lists, None for unpaginated.
    paging: t.ClassVar[str | None] = "cursor"
    #: Endpoints that take the application API key only; failures there stop the run.
    admin_endpoint: t.ClassVar[bool] = False

    schema: t.ClassVar[StreamSchema] = StreamSchema(SchemaDirectory(schemas))
    # Records are decoded JSON already, so the SDK's type conformance (half the CPU of a
    # sync, measured) would change nothing; `post_process` only drops unknown fields.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    # Replaces an SDK internal: `Stream._generate_record_messages` walks every record
    # against the catalog's selection mask and the schema (`pop_deselected_record_
    # properties`, `conform_record_data_types`) to drop what is not selected or unknown.
    # `post_process` (`shape_record`) already cut the record to exactly that, so the
    # walk found nothing and took a sixth of the writer's time (profile at latency 0).
    # Stream maps still apply, as in the SDK.
    def _generate_record_messages(self, record: dict) -> Generator[RecordMessage, None, None]:
        for stream_map in self.stream_maps:
            if (mapped := stream_map.transform(record)) is not None:
                yield RecordMessage(
                    stream=stream_map.stream_alias,
                    record=mapped,
                    version=self._stream_version,
                    time_extracted=datetime.now(timezone.utc),
                )

    @property
    def directory(self) -> GrantDirectory:
        """The tap's grant directory: which grants and calendars this run reads."""
        return self._tap.directory  # type: ignore[attr-defined]

    @property
    def url_base(self) -> str:
        """`api_url` when set, else the host of the configured region."""
        url = self.config.get("api_url") or REGION_URLS[self.config["region"]]
        return str(url).rstrip("/")

    @cached_property
    def authenticator(self) -> BearerTokenAuthenticator:
        """Bearer auth with the application API key."""
        return BearerTokenAuthenticator(token=self.config["api_key"])

    @cached_property
    def user_agent(self) -> str:
        """`user_agent` from config, else one naming this tap and its version."""
        return str(self.config.get("user_agent") or f"tap-nylas/{__version__}")

    @property
    def http_headers(self) -> dict:
        """Ask for gzip: Nylas compresses responses over ~200 bytes when asked."""
        return {"Accept-Encoding": "gzip", "Accept": "application/json"}

    @property
    def requests_session(self) -> requests.Session:
        """One session (connection pool) per thread: workers share no socket."""
        session: requests.Session | None = getattr(self._thread_local, "session", None)
        if session is None:
            session = self._thread_local.session = requests.Session()
            # Proxy and CA settings from the environment, read once: with trust_env,
            # requests re-reads the whole environment on every request (a fifth of the
            # tap's CPU time, measured at 1,000 grants).
            session.proxies = requests.utils.get_environ_proxies(self.url_base)
            ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            session.verify = ca_bundle or True
            session.trust_env = False
        return session

    @cached_property
    def _thread_local(self) -> threading.local:
        return threading.local()

    @property
    def page_size(self) -> int:
        """`page_size` from config, capped at what the endpoint allows."""
        return min(int(self.config.get("page_size") or self.max_page_size), self.max_page_size)

    def get_new_paginator(self) -> BaseAPIPaginator:
        """A paginator matching the endpoint's paging style."""
        if self.paging == "cursor":
            return CursorPaginator()
        if self.paging == "offset":
            return OffsetPagePaginator(self.page_size)
        return SinglePagePaginator()

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Paging parameters; streams add their filters on top."""
        if self.paging == "cursor":
            return {"limit": self.page_size, "page_token": next_page_token}
        if self.paging == "offset":
            return {"limit": self.page_size, "offset": next_page_token}
        return {}

    # One request, classified: the scheduler and `request_records` decide what follows.

    def new_slice(self, context: Context | None) -> Slice:
        """A slice reading `context` from its first page."""
        return Slice(dict(context or {}), self.get_new_paginator())

    def fetch_slice_page(self, piece: Slice) -> list[dict]:
        """One attempt at the next page of `piece`: its records, the slice advanced.

        Raises `RetryableError` for what is worth another try, `PartitionUnavailableError`
        for a grant or calendar that cannot be read, and other errors for the rest.
        """
        paginator = piece.paginator
        request = self.get_http_request(
            page=PageContext(stream_context=piece.context, next_page_token=paginator.current_value)
        )
        prepared = self.build_prepared_request(
            method=request.method,
            url=request.url,
            params=request.encode_params(),
            headers=request.headers,
        )
        response = self.send(prepared)
        self.validate_response(response)
        records = page_records(response_body(response))
        if records is None:
            msg = f"HTTP {response.status_code} on {_path(response)}: no list of records in it"
            raise RetryableError(msg)
        try:
            paginator.advance(response)
        except RepeatedCursorError:
            raise
        except RuntimeError as error:  # the SDK's loop detection
            raise RepeatedCursorError(str(error)) from None
        piece.pages += 1
        piece.last_size = len(response.content)
        return [r for r in records if piece.keeps(r, self.replication_key)]

    def send(self, prepared: requests.PreparedRequest) -> requests.Response:
        """Send, read the whole body within the request deadline, or raise `RetryableError`."""
        timeout = float(self.config.get("request_timeout_seconds") or 150)
        deadline = time.monotonic() + timeout
        try:
            response = self.requests_session.send(
                prepared, stream=True, timeout=(min(timeout, 30.0), timeout)
            )
        except requests.exceptions.RequestException as error:
            msg = f"request to {urlparse(prepared.url or '').path} failed ({type(error).__name__})"
            raise RetryableError(msg) from None
        read_body(response, deadline)
        return response

    def validate_response(self, response: requests.Response) -> None:
        """Classify failures: retry, skip one grant or calendar, or stop with a clear line."""
        status = response.status_code
        if status < 400:
            return
        message = self.response_error_message(response)
        if status == 429:
            scope: t.Literal["grant", "application"] = (
                "application" if self.admin_endpoint else "grant"
            )
            raise RetryableError(message, retry_after=retry_after_seconds(response), scope=scope)
        if status >= 500:
            raise RetryableError(message, retry_after=retry_after_seconds(response))
        if self.admin_endpoint:
            if status == 401:
                raise ApiKeyRejectedError(self._region_hint())
            hint = ADMIN_HINTS.get(status, "Nylas refused the request")
            msg = f"Cannot read {self.name}: {message}; {hint}"
            raise ApplicationRequestError(msg)
        error_type, detail = error_type_and_message(response)
        if status in {401, 403, 404} or any(m in detail.lower() for m in UNSUPPORTED_MARKERS):
            raise PartitionUnavailableError(status, error_type, detail)
        raise PartitionFailedError(message)

    def _region_hint(self) -> str:
        if api_url := self.config.get("api_url"):
            url = urlparse(str(api_url))
            where = f"api_url {url.scheme}://{url.hostname}{f':{url.port}' if url.port else ''}"
        else:
            where = f"region '{self.config['region']}'"
        return (
            f"Nylas rejected the API key (HTTP 401 on {self.path}): check that api_key is a "
            f"current API key of your Nylas application and that {where} is where the "
            f"application lives (a key used against the wrong region always gets 401)"
        )

    def response_error_message(self, response: requests.Response) -> str:
        """Status, path and the Nylas error, without headers, query or secrets."""
        detail = ": ".join(filter(None, error_type_and_message(response))) or response.reason
        return f"HTTP {response.status_code} on {_path(response)}: {detail}"

    def request_records(self, context: Context | None) -> Iterator[dict]:
        """Every page of a list, one request after another, retrying on this thread.

        For application-level lists and calendar listings; grant-scoped streams are read
        by the scheduler. A failure that outlasts its retries stops the run here for
        application-level lists, and is the partition's failure otherwise.
        """
        piece = self.new_slice(context)
        while not piece.finished:
            yield from self.with_retries(lambda: self.fetch_slice_page(piece))

    def with_retries(self, attempt: Callable[[], list[dict]]) -> list[dict]:
        """`attempt()`, retried on `RetryableError` with backoff (or `Retry-After`)."""
        retries = int(self.config["max_retries"])
        factor = float(self.config["backoff_factor"])
        for tries in range(retries + 1):
            try:
                return attempt()
            except RepeatedCursorError as error:
                raise self._give_up(str(error)) from None
            except RetryableError as error:
                if tries == retries:
                    detail = f"{error} (still failing after {retries} retries)"
                    raise self._give_up(detail) from None
                wait = error.wait(tries + 1, factor)
                if error.scope == "application":  # the application's limit: workers too
                    self._tap.application_throttled(wait)  # type: ignore[attr-defined]
                self.logger.warning(
                    "Retrying %s in %.1f s (try %d): %s", self.name, wait, tries + 1, error
                )
                time.sleep(wait)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _give_up(self, detail: str) -> Exception:
        if self.admin_endpoint:
            return ApplicationRequestError(f"Cannot read {self.name}: {detail}")
        return PartitionFailedError(detail)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Only the catalog's fields, typed as the SCHEMA says (targets expect the SCHEMA)."""
        return self.shape_record(row, context)


class GrantScopedStream(NylasStream):
    """A list under `/v3/grants/{grant_id}/...`, synced once per valid, supporting grant.

    The grant list comes from the tap's grant directory (one listing of `/v3/grants` per
    run). Each grant is a stream partition, which keeps one bookmark per grant while the
    tap writes STATE at a linear cost (README: "State, scale, concurrency and sharding").
    Pages are fetched by the tap's scheduler (`scheduler.py`), partitions written as they
    complete.
    """

    primary_keys: t.ClassVar[tuple[str, ...]] = ("grant_id", "id")
    #: Providers whose grants do not have this endpoint at all.
    unsupported_providers: t.ClassVar[frozenset[str]] = frozenset()
    #: Query parameter filtering on `replication_key`, for incremental streams.
    since_param: t.ClassVar[str | None] = None
    #: Context keys of a bookmark: per grant, whatever else a request's context carries.
    bookmark_keys: t.ClassVar[tuple[str, ...]] = ("grant_id",)
    #: A stream whose partitions can only be worked out once that stream is written.
    depends_on: t.ClassVar[str | None] = None
    supports_select = True

    @property  # type: ignore[misc]
    def state_partitioning_keys(self) -> list[str]:
        """Bookmark keys for incremental streams, none for full-table ones.

        Thousands of empty partition entries would only bloat every STATE message.
        """
        return list(self.bookmark_keys) if self.replication_key else []

    @property
    def state_manager(self) -> IndexedStateManager:
        """The SDK's state manager with an indexed partition lookup (see `state.py`)."""
        if self._state_manager is None:
            self._state_manager = IndexedStateManager(
                tap_name=self.tap_name,
                stream_name=self.name,
                tap_state=self._tap_state,
                state_partitioning_keys=self.state_partitioning_keys,
                is_sorted=self.is_sorted,
                check_sorted=self.check_sorted,
                keeps_bookmark=self.keeps_bookmark,
            )
        return t.cast("IndexedStateManager", self._state_manager)

    def keeps_bookmark(self, partition: Context) -> bool:
        """Whether the partition's requests filter on its bookmark, so it is worth keeping."""
        return True

    def get_replication_key_signpost(self, context: Context | None = None) -> int | None:
        """No bookmark may pass the moment this run started (epoch seconds)."""
        return self._initialized_at // 1000 if self.replication_key else None

    def since(self, context: Context) -> int | None:
        """The partition's bookmark minus the look-back (for late arrivals), if any.

        Only a partition's own bookmark counts: a grant added later starts from
        `start_date`, not from another grant's progress.
        """
        bookmark = self.state_manager.bookmark(context)
        if bookmark is None:
            return None
        return int(bookmark) - int(self.config["incremental_lookback_seconds"])

    def lower_bound(self, context: Context) -> int | None:
        """What the incremental filter asks for: bookmark minus look-back, never before start."""
        bounds = [b for b in (self.since(context), self._tap.start_epoch) if b is not None]  # type: ignore[attr-defined]
        return max(bounds) if bounds else None

    @cached_property
    def partitions(self) -> list[dict] | None:
        """The stream's partitions, worked out once per run."""
        return self.partition_contexts()

    def partition_contexts(self) -> list[dict]:
        """One context per grant: each is read and bookmarked on its own."""
        return self.grant_contexts()

    def grant_contexts(self) -> list[dict]:
        """One context per valid grant whose provider has this endpoint."""
        return self.directory.grant_partitions(self)

    def initial_slices(self, context: Context) -> list[Slice]:
        """How a partition is read at first: one slice; streams may cut it up."""
        return [self.new_slice(context)]

    def split_slice(self, piece: Slice, records: list[dict], capacity: int) -> list[Slice] | None:
        """Slices replacing `piece` after a page, to read it in parallel; None to go on.

        `capacity`: requests of the grant that may run at once (`max_requests_per_grant`).
        """
        return None

    def estimate_pages_left(self, piece: Slice, records: list[dict]) -> float | None:
        """Pages `piece` still has to read after `records` (None: no idea)."""
        return None

    def keep_keyed(self, records: list[dict], context: Context) -> tuple[list[dict], int]:
        """Records that carry their key, and how many did not (they cannot be merged)."""
        needed = [k for k in self.primary_keys if k not in context]
        kept = [r for r in records if all(r.get(k) is not None for k in needed)]
        return kept, len(records) - len(kept)

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Key every record by its partition.

        Adds `grant_id` (scheduled messages carry none) and, for events, the calendar the
        event was listed under when Nylas leaves `calendar_id` null.
        """
        for key, value in (context or {}).items():
            if row.get(key) is None:
                row[key] = value
        return super().post_process(row, context)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Paging, `select`, plus the incremental filter where the stream has one."""
        params = super().get_url_params(context, next_page_token)
        params.update(self.select_params())
        if self.since_param and context:
            if self.since_param in context:  # a time-range slice carries its own bound
                params[self.since_param] = context[self.since_param]
            elif (lower := self.lower_bound(context)) is not None:
                params[self.since_param] = lower
        return params

    def partition_started(self, context: Context) -> None:
        """Called before the first record of a partition is written."""

    def partition_written(self, context: Context) -> None:
        """Called once every record of a partition was written, if it was read in full."""

    @property
    def scheduler(self) -> Scheduler:
        """The tap's scheduler, shared by every grant-scoped stream."""
        return self._tap.scheduler  # type: ignore[attr-defined]

    # Replaces an SDK internal: `Stream._sync_records` walks
    # `partitions` in list order, one after another. Here partitions come from the
    # scheduler in completion order; per record this does what the SDK does (post-process,
    # write, bookmark, dry-run limit); per partition it finalises the bookmark only when
    # the partition was read in full, and otherwise keeps the old one and reports why.
    def _sync_records(
        self, context: Context | None = None, *, write_messages: bool = True
    ) -> Generator[dict, t.Any, t.Any]:
        record_counter = self.get_record_counter()
        timer = self.get_sync_timer()
        index = 0
        selected = self.selected
        stats = self.scheduler.stats[self.name]
        with record_counter, timer:
            while (partition := self.scheduler.next_partition(self)) is not None:
                current = partition.context
                if signpost := self.get_replication_key_signpost(current):
                    self.state_manager.write_replication_key_signpost(signpost, context=current)
                self.partition_started(current)
                try:
                    # closing(): a dry run's record limit stops the partition's requests now
                    with contextlib.closing(self._partition_rows(partition)) as rows:
                        for record in rows:
                            self._check_max_record_limit(current_record_index=index)
                            if selected:
                                if write_messages:
                                    self._write_record_message(record)
                                self._increment_stream_state(record, context=current)
                                record_counter.increment()
                                stats.records += 1
                                yield record
                            index += 1
                except (PartitionUnavailableError, PartitionFailedError, TapNylasError) as error:
                    self._partition_done(partition, error)
                except RepeatedCursorError as error:
                    self._partition_done(partition, PartitionFailedError(str(error)))
                else:
                    self._partition_done(partition, None)
                # Every partition written so far is complete: a STATE may vouch for them
                # (the tap's state writer decides whether one goes out, see output.py).
                if write_messages:
                    self._write_state_message()
        if write_messages:
            self._write_state_message()
        self.activate_pending_version()  # versions.py: after the stream's last record

    def _partition_rows(self, partition: Partition) -> Generator[dict, None, None]:
        """A partition's records as they arrive, post-processed (None: left out)."""
        for page in self.scheduler.pages(partition):
            for row in page:
                if (record := self.post_process(row, partition.context)) is not None:
                    yield record

    def _partition_done(self, partition: Partition, error: Exception | None) -> None:
        """Finalise a written partition's bookmark, or keep the old one and say why."""
        current = partition.context
        if isinstance(error, PartitionUnavailableError):
            self._keep_old_bookmark(current, f"skipped: {error}", logging_level="warning")
        elif error is not None:
            self._keep_old_bookmark(current, f"failed: {error}", logging_level="error")
            self._tap.report_failure(self, current, error)  # type: ignore[attr-defined]
        elif partition.keyless:
            keys = ", ".join(self.primary_keys)
            why = f"{partition.keyless} records without their key ({keys}) were left out"
            self._keep_old_bookmark(current, why, logging_level="warning")
        else:
            if self.replication_key:
                self._finalize_state(self.get_context_state(current))
            self.partition_written(current)

    def _keep_old_bookmark(self, context: Context, why: str, *, logging_level: str) -> None:
        """What was read of a partition must not move its bookmark past unread records."""
        where = ", ".join(f"{k} {v}" for k, v in context.items())
        keeps = "; its bookmark stays where it was" if self.replication_key else ""
        getattr(self.logger, logging_level)("%s for %s %s%s", self.name, where, why, keeps)
        self.note_incomplete(f"{where} {why}")
        if self.replication_key:
            self.get_context_state(context).pop("progress_markers", None)
