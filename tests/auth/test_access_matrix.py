"""The access matrix: every HTML and API endpoint of `app.url_map` × every role, allowed or denied as the
table below says. A new endpoint fails `test_every_endpoint_is_classified` until it is added here.

"Denied" is what a client sees when the policy says no: 401, 403, 404 (a ticket one may not see does not
exist for them) or a redirect to the sign-in page. "Allowed" is anything else (the page, or a validation
error of the empty form sent here: the policy let the request through). Ticket URLs use a request of
Écully (commune X) made by usager A; ids are those of existing demo objects.
"""
from __future__ import annotations

import os
import re
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS, login, reset_database

ROLES = ("anonymous", "usager_a", "usager_b", "agent_ecully", "agent_tassin", "agent_metropole",
         "referent_ecully", "manager_metropole", "admin")
ALL = frozenset(ROLES)
SIGNED_IN = ALL - {"anonymous"}
ADMIN = frozenset({"admin"})
METRO_STAFF = frozenset({"agent_metropole", "admin"})  # FAQ: Métropole agents and admins (can_manage_faq)
ECULLY_WORK = frozenset({"agent_ecully", "admin"})  # may work an Écully ticket
ECULLY_VIEW = ECULLY_WORK | {"referent_ecully"}  # may see it as staff
STAFF = frozenset({"agent_ecully", "agent_tassin", "agent_metropole", "referent_ecully", "manager_metropole", "admin"})
REPORTS = frozenset({"manager_metropole", "admin"})
COMMUNE_STAFF = frozenset({"agent_ecully", "agent_tassin", "referent_ecully"})  # may open incidents

