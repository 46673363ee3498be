"""HTTP for every Nylas stream: base URL, auth, session, send, validate and retry."""

from __future__ import annotations

import email.utils
import threading
import time
import typing as t
from functools import cached_property
from urllib.parse import quote, urlparse

import requests
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.schema.source import SchemaDirectory, StreamSchema
from singer_sdk.streams.rest import PageContext
from typing_extensions import override

from tap_nylas import __version__, inputs, schemas, transport
from tap_nylas.errors import (
    AnswerRefusedError,
    ApiKeyRejectedError,
    ApplicationRequestError,
    PartitionFailedError,
    PartitionUnavailableError,
    RepeatedCursorError,
    RetryableError,
    quote_server_text,
)
from tap_nylas.pagination import (
    Paging,
    checked_records,
    memory_cost,
    new_paginator,
    paging_params,
    response_body,
    response_path,
)
from tap_nylas.sdk import StreamSeam
from tap_nylas.selection import CatalogFieldsMixin
from tap_nylas.slicing import Slice
from tap_nylas.versions import ActivateVersionMixin

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context
    from singer_sdk.pagination import BaseAPIPaginator

    from tap_nylas.directory import GrantDirectory
    from tap_nylas.services import TapServices

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


def error_type_and_message(response: requests.Response) -> tuple[str, str]:
    """The Nylas error `type` (unprefixed) and `message`, or empty strings."""
    try:
        error = response_body(response).get("error") or {}
    except (RetryableError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", quote_server_text(str(error))
    kind = quote_server_text(str(error.get("type") or ""), limit=60).rsplit(".", 1)[-1]
    return kind, quote_server_text(str(error.get("message") or ""))


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


def path_segment(name: str, value: object) -> str:
    """`value` percent-encoded as one URL path segment; refused if it cannot be one."""
    text = value if isinstance(value, str) else ""
    if text in {"", ".", ".."} or any(ord(c) < 32 or ord(c) == 127 for c in text):
        shown = repr(value) if len(repr(value)) <= 60 else f"{repr(value)[:57]}..."
        msg = f"{name} {shown} from the API cannot name a URL path segment; not requested"
        raise AnswerRefusedError(msg)
    return quote(text, safe="")


class NylasStream(ActivateVersionMixin, CatalogFieldsMixin, StreamSeam):
    """Base stream: one place for the Nylas base URL, auth, errors, retries and paging."""

    #: Largest `limit` the endpoint accepts.
    max_page_size: t.ClassVar[int] = 200
    #: How the endpoint pages (pagination.py).
    paging: t.ClassVar[Paging] = "cursor"
    #: Endpoints that take the application API key only; failures there stop the run.
    admin_endpoint: t.ClassVar[bool] = False

    schema: t.ClassVar[StreamSchema] = StreamSchema(SchemaDirectory(schemas))
    # Records are decoded JSON already, so the SDK's type conformance (half the CPU of a
    # sync, measured) would change nothing; `post_process` only drops unknown fields.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, *args: t.Any, **kwargs: t.Any) -> None:
        """The stream of `tap`, which provides the run's shared parts (services.py)."""
        super().__init__(tap, *args, **kwargs)
        self.run = t.cast("TapServices", tap)

    @property
    def directory(self) -> GrantDirectory:
        """The tap's grant directory: which grants and calendars this run reads."""
        return self.run.directory

    @cached_property
    @override
    def url_base(self) -> str:
        """`api_url` (checked and normalised) when set, else the host of the region."""
        return inputs.api_base_url(self.config)

    @cached_property
    @override
    def authenticator(self) -> BearerTokenAuthenticator:
        """Bearer auth with the application API key."""
        return BearerTokenAuthenticator(token=self.config["api_key"])

    @cached_property
    @override
    def user_agent(self) -> str:
        """`user_agent` from config, else one naming this tap and its version."""
        return str(self.config.get("user_agent") or f"tap-nylas/{__version__}")

    @property
    @override
    def http_headers(self) -> dict:
        """Ask for gzip: Nylas compresses responses over ~200 bytes when asked."""
        return {"Accept-Encoding": "gzip", "Accept": "application/json"}

    @property
    @override
    def requests_session(self) -> requests.Session:
        """One session (connection pool) per thread: workers share no socket."""
        session: requests.Session | None = getattr(self._thread_local, "session", None)
        if session is None:
            session = self._thread_local.session = transport.new_session(self.url_base)
        return session

    @cached_property
    def _thread_local(self) -> threading.local:
        return threading.local()

    @property
    def page_size(self) -> int:
        """`page_size` from config, capped at what the endpoint allows."""
        return min(int(self.config.get("page_size") or self.max_page_size), self.max_page_size)

    @override
    def get_new_paginator(self) -> BaseAPIPaginator:
        """A paginator matching the endpoint's paging style."""
        return new_paginator(self.paging, self.page_size)

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """Paging parameters; streams add their filters on top."""
        return paging_params(self.paging, self.page_size, next_page_token)

    # One request, classified: the scheduler and `request_records` decide what follows.

    def new_slice(self, context: Context | None) -> Slice:
        """A slice reading `context` from its first page."""
        return Slice(dict(context or {}), self.get_new_paginator())

    @override
    def get_url(self, context: Context | None) -> str:
        """The endpoint's URL, each `{name}` of its path filled in from `context`, encoded.

        IDs come from the API: `..` would climb the path, `#` or `?` cut it. An ID that
        cannot name one path segment is refused (that partition fails), never sent.
        """
        path = self.path or ""
        for key, value in (context or {}).items():
            if f"{{{key}}}" in path:
                path = path.replace(f"{{{key}}}", path_segment(key, value))
        return self.url_base + path

    def fetch_slice_page(self, piece: Slice) -> list[dict]:
        """One attempt at the next page of `piece`: its records, the slice advanced.

        Raises `RetryableError` for what is worth another try, `PartitionUnavailableError`
        for a grant or calendar that cannot be read, and other errors for the rest.
        """
        try:
            response = self.send(self._prepare(piece))
        except AnswerRefusedError as error:
            raise self._give_up(str(error)) from None
        self.validate_response(response)
        limit = self.page_size if self.paging else None
        records = checked_records(response, keys=self._keys, limit=limit)
        try:
            piece.paginator.advance(response)
        except RepeatedCursorError:
            raise
        except RuntimeError as error:  # the SDK's loop detection
            raise RepeatedCursorError(str(error)) from None
        piece.pages += 1
        piece.last_size = memory_cost(response.content)
        return [r for r in records if piece.holds(r, self.replication_key)]

    @cached_property
    def _keys(self) -> tuple[str, ...]:
        """Primary key fields the records carry (Nylas IDs are text)."""
        return tuple(self.primary_keys or ())

    def _prepare(self, piece: Slice) -> requests.PreparedRequest:
        """The request for the next page of `piece`."""
        request = self.get_http_request(
            page=PageContext(
                stream_context=piece.context, next_page_token=piece.paginator.current_value
            )
        )
        return self.build_prepared_request(
            method=request.method,
            url=request.url,
            params=request.encode_params(),
            headers=request.headers,
        )

    def send(self, prepared: requests.PreparedRequest) -> requests.Response:
        """The whole answer within the request deadline (transport.py)."""
        return transport.send(
            self.requests_session,
            prepared,
            timeout=float(self.config.get("request_timeout_seconds") or 150),
            max_bytes=int(self.config.get("max_response_megabytes") or 256) << 20,
        )

    @override
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

    @override
    def response_error_message(self, response: requests.Response) -> str:
        """Status, path and the Nylas error, without headers, query or secrets."""
        detail = ": ".join(filter(None, error_type_and_message(response)))
        detail = detail or quote_server_text(str(response.reason or ""), limit=60)
        return f"HTTP {response.status_code} on {response_path(response)}: {detail}"

    @override
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
        throttle = self.run.application_throttle if self.admin_endpoint else None
        for tries in range(retries + 1):
            try:
                if throttle is None:
                    return attempt()
                with throttle.slot():
                    records = attempt()
                throttle.succeeded()
                return records
            except RepeatedCursorError as error:
                raise self._give_up(str(error)) from None
            except RetryableError as error:
                if tries == retries:
                    detail = f"{error} (still failing after {retries} retries)"
                    raise self._give_up(detail) from None
                wait = error.wait(tries + 1, factor)
                if error.scope == "application":  # application requests only: grants go on
                    self.run.application_throttled(wait)
                self.logger.warning(
                    "Retrying %s in %.1f s (try %d): %s", self.name, wait, tries + 1, error
                )
                time.sleep(wait)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def _give_up(self, detail: str) -> Exception:
        if self.admin_endpoint:
            return ApplicationRequestError(f"Cannot read {self.name}: {detail}")
        return PartitionFailedError(detail)

    @override
    def post_process(self, row: dict, context: Context | None = None) -> dict | None:
        """Only the catalog's fields, typed as the SCHEMA says (targets expect the SCHEMA)."""
        return self.shape_record(row, context)
