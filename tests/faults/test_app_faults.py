"""PostgreSQL restarted and gunicorn workers SIGKILLed under load (issue 9, point 5): clients posting help requests
with an Idempotency-Key get 201 or a clear 503 with Retry-After (never a 500), every request answered 201 is in the
database exactly once, retries with the same key never create a second ticket, and the service comes back by itself.
"""
from __future__ import annotations

import http.client
import os
import signal
import time

import pytest

from tests.faults.harness import FormLoad, Load, Node, Stack, check_no_loss_no_duplicate, record_result, wait_until

pytestmark = pytest.mark.faults


def get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def test_postgresql_restart_under_load(stack: Stack) -> None:
    token = stack.create_token()
    node = Node(stack, workers=2)
    try:
        workers_before = node.workers()
        load = Load([node.port], token, threads=6, prefix="panne-pg").start()
        # People on the public form too (PostgreSQL: one statement is their whole transaction, sau.tickets.operations)
        forms = FormLoad([node.port], token, threads=2, prefix="panne-pg-form").start()
        try:
            wait_until(lambda: load.accepted() >= 40 and forms.accepted() >= 10, 120,
                       "40 requests and 10 forms accepted before the outage")
            stack.cluster.stop_server("fast")  # in-flight queries are cut, new connections refused
            page = get(node.port, "/aide?service=toodego")  # a person on the public form meets the outage too
            time.sleep(3)  # a real outage: clients meet it for a few seconds
            during = load.report()["by_status"]
            stack.cluster.start_server()
            back_at, forms_back_at = load.accepted(), forms.accepted()
            wait_until(lambda: load.accepted() >= back_at + 40 and forms.accepted() >= forms_back_at + 10, 120,
                       "40 requests and 10 forms accepted after the restart")
        finally:
            load.stop()
            forms.stop()
        status, headers, html = page
        assert status == 503 and headers.get("retry-after") == "5", (status, headers)
        assert headers["content-type"].startswith("text/html") and "Service momentanément indisponible" in html
        assert get(node.port, "/aide?service=toodego")[0] == 200  # and the page is back
        figures = check_no_loss_no_duplicate(stack, load)
        assert figures["by_status"].get("503", 0) > 0, f"the outage was not met by any client: {figures}"
        assert during.get("503", 0) > 0
        # Back by itself: the same gunicorn workers answer 201 again (the pool replaces the connections the server closed).
        assert node.proc.poll() is None and node.workers() == workers_before
        resets = sum(n for status, n in figures["by_status"].items() if status.startswith("reset:"))
        assert resets == 0, f"connections dropped instead of a 503: {figures['by_status']}"
        form_figures = check_no_loss_no_duplicate(stack, forms)
        assert form_figures["by_status"].get("503", 0) > 0, f"no form met the outage: {form_figures}"
        figures["public_form"] = form_figures
        record_result("postgresql_restart", figures)
    finally:
        node.stop()


def test_worker_sigkill_under_load(stack: Stack) -> None:
    token = stack.create_token()
    node = Node(stack, workers=2)
    try:
        load = Load([node.port], token, threads=6, prefix="panne-worker").start()
        killed = []
        try:
            for round_ in range(3):
                wait_until(lambda r=round_: load.accepted() >= 30 * (r + 1), 120, "requests accepted before a kill")
                victim = node.workers()[0]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
                # gunicorn's master replaces the worker
                wait_until(lambda v=victim: v not in node.workers() and len(node.workers()) == 2, 60,
                           "gunicorn to replace the killed worker")
            final = load.accepted()
            wait_until(lambda: load.accepted() >= final + 20, 120, "requests accepted after the last kill")
        finally:
            load.stop()
        figures = check_no_loss_no_duplicate(stack, load)
        assert node.proc.poll() is None
        assert not set(killed) & set(node.workers())
        figures["workers_killed"] = len(killed)
        record_result("worker_sigkill", figures)
    finally:
        node.stop()
