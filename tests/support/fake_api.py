"""A small in-process Nylas API over requests-mock, for unit tests of one behaviour each."""

from __future__ import annotations

import re
import typing as t
from urllib.parse import parse_qs, urlparse

from tests.support import API_KEY, API_URL

if t.TYPE_CHECKING:
    import requests_mock

Error = tuple[int, str]  # HTTP status, Nylas error message
REPLICATION_KEYS = {
    "messages": "date",
    "threads": "latest_message_received_date",
    "events": "updated_at",
}


def query(request: t.Any) -> dict[str, list[str]]:
    """Query parameters of a mocked request, case preserved."""
    return parse_qs(urlparse(request.url).query)


class FakeNylas:
    """Grants, connectors and per-grant lists, served with Nylas paging and errors."""

    def __init__(self, mocker: requests_mock.Mocker) -> None:
        self.mocker = mocker
        self.grants: list[dict] = []
        self.connectors: list[dict] = []
        self.credentials: dict[str, list[dict]] = {}
        # (grant_id, resource) -> pages of records, or an error to answer instead.
        self.pages: dict[tuple[str, str], list[list[dict]] | Error] = {}
        self.max_offset_limit = 200
        base = re.escape(API_URL)
        mocker.get(re.compile(rf"{base}/v3/grants(\?.*)?$"), json=self._offset(lambda: self.grants))
        mocker.get(
            re.compile(rf"{base}/v3/connectors(\?.*)?$"), json=self._offset(lambda: self.connectors)
        )
        mocker.get(re.compile(rf"{base}/v3/connectors/[^/]+/creds"), json=self._credentials)
        mocker.get(re.compile(rf"{base}/v3/grants/[^/]+/[a-z/]+"), json=self._grant_list)

    def add_grant(self, grant_id: str, provider: str = "google", status: str = "valid") -> None:
        self.grants.append({"id": grant_id, "provider": provider, "grant_status": status})

    def requests_to(self, fragment: str) -> list[t.Any]:
        """Requests whose path contains `fragment`."""
        return [r for r in self.mocker.request_history if fragment in urlparse(r.url).path]

    def _authorized(self, request: t.Any, context: t.Any) -> bool:
        if request.headers.get("Authorization") == f"Bearer {API_KEY}":
            return True
        context.status_code = 401
        return False

    def _offset(self, items: t.Callable[[], list[dict]]) -> t.Callable[..., dict]:
        def answer(request: t.Any, context: t.Any) -> dict:
            if not self._authorized(request, context):
                return {"error": {"type": "unauthorized", "message": "Unauthorized"}}
            params = query(request)
            limit = min(int(params.get("limit", ["10"])[0]), self.max_offset_limit)
            offset = int(params.get("offset", ["0"])[0])
            return {"data": items()[offset : offset + limit], "limit": limit, "offset": offset}

        return answer

    def _credentials(self, request: t.Any, context: t.Any) -> dict:
        provider = urlparse(request.url).path.split("/")[3]
        return self._offset(lambda: self.credentials.get(provider, []))(request, context)

    def _grant_list(self, request: t.Any, context: t.Any) -> t.Any:
        if not self._authorized(request, context):
            return {"error": {"type": "unauthorized", "message": "Unauthorized"}}
        _, _, _, grant_id, *rest = urlparse(request.url).path.split("/")
        pages = self.pages.get((grant_id, "/".join(rest)), [[]])
        if isinstance(pages, tuple):
            context.status_code, message = pages
            return {"request_id": "r", "error": {"type": "api.error", "message": message}}
        token = query(request).get("page_token", ["0"])[0]
        index = int(token)
        follows = index + 1 < len(pages)
        # Real records always carry their replication key.
        rk = REPLICATION_KEYS.get(rest[0])
        data = [{rk: 1700000000, **r} if rk else r for r in pages[index]]
        return {"data": data, "next_cursor": str(index + 1) if follows else None}
