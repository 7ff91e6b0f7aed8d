"""HTTP load benchmark: gunicorn + PostgreSQL on this machine, wrk on loopback, SAU and (optionally) the peer.

    .venv/bin/python -m bench.http_load                    # throwaway cluster + 1,000,000 generated tickets (~20 min)
    .venv/bin/python -m bench.http_load --url postgresql+psycopg://sau@127.0.0.1:PORT/sau [--peer-url …/peer]

Measures, each for `--duration` seconds with wrk (`apt-get install wrk` is done here if it is missing):
- help-request submission through the public form: `POST /aide` with a CSRF token; 16 anonymous sessions are
  opened first (GET /aide → session cookie + token), wrk cycles through them; every request is a new ticket;
- help-request submission through the API: `POST /api/v1/requests` (anonymous, e-mail given), a unique
  `Idempotency-Key` per request;
- the agent queue `/agent/` of the Métropole's agent (the largest queue), default filters (open tickets,
  newest first) and sorted by deadline, signed in with a session opened by the app's own sign-in code
  (`sau.auth.sessions.start_session`, the function the OpenID Connect callback calls);
- with `--peer-url`, the same operations on django-helpdesk (bench/peer/, seeded by bench/peer/seed.py):
  its public ticket form (CSRF token) and its staff ticket list (the page and the JSON it loads).
The app runs with SAU_ENV=production settings (dummy OpenID Connect values, never contacted) and the rate
limit of the help form raised to 1,000,000 per minute (the limiter still runs). RSS and PSS of every gunicorn
worker are sampled from /proc during each run (RSS every 0.5 s, PSS every 2 s); the load average is recorded
before each run.
Prints a Markdown summary (bench/RESULTS.md).
"""
from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = ROOT / "bench" / "peer"
SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def cpu_index() -> float:
    """CPU time (ms) of a fixed pure-Python loop: shows how fast this shared machine runs at the moment
    (the same loop on the idle machine is recorded in bench/RESULTS.md)."""
    import timeit

    return min(timeit.repeat("sum(range(100000))", number=50, repeat=3)) / 50 * 1000


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
    return shutil.which("wrk") or "wrk"


# --- processes and memory ------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry))
    return out


def memory_kb(pid: int, pss: bool = True) -> tuple[int, int]:
    """(RSS, PSS) in kB of one process (PSS 0 unless `pss`: the kernel walks the whole address space for it)."""
    rss = pss_kb = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        if pss:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss_kb = int(line.split()[1])
    except OSError:
        pass
    return rss, pss_kb


class MemorySampler(threading.Thread):
    """The largest RSS and PSS of the server's workers during a run: RSS every 0.5 s, PSS every 2 s and once more
    at the end. Reading PSS every 0.5 s cost about 2 % of the machine (perf: the kernel's smaps walk of 4 workers),
    taken from the server being measured; memory moves far slower than that."""

    PSS_EVERY = 4  # samples

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.max_rss = self.max_pss = 0
        self.stop_event = threading.Event()

    def sample(self, pss: bool) -> None:
        for pid in children(self.master):
            rss, pss_kb = memory_kb(pid, pss)
            self.max_rss, self.max_pss = max(self.max_rss, rss), max(self.max_pss, pss_kb)

    def run(self) -> None:
        count = 0
        while not self.stop_event.is_set():
            self.sample(pss=count % self.PSS_EVERY == 0)
            count += 1
            self.stop_event.wait(0.5)

    def stop(self) -> tuple[int, int]:
        self.stop_event.set()
        self.join()
        self.sample(pss=True)
        return self.max_rss, self.max_pss


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server on port {port} did not answer {path}")


def sau_env(url: str, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SAU_ENV": "production", "DATABASE_URL": url, "SECRET_KEY": SECRET,
        "OIDC_ISSUER": "https://moncompte.bench.invalid/", "OIDC_CLIENT_ID": "bench", "OIDC_CLIENT_SECRET": "bench",
        "RATELIMIT_HELP_FORM": "1000000 per minute", "ATTACHMENTS_DIR": str(workdir / "attachments"),
        "PUBLIC_URL": "http://127.0.0.1", "LOG_LEVEL": "WARNING", "SAU_INSTANCE_DIR": str(workdir / "instance"),
    })
    return env


