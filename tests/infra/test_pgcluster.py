"""Self-tests of tests/support/pgcluster.py (no project code, no conftest fixtures)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.env import skip_or_fail
from tests.support.pgcluster import PostgresCluster, _pid_alive, find_pg_bindir

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _need_postgres() -> None:
    if find_pg_bindir() is None:
        skip_or_fail("PostgreSQL server binaries (initdb/pg_ctl/postgres) not found")


def _scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def _proc_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")


def test_cluster_lifecycle() -> None:
    cluster = PostgresCluster()
    try:
        url = cluster.start()
        assert url.startswith("postgresql+psycopg://sau@127.0.0.1:")
        assert url.endswith("/sau")
        base_dir = cluster.base_dir
        assert base_dir is not None and base_dir.is_dir()

        version = _scalar(url, "select version()")
        assert isinstance(version, str) and version.startswith("PostgreSQL ")
        assert _scalar(url, "select current_setting('fsync')") == "off"
        assert _scalar(url, "select current_setting('synchronous_commit')") == "off"
        assert _scalar(url, "select current_setting('max_connections')") == "100"

        pid = cluster.postmaster_pid()
        assert pid is not None and _pid_alive(pid)
        if os.geteuid() == 0:
            import pwd

            assert _proc_uid(pid) == pwd.getpwnam(cluster.run_as).pw_uid, "server must not run as root"

        extra = cluster.create_database("extra_db")
        assert extra.endswith("/extra_db")
        assert _scalar(extra, "select current_database()") == "extra_db"

        # Data survives a restart; the server comes back on the same port.
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("create table t (x int)"))
            conn.execute(sa.text("insert into t values (42)"))
        engine.dispose()
        cluster.restart()
        new_pid = cluster.postmaster_pid()
        assert new_pid is not None and new_pid != pid and not _pid_alive(pid)
        assert cluster.url == url
        assert _scalar(url, "select x from t") == 42

        # A copy from a template (handy for fast per-test databases).
        copy = cluster.create_database("copy_db", template="sau")
        assert _scalar(copy, "select x from t") == 42
        cluster.drop_database("copy_db")
    finally:
        cluster.stop()

    assert not cluster.running
    assert not base_dir.exists(), "stop() must delete the cluster directory"
    assert new_pid is not None and not _pid_alive(new_pid), "postmaster still running after stop()"
    cluster.stop()  # idempotent


def test_context_manager_and_stopped_server() -> None:
    with PostgresCluster(dbname="other", user="bench") as cluster:
        assert cluster.url.startswith("postgresql+psycopg://bench@127.0.0.1:")
        assert _scalar(cluster.url, "select current_user") == "bench"
        cluster.stop_server()
        engine = sa.create_engine(cluster.url)
        try:
            with pytest.raises(sa.exc.OperationalError):
                engine.connect().close()
        finally:
            engine.dispose()
        cluster.start_server()
        assert _scalar(cluster.url, "select current_database()") == "other"
        base_dir = cluster.base_dir
    assert base_dir is not None and not base_dir.exists()


def test_module_main_prints_url_and_stops_on_sigint() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "tests.support.pgcluster"],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            url = proc.stdout.readline().strip()
            assert url.startswith("postgresql+psycopg://sau@127.0.0.1:"), url + proc.stderr.read()
            data_line = ""
            while not data_line.startswith("# data:"):
                data_line = proc.stderr.readline()
                assert data_line, "no '# data:' line on stderr"
            data_dir = Path(data_line.split(":", 1)[1].strip())
            assert data_dir.is_dir()
            assert _scalar(url, "select 1") == 1
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    deadline = time.monotonic() + 5
    while data_dir.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not data_dir.exists()
