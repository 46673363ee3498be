"""A minimal hand-written Nylas client: the throughput ceiling `throughput.py` compares with.

It makes the requests tap-nylas makes without time-range slicing, for any of the twelve
streams (same endpoints, limits, filters, event windows and provider skips) with plain
`requests.Session`s, and writes one Singer-like RECORD line per record to stdout with
orjson (msgspec if orjson is missing). No schemas, state, metrics or logging.

Scheduling is page by page: N worker threads take the next ready page of any partition
(a grant's list, a calendar's events), so a waiting retry never holds a worker. Retries:
429, 5xx, dropped connections and bodies that are not JSON, up to 8 attempts, waiting
`Retry-After` when it is a number, else `backoff_factor * 2**attempt`. A 429 on a grant
path delays only that grant; on an application path, only application paths, or with
`--application-429 everything` (the tap's policy, which the issue asks for) every request,
and the requests in flight are halved, then grow back by one per 10 successes. With
`--per-grant K`, at most K requests of one grant are in flight.

At the end it prints `{"requests": N, "retries": N, "records": N}` to stderr.

Usage: python benchmarks/ceiling_client.py --url URL [--api-key K] [--start-date ISO]
       [--streams a,b] [--workers 8] [--per-grant 0] [--backoff-factor 0.5] > out.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

dumps: Callable[[Any], bytes]
loads: Callable[[bytes], Any]
try:
    import orjson

    dumps, loads = orjson.dumps, orjson.loads
except ImportError:  # pragma: no cover - msgspec is a dependency of the tap
    import msgspec

    dumps, loads = msgspec.json.encode, msgspec.json.decode

DAY = 86_400
NO_MAIL = {"virtual-calendar", "zoom"}
NO_CALENDAR = {"imap", "zoom"}
GOOGLE_EVENT_TYPES = ["default", "outOfOffice", "focusTime", "workingLocation"]
ICLOUD_MAX_WINDOW = 360 * DAY
MAX_ATTEMPTS = 8
ALL_STREAMS = (
    "grants", "connectors", "credentials", "calendars", "contacts", "contact_groups",
    "drafts", "events", "folders", "messages", "scheduled_messages", "threads",
)  # fmt: skip
# stream -> (path under the grant, limit, incremental filter, providers skipped)
GRANT_LISTS: dict[str, tuple[str, int | None, str | None, set[str]]] = {
    "calendars": ("calendars", 200, None, NO_CALENDAR),
    "contacts": ("contacts", 200, None, NO_MAIL),
    "contact_groups": ("contacts/groups", 200, None, NO_MAIL | {"ews"}),
    "drafts": ("drafts", 200, None, NO_MAIL),
    "folders": ("folders", 200, None, NO_MAIL),
    "messages": ("messages", 200, "received_after", NO_MAIL),
    "threads": ("threads", 50, "latest_message_after", NO_MAIL),
    "scheduled_messages": ("messages/schedules", None, None, NO_MAIL),
}


@dataclass
class Task:
    """One partition, read page by page."""

    stream: str
    path: str
    params: dict
    grant: str | None  # None: an application endpoint
    paging: str | None = "cursor"  # cursor | offset | None
    token: Any = None
    attempt: int = 0
    not_before: float = 0.0
    seen: set[str] | None = None  # events: ids already written for this calendar
    then: list[Task] = field(default_factory=list)  # further windows of the same calendar


class Ceiling:
    """The scheduler, the HTTP calls and the output."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.url = args.url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {args.api_key}", "Accept-Encoding": "gzip"}
        self.backoff = args.backoff_factor
        self.per_grant = args.per_grant
        self.streams = set(args.streams.split(",")) if args.streams else set(ALL_STREAMS)
        self.start = int(datetime.fromisoformat(args.start_date.replace("Z", "+00:00")).timestamp())
        self.end = int(time.time()) + args.lookahead_days * DAY
        self.tasks: list[Task] = []
        self.busy: dict[str | None, int] = {}
        self.paused: dict[str | None, float] = {}  # grant (None: application) -> until
        self.pause_everything = args.application_429 == "everything"
        self.workers = self.limit = args.workers
        self.successes = 0
        self.paused_all = 0.0
        self.active = 0
        self.cond = threading.Condition()
        self.local = threading.local()
        self.requests = self.retries = self.records = 0
        self.out = sys.stdout.buffer
        self.providers: dict[str, str] = {}

    # -- scheduling ---------------------------------------------------------------------

    def add(self, task: Task) -> None:
        """Queue a partition."""
        with self.cond:
            self.tasks.append(task)
            self.cond.notify_all()

    def _take(self) -> Task | None:
        """The first ready task, or None once nothing is left anywhere."""
        with self.cond:
            while True:
                now = time.monotonic()
                wake = now + 1
                if self.active >= self.limit or now < self.paused_all:
                    self.cond.wait(
                        max(0.001, (self.paused_all if now < self.paused_all else wake) - now)
                    )
                    continue
                for k, task in enumerate(self.tasks):
                    ready = max(task.not_before, self.paused.get(task.grant, 0.0))
                    full = (
                        self.per_grant
                        and task.grant
                        and self.busy.get(task.grant, 0) >= self.per_grant
                    )
                    if ready <= now and not full:
                        del self.tasks[k]
                        self.busy[task.grant] = self.busy.get(task.grant, 0) + 1
                        self.active += 1
                        return task
                    wake = min(wake, ready) if ready > now else wake
                if not self.tasks and self.active == 0:
                    self.cond.notify_all()
                    return None
                self.cond.wait(max(0.001, wake - now))

    def _release(self, task: Task, again: Task | None) -> None:
        with self.cond:
            self.busy[task.grant] -= 1
            self.active -= 1
            if again is not None:
                self.tasks.append(again)
            self.cond.notify_all()

    def worker(self) -> None:
        """One worker thread: a page at a time until nothing is left."""
        while (task := self._take()) is not None:
            again = None
            try:
                again = self.step(task)
            finally:
                self._release(task, again)

    # -- one page ----------------------------------------------------------------------------

    def _get(self, task: Task) -> tuple[int, Any, str | None]:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        params = dict(task.params)
        if task.paging == "cursor" and task.token:
            params["page_token"] = task.token
        elif task.paging == "offset":
            params["offset"] = task.token or 0
        with self.cond:
            self.requests += 1
        try:
            resp = session.get(
                self.url + task.path, params=params, headers=self.headers, timeout=60
            )
            body = loads(resp.content) if resp.content else None
        except (requests.RequestException, ValueError):
            return 0, None, None  # dropped, timed out or not JSON: retry
        return resp.status_code, body, resp.headers.get("Retry-After")

    def step(self, task: Task) -> Task | None:
        """Fetch one page; the task to continue with (next page, or a retry), or None."""
        status, body, retry_after = self._get(task)
        retriable = status in {0, 429} or status >= 500
        if status == 200 and (
            isinstance(body, list) or (isinstance(body, dict) and "error" not in body)
        ):
            task.attempt = 0
            with self.cond:
                self.successes += 1
                if self.limit < self.workers and self.successes >= 10:
                    self.limit, self.successes = self.limit + 1, 0
            return self.consume(task, body)
        if (retriable or status == 200) and task.attempt + 1 < MAX_ATTEMPTS:
            with self.cond:
                self.retries += 1
            delay = self.backoff * 2**task.attempt
            if retry_after is not None:
                with contextlib.suppress(ValueError):  # "soon" and dates: use the backoff
                    delay = float(retry_after)
            task.attempt += 1
            until = time.monotonic() + delay
            if status == 429:  # the limit is the grant's (or the application's), not this list's
                with self.cond:
                    self.paused[task.grant] = max(self.paused.get(task.grant, 0.0), until)
                    if task.grant is None and self.pause_everything:
                        self.paused_all = max(self.paused_all, until)
                        self.limit, self.successes = max(1, self.limit // 2), 0
            else:
                task.not_before = until
            return task
        return _next_window(task)  # 4xx: nothing here, like the tap

    def consume(self, task: Task, body: Any) -> Task | None:
        """Write a page's records; the task for the next page, if any."""
        if task.paging is None:  # scheduled messages: three documented shapes
            data = body if isinstance(body, list) else body.get("data")
            records = data.get("schedules", []) if isinstance(data, dict) else data or []
            for r in records:
                r["grant_id"] = task.grant
        else:
            records = body.get("data") or []
        if task.seen is not None:
            records = [r for r in records if r["id"] not in task.seen]
            task.seen.update(r["id"] for r in records)
        self.write(task.stream, records)
        self.children(task, records)
        if task.paging == "cursor" and body.get("next_cursor"):
            task.token = body["next_cursor"]
            return task
        if task.paging == "offset" and len(records) >= (body.get("limit") or 200):
            task.token = (task.token or 0) + len(records)
            return task
        return _next_window(task)

    def write(self, stream: str, records: list[dict]) -> None:
        """RECORD lines of a selected stream."""
        if stream not in self.streams or not records:
            return
        head = b'{"type":"RECORD","stream":"' + stream.encode() + b'","record":'
        lines = [head + dumps(r) + b"}\n" for r in records]
        with self.cond:
            self.out.writelines(lines)
            self.records += len(lines)

    # -- what a record leads to ---------------------------------------------------------------

    def children(self, task: Task, records: list[dict]) -> None:
        """Partitions found in a page: grants' lists, credentials, calendars' events."""
        if task.stream == "grants":
            for g in records:
                if g.get("grant_status", "valid") == "valid":
                    self.providers[g["id"]] = g.get("provider") or ""
                    self.grant_tasks(g["id"])
        elif task.stream == "connectors" and "credentials" in self.streams:
            for c in records:
                self.add(Task("credentials", f"/v3/connectors/{c['provider']}/creds",
                              {"limit": 200}, None, "offset"))  # fmt: skip
        elif task.stream == "calendars" and "events" in self.streams:
            for c in records:
                self.event_tasks(task.grant or "", c["id"])

    def grant_tasks(self, grant: str) -> None:
        """One partition per grant-scoped list the tap would read for this grant."""
        wanted = set(self.streams)
        if "events" in wanted:
            wanted.add("calendars")
        for stream, (sub, limit, since, skip) in GRANT_LISTS.items():
            if stream not in wanted or self.providers[grant] in skip:
                continue
            params: dict = {} if limit is None else {"limit": limit}
            if since:
                params[since] = self.start
            paging = None if limit is None else "cursor"
            self.add(Task(stream, f"/v3/grants/{grant}/{sub}", params, grant, paging))

    def event_tasks(self, grant: str, calendar: str) -> None:
        """One calendar's events: the tap's window, in 360-day pieces on iCloud."""
        kind = self.providers[grant]
        step = ICLOUD_MAX_WINDOW if kind == "icloud" else max(self.end - self.start, 1)
        seen: set[str] = set()
        windows = []
        for chunk in range(self.start, self.end, step):
            params: dict = {"limit": 200, "calendar_id": calendar, "start": chunk,
                            "end": min(chunk + step, self.end)}  # fmt: skip
            if kind not in {"icloud", "ews"}:
                params["show_cancelled"] = "true"
            if kind == "google":
                params["event_type"] = GOOGLE_EVENT_TYPES
            windows.append(Task("events", f"/v3/grants/{grant}/events", params, grant, seen=seen))
        first = windows[0]
        first.then = windows[1:]
        self.add(first)


def _next_window(task: Task) -> Task | None:
    """The calendar's next events window, carrying the ones after it."""
    if not task.then:
        return None
    nxt = task.then.pop(0)
    nxt.then = task.then
    return nxt


def main() -> int:
    """Fetch everything, write RECORD lines, report counts on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--start-date", default="2024-01-01T00:00:00Z")
    parser.add_argument("--lookahead-days", type=int, default=365)
    parser.add_argument("--streams", default="", help="comma-separated; default all twelve")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--per-grant", type=int, default=0, help="0: no per-grant limit")
    parser.add_argument("--backoff-factor", type=float, default=0.5)
    parser.add_argument(
        "--application-429", choices=("application", "everything"), default="application",
        help="what a 429 on an application endpoint pauses",
    )  # fmt: skip
    args = parser.parse_args()
    ceiling = Ceiling(args)
    ceiling.add(Task("grants", "/v3/grants", {"limit": 200}, None, "offset"))
    if ceiling.streams & {"connectors", "credentials"}:
        ceiling.add(Task("connectors", "/v3/connectors", {"limit": 200}, None, "offset"))
    workers = [threading.Thread(target=ceiling.worker) for _ in range(args.workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ceiling.out.flush()
    report = {"requests": ceiling.requests, "retries": ceiling.retries, "records": ceiling.records}
    print(json.dumps(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
