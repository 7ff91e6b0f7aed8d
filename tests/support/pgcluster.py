"""A throwaway PostgreSQL cluster for tests and benchmarks.

    with PostgresCluster() as pg:          # or: pg = PostgresCluster(); url = pg.start()
        engine = sqlalchemy.create_engine(pg.url)
        other_url = pg.create_database("other")
        pg.restart()                       # e.g. for fault-tolerance tests

* ``initdb`` into a fresh temporary directory, trust authentication, listening
  only on TCP 127.0.0.1 with a free port (usable by any local process), plus a
  Unix socket inside the temporary directory.
* Fast, non-durable settings (fsync/synchronous_commit/full_page_writes off).
* PostgreSQL refuses to run as root: when the current euid is 0, the server
  binaries are run as the ``postgres`` system user (created if missing) through
  ``runuser`` (or ``setpriv``), and the temporary directory is owned by it.
* ``stop()`` does ``pg_ctl stop -m immediate`` and deletes the directory; it is
  also registered with :mod:`atexit`, so nothing is left running.

Binaries are taken from ``$SAU_PG_BINDIR`` if set, else the highest
``/usr/lib/postgresql/<version>/bin``, else ``PATH``.  Install them with
``scripts/ensure-system-deps.sh`` (Debian package ``postgresql``).

``python -m tests.support.pgcluster`` starts a cluster, prints its URL on
stdout and keeps it running until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["PostgresCluster", "PostgresClusterError", "find_pg_bindir"]

_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

DEFAULT_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "128MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
}


class PostgresClusterError(RuntimeError):
    """The throwaway cluster could not be set up, started or stopped."""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def find_pg_bindir() -> Path | None:
    """Directory holding initdb, pg_ctl and postgres, or None if not installed."""

    def complete(d: Path) -> bool:
        return all(os.access(d / b, os.X_OK) for b in _SERVER_BINARIES)

    env_dir = os.environ.get("SAU_PG_BINDIR")
    if env_dir:
        return Path(env_dir) if complete(Path(env_dir)) else None
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for d in candidates:
        if complete(d):
            return d
    initdb = shutil.which("initdb")
    if initdb:
        for d in (Path(initdb).parent, Path(initdb).resolve().parent):
            if complete(d):
                return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _world_traversable(path: Path) -> bool:
    p = path.resolve()
    for d in (p, *p.parents):
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
    return True


def _ensure_system_user(name: str) -> tuple[int, int]:
    import pwd

    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            check=True, capture_output=True,
        )
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not a running server.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class PostgresCluster:
    """A private PostgreSQL server in a temporary directory. See the module docstring."""

    def __init__(
        self,
        *,
        user: str = "sau",
        dbname: str = "sau",
        port: int | None = None,
        bindir: str | os.PathLike[str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        settings: Mapping[str, str] | None = None,
        run_as: str = "postgres",
        start_timeout: int = 60,
    ) -> None:
        for ident in (user, dbname):
            if not _IDENT_RE.match(ident):
                raise ValueError(f"not a plain SQL identifier: {ident!r}")
        self.user = user
        self.dbname = dbname
        self._requested_port = port
        self.port: int | None = None
        self._bindir = Path(bindir) if bindir else None
        self._base_dir_arg = Path(base_dir) if base_dir else None
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.run_as = run_as
        self.start_timeout = start_timeout
        self.base_dir: Path | None = None
        self._owns_base_dir = False
        self._running = False
        self._as_root = os.geteuid() == 0

    # ----------------------------------------------------------------- paths
    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            found = find_pg_bindir()
            if found is None:
                raise PostgresClusterError(
                    "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
                    "/usr/lib/postgresql/*/bin or PATH; run `bash scripts/ensure-system-deps.sh` "
                    "(Debian package `postgresql`) or set SAU_PG_BINDIR"
                )
            self._bindir = found
        return self._bindir

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "sock"

    @property
    def log_file(self) -> Path:
        return self._base() / "postgres.log"

    def _base(self) -> Path:
        if self.base_dir is None:
            raise PostgresClusterError("cluster not started")
        return self.base_dir

    @property
    def running(self) -> bool:
        return self._running

    # ------------------------------------------------------------------ URLs
    def url_for(self, dbname: str) -> str:
        """SQLAlchemy URL of database *dbname* in this cluster."""
        if self.port is None:
            raise PostgresClusterError("cluster not started")
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the main database (``postgresql+psycopg://USER@127.0.0.1:PORT/DB``)."""
        return self.url_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        """libpq connection string (for psycopg.connect, psql, pgbench ...)."""
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.dbname)

    # ------------------------------------------------------------- processes
    def _server_cmd(self, args: Sequence[str]) -> list[str]:
        """Command line running a server binary, as the unprivileged user when we are root."""
        if not self._as_root:
            return list(args)
        if shutil.which("runuser"):
            return ["runuser", "-u", self.run_as, "--", *args]
        return ["setpriv", f"--reuid={self.run_as}", f"--regid={self.run_as}", "--init-groups", "--", *args]

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env["TZ"] = os.environ.get("TZ", "UTC")
        return env

    def _run(self, args: Sequence[str], *, server: bool = True, what: str = "") -> str:
        cmd = self._server_cmd(args) if server else list(args)
        proc = subprocess.run(
            cmd, check=False, cwd=self._base(), env=self._env(), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=self.start_timeout + 30,
        )
        if proc.returncode != 0:
            raise PostgresClusterError(
                f"{what or args[0]} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}\n{self._log_tail()}"
            )
        return proc.stdout

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except (OSError, PostgresClusterError):
            return "(no server log)"
        return "server log (tail):\n" + "\n".join(text)

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def postmaster_pid(self) -> int | None:
        """PID of the running postmaster, from postmaster.pid."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError, PostgresClusterError):
            return None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """initdb + start + createdb; returns the SQLAlchemy URL of the main database."""
        if self._running:
            return self.url
        bindir = self.bindir  # fail early with a clear message
        self._make_base_dir()
        try:
            self._run([str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                       "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"],
                      what="initdb")
            attempts = 1 if self._requested_port else 5
            for attempt in range(attempts):
                self.port = self._requested_port or _free_port()
                self._write_config()
                try:
                    self._pg_ctl_start()
                    break
                except PostgresClusterError:
                    # Most likely someone took the port between probing and binding.
                    if attempt == attempts - 1:
                        raise
            atexit.register(self.stop)
            self._run([self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                       self.dbname], server=False, what="createdb")
        except BaseException:
            self.stop()
            raise
        return self.url

    def _make_base_dir(self) -> None:
        if self._base_dir_arg is not None:
            self._base_dir_arg.mkdir(parents=True, exist_ok=True)
            self.base_dir = Path(tempfile.mkdtemp(prefix="sau-pg-", dir=self._base_dir_arg))
        else:
            parent = tempfile.gettempdir()
            if self._as_root and not _world_traversable(Path(parent)):
                parent = "/tmp"
            self.base_dir = Path(tempfile.mkdtemp(prefix="sau-pg-", dir=parent))
        self._owns_base_dir = True
        self.socket_dir.mkdir()
        if self._as_root:
            uid, gid = _ensure_system_user(self.run_as)
            for p in (self.base_dir, self.socket_dir):
                os.chown(p, uid, gid)

    def _write_config(self) -> None:
        conf = dict(self.settings)
        conf["listen_addresses"] = "'127.0.0.1'"
        conf["port"] = str(self.port)
        conf["unix_socket_directories"] = f"'{self.socket_dir}'"
        text = "# written by tests/support/pgcluster.py\n" + "".join(f"{k} = {v}\n" for k, v in conf.items())
        # postgresql.auto.conf is read last and is owned by the server user already.
        auto = self.data_dir / "postgresql.auto.conf"
        st = auto.stat()
        auto.write_text(text)
        os.chown(auto, st.st_uid, st.st_gid)

    def _pg_ctl_start(self) -> None:
        self._run([self._bin("pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_file),
                   "-w", "-t", str(self.start_timeout)], what="pg_ctl start")
        self._running = True

    def start_server(self) -> None:
        """Start the (stopped) server again, keeping its data. For fault tests."""
        if not self._running:
            self._pg_ctl_start()

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server but keep its data (``start_server()`` brings it back). For fault tests."""
        if self._running:
            pid = self.postmaster_pid()
            pids = [pid, *_children(pid)] if pid is not None else []
            try:
                self._run([self._bin("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", mode, "-w",
                           "-t", str(self.start_timeout)], what="pg_ctl stop")
            finally:
                self._running = False
                self._wait_gone(pids)

    def restart(self, mode: str = "fast") -> None:
        """Stop and start the server again (all connections are dropped; data is kept)."""
        self.stop_server(mode)
        self.start_server()

    def _wait_gone(self, pids: Sequence[int], timeout: float = 10.0) -> None:
        """Wait until the server processes have exited (an immediate stop leaves backends exiting)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = [p for p in pids if _pid_alive(p)]
            if not alive:
                return
            if time.monotonic() > deadline:
                for p in alive:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
                return
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server immediately and delete its directory. Safe to call more than once."""
        atexit.unregister(self.stop)
        try:
            if self._running:
                pid = self.postmaster_pid()
                pids = [pid, *_children(pid)] if pid is not None else []
                try:
                    self.stop_server("immediate")
                except PostgresClusterError:
                    for p in pids:
                        try:
                            os.kill(p, signal.SIGKILL)
                        except OSError:
                            pass
                    self._wait_gone(pids)
        finally:
            self._running = False
            if self.base_dir is not None and self._owns_base_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    # -------------------------------------------------------------- databases
    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create another database (optionally as a copy of *template*); returns its SQLAlchemy URL."""
        if not _IDENT_RE.match(name) or (template is not None and not _IDENT_RE.match(template)):
            raise ValueError(f"not a plain SQL identifier: {name!r} / {template!r}")
        if not self._running:
            raise PostgresClusterError("cluster not running")
        args = [self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        if template:
            args += ["-T", template]
        self._run([*args, name], server=False, what="createdb")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        if not _IDENT_RE.match(name):
            raise ValueError(f"not a plain SQL identifier: {name!r}")
        self._run([self._bin("dropdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                   "--if-exists", "--force", name], server=False, what="dropdb")

    # -------------------------------------------------------- context manager
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<PostgresCluster {state} port={self.port} dir={self.base_dir}>"


def _children(ppid: int) -> list[int]:
    """PIDs of the direct children of *ppid* (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out.append(int(entry))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m tests.support.pgcluster",
        description="Start a throwaway PostgreSQL cluster, print its SQLAlchemy URL and wait for Ctrl-C.",
    )
    parser.add_argument("--port", type=int, default=None, help="TCP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--user", default="sau")
    parser.add_argument("--dbname", default="sau")
    parser.add_argument("-c", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="extra server setting, e.g. -c max_connections=200 (repeatable)")
    args = parser.parse_args(argv)
    settings = dict(s.split("=", 1) for s in args.settings)

    stop_requested = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster = PostgresCluster(user=args.user, dbname=args.dbname, port=args.port, settings=settings)
    try:
        url = cluster.start()
        print(url, flush=True)
        print(f"# dsn: {cluster.dsn}\n# data: {cluster.data_dir}\n# Ctrl-C to stop and delete it",
              file=sys.stderr, flush=True)
        while not stop_requested:
            time.sleep(0.2)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
