"""Load the tap's output with target-postgres (MeltanoLabs 0.8.1, as in meltano.yml).

`tap | target-postgres`: the target is installed once per test session into its own venv
(as Meltano would), or taken from `TAP_NYLAS_TARGET_POSTGRES` (a target-postgres
executable) when set.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

TARGET_SPEC = "meltanolabs-target-postgres~=0.8.1"
INSTALL_TIMEOUT = 600
LOAD_TIMEOUT = 300


@functools.cache
def executable() -> str:
    """target-postgres, installed once per session unless given."""
    if given := os.environ.get("TAP_NYLAS_TARGET_POSTGRES"):
        return given
    venv = Path(tempfile.mkdtemp(prefix="tap-nylas-target-postgres-"))
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
    done = subprocess.run(  # noqa: S603
        [str(venv / "bin" / "pip"), "install", "-q", TARGET_SPEC],
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"pip install {TARGET_SPEC} failed: {done.stderr[-2000:]}", pytrace=False)
    return str(venv / "bin" / "target-postgres")


def connect(url: str) -> t.Any:
    """An autocommit psycopg connection."""
    import psycopg  # noqa: PLC0415 - only the PostgreSQL tests need it

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def load(singer_lines: t.Iterable[str], url: str, schema: str, **settings: t.Any) -> str:
    """Pipe Singer messages into target-postgres; its log (stderr)."""
    db = urlsplit(url)
    config = {
        "host": db.hostname or "localhost",
        "port": db.port or 5432,
        "user": unquote(db.username or ""),
        "password": unquote(db.password or ""),
        "database": db.path.lstrip("/"),
        "default_target_schema": schema,
        "add_record_metadata": True,
        "sanitize_null_text_characters": True,
        **settings,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(config, handle)
    try:
        done = subprocess.run(  # noqa: S603
            [executable(), "--config", handle.name],
            input="\n".join(singer_lines) + "\n",
            capture_output=True,
            text=True,
            timeout=LOAD_TIMEOUT,
            check=False,
        )
    finally:
        Path(handle.name).unlink()
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stderr