# (endpoint, method) -> roles allowed.
TABLE: dict[tuple[str, str], frozenset[str]] = {
    # Public pages and API.
    ("main.index", "GET"): ALL, ("main.healthz", "GET"): ALL, ("static", "GET"): ALL,
    ("help.help_form", "GET"): ALL, ("help.help_form", "POST"): ALL, ("help.embed_js", "GET"): ALL,
    ("help.faq_json", "GET"): ALL, ("help.faq_index", "GET"): ALL, ("help.demo_service_page", "GET"): ALL,
    ("api.create_request", "POST"): ALL, ("api.services", "GET"): ALL, ("api.openapi", "GET"): ALL,
    # Sign-in routes are open to all (the callback and front-channel logout refuse bad input with a 400).
    ("auth.login", "GET"): ALL, ("auth.callback", "GET"): ALL, ("auth.dev_login", "GET"): ALL,
    ("auth.dev_login", "POST"): ALL, ("auth.logout", "GET"): ALL, ("auth.logout", "POST"): ALL,
    ("auth.logged_out", "GET"): ALL, ("auth.frontchannel_logout", "GET"): ALL,
    # Usager A's request (Écully): A, and the staff who may see an Écully ticket; never usager B, Tassin or a
    # Métropole agent (the ticket is the commune's).
    ("help.track", "GET"): ECULLY_VIEW | {"usager_a"}, ("help.thanks", "GET"): ECULLY_VIEW | {"usager_a"},
    ("help.reply", "POST"): ECULLY_VIEW | {"usager_a"}, ("help.reopen", "POST"): ECULLY_VIEW | {"usager_a"},
    ("api.get_request", "GET"): ECULLY_VIEW | {"usager_a"},
    # No attachment in the fixture: 404 for everyone (attachment access is tested in tests/help).
    ("help.download", "GET"): frozenset(),
    # Signed-in pages.
    ("usager.my_requests", "GET"): SIGNED_IN, ("api.me", "GET"): SIGNED_IN,
    ("notify.inbox", "GET"): SIGNED_IN, ("notify.preferences", "GET"): SIGNED_IN,
    ("notify.preferences", "POST"): SIGNED_IN, ("notify.mark_all_read", "POST"): SIGNED_IN,
    ("notify.mark_read", "POST"): frozenset({"usager_a"}),  # the notification is usager A's
    # Staff queue and lists: every staff member, each filtered to what they may see.
    ("agent.queue", "GET"): STAFF, ("api.list_tickets", "GET"): STAFF,
    ("agent.ticket", "GET"): ECULLY_VIEW,
    # Agent actions on the Écully ticket (HTML forms are checked with valid data in
    # test_referent_cannot_act_on_tickets: an empty form is refused before the policy is asked).
    **{(f"agent.{action}", "POST"): ECULLY_VIEW for action in (
        "take", "assign", "priority", "comment", "question", "resolve", "close", "reject", "duplicate",
        "escalate", "transfer", "reopen")},
    **{(f"api.{action}", "POST"): ECULLY_WORK for action in (
        "set_priority", "add_comment", "assign", "change_status", "escalate", "transfer")},
    ("api.sla_report", "GET"): REPORTS,
    ("reports.sla_dashboard", "GET"): REPORTS,
    ("reports.sla_csv", "GET"): REPORTS,
    # Availability, workload and speed reports with their exports (issue 7, points 3 and 4): policy.can_view_reports.
    ("reports_activity.availability", "GET"): REPORTS, ("reports_activity.availability_export", "GET"): REPORTS,
    ("reports_activity.activity", "GET"): REPORTS, ("reports_activity.activity_export", "GET"): REPORTS,
    # Open data (issue 7, point 6): public.
    **{(f"opendata.{e}", "GET"): ALL for e in ("index", "resource_csv", "resource_json", "schema", "datapackage")},
    ("reports.sla_xlsx", "GET"): REPORTS,
    ("reports.trend_csv", "GET"): REPORTS,
    ("reports.trend_xlsx", "GET"): REPORTS,
    ("reports.breaches", "GET"): REPORTS,
    ("reports.breaches_csv", "GET"): REPORTS,
    ("reports.breaches_xlsx", "GET"): REPORTS,
    ("reports.priority_changes", "GET"): REPORTS,
    ("reports.priority_changes_csv", "GET"): REPORTS,
    ("reports.priority_changes_xlsx", "GET"): REPORTS,
    ("reports.ticket", "GET"): REPORTS,
    ("reports.annual", "GET"): REPORTS,
    ("reports.annual_csv", "GET"): REPORTS,
    ("reports.annual_xlsx", "GET"): REPORTS,
    # Administration: Métropole admins; the FAQ also Métropole agents and managers (policy.can_manage_faq).
    ("admin.faq_list", "GET"): METRO_STAFF | {"manager_metropole"},
    **{(f"admin.{e}", m): METRO_STAFF | {"manager_metropole"} for e, m in (
        ("faq_new", "GET"), ("faq_new", "POST"), ("faq_edit", "GET"), ("faq_edit", "POST"), ("faq_publish", "POST"),
        ("faq_unpublish", "POST"), ("faq_delete", "POST"))},
    **{(f"admin.{e}", m): ADMIN for e, m in (
        ("dashboard", "GET"), ("communes", "GET"), ("commune_new", "GET"), ("commune_new", "POST"),
        ("commune_edit", "GET"), ("commune_edit", "POST"), ("commune_deactivate", "POST"),
        ("commune_reactivate", "POST"), ("services", "GET"), ("service_edit", "GET"), ("service_edit", "POST"),
        ("category_new", "POST"), ("category_edit", "GET"), ("category_edit", "POST"), ("category_delete", "POST"),
        ("subscriptions", "GET"), ("subscription_new", "GET"), ("subscription_new", "POST"),
        ("subscription_edit", "GET"), ("subscription_edit", "POST"), ("subscription_end", "POST"),
        ("schools", "GET"), ("school_new", "GET"), ("school_new", "POST"), ("school_edit", "GET"),
        ("school_edit", "POST"), ("school_admin_add", "POST"), ("school_admin_remove", "POST"),
        ("routing_rules", "GET"), ("routing_rule_new", "GET"), ("routing_rule_new", "POST"),
        ("routing_rule_edit", "GET"), ("routing_rule_edit", "POST"), ("routing_rule_activate", "POST"),
        ("routing_rule_deactivate", "POST"), ("routing_test", "GET"), ("memberships", "GET"),
        ("membership_new", "GET"), ("membership_new", "POST"), ("membership_revoke", "POST"), ("journal", "GET"),
        ("calendar_settings", "GET"), ("calendar_add_day", "POST"), ("calendar_service_targets", "POST"))},
    # No closure in the demo data: 404 for everyone, admin included (covered by the admin tests).
    ("admin.calendar_remove_day", "POST"): frozenset(),
    ("admin_tokens.index", "GET"): ADMIN, ("admin_tokens.create", "POST"): ADMIN,
    ("admin_tokens.revoke", "POST"): ADMIN,
    ("notify_admin.dead_letters", "GET"): ADMIN, ("notify_admin.retry", "POST"): ADMIN,
    # Status page (issue 6): public; outages and maintenance are managed by Métropole agents, managers, admins.
    ("status.index", "GET"): ALL, ("status.service", "GET"): ALL,
    **{(f"status.{e}", m): METRO_STAFF | {"manager_metropole"} for e, m in (
        ("manage", "GET"), ("outage_new", "GET"), ("outage_new", "POST"), ("maintenance_new", "GET"),
        ("maintenance_new", "POST"))},
    # No outage or maintenance in the demo data: 404 for staff, 403 for the others (covered by tests/status).
    **{(f"status.{e}", m): frozenset() for e, m in (
        ("outage_edit", "GET"), ("outage_edit", "POST"), ("maintenance_edit", "GET"), ("maintenance_edit", "POST"),
        ("maintenance_cancel", "POST"))},
    # Commune incidents and security alerts: a commune's référents and agents (policy.can_open_incident).
    **{(f"incidents.{e}", m): COMMUNE_STAFF for e, m in (
        ("new", "GET"), ("new", "POST"), ("security_alert", "GET"), ("security_alert", "POST"), ("index", "GET"))},
    ("incidents_api.create_incident", "POST"): COMMUNE_STAFF,
    # The fixture's ticket is a help request, not an incident: 404 for everyone (covered by tests/incidents).
    ("incidents.detail", "GET"): frozenset(),
    ("notify_admin.webhooks", "GET"): ADMIN, ("notify_admin.webhook_create", "POST"): ADMIN,
    ("notify_admin.webhook_log", "GET"): ADMIN, ("notify_admin.webhook_disable", "POST"): ADMIN,
    ("notify_admin.webhook_enable", "POST"): ADMIN, ("notify_admin.webhook_rotate_secret", "POST"): ADMIN,
    # Access log and a commune's full export (issue 8, points 4 and 5): admins (policy.can_view_access_log,
    # policy.can_export_commune); the empty export form is refused with a 422, i.e. the policy let it through.
    ("privacy_admin.access_log", "GET"): ADMIN, ("privacy_admin.access_log_csv", "GET"): ADMIN,
    ("privacy_admin.commune_export", "GET"): ADMIN, ("privacy_admin.commune_export", "POST"): ADMIN,
    # Personal data (issue 8): « Mes données » for every signed-in person; deleting one's own account for usagers
    # only (staff accounts are managed by admins); masking by those who may work the ticket; the deleted-accounts
    # import and API for admins (and tokens with the accounts:* scopes, tested in tests/privacy).
    ("privacy.my_data", "GET"): SIGNED_IN, ("privacy.my_data_export", "GET"): SIGNED_IN,
    ("privacy.my_data_contact", "POST"): SIGNED_IN,
    ("privacy.my_data_delete", "POST"): frozenset({"usager_a", "usager_b"}),
    ("privacy.redact_ticket", "POST"): ECULLY_WORK,
    ("privacy.admin_deleted_accounts", "GET"): ADMIN, ("privacy.admin_deleted_accounts_preview", "POST"): ADMIN,
    ("privacy.admin_deleted_accounts_confirm", "POST"): ADMIN,
    ("privacy_api.deleted_accounts", "GET"): ADMIN, ("privacy_api.report_deleted_accounts", "POST"): ADMIN,
}

