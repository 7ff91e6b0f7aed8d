"""The SLA compliance dashboard and its CSV export: figures equal the SQL report (itself cross-checked with
the pure reference), worst commune first, and a commune manager sees only their commune."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.tickets import operations as ops
from tests.conftest import DEMO_EMAILS
from tests.reports.helpers import ECULLY_MANAGER, add_ecully_manager, csv_dicts


def _history(app, clock, make_request) -> None:
    """Écully: 2 met, 1 breached; Tassin: 1 met (period 2026-03)."""
    refs = {"69081": [make_request(commune="69081") for _ in range(3)], "69244": [make_request(commune="69244")]}
    with app.app_context():
        agents = {
            "69081": db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_ecully"])),
            "69244": db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_tassin"])),
        }
        for commune, commune_refs in refs.items():
            for i, ref in enumerate(commune_refs):
                ticket = ops.get_ticket(ref)
                ops.set_priority(ticket, agents[commune], "bloquant", clock.now())
                late = commune == "69081" and i == 2
                ops.resolve(ticket, agents[commune], "Fait", clock.now() + timedelta(days=3 if late else 0, hours=1))
        add_ecully_manager(clock.now())
        db.session.commit()


def test_dashboard_lists_communes_worst_first_with_conformity(app, clock, make_request, login_as):
    _history(app, clock, make_request)
    html = login_as("manager_metropole").get("/rapports/sla?period=2026-03").get_data(as_text=True)
    ecully, tassin = html.index("Écully"), html.index("Tassin-la-Demi-Lune")
    assert ecully < tassin  # 66,7 % before 100 %
    assert "66,7 %" in html and "non conforme" in html and "100,0 %" in html
    assert "4 tickets engagés" in html and "1 commune non conforme" in html


def test_csv_export_matches_the_api(app, clock, make_request, login_as):
    _history(app, clock, make_request)
    client = login_as("manager_metropole")
    response = client.get("/rapports/sla.csv?period=2026-03")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = {r["code_insee"]: r for r in csv_dicts(response)}
    api = {c["code"]: c for c in client.get("/api/v1/reports/sla?period=2026-03").get_json()["communes"]}
    assert len(rows) == len(api) == 58
    for code, row in rows.items():
        assert int(row["engages"]) == api[code]["committed"] and int(row["depasses"]) == api[code]["breached"]
        assert (row["conforme"] == "oui") == api[code]["is_conforme"]
    assert rows["69081"]["conformite"] == "66,67" and rows["69081"]["conforme"] == "non"


def test_commune_manager_sees_only_their_commune(app, clock, make_request, login_as):
    _history(app, clock, make_request)
    DEMO_EMAILS["manager_ecully"] = ECULLY_MANAGER
    try:
        client = login_as("manager_ecully")
        html = client.get("/rapports/sla?period=2026-03").get_data(as_text=True)
        assert "Écully" in html and "Tassin" not in html
        exported = client.get("/rapports/sla.csv?period=2026-03").get_data(as_text=True)
        assert "69081" in exported and "69244" not in exported and exported.count("\n") == 2
        api = client.get("/api/v1/reports/sla?period=2026-03").get_json()
        assert [c["code"] for c in api["communes"]] == ["69081"]
    finally:
        DEMO_EMAILS.pop("manager_ecully", None)


def test_bad_filters_are_explained_in_french(app, login_as):
    client = login_as("manager_metropole")
    response = client.get("/rapports/sla?period=2026-13&service=nope")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Mois invalide." in html and "Service inconnu." in html
    assert client.get("/rapports/sla.csv?period=n").status_code == 422
    assert login_as("agent_ecully").get("/rapports/sla").status_code == 403


def test_custom_period(app, clock, make_request, login_as):
    _history(app, clock, make_request)
    client = login_as("manager_metropole")
    html = client.get("/rapports/sla?start=2026-03-01&end=2026-03-31").get_data(as_text=True)
    assert "4 tickets engagés" in html and "Du 01/03/2026 au 01/04/2026 (exclu)" in html
    assert "0 ticket engagé" in client.get("/rapports/sla?start=2026-04-01&end=2026-04-30").get_data(as_text=True)
    bad = client.get("/rapports/sla?start=2026-04-30&end=2026-04-01")
    assert bad.status_code == 422 and "La date de fin précède la date de début." in bad.get_data(as_text=True)
