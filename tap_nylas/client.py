"""HTTP for every Nylas stream: base URL, auth, headers, errors, retries and pagination."""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
import typing as t
from functools import cached_property
from urllib.parse import urlparse

import msgspec
import requests
from singer_sdk import RESTStream
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import BaseAPIPaginator
from singer_sdk.schema.source import SchemaDirectory, StreamSchema

from tap_nylas import __version__, schemas
from tap_nylas.errors import ApiKeyRejectedError, PartitionUnavailableError, RepeatedCursorError
from tap_nylas.prefetch import PartitionPrefetcher
from tap_nylas.selection import CatalogFieldsMixin
from tap_nylas.state import IndexedStateManager
from tap_nylas.versions import ActivateVersionMixin

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

    from singer_sdk.helpers.types import Context
    from singer_sdk.streams.rest import HTTPRequest, PageContext

    from tap_nylas.directory import GrantDirectory

REGION_URLS = {"us": "https://api.us.nylas.com", "eu": "https://api.eu.nylas.com"}

# Nylas caps a request at 120 s server-side; give the response a little more to arrive.
REQUEST_TIMEOUT_SECONDS = 150
MAX_RETRY_WAIT_SECONDS = 120.0
# Substrings Nylas uses when a provider lacks an endpoint (the API's own typo included).
UNSUPPORTED_MARKERS = (
    "not supported for provider",
    "an internal error ocurred",
    "an internal error occurred",
)

_decode_json = msgspec.json.Decoder().decode


def response_body(response: requests.Response) -> t.Any:
    """The decoded JSON body, parsed once per response and shared by parser and paginator."""
    body = getattr(response, "_nylas_body", None)
    if body is None:
        body = _decode_json(response.content) if response.content else {}
        response._nylas_body = body  # type: ignore[attr-defined]
    return body


def page_records(body: t.Any) -> list[dict]:
    """Records of a list response, whatever envelope Nylas chose for it.

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
    return []


def error_type_and_message(response: requests.Response) -> tuple[str, str]:
    """The Nylas error `type` (unprefixed) and `message`, or empty strings."""
    try:
        error = response_body(response).get("error") or {}
    except (msgspec.DecodeError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", str(error)
    return str(error.get("type") or "").rsplit(".", 1)[-1], str(error.get("message") or "")


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """Seconds the server asked us to wait (`Retry-After` as seconds or an HTTP date)."""
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value)
        return max(0.0, moment.timestamp() - time.time()) if moment else None


class ThrottleGate:
    """After a 429 every thread waits, not just the one that got it: the limits are shared."""

    def __init__(self) -> None:
        """Open gate."""
        self._resume_at = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` from now."""
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def wait(self) -> None:
        """Sleep while the gate is closed."""
        while (delay := self._resume_at - time.monotonic()) > 0:
            time.sleep(delay)


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

    def continue_if_empty(self, response: requests.Response) -> bool:
        """An empty page with a cursor is not the end."""
        return bool(response_body(response).get("next_cursor"))


class OffsetPagePaginator(BaseAPIPaginator[int]):
    """`limit`/`offset` paging for the admin lists: ends on a page shorter than its limit."""

    def __init__(self, limit: int) -> None:
        """Start at offset 0 asking for `limit` records a page."""
        super().__init__(0)
        self._limit = limit

    def get_next(self, response: requests.Response) -> int | None:
        """The next offset: past what this page actually held."""
        body = response_body(response)
        count = len(page_records(body))
        # The server echoes the limit it applied, which may be lower than the one asked for.
        applied = body.get("limit") if isinstance(body, dict) else None
        if count == 0 or count < (applied or self._limit):
            return None
        return int(self.current_value) + count