DENIED_STATUSES = (401, 403, 404)


def _ids(app: Flask, reference: str) -> dict[str, Any]:
    from sau.auth.models import ApiToken, Membership
    from sau.extensions import db
    from sau.faq.models import FaqEntry
    from sau.notify.models import Notification, WebhookEndpoint
    from sau.orgs.models import (
        CalendarClosure,
        Category,
        Organisation,
        School,
        SchoolAdministrator,
        Service,
        Subscription,
    )
    from sau.routing.models import RoutingRule

    def first(model: Any, *where: Any) -> int:
        value = db.session.scalar(sa.select(model.id).where(*where).order_by(model.id).limit(1))
        return int(value) if value is not None else 999999

    with app.app_context():
        from sau.notify.operations import expand_fanouts

        expand_fanouts()  # the request's notifications, as the dispatcher works them out (NotificationFanout)
        return {
            "reference": reference,
            "org_id": first(Organisation, Organisation.code == "69081"),
            "sub_id": first(Subscription), "service_id": first(Service, Service.code == "toodego"),
            "category_id": first(Category), "school_id": first(School),
            "admin_id": first(SchoolAdministrator), "entry_id": first(FaqEntry), "membership_id": first(Membership),
            "rule_id": first(RoutingRule), "closure_id": first(CalendarClosure),
            "notification_id": first(Notification), "token_id": first(ApiToken),
            "endpoint_id": first(WebhookEndpoint),
            "outage_id": 999999, "maintenance_id": 999999, "attachment_id": 999999, "filename": "absent.txt", "code": "toodego",
            "name": "sau-tickets", "fmt": "csv",  # open-data resource, report export format (reports_activity, opendata)
        }


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def _outcome(response: Any) -> bool:
    """True when the policy let the request through."""
    if response.status_code in DENIED_STATUSES:
        return False
    return not (response.status_code in (301, 302, 303) and "/auth/login" in response.headers.get("Location", ""))