def start_sau(url: str, workers: int, workdir: Path, worker_class: str = "sync", threads: int = 1) -> Server:
    port = free_port()
    env = sau_env(url, workdir)
    env.update({"WEB_CONCURRENCY": str(workers), "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_ACCESSLOG": "",
                "GUNICORN_LOGLEVEL": "warning", "GUNICORN_WORKER_CLASS": worker_class,
                # No worker recycling during a measurement: it would also hide the CPU of the replaced workers.
                "GUNICORN_MAX_REQUESTS": "0",
                "GUNICORN_THREADS": str(threads)})
    log = workdir / "sau-gunicorn.log"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "-c", str(ROOT / "deploy/gunicorn.conf.py")],
                            cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_http(port, "/healthz")
    return Server("sau", proc, port, log)


def start_peer(peer_url: str, workers: int, workdir: Path) -> Server:
    port = free_port()
    env = dict(os.environ, PEER_DATABASE_URL=peer_url, DJANGO_SETTINGS_MODULE="peerproject.settings")
    log = workdir / "peer-gunicorn.log"
    proc = subprocess.Popen(
        [str(PEER_DIR / ".venv/bin/gunicorn"), "--chdir", str(PEER_DIR / "project"), "-w", str(workers),
         "-b", f"127.0.0.1:{port}", "--preload", "--worker-tmp-dir", "/dev/shm", "--log-level", "warning",
         "peerproject.wsgi:application"],
        cwd=PEER_DIR / "project", env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_http(port, "/")
    return Server("peer", proc, port, log)


# --- HTTP helpers (setup only; the load itself is wrk) --------------------------------------------------------


def http_get(port: int, path: str, cookie: str = "") -> tuple[int, dict[str, str], str, list[str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    resp = conn.getresponse()
    body = resp.read().decode("utf-8", "replace")
    return resp.status, dict(resp.getheaders()), body, resp.headers.get_all("Set-Cookie") or []


def http_post_form(port: int, path: str, data: dict[str, str], cookie: str) -> tuple[int, dict[str, str], list[str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=urllib.parse.urlencode(data),
                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded",
                          "Referer": f"http://127.0.0.1:{port}{path}"})
    resp = conn.getresponse()
    resp.read()
    return resp.status, dict(resp.getheaders()), resp.headers.get_all("Set-Cookie") or []


def cookie_value(set_cookies: list[str], name: str) -> str | None:
    for c in set_cookies:
        first = c.split(";", 1)[0]
        if first.startswith(name + "="):
            return first.split("=", 1)[1]
    return None


def input_value(body: str, name: str) -> str:
    m = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', body) or re.search(
        rf'<input[^>]*value="([^"]*)"[^>]*name="{re.escape(name)}"', body)
    if not m:
        raise RuntimeError(f"no input {name} in the page")
    return html.unescape(m.group(1))


# --- wrk ----------------------------------------------------------------------------------------------------

LUA_COMMON = """
local counter = 0
tid = tid or 0
function setup(thread)
  thread:set("tid", __nthreads or 0)
  __nthreads = (__nthreads or 0) + 1
end
"""


def lua_form(sessions: list[tuple[str, str]], path: str, fields: str) -> str:
    table = ",\n".join(f'  {{cookie="{c}", token="{urllib.parse.quote(t, safe="")}"}}' for c, t in sessions)
    return LUA_COMMON + f"""
local sessions = {{
{table}
}}
function request()
  counter = counter + 1
  local s = sessions[(counter % #sessions) + 1]
  local body = "{fields}" .. "&csrf=" .. s.token
  body = body:gsub("__N__", tid .. "-" .. counter)
  return wrk.format("POST", "{path}", {{["Content-Type"]="application/x-www-form-urlencoded",
    ["Cookie"]=s.cookie, ["Referer"]="http://127.0.0.1{path}"}}, body)
end
"""


def lua_api(path: str, payload: dict[str, str]) -> str:
    body = json.dumps(payload).replace("\\", "\\\\").replace('"', '\\"')
    return LUA_COMMON + f"""
math.randomseed(os.time())
local nonce = tostring(math.random(1, 1000000000))
function request()
  counter = counter + 1
  local n = tid .. "-" .. counter
  local body = ("{body}"):gsub("__N__", n)
  return wrk.format("POST", "{path}", {{["Content-Type"]="application/json",
    ["Idempotency-Key"]="bench-" .. nonce .. "-" .. n}}, body)
end
"""


def lua_get(paths: list[str], cookie: str) -> str:
    table = ", ".join(f'"{p}"' for p in paths)
    return LUA_COMMON + f"""
local paths = {{ {table} }}
function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1], {{["Cookie"]="{cookie}"}})
end
"""


@dataclass
class Result:
    name: str
    server: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    rss_mb: float
    pss_mb: float
    load_before: str
    connections: int
    extra: dict[str, Any] = field(default_factory=dict)


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) used so far by the processes of each kind on this machine: the server's workers
    and master (gunicorn), PostgreSQL's backends, wrk, and everything else."""
    hz = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {"gunicorn": 0.0, "postgres": 0.0, "wrk": 0.0, "other": 0.0}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / hz
        kind = ("gunicorn" if "gunicorn" in cmd else "postgres" if comm.startswith("postgres") or "postgres" in cmd
                else "wrk" if comm == "wrk" else "other")
        totals[kind] += used
    return totals


def run_wrk(wrk: str, server: Server, name: str, lua: str, duration: int, connections: int,
            workdir: Path) -> Result:
    script = workdir / f"{server.name}-{re.sub(r'[^A-Za-z0-9]+', '-', name)}-{connections}.lua"
    script.write_text(lua)
    load = f"{loadavg()}; CPU index {cpu_index():.1f} ms"
    sampler = MemorySampler(server.proc.pid)
    sampler.start()
    cpu_before = cpu_seconds()
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency",
                          "-s", str(script), server.base], capture_output=True, text=True, check=True).stdout
    (workdir / f"{script.stem}.out").write_text(out)
    if os.environ.get("BENCH_VERBOSE"):
        print(out)
    cpu_after = cpu_seconds()
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk has exited: its CPU is a child's
    cpu_after["wrk"] = cpu_before["wrk"] + (wrk_after.ru_utime + wrk_after.ru_stime
                                            - wrk_before.ru_utime - wrk_before.ru_stime)
    rss, pss = sampler.stop()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The latency distribution lines ("     50%   12.34ms"), not the "+/- Stdev" percentages.
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    result = Result(name, server.name, rps, p50, p99, total, errors, rss / 1024, pss / 1024, load, connections)
    # CPU per request by kind of process (ms): steadier than req/s on a shared machine, and it says where the
    # machine's time goes (wrk's own requests are counted: total includes the load generator).
    per_request = {k: 1000 * (cpu_after[k] - cpu_before[k]) / max(total, 1) for k in cpu_after}
    result.extra["cpu_ms_per_request"] = per_request
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in per_request.items())
    print(f"[{server.name}] {name}: {rps:.1f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {total} requests, "
          f"{errors} errors, max RSS/worker {rss / 1024:.0f} MB (PSS {pss / 1024:.0f} MB), load before {load}; "
          f"CPU ms/request: {cpu}", flush=True)
    return result


