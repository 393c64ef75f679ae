"""A real PostgreSQL server for the tests: never a mock.

``pg_server`` (session-scoped, so one per pytest-xdist worker: no two workers
share a cluster, and nothing needs a file lock) runs ``initdb`` into a new
temporary folder and starts ``postgres`` listening only on a unix socket in that
folder, with ``fsync`` on (the tests are about what a commit promises). It stops
the server and removes the folder at the end. PostgreSQL refuses to run as
root, so under root (CI, containers) the server runs as ``nobody``.

With ``DATABASE_TEST_URL`` set, that server is used instead (it must let the
user create schemas). Each test gets a fresh, empty schema (``fresh_url``),
which is much faster than a database per test. Without PostgreSQL binaries and
without ``DATABASE_TEST_URL`` the PostgreSQL tests fail, saying how to install
them: CI must run them, so a silent skip would hide a missing back-end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest

INSTALL_HINT = (
    "PostgreSQL's server programs (initdb, postgres) were not found: the PostgreSQL "
    "tests need them. Install them (Debian/Ubuntu: `sudo apt-get install -y postgresql`; "
    "macOS: `brew install postgresql`), or point DATABASE_TEST_URL at a server where this "
    "user may create schemas, e.g. DATABASE_TEST_URL=postgresql://me:secret@localhost/test"
)
USER = "mailbolt"


#: Use the server programs in this folder only (a particular version; tests of this module).
BINDIR_VARIABLE = "MAILBOLT_TEST_PG_BINDIR"


def find_bindir() -> Path | None:
    """The folder with ``initdb`` and ``postgres``: ``pg_config --bindir``, then
    Debian's ``/usr/lib/postgresql/<version>/bin`` (newest first), then PATH."""
    candidates: list[Path] = []
    chosen = os.environ.get(BINDIR_VARIABLE, "").strip()
    if chosen:
        candidates.append(Path(chosen))
    elif shutil.which("pg_config"):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        )
        candidates.append(Path(found.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    initdb = shutil.which("initdb")
    if not chosen:
        candidates += [Path(p) for p in sorted(versions, key=_version, reverse=True)]
        candidates += [Path("/usr/local/pgsql/bin")]
        if initdb:
            candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _version(path: str) -> tuple[int, ...]:
    name = Path(path).parent.name
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def with_schema(url: str, schema: str) -> str:
    """``url`` whose sessions use ``schema`` first (libpq's ``options``)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-c search_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class LocalCluster:
    """``initdb`` + ``postgres`` in a temporary folder, on a unix socket only."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="mailbolt-pg-"))
        self.data = self.folder / "data"
        self._process: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            nobody = pwd.getpwnam("nobody")
            os.chown(self.folder, nobody.pw_uid, nobody.pw_gid)
            self._as_user = [
                "setpriv",
                f"--reuid={nobody.pw_uid}",
                f"--regid={nobody.pw_gid}",
                "--clear-groups",
                "--",
            ]

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@/postgres?host={quote(str(self.folder), safe='')}"

    def start(self) -> None:
        subprocess.run(
            [
                *self._as_user,
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",  # only initdb's own files; the server below fsyncs
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "LC_ALL": "C"},
        )
        self._process = subprocess.Popen(
            [
                *self._as_user,
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.folder),
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
                "-c",
                "shared_buffers=16MB",
                "-c",
                "max_connections=60",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.folder / "server.log", "wb"),  # noqa: SIM115 - the server's
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                log = (self.folder / "server.log").read_text(errors="replace")
                raise RuntimeError(f"postgres exited at start:\n{log}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(2)  # SIGINT: fast shutdown
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class PgServer:
    """A server the tests may create schemas on: local, or ``DATABASE_TEST_URL``."""

    def __init__(self, url: str):
        self.url = url

    def fresh_url(self) -> str:
        """A URL whose sessions see only a new, empty schema."""
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"create schema {schema}")
        return with_schema(self.url, schema)

    def drop(self, url: str) -> None:
        """Forget a schema ``fresh_url`` made (an external server keeps no litter)."""
        options = dict(parse_qsl(urlsplit(url).query)).get("options", "")
        schema = options.rpartition("=")[2]
        if schema.startswith("t_"):
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"drop schema if exists {schema} cascade")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for this test process (one per xdist worker)."""
    external = os.environ.get("DATABASE_TEST_URL", "").strip()
    if external:
        yield PgServer(external)
        return
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    cluster = LocalCluster(bindir)
    try:
        cluster.start()
        yield PgServer(cluster.url)
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh empty schema on the test server, as a ``DATABASE_URL``."""
    url = pg_server.fresh_url()
    yield url
    pg_server.drop(url)