def _call(client: Any, rule: Any, method: str, values: dict[str, Any]) -> Any:
    from flask import url_for

    with client.application.test_request_context():
        path = url_for(rule.endpoint, **{k: values[k] for k in rule.arguments})
    if rule.endpoint == "static":
        path = "/static/sau.css"
    if method == "GET":
        return client.get(path)
    if path.startswith("/api/"):
        return client.post(path, json={})
    html = client.get("/aide?service=toodego").get_data(as_text=True)
    match = CSRF_RE.search(html)
    token = (match.group(1) or match.group(2)) if match else ""
    return client.post(path, data={"csrf_token": token})


def _cases(app: Flask) -> list[tuple[str, str]]:
    cases = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            cases.append((rule.endpoint, method))
    return sorted(set(cases))


def test_every_endpoint_is_classified(app: Flask) -> None:
    missing = [case for case in _cases(app) if case not in TABLE]
    assert not missing, f"classify these endpoints in TABLE: {missing}"
    stale = [case for case in TABLE if case not in _cases(app)]
    assert not stale, f"endpoints gone from the app: {stale}"


def _fixture(app: Flask, make_request: Any) -> dict[str, Any]:
    from sau.auth.models import User
    from sau.auth.tokens import create_token
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.notify.operations import add_webhook_endpoint
    from sau.orgs.models import Organisation

    reference = make_request(requester="usager_a", commune="69081")
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["admin"]))
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
        create_token(admin, org, "GRU", ["tickets:read"], now_utc())
        add_webhook_endpoint(org, "https://gru.ecully.example/sau", now_utc())
        db.session.commit()
    return _ids(app, reference)


def observe(app: Flask, make_request: Any, endpoint: str, method: str) -> frozenset[str]:
    """The roles let through. After a POST that got through, the data is reset, so one role's action (a
    deletion…) cannot change what the next one sees."""
    rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint and method in (r.methods or ()))
    values = _fixture(app, make_request)
    allowed = set()
    for role in ROLES:
        client = app.test_client() if role == "anonymous" else login(app.test_client(), app, role)
        response = _call(client, rule, method, values)
        passed = _outcome(response)
        response.close()
        if passed:
            allowed.add(role)
            if method != "GET":
                reset_database(app)
                values = _fixture(app, make_request)
    return frozenset(allowed)


CASES_FOR_PARAMS = sorted(TABLE)


@pytest.mark.parametrize("endpoint, method", CASES_FOR_PARAMS)
def test_access(app: Flask, make_request: Any, endpoint: str, method: str) -> None:
    allowed = observe(app, make_request, endpoint, method)
    expected = TABLE[(endpoint, method)]
    assert allowed == expected, (
        f"{method} {endpoint}: unexpectedly allowed {sorted(allowed - expected)}, "
        f"unexpectedly denied {sorted(expected - allowed)}")


