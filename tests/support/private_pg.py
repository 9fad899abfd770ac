"""A PostgreSQL cluster of one test's own, to stop and start at will (faults), never the shared one.

`initdb` into a fresh directory owned by the `postgres` user (under `runuser` when the tests run
as root), `pg_ctl start` on a free loopback port with its socket in that directory, `fsync=off`
(a test cluster: nothing to keep across a power loss). `crash()` is `pg_ctl -m immediate stop`:
every backend killed at once, no checkpoint, as a server crash; `start()` brings it back on the
same port, so a client's URL never changes. The cluster is always stopped and removed at the
end. Without PostgreSQL's server binaries the fixture skips, saying which it looked for.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PrivatePostgres", "find_bin_dir", "private_postgres"]

_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
START_SECONDS = 60.0  # pg_ctl -w waits this long for the server to accept connections


def find_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (with initdb and pg_ctl)."""
    found = shutil.which("initdb")
    candidates = [Path(found).parent] if found else []

    def version(path: str) -> tuple[int, ...]:
        digits = "".join(c if c.isdigit() else " " for c in path).split()
        return tuple(int(d) for d in digits)

    for pattern in _SEARCH:
        candidates += [Path(p) for p in sorted(glob.glob(pattern), key=version, reverse=True)]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivatePostgres:
    """One cluster: `url` (database `postgres`, trust auth), `crash()`, `start()`, `remove()`."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    def _run(self, *command: str, timeout: float = START_SECONDS + 30) -> None:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command[:2])} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Start (again) on the same port, and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
            "-t", str(int(START_SECONDS)), "start",
        )  # fmt: skip

    def crash(self) -> None:
        """Stop it as a crash does: every backend killed at once, no shutdown checkpoint."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def wait_accepting(self, seconds: float = START_SECONDS) -> None:
        """Until a TCP connection to its port succeeds (after `start`, it already does)."""
        deadline = time.monotonic() + seconds
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            assert time.monotonic() < deadline, f"PostgreSQL on {self.port} never came up"
            time.sleep(0.05)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster, always stopped and removed afterwards; skips the test when
    PostgreSQL's server binaries are not installed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "needs PostgreSQL's server binaries (initdb, pg_ctl; looked on PATH and in "
            f"{', '.join(_SEARCH)}): apt-get install postgresql"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root, and no runuser to run initdb as the postgres user")
    root = Path(tempfile.mkdtemp(prefix="runplane-pg-"))
    cluster = PrivatePostgres(bin_dir, root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