class NylasStream(ActivateVersionMixin, CatalogFieldsMixin, RESTStream[t.Any]):
    """Base stream: one place for the Nylas base URL, auth, errors, retries and paging."""

    #: Largest `limit` the endpoint accepts.
    max_page_size: t.ClassVar[int] = 200
    #: "cursor" for grant-scoped lists, "offset" for admin lists, None for unpaginated.
    paging: t.ClassVar[str | None] = "cursor"
    #: Endpoints that take the application API key only; a 401 there means a bad key.
    admin_endpoint: t.ClassVar[bool] = False

    schema: t.ClassVar[StreamSchema] = StreamSchema(SchemaDirectory(schemas))
    timeout = REQUEST_TIMEOUT_SECONDS
    # Records are decoded JSON already, so the SDK's type conformance (half the CPU of a
    # sync, measured) would change nothing; `post_process` only drops unknown fields.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

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
        """One session (connection pool) per thread: prefetch workers share no socket."""
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

    def get_http_request(self, *, page: PageContext) -> HTTPRequest:
        """The SDK's request, sent only once any 429 pause of the run has passed."""
        self._tap.throttle.wait()  # type: ignore[attr-defined]
        return super().get_http_request(page=page)

    @property
    def page_size(self) -> int:
        """`page_size` from config, capped at what the endpoint allows."""
        return min(int(self.config.get("page_size") or self.max_page_size), self.max_page_size)

    def get_new_paginator(self) -> BaseAPIPaginator | None:
        """A paginator matching the endpoint's paging style."""
        if self.paging == "cursor":
            return CursorPaginator()
        if self.paging == "offset":
            return OffsetPagePaginator(self.page_size)
        return None

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Paging parameters; streams add their filters on top."""
        if self.paging == "cursor":
            return {"limit": self.page_size, "page_token": next_page_token}
        if self.paging == "offset":
            return {"limit": self.page_size, "offset": next_page_token}
        return {}

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """Records of the page, decoded once."""
        return page_records(response_body(response))

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Only the catalog's fields, typed as the SCHEMA says (targets expect the SCHEMA)."""
        return self.shape_record(row, context)

    def validate_response(self, response: requests.Response) -> None:
        """Classify failures: retry, skip one grant or calendar, or stop with a clear line."""
        status = response.status_code
        if status < 400:
            return
        if status == 429 or status >= 500:
            raise RetriableAPIError(self.response_error_message(response), response)
        error_type, message = error_type_and_message(response)
        if status == 401 and self.admin_endpoint:
            raise ApiKeyRejectedError(self._region_hint())
        if status in {401, 403, 404} or any(m in message.lower() for m in UNSUPPORTED_MARKERS):
            raise PartitionUnavailableError(status, error_type, message)
        raise FatalAPIError(self.response_error_message(response))

    def _region_hint(self) -> str:
        where = self.config.get("api_url") or f"region '{self.config['region']}'"
        return (
            f"Nylas rejected the API key (HTTP 401 on {self.path}): check that api_key is a "
            f"current API key of your Nylas application and that {where} is where the "
            f"application lives (a key used against the wrong region always gets 401)"
        )

    def response_error_message(self, response: requests.Response) -> str:
        """Status, path and the Nylas error, without headers or secrets."""
        detail = ": ".join(filter(None, error_type_and_message(response))) or response.reason
        return f"HTTP {response.status_code} on {response.request.path_url}: {detail}"

    # Retries: 429, 5xx and dropped connections, exponential with factor `backoff_factor`,
    # honouring Retry-After.

    def backoff_max_tries(self) -> int:
        """One try plus `max_retries` retries."""
        return int(self.config["max_retries"]) + 1

    def backoff_jitter(self, value: float) -> float:
        """No extra jitter: the wait generator adds its own, never to a server-given wait."""
        return value

    def backoff_wait_generator(self) -> Generator[float, t.Any, None]:
        """Wait `Retry-After` when given, else factor * 2**attempt seconds with jitter."""
        factor = float(self.config["backoff_factor"])
        attempt = 0
        exception = yield  # type: ignore[misc]
        while True:
            server_wait = retry_after_seconds(getattr(exception, "response", None))
            if server_wait is None:
                wait = factor * 2**attempt * random.uniform(1.0, 1.25)  # noqa: S311
            else:
                wait = server_wait
            attempt += 1
            exception = yield min(wait, MAX_RETRY_WAIT_SECONDS)

    def backoff_handler(self, details: t.Any) -> None:
        """One warning line per retry, naming what failed."""
        exception = details.get("exception")
        reason = str(exception) if isinstance(exception, RetriableAPIError) else repr(exception)
        response = getattr(exception, "response", None)
        if response is not None and response.status_code == 429:
            self._tap.throttle.pause(details.get("wait", 0.0))  # type: ignore[attr-defined]
        self.logger.warning(
            "Retrying %s in %.1f s (try %d): %s",
            self.name,
            details.get("wait", 0.0),
            details.get("tries", 0),
            reason,
        )


class GrantScopedStream(NylasStream):
    """A list under `/v3/grants/{grant_id}/...`, synced once per valid, supporting grant.

    The grant list comes from the tap's grant directory (one listing of `/v3/grants` per
    run). Each grant is a stream partition, which keeps one bookmark per grant while the
    tap writes STATE at a linear cost (README: "State, scale, concurrency and sharding").
    """

    primary_keys: t.ClassVar[tuple[str, ...]] = ("grant_id", "id")
    #: Providers whose grants do not have this endpoint at all.
    unsupported_providers: t.ClassVar[frozenset[str]] = frozenset()
    #: Query parameter filtering on `replication_key`, for incremental streams.
    since_param: t.ClassVar[str | None] = None
    #: Context keys of a bookmark: per grant, whatever else a request's context carries.
    bookmark_keys: t.ClassVar[tuple[str, ...]] = ("grant_id",)
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

    def get_records(self, context: Context | None) -> Iterator[dict]:
        """Records of one partition; one that became unavailable is skipped with a warning."""
        if not context:  # the SDK syncs an empty partition list as one context-less call
            return
        # The partitions before this one are finished: a STATE now vouches for them (the
        # tap's state writer decides whether one goes out, see output.py).
        self._write_state_message()
        if signpost := self.get_replication_key_signpost(context):
            self.state_manager.write_replication_key_signpost(signpost, context=context)
        try:
            if self.prefetcher:
                yield from self.prefetcher.records(context)
            else:
                yield from self.partition_records(context)
        except PartitionUnavailableError as error:
            where = ", ".join(f"{k} {v}" for k, v in context.items())
            self.logger.warning("Skipping %s for %s: %s", self.name, where, error)
            self.note_incomplete(f"skipped {where}")
            # What was read before the failure must not advance the bookmark: newest-first
            # lists would otherwise skip the older records that were never read.
            self.get_context_state(context).pop("progress_markers", None)

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
            bounds = [b for b in (self.since(context), self._tap.start_epoch) if b is not None]  # type: ignore[attr-defined]
            if bounds:
                params[self.since_param] = max(bounds)
        return params

    @cached_property
    def prefetcher(self) -> PartitionPrefetcher | None:
        """Fetches the next partitions while this one is written (`max_concurrency`)."""
        workers = int(self.config["max_concurrency"])
        partitions = self.partitions or []
        if workers <= 1 or len(partitions) <= 1:
            return None
        return PartitionPrefetcher(self.partition_records, partitions, workers)

    def partition_records(self, context: Context) -> Iterable[dict]:
        """Records of one partition, all pages."""
        return self.request_records(context)