def test_print_observed(app: Flask, make_request: Any) -> None:
    if not os.environ.get("SAU_PRINT_MATRIX"):
        pytest.skip("diagnostic: SAU_PRINT_MATRIX=1 prints the observed matrix")
    for endpoint, method in _cases(app):
        allowed = observe(app, make_request, endpoint, method)
        reset_database(app)
        print(f"MATRIX {endpoint} {method} {sorted(allowed)}")


# --- tenant isolation, spelled out ---------------------------------------------------------------------

def _ticket_state(app: Flask, reference: str) -> tuple[Any, ...]:
    from sau.extensions import db
    from sau.tickets.models import Ticket

    with app.app_context():
        t = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        return (t.version, t.status, t.priority, t.assignee_id, len(t.comments), len(t.events))


def _csrf(client: Any) -> str:
    match = CSRF_RE.search(client.get("/aide?service=toodego").get_data(as_text=True))
    assert match
    return match.group(1) or match.group(2)


def test_usager_b_cannot_read_a_request_by_guessing_its_reference(app: Flask, make_request: Any) -> None:
    reference = make_request(requester="usager_a", commune="69081")
    neighbour = make_request(requester="usager_a", commune="69244")
    b = login(app.test_client(), app, "usager_b")
    for ref in (reference, neighbour):
        assert b.get(f"/suivi/{ref}").status_code == 404
        assert b.get(f"/api/v1/requests/{ref}").status_code == 404
        assert b.get(f"/suivi/{ref}?jeton=devine").status_code == 404
    assert reference not in b.get("/mes-demandes").get_data(as_text=True)
    a = login(app.test_client(), app, "usager_a")
    assert a.get(f"/suivi/{reference}").status_code == 200


def test_agent_of_x_cannot_list_read_or_change_tickets_of_y(app: Flask, make_request: Any) -> None:
    ecully = make_request(commune="69081", subject="Demande d'Écully")
    tassin = make_request(commune="69244", subject="Demande de Tassin")
    x = login(app.test_client(), app, "agent_ecully")
    queue = x.get("/agent/").get_data(as_text=True)
    assert ecully in queue and tassin not in queue
    listed = {t["reference"] for t in x.get("/api/v1/tickets").get_json()["tickets"]}
    assert ecully in listed and tassin not in listed
    assert x.get(f"/agent/tickets/{tassin}").status_code == 404
    assert x.get(f"/api/v1/requests/{tassin}").status_code in (403, 404)
    before = _ticket_state(app, tassin)
    version = before[0]
    token = _csrf(x)
    for action, data in (("prendre", {"take-version": version}),
                         ("commenter", {"comment-version": version, "comment-body": "Intrusion"}),
                         ("priorite", {"priority-version": version, "priority-priority": "bloquant"})):
        response = x.post(f"/agent/tickets/{tassin}/{action}", data={"csrf_token": token, **data})
        assert response.status_code == 404, action
    for path, body in (("priority", {"priority": "bloquant"}), ("comments", {"body": "Intrusion"}),
                       ("status", {"status": "resolu", "note": "x"})):
        assert x.post(f"/api/v1/tickets/{tassin}/{path}", json=body).status_code in (403, 404), path
    assert _ticket_state(app, tassin) == before
    # The same forms work on X's own ticket: the refusals above are the policy, not broken forms.
    own = _ticket_state(app, ecully)[0]
    response = x.post(f"/agent/tickets/{ecully}/prendre", data={"csrf_token": token, "take-version": own})
    after = _ticket_state(app, ecully)
    assert response.status_code == 303 and after[0] > own and after[3] is not None  # taken: assigned to X


def test_referent_sees_but_cannot_act_on_tickets(app: Flask, make_request: Any) -> None:
    reference = make_request(commune="69081")
    referent = login(app.test_client(), app, "referent_ecully")
    assert referent.get(f"/agent/tickets/{reference}").status_code == 200
    before = _ticket_state(app, reference)
    token = _csrf(referent)
    referent.post(f"/agent/tickets/{reference}/prendre", data={"csrf_token": token, "take-version": before[0]})
    referent.post(f"/agent/tickets/{reference}/priorite",
                  data={"csrf_token": token, "priority-version": before[0], "priority-priority": "bloquant"})
    assert referent.post(f"/api/v1/tickets/{reference}/priority", json={"priority": "bloquant"}).status_code == 403
    assert _ticket_state(app, reference) == before
