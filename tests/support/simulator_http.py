"""Plain HTTP against a NylasSimulator, for the simulator's own tests (unit and e2e)."""

from __future__ import annotations

from typing import Any

import requests

from nylas_simulator import NylasSimulator

Record = dict[str, Any]


def get(http: requests.Session, sim: NylasSimulator, path: str, **params: Any) -> Any:
    return http.get(f"{sim.url}{path}", params=params, timeout=30)


def page_all(http: requests.Session, url: str, limit: int, params: dict[str, Any]) -> list[Record]:
    out: list[Record] = []
    token = None
    while True:
        extra = {"page_token": token} if token else {}
        resp = http.get(url, params={"limit": limit, **params, **extra}, timeout=30)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out += body["data"]
        token = body.get("next_cursor")
        if not token:
            return out