# --- SAU scenarios ------------------------------------------------------------------------------------------


def sau_form_sessions(server: Server, n: int) -> list[tuple[str, str]]:
    sessions = []
    for _ in range(n):
        status, _, body, cookies = http_get(server.port, "/aide?service=toodego")
        assert status == 200, status
        sessions.append((f"session={cookie_value(cookies, 'session')}", input_value(body, "csrf_token")))
    return sessions


def sau_agent_cookie(url: str, workdir: Path, email: str) -> str:
    """Open a real session for `email` with the app's sign-in code and return the signed cookie."""
    env_backup = dict(os.environ)
    os.environ.update(sau_env(url, workdir))
    try:
        import sqlalchemy as sa
        from flask import session

        from sau import create_app
        from sau.auth.models import User
        from sau.auth.sessions import start_session
        from sau.extensions import db

        # Settings passed explicitly too: config.py reads the environment when first imported, which may have
        # happened already (the data generator imports the app).
        env = sau_env(url, workdir)
        app = create_app("production", {
            "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "OIDC_ISSUER": env["OIDC_ISSUER"],
            "OIDC_CLIENT_ID": env["OIDC_CLIENT_ID"], "OIDC_CLIENT_SECRET": env["OIDC_CLIENT_SECRET"],
            "ATTACHMENTS_DIR": env["ATTACHMENTS_DIR"]})
        with app.test_request_context("/"):
            user = db.session.scalar(sa.select(User).where(User.email == email))
            assert user is not None, email
            start_session(user, issuer="https://moncompte.bench.invalid/")
            db.session.commit()
            value = app.session_interface.get_signing_serializer(app).dumps(dict(session))  # type: ignore[attr-defined]
            db.session.remove()
        return f"session={value}"
    finally:
        os.environ.clear()
        os.environ.update(env_backup)


