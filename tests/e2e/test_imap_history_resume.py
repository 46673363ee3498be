"""Issue #18 on the command line: a run killed in the middle of a grant's IMAP history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import typing as t

from nylas_simulator import NylasSimulator
from tap_nylas.tap import TapNylas
from tests.support import SyncResult, run_sync, selected_catalog

STREAMS = ["messages", "folders"]
PAGE = 50
DAY = 86_400


def test_killed_in_the_middle_of_a_history_and_resumed_loses_nothing(tmp_path: t.Any) -> None:
    with NylasSimulator(
        seed=7,
        grants=8,
        records_per_grant=20,
        large_mailbox=3000,
        large_mailbox_provider="imap",
        imap_cache_days=90,
        imap_latency=0.02,
    ) as sim:
        grant = sim.large_mailbox_grant_id
        config = {
            "api_key": "sim-key",
            "api_url": sim.url,
            "start_date": "2000-01-01T00:00:00Z",
            "backoff_factor": 0,
            "page_size": PAGE,
            "max_concurrency": 4,
        }
        catalog = selected_catalog(TapNylas(config=config, validate_config=False), STREAMS)
        (tmp_path / "config.json").write_text(json.dumps(config))
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [
                sys.executable,
                "-m",
                "tap_nylas",
                "--config",
                str(tmp_path / "config.json"),
                "--catalog",
                str(tmp_path / "catalog.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            bufsize=0,
        )
        assert process.stdout is not None
        # Kill once a few pages of the grant's old mail (history) were written.
        old = int(time.time()) - 89 * DAY
        lines: list[bytes] = []
        history_records = 0
        while history_records < 3 * PAGE:
            line = process.stdout.readline()
            assert line, "the run ended before the test could stop it"
            lines.append(line)
            message = json.loads(line)
            record = message.get("record") or {}
            if record.get("grant_id") == grant and record.get("date", old) < old:
                history_records += 1
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 143
        first = SyncResult(
            [x.decode() for x in lines + rest.splitlines(keepends=True) if x.strip()]
        )
        state = first.states[-1]
        entry = next(
            p
            for p in state["bookmarks"]["messages"]["partitions"]
            if p["context"]["grant_id"] == grant
        )
        assert "folder" in entry["imap_history"]  # stopped in the middle of the history
        before = entry["imap_history"]["before"]

        sim.reset_log()
        second = run_sync(config, STREAMS, state=state)
        history_log = [e for e in sim.request_log if e["params"].get("query_imap")]
        message_pass = [e for e in history_log if "select" not in e["params"]]
        # The message pass starts again at the folder and page in progress, not the start.
        assert message_pass[0]["params"]["in"] == [entry["imap_history"]["folder"]]
        if "cursor" in entry["imap_history"]:
            assert message_pass[0]["params"]["page_token"] == [entry["imap_history"]["cursor"]]

    records = first.records["messages"] + second.records["messages"]
    mine = [r for r in records if r["grant_id"] == grant]
    truth = {k for k in sim.truth()["messages"] if k[0] == grant}
    assert {(r["grant_id"], r["id"]) for r in mine} == truth  # nothing lost
    old_keys = [(r["grant_id"], r["id"]) for r in mine if r["date"] < before]
    assert len(old_keys) - len(set(old_keys)) <= PAGE  # twice: the page in progress at most
    final = second.states[-1]["bookmarks"]["messages"]["partitions"]
    assert next(p for p in final if p["context"]["grant_id"] == grant)["imap_history"] == {
        "done": True
    }
