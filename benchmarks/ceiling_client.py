"""A minimal hand-written Nylas client: the throughput ceiling `throughput.py` compares with.

It makes the requests tap-nylas makes for messages, threads, events, folders and
contacts (same endpoints, limits, filters, event window and provider skips, stream by
stream like the SDK) with a plain `requests.Session`, and writes one Singer-like RECORD
line per record to stdout with orjson (msgspec if orjson is not installed). No schema
handling, no state, no metrics, no logging. With `--workers 1` (the default) it is
strictly sequential; with `--workers N` it fetches N grants (calendars for events) at
once in threads, each with its own session, and writes in grant order.

At the end it prints `{"requests": N, "records": N, "json": "orjson"}` to stderr.

Usage: python benchmarks/ceiling_client.py --url URL [--api-key K] [--start-date ISO]
       [--lookahead-days 365] [--workers 1] > out.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any

import requests

dumps: Callable[[Any], bytes]
loads: Callable[[bytes], Any]
try:
    import orjson

    JSON = "orjson"
    dumps = orjson.dumps
    loads = orjson.loads
except ImportError:  # pragma: no cover - msgspec is a dependency of the tap
    import msgspec

    JSON = "msgspec"
    dumps = msgspec.json.encode
    loads = msgspec.json.decode

DAY = 86_400
NO_MAIL = {"virtual-calendar", "zoom"}
NO_CALENDAR = {"imap", "zoom"}
GOOGLE_EVENT_TYPES = ["default", "outOfOffice", "focusTime", "workingLocation"]
ICLOUD_MAX_WINDOW = 360 * DAY
# stream -> (path under the grant, limit, incremental filter param); the tap's order.
LISTS = {
    "contacts": ("contacts", 200, None),
    "folders": ("folders", 200, None),
    "messages": ("messages", 200, "received_after"),
    "threads": ("threads", 50, "latest_message_after"),
}
ORDER = ("contacts", "events", "folders", "messages", "threads")


class Client:
    """Sessions per thread, a request counter, and cursor paging."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url = url.rstrip("/")
        self.headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept-Encoding": "gzip",
            "Accept": "application/json",
        }
        self.requests = 0
        self._lock = threading.Lock()
        self._local = threading.local()

    def get(self, path: str, params: dict) -> tuple[int, Any]:
        """One GET: status and decoded body."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        response = session.get(self.url + path, params=params, headers=self.headers, timeout=150)
        with self._lock:
            self.requests += 1
        return response.status_code, loads(response.content) if response.content else {}

    def pages(self, path: str, params: dict) -> list[dict]:
        """Every record of a cursor-paged list; [] when the list answers an error."""
        records: list[dict] = []
        token = None
        while True:
            status, body = self.get(path, {**params, "page_token": token} if token else params)
            if status != 200 or not isinstance(body, dict):
                return records if status == 200 else []
            records.extend(body.get("data") or [])
            token = body.get("next_cursor") or None
            if token is None:
                return records

    def grants(self) -> list[dict]:
        """`/v3/grants` by offset, 200 a page, until a short page."""
        grants: list[dict] = []
        while True:
            _, body = self.get("/v3/grants", {"limit": 200, "offset": len(grants)})
            page = body.get("data") or []
            grants.extend(page)
            if len(page) < (body.get("limit") or 200):
                return grants


def main() -> int:  # noqa: PLR0915 - one straight script, kept in one place
    """Fetch everything, write RECORD lines, report counts on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--start-date", default="2024-01-01T00:00:00Z")
    parser.add_argument("--lookahead-days", type=int, default=365)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    start = int(datetime.fromisoformat(args.start_date.replace("Z", "+00:00")).timestamp())
    end = int(time.time()) + args.lookahead_days * DAY
    client = Client(args.url, args.api_key)
    out = sys.stdout.buffer
    records = 0
    pool = ThreadPoolExecutor(args.workers) if args.workers > 1 else None
    mapper = pool.map if pool else map

    grants = [g for g in client.grants() if g.get("grant_status", "valid") == "valid"]
    provider = {g["id"]: g.get("provider") or "" for g in grants}
    mail = [g["id"] for g in grants if provider[g["id"]] not in NO_MAIL]
    calendar_grants = [g["id"] for g in grants if provider[g["id"]] not in NO_CALENDAR]

    def grant_list(stream: str, grant_id: str) -> list[bytes]:
        path, limit, since = LISTS[stream]
        params: dict = {"limit": limit}
        if since:
            params[since] = start
        return [
            b'{"type":"RECORD","stream":"' + stream.encode() + b'","record":' + dumps(r) + b"}\n"
            for r in client.pages(f"/v3/grants/{grant_id}/{path}", params)
        ]

    def calendars(grant_id: str) -> list[tuple[str, str]]:
        found = client.pages(f"/v3/grants/{grant_id}/calendars", {"limit": 200})
        return [(grant_id, c["id"]) for c in found]

    def events(partition: tuple[str, str]) -> list[bytes]:
        grant_id, calendar_id = partition
        kind = provider[grant_id]
        step = ICLOUD_MAX_WINDOW if kind == "icloud" else max(end - start, 1)
        seen: set[str] = set()
        lines = []
        for chunk in range(start, end, step):
            params: dict = {
                "limit": 200, "calendar_id": calendar_id,
                "start": chunk, "end": min(chunk + step, end),
            }  # fmt: skip
            if kind not in {"icloud", "ews"}:
                params["show_cancelled"] = "true"
            if kind == "google":
                params["event_type"] = GOOGLE_EVENT_TYPES
            for record in client.pages(f"/v3/grants/{grant_id}/events", params):
                if record["id"] in seen:
                    continue
                seen.add(record["id"])
                if record.get("calendar_id") is None:
                    record["calendar_id"] = calendar_id
                lines.append(
                    b'{"type":"RECORD","stream":"events","record":' + dumps(record) + b"}\n"
                )
        return lines

    for stream in ORDER:
        if stream == "events":
            partitions = [p for found in mapper(calendars, calendar_grants) for p in found]
            batches = mapper(events, partitions)
        else:
            batches = mapper(partial(grant_list, stream), mail)
        for lines in batches:
            out.writelines(lines)
            records += len(lines)
    out.flush()
    if pool:
        pool.shutdown()
    report = {"requests": client.requests, "records": records, "json": JSON}
    print(json.dumps(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