def count_rows(url: str, sql: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        value = int(conn.execute(sa.text(sql)).scalar_one())
    engine.dispose()
    return value


def run_sau(args: argparse.Namespace, url: str, wrk: str, workdir: Path) -> list[Result]:
    results = []
    server = start_sau(url, args.workers, workdir, args.worker_class, args.threads)
    try:
        if "form" in args.only:
            sessions = sau_form_sessions(server, 16)
            fields = ("service=toodego&category=compte&commune=69081&subject=Connexion+impossible+__N__"
                      "&description=Je+ne+parviens+plus+a+me+connecter+depuis+ce+matin+(essai+__N__)."
                      "&email=bench%40example.org&page_url=")
            lua = lua_form(sessions, "/aide?service=toodego", fields).replace('"&csrf=" .. s.token',
                                                                               '"&csrf_token=" .. s.token')
            before = count_rows(url, "SELECT count(*) FROM tickets")
            r = run_wrk(wrk, server, "public form POST /aide", lua, args.duration, args.connections, workdir)
            r.extra["tickets_created"] = count_rows(url, "SELECT count(*) FROM tickets") - before
            results.append(r)
        if "api" in args.only:
            payload = {"service": "toodego", "subject": "Connexion impossible __N__", "commune": "69081",
                       "category": "compte", "description": "Je ne parviens plus à me connecter (essai __N__).",
                       "email": "bench@example.org"}
            before = count_rows(url, "SELECT count(*) FROM tickets")
            r = run_wrk(wrk, server, "API POST /api/v1/requests", lua_api("/api/v1/requests", payload),
                        args.duration, args.connections, workdir)
            r.extra["tickets_created"] = count_rows(url, "SELECT count(*) FROM tickets") - before
            results.append(r)
        if "healthz" in args.only:  # the app's floor: one request through every hook, one `SELECT 1`
            results.append(run_wrk(wrk, server, "GET /healthz", lua_get(["/healthz"], ""), args.duration,
                                   args.connections, workdir))
        if "queue" in args.only:
            cookie = sau_agent_cookie(url, workdir, args.agent_email)
            status, _, body, _ = http_get(server.port, "/agent/", cookie)
            assert status == 200 and "ticket" in body.lower(), (status, body[:300])
            for label, paths in (("agent queue /agent/ (open, newest first)", ["/agent/"]),
                                 ("agent queue /agent/?tri=echeance", ["/agent/?tri=echeance"])):
                for conns in sorted({1, args.queue_connections}):
                    results.append(run_wrk(wrk, server, label, lua_get(paths, cookie), args.duration, conns,
                                           workdir))
    finally:
        server.stop()
    return results


# --- peer scenarios -----------------------------------------------------------------------------------------


def run_peer(args: argparse.Namespace, wrk: str, workdir: Path) -> list[Result]:
    results = []
    server = start_peer(args.peer_url, args.workers, workdir)
    try:
        if "form" in args.only:
            sessions = []
            for _ in range(16):
                status, _, body, cookies = http_get(server.port, "/tickets/submit/")
                assert status == 200, status
                token = cookie_value(cookies, "csrftoken")
                sessions.append((f"csrftoken={token}", input_value(body, "csrfmiddlewaretoken")))
            queue_id = re.search(r'<option value="(\d+)"[^>]*>\s*Toodego', body)
            queue = queue_id.group(1) if queue_id else "1"
            fields = (f"queue={queue}&title=Connexion+impossible+__N__"
                      "&body=Je+ne+parviens+plus+a+me+connecter+depuis+ce+matin+(essai+__N__)."
                      "&submitter_email=bench%40example.org&priority=3&due_date=")
            lua = lua_form(sessions, "/tickets/submit/", fields).replace('"&csrf=" .. s.token',
                                                                          '"&csrfmiddlewaretoken=" .. s.token')
            before = count_rows(args.peer_url, "SELECT count(*) FROM helpdesk_ticket")
            r = run_wrk(wrk, server, "public form POST /tickets/submit/", lua, args.duration, args.connections,
                        workdir)
            r.extra["tickets_created"] = count_rows(args.peer_url, "SELECT count(*) FROM helpdesk_ticket") - before
            results.append(r)
        if "queue" in args.only:
            status, _, body, cookies = http_get(server.port, "/login/")
            csrf = cookie_value(cookies, "csrftoken")
            status, headers, cookies = http_post_form(
                server.port, "/login/", {"csrfmiddlewaretoken": input_value(body, "csrfmiddlewaretoken"),
                                         "username": "agent", "password": "agent-bench-password"},
                f"csrftoken={csrf}")
            sessionid = cookie_value(cookies, "sessionid")
            assert status == 302 and sessionid, (status, headers)
            cookie = f"csrftoken={csrf}; sessionid={sessionid}"
            status, _, body, _ = http_get(server.port, "/tickets/", cookie)
            assert status == 200, status
            query = re.search(r"datatables_ticket_list/([A-Za-z0-9=_-]+)", body)
            assert query, "no datatables URL in the ticket list page"
            data_path = f"/datatables_ticket_list/{query.group(1)}?draw=1&start=0&length=50"
            status, _, data, _ = http_get(server.port, data_path, cookie)
            assert status == 200 and '"data"' in data, (status, data[:300])
            for conns in sorted({1, args.queue_connections}):
                results.append(run_wrk(wrk, server, "staff ticket list page /tickets/", lua_get(["/tickets/"], cookie),
                                       args.duration, conns, workdir))
                results.append(run_wrk(wrk, server, "staff ticket list data (50 rows, JSON)",
                                       lua_get([data_path], cookie), args.duration, conns, workdir))
    finally:
        server.stop()
    return results


def markdown(results: list[Result]) -> str:
    lines = [("| server | operation | conns | req/s | p50 (ms) | p99 (ms) | requests | errors | max RSS/worker (MB) "
             "| max PSS/worker (MB) | load avg before; CPU index |"), "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        created = f" ({r.extra['tickets_created']} tickets created)" if "tickets_created" in r.extra else ""
        lines.append(f"| {r.server} | {r.name}{created} | {r.connections} | {r.rps:.0f} | {r.p50_ms:.1f} | "
                     f"{r.p99_ms:.1f} | {r.requests} | {r.errors} | {r.rss_mb:.0f} | {r.pss_mb:.0f} | {r.load_before} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="SAU database already filled by bench.datagen (else: throwaway + generate)")
    parser.add_argument("--peer-url", help="django-helpdesk database seeded by bench/peer/seed.py")
    parser.add_argument("--tickets", type=int, default=1_000_000)
    # Sync workers per server (SAU and the peer alike). 4 on 2 vCPUs: with 2, each worker waits for its commit's
    # WAL flush with its CPU idle (13-16 % idle measured under load); the deployment default is 2 × cores + 1.
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--queue-connections", type=int, default=4)
    parser.add_argument("--agent-email", default="alice.dupont@grandlyon.example")
    parser.add_argument("--only", default="form,api,queue", type=lambda s: set(s.split(",")))
    parser.add_argument("--skip-sau", action="store_true")
    parser.add_argument("--no-peer", action="store_true", help="do not run django-helpdesk even if installed")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class for SAU (sync, gthread)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (gthread)")
    args = parser.parse_args()
    wrk = ensure_wrk()
    workdir = Path(tempfile.mkdtemp(prefix="sau-bench-"))
    cluster = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(ROOT))
        from bench.datagen import generate
        from tests.support.pgcluster import PostgresCluster

        cluster = PostgresCluster(settings={"max_connections": "200", "shared_buffers": "1GB", "fsync": "on",
                                            "synchronous_commit": "on", "full_page_writes": "on", "random_page_cost": "1.1"})
        url = cluster.start()
        print(generate(url, args.tickets, 24, seed=7, open_share=0.1), flush=True)
        if args.peer_url is None and not args.no_peer and (PEER_DIR / ".venv/bin/python").exists():
            args.peer_url = cluster.create_database("peer").replace("+psycopg", "")
            subprocess.run([str(PEER_DIR / ".venv/bin/python"), str(PEER_DIR / "seed.py"), "--tickets",
                            str(args.tickets)], check=True, env=dict(os.environ, PEER_DATABASE_URL=args.peer_url))
    try:
        print(f"SAU gunicorn worker class {args.worker_class}, {args.threads} thread(s) per worker; "
              f"workers per server: {args.workers}; wrk -t1 -c{args.connections} -d{args.duration}s; "
              f"load average {loadavg()}; CPU index {cpu_index():.1f} ms", flush=True)
        results = [] if args.skip_sau else run_sau(args, url, wrk, workdir)
        if args.peer_url:
            results += run_peer(args, wrk, workdir)
        print(markdown(results))
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
