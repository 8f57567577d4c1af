"""A real PostgreSQL server for the registry tests, started by the tests themselves.

`registry_url` runs each registry test twice: on SQLite (the default) and on a throwaway
PostgreSQL cluster (Debian's `postgresql` package: initdb and postgres from
/usr/lib/postgresql/*/bin) in a temporary folder on a free port, one fresh database per test.
PostgreSQL refuses to run as root, so under root the server runs as the `postgres` user (or
`nobody`) in a folder that user owns. Where no server or driver is installed the PostgreSQL
cases skip with the reason, unless MLC_TEST_POSTGRES=require (CI sets it), where they fail.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"


def _missing(reason: str) -> None:
    if os.environ.get("MLC_TEST_POSTGRES") == "require":
        pytest.fail(f"{reason} (MLC_TEST_POSTGRES=require)")
    pytest.skip(reason)


def _postgres_bindir() -> Path | None:
    """The newest installed server's binaries: Debian keeps them off PATH, per major version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: ourselves unless we are root, which postgres refuses."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    _missing("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], server: PostgresServer, log: Path) -> bool:
    import psycopg

    for _ in range(300):
        if proc.poll() is not None:
            return False
        try:
            psycopg.connect(f"host={server.host} port={server.port} user=postgres dbname=postgres",
                            connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL did not accept connections within 30 s; its log:\n{log.read_text()}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway cluster for the whole session, stopped (fast shutdown) and removed at the end."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (pip install 'mlc[postgres]')")
    bindir = _postgres_bindir()
    if bindir is None:
        _missing("no PostgreSQL server installed (apt-get install postgresql)")
    assert bindir is not None
    user = _server_user()
    as_user: dict[str, int] = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    root = Path(tempfile.mkdtemp(prefix="mlc-pg-"))
    os.chmod(root, 0o700)
    if user:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log = root / "data", root / "server.log"
    subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                    "--no-sync", "--no-instructions"], check=True, capture_output=True, cwd=root, **as_user)
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(5):  # a free port can be taken between finding it and binding it
            server = PostgresServer("127.0.0.1", _free_port())
            with log.open("wb") as out:
                # fsync off: the tests kill writers, never the server, so its durability is not in question.
                proc = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(data), "-p", str(server.port), "-k", str(root),
                     "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"],
                    stdout=out, stderr=subprocess.STDOUT, cwd=root, **as_user)
            if _wait_ready(proc, server, log):
                break
            proc.wait()
        else:
            raise RuntimeError(f"PostgreSQL did not start; its log:\n{log.read_text()}")
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(2)  # SIGINT: fast shutdown, disconnecting clients
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)


_database_numbers = itertools.count()


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    import psycopg

    name = f"mlc_test_{os.getpid()}_{next(_database_numbers)}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url(name)
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest) -> str | None:
    """None means the registry's default (SQLite in its home); else a PostgreSQL database URL."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))
