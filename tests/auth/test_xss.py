"""Output escaping: XSS payloads put in every free-text field (subject, description, comments, resolution
note, reasons, FAQ, names) come back escaped in every page that shows them."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS, login

PAYLOAD = '<script>alert("sau")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert("


def _mark(field: str) -> str:
    return f"{field}-{PAYLOAD}"


def _check(html: str, fields: list[str], page: str) -> None:
    assert "<script>alert(" not in html and "<img src=x onerror" not in html, page
    for field in fields:
        assert f"{field}-{ESCAPED}" in html, (page, field)


def test_payloads_are_escaped_everywhere(app: Flask, make_request: Any) -> None:
    from sau.auth.models import User
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.faq.models import FaqEntry
    from sau.orgs.models import Service

    with app.app_context():
        usager = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["usager_a"]))
        usager.given_name, usager.family_name = _mark("given"), _mark("family")
        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"]))
        agent.family_name = _mark("agentname")
        service = db.session.scalar(sa.select(Service).where(Service.code == "toodego"))
        db.session.add(FaqEntry(service_id=service.id, question=_mark("question"), answer=_mark("answer"),
                                keywords="", is_published=True, updated_at=now_utc()))
        db.session.commit()
    reference = make_request(requester="usager_a", commune="69081", subject=_mark("subject"),
                             description=_mark("description"))
    second = make_request(requester="usager_a", commune="69081", subject=_mark("subject2"),
                          description=_mark("description2"))
    make_request(requester="usager_a", commune="69081", subject=_mark("subject3"))
    agent_client = login(app.test_client(), app, "agent_ecully")
    api = f"/api/v1/tickets/{reference}"
    assert agent_client.post(f"{api}/comments", json={"body": _mark("comment")}).status_code == 201
    assert agent_client.post(f"{api}/comments", json={"body": _mark("internal"), "internal": True}).status_code == 201
    assert agent_client.post(f"{api}/priority", json={"priority": "majeur",
                                                      "justification": _mark("justification")}).status_code == 200
    assert agent_client.post(f"{api}/status", json={"status": "resolu", "message": _mark("note")}).status_code == 200
    other = f"/api/v1/tickets/{second}"
    assert agent_client.post(f"{other}/escalate", json={"reason": _mark("escalation")}).status_code == 200

    usager_client = login(app.test_client(), app, "usager_a")
    track = usager_client.get(f"/suivi/{reference}").get_data(as_text=True)
    _check(track, ["subject", "description", "comment", "note", "given"], "suivi")
    assert "internal-" not in track  # internal notes never reach the requester
    _check(usager_client.get("/mes-demandes").get_data(as_text=True), ["subject", "subject2"], "mes-demandes")

    staff_page = agent_client.get(f"/agent/tickets/{reference}").get_data(as_text=True)
    _check(staff_page, ["subject", "description", "comment", "internal", "note", "given", "agentname"], "agent")
    _check(agent_client.get("/agent/").get_data(as_text=True), ["subject3"], "queue")

    admin = login(app.test_client(), app, "admin")
    _check(admin.get(f"/agent/tickets/{second}").get_data(as_text=True), ["escalation", "subject2"], "escalated")
    _check(admin.get("/admin/habilitations").get_data(as_text=True), ["agentname"], "habilitations")
    _check(app.test_client().get("/faq?service=toodego").get_data(as_text=True), ["question", "answer"], "faq")
    _check(admin.get("/admin/faq").get_data(as_text=True), ["question"], "admin faq")


def test_payloads_in_reasons_replies_and_reference_data_are_escaped(app: Flask, make_request: Any) -> None:
    from sau.extensions import db
    from sau.orgs.models import CalendarClosure, Organisation, School
    from sau.routing.models import RoutingRule

    with app.app_context():
        ecully = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
        ecully.name = _mark("commune")
        school = db.session.scalar(sa.select(School).where(School.uai == "0690900A"))
        school.name = _mark("school")
        rule = db.session.scalar(sa.select(RoutingRule).where(RoutingRule.category_code == "teleservice-communal",
                                                              RoutingRule.offer == "partenaire"))
        rule.name, rule.reason = _mark("rulename"), _mark("rulereason")
        from datetime import date

        db.session.add(CalendarClosure(day=date(2026, 5, 15), label=_mark("closure")))
        db.session.commit()
    rejected = make_request(requester="usager_a", commune="69081")
    transferred = make_request(requester="usager_a", commune="69081")
    replied = make_request(requester="usager_a", commune="69081")
    agent = login(app.test_client(), app, "agent_ecully")
    usager = login(app.test_client(), app, "usager_a")
    assert agent.post(f"/api/v1/tickets/{rejected}/status",
                      json={"status": "rejete", "message": _mark("rejectreason")}).status_code == 200
    assert agent.post(f"/api/v1/tickets/{transferred}/transfer",
                      json={"organisation": "metropole", "reason": _mark("transferreason")}).status_code == 200
    assert agent.post(f"/api/v1/tickets/{replied}/status",
                      json={"status": "en_attente", "message": _mark("question")}).status_code == 200
    token_page = usager.get(f"/suivi/{replied}").get_data(as_text=True)
    import re

    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', token_page)
    version = re.search(r'id="version" name="version" type="hidden" value="(\d+)"', token_page)
    assert csrf and version
    r = usager.post(f"/suivi/{replied}/repondre", data={"csrf_token": csrf.group(1), "version": version.group(1),
                                                        "body": _mark("reply")})
    assert r.status_code == 303

    _check(usager.get(f"/suivi/{rejected}").get_data(as_text=True), ["rejectreason"], "suivi rejet")
    _check(agent.get(f"/agent/tickets/{rejected}").get_data(as_text=True),
           ["rejectreason", "commune", "rulename", "rulereason"], "agent rejet")
    admin = login(app.test_client(), app, "admin")
    _check(admin.get(f"/agent/tickets/{transferred}").get_data(as_text=True), ["transferreason"], "transfert")
    _check(agent.get(f"/agent/tickets/{replied}").get_data(as_text=True), ["question", "reply"], "réponse")
    _check(agent.get("/agent/").get_data(as_text=True), ["commune"], "file")
    _check(app.test_client().get("/aide?service=laclasse").get_data(as_text=True), ["school", "commune"], "aide")
    _check(admin.get("/admin/routage").get_data(as_text=True), ["rulename"], "routage")
    _check(admin.get("/admin/calendrier").get_data(as_text=True), ["closure"], "calendrier")
    _check(admin.get("/admin/communes").get_data(as_text=True), ["commune"], "communes")
