"""An answer that trickles in is abandoned at the request deadline, not waited for.

Split from tests/unit/test_hostile.py: a real local HTTP server sends the body a byte every half
second, and the tap gives up after two tries of about a second each.
"""

from __future__ import annotations

import json
import threading
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tap_nylas.errors import RunIncompleteError
from tests.support import START_EPOCH, sync


class _Trickle(BaseHTTPRequestHandler):
    """Grants arrive at once; messages one byte every half second."""

    def log_message(self, *args: t.Any) -> None:
        pass

    def do_GET(self) -> None:
        if "/messages" in self.path:
            body = json.dumps({"data": [{"id": "m", "date": START_EPOCH}]}).encode()
        else:
            body = json.dumps({"data": [{"id": "g1", "provider": "google"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if "/messages" not in self.path:
            self.wfile.write(body)
            return
        for byte in body:
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            if self.server.stopped.wait(0.5):  # type: ignore[attr-defined]
                return


def test_a_trickling_answer_is_abandoned_at_the_request_deadline(config: dict) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    server.stopped = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config.update(
        api_url=f"http://127.0.0.1:{server.server_address[1]}",
        request_timeout_seconds=1,
        max_retries=1,
    )
    started = time.monotonic()
    try:
        result, error = sync(config, ["messages"])
    finally:
        server.stopped.set()  # type: ignore[attr-defined]
        server.shutdown()
    assert isinstance(error, RunIncompleteError)
    assert "messages for grant_id g1" in str(error)
    assert time.monotonic() - started < 10  # two tries of about a second each
    assert result.records["messages"] == []
