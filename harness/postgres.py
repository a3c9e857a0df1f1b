"""A throwaway PostgreSQL server: `initdb` into a temporary folder, `pg_ctl` on 127.0.0.1 and a free port.

    with PostgresServer() as pg:
        engine = create_engine(pg.url)  # postgresql+psycopg://chatapp@127.0.0.1:<port>/chatapp_test

The binaries come from PATH (`pg_ctl`, `initdb`) or Debian's `postgresql` package
(/usr/lib/postgresql/<version>/bin, the newest). The server trusts local
connections, listens on 127.0.0.1 only (its Unix socket in the temporary folder,
not /var/run), and runs without fsync: data that outlives it is not its job.
PostgreSQL refuses to run as root, so as root the server runs as `postgres` (the
user Debian's package makes) or else `chatapp-test`, created on first use, who
owns the folder. `stop()` is `pg_ctl stop -m fast`, then SIGKILL to the
postmaster's pid, then the folder is removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from harness.processes import StartupError, free_port

SERVER_USERS = ("postgres", "chatapp-test")
# For speed: nothing a test server holds needs to survive a crash of the machine.
SERVER_SETTINGS = ("-F", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


def find_bin_dir() -> Path:
    """The folder holding `pg_ctl` and `initdb`: from PATH, else Debian's newest installed version."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    debian = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in debian), key=_version, reverse=True)
    for folder in candidates:
        if (folder / "pg_ctl").exists() and (folder / "initdb").exists():
            return folder
    raise RuntimeError("PostgreSQL is not installed (no pg_ctl, initdb): scripts/test installs postgresql")


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


class PostgresServer:
    """One PostgreSQL server with one database (`url`); more with `create_database`. A context manager."""

    def __init__(self, database: str = "chatapp_test", user: str = "chatapp") -> None:
        self.bin_dir = find_bin_dir()
        self.database = database
        self.user = user  # the database superuser the tests connect as (no password: trust)
        self.port = 0
        self.folder: Path | None = None
        self.pid: int | None = None
        self._os_user = _server_os_user()

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        assert self.folder is not None, "not started"
        return self.folder / "data"

    @property
    def log_path(self) -> Path:
        assert self.folder is not None, "not started"
        return self.folder / "server.log"

    def start(self, timeout: float = 60.0) -> Self:
        self.folder = Path(tempfile.mkdtemp(prefix="chatapp-pg-"))
        try:
            if self._os_user is not None:
                os.chown(self.folder, self._os_user.pw_uid, self._os_user.pw_gid)
            initdb = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", self.user]
            self._run([*initdb, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"], timeout)
            self._start_on_free_port(timeout)
            self.create_database(self.database)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on_free_port(self, timeout: float, attempts: int = 3) -> None:
        # The port is free when chosen, but another process may bind it first: try another.
        for attempt in range(attempts):
            self.port = free_port()
            options = ["-k", str(self.folder), "-h", "127.0.0.1", "-p", str(self.port), *SERVER_SETTINGS]
            pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path)]
            try:
                self._run([*pg_ctl, "-w", "-t", str(int(timeout)), "-o", " ".join(options), "start"], timeout)
            except StartupError:
                if attempt == attempts - 1 or "already in use" not in self.output():
                    raise
                continue
            self.pid = self._postmaster_pid()
            return

    def create_database(self, name: str) -> str:
        """A new, empty database on this server; its URL."""
        createdb = self.bin_dir / "createdb"
        self._run([str(createdb), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name], 30)
        return self.url_for(name)

    def stop(self, timeout: float = 10.0) -> None:
        """A fast shutdown (clients disconnected, no waiting for them); SIGKILL if that fails."""
        if self.folder is None:
            return
        # Also a server that started too late for start() to see it (pg_ctl timed out).
        self.pid = self.pid or self._postmaster_pid()
        if self.pid is not None:
            pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w"]
            with contextlib.suppress(StartupError, subprocess.TimeoutExpired):
                self._run([*pg_ctl, "-t", str(int(timeout)), "stop"], timeout + 5)
            if _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
                _wait_gone(self.pid, timeout)
            self.pid = None
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def output(self) -> str:
        """The server's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    def _run(self, argv: list[str], timeout: float) -> None:
        user = self._os_user
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        result = subprocess.run(
            argv,
            env=env,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
        )
        if result.returncode != 0:
            output = result.stdout.decode(errors="replace")
            command = Path(argv[0]).name
            raise StartupError(f"{command} failed ({result.returncode}):\n{output}\n{self.output()}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _server_os_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    name = SERVER_USERS[-1]
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)


def _alive(pid: int) -> bool:
    """True while `pid` runs. A killed postmaster is pg_ctl's orphan: in a container whose init
    reaps nothing it stays a zombie, which counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
