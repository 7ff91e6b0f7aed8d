"""The SLA report pages beyond the dashboard: breaches, priority changes, the report view of a ticket, the annual
report; each in CSV and XLSX; a commune's manager sees only their commune everywhere."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.tickets import operations as ops
from tests.conftest import DEMO_EMAILS
from tests.reports.test_dashboard import _history
from tests.reports.test_exports import read_csv, read_xlsx, same_table


@pytest.fixture
def history(app, clock, make_request):
    """Écully: 2 met, 1 breached (resolved 3 days late); Tassin: 1 met, 1 open past its deadline; a priority
    change in each commune. Signs in Écully's manager as `manager_ecully`."""
    _history(app, clock, make_request)
    tassin_open = make_request(commune="69244")
    with app.app_context():
        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_tassin"]))
        ticket = ops.get_ticket(tassin_open)
        ops.set_priority(ticket, agent, "majeur", clock.now())
        ops.set_priority(ticket, agent, "bloquant", clock.now() + timedelta(hours=1), justification="Plus grave")
        db.session.commit()
    clock.advance(timedelta(days=6))
    DEMO_EMAILS["manager_ecully"] = "chef@ville-ecully.example"
    yield {"tassin_open": tassin_open}
    DEMO_EMAILS.pop("manager_ecully", None)


def _csv_dicts(response) -> list[dict[str, str]]:
    rows = read_csv(response)
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_breaches_list_adds_up_to_the_dashboard(app, history, login_as):
    client = login_as("manager_metropole")
    html = client.get("/rapports/sla/depassements?period=2026-03").get_data(as_text=True)
    assert "2 délais dépassés" in html
    assert history["tassin_open"] in html and "encore ouvert" in html
    assert html.index(history["tassin_open"]) < html.index("Écully")  # still open first
    assert f'href="/rapports/tickets/{history["tassin_open"]}"' in html
    rows = _csv_dicts(client.get("/rapports/sla/depassements.csv?period=2026-03"))
    assert sorted(r["code_insee"] for r in rows) == ["69081", "69244"]
    ecully = next(r for r in rows if r["code_insee"] == "69081")
    assert ecully["priorite"] == "Bloquant" and ecully["resolu_le"] and float(ecully["retard_heures_ouvrees"].replace(",", ".")) > 0
    dashboard = _csv_dicts(client.get("/rapports/sla.csv?period=2026-03"))
    assert sum(int(r["depasses"]) for r in dashboard) == len(rows)


def test_priority_changes_show_the_effect_on_the_deadline(app, history, login_as):
    client = login_as("manager_metropole")
    html = client.get("/rapports/sla/changements-priorite?period=2026-03").get_data(as_text=True)
    assert "Plus grave" in html and "échéance avancée" in html and "échéance fixée (le délai démarre)" in html
    rows = _csv_dicts(client.get("/rapports/sla/changements-priorite.csv?period=2026-03"))
    tassin = [r for r in rows if r["reference"] == history["tassin_open"]]
    assert [(r["avant"], r["apres"]) for r in tassin] == [("Majeur", "Bloquant"), ("non définie", "Majeur")]
    assert tassin[0]["echeance_apres"] < tassin[0]["echeance_avant"]
    only_majeur = _csv_dicts(client.get("/rapports/sla/changements-priorite.csv?period=2026-03&priority=majeur"))
    assert {r["reference"] for r in only_majeur} == {history["tassin_open"]}
    assert "0 changement de priorité" in client.get(
        "/rapports/sla/changements-priorite?period=2026-04").get_data(as_text=True)


def test_report_ticket_view_explains_the_deadline(app, history, login_as):
    html = login_as("manager_metropole").get(f"/rapports/tickets/{history['tassin_open']}").get_data(as_text=True)
    assert "Délai de résolution (SLA)" in html and "Détail des périodes comptées et exclues" in html
    assert "Historique" in html and "Plus grave" in html
    assert "demandeur@example.org" not in html and "le demandeur" in html  # no requester's personal data
    assert login_as("manager_metropole").get("/rapports/tickets/SAU-0000-0000").status_code == 404


def test_annual_report(app, history, login_as):
    client = login_as("manager_metropole")
    html = client.get("/rapports/annuel?annee=2026").get_data(as_text=True)
    assert "Article 11" in html or "article 11" in html
    assert html.count('class="annual-commune"') == 58
    assert "Écully : chiffres par mois, 2026" in html and "Écully : chiffres par service, 2026" in html
    rows = _csv_dicts(client.get("/rapports/annuel.csv?annee=2026"))
    ecully_year = next(r for r in rows if r["code_insee"] == "69081" and r["rubrique"] == "année")
    assert (ecully_year["engages"], ecully_year["depasses"], ecully_year["conformite"]) == ("3", "1", "66,67")
    march = next(r for r in rows if r["code_insee"] == "69081" and r["libelle"] == "2026-03")
    assert march["engages"] == "3"
    services = [r for r in rows if r["code_insee"] == "69081" and r["rubrique"] == "service"]
    assert sum(int(r["engages"]) for r in services) == 3
    bad = client.get("/rapports/annuel?annee=26")
    assert bad.status_code == 422 and "Année attendue sur quatre chiffres" in bad.get_data(as_text=True)
    assert client.get("/rapports/annuel.csv?annee=abc").status_code == 422


@pytest.mark.parametrize("path", [
    "/rapports/sla.csv?period=2026-03", "/rapports/sla/tendance.csv?period=2026-03",
    "/rapports/sla/depassements.csv?period=2026-03", "/rapports/sla/changements-priorite.csv?period=2026-03",
    "/rapports/annuel.csv?annee=2026",
])
def test_every_xlsx_equals_its_csv(app, history, login_as, path):
    client = login_as("manager_metropole")
    as_csv, as_xlsx = client.get(path), client.get(path.replace(".csv", ".xlsx"))
    assert as_csv.status_code == as_xlsx.status_code == 200
    rows = read_csv(as_csv)
    _, headers, data = read_xlsx(as_xlsx)
    assert len(headers) == len(rows[0]) and len(rows) > 1
    same_table(rows[1:], data)


ISOLATION_PAGES = [
    "/rapports/sla?period=2026-03", "/rapports/sla.csv?period=2026-03", "/rapports/sla.xlsx?period=2026-03",
    "/rapports/sla/tendance.csv?period=2026-03", "/rapports/sla/tendance.xlsx?period=2026-03",
    "/rapports/sla/depassements?period=2026-03", "/rapports/sla/depassements.csv?period=2026-03",
    "/rapports/sla/depassements.xlsx?period=2026-03",
    "/rapports/sla/changements-priorite?period=2026-03", "/rapports/sla/changements-priorite.csv?period=2026-03",
    "/rapports/sla/changements-priorite.xlsx?period=2026-03",
    "/rapports/annuel?annee=2026", "/rapports/annuel.csv?annee=2026", "/rapports/annuel.xlsx?annee=2026",
]


def _text(response) -> str:
    if response.mimetype.endswith("spreadsheetml.sheet"):
        title, headers, data = read_xlsx(response)
        return "\n".join(";".join("" if v is None else str(v) for v in r) for r in [[title], headers, *data])
    return response.get_data(as_text=True)


@pytest.mark.parametrize("path", ISOLATION_PAGES)
def test_commune_manager_sees_only_their_commune(app, history, login_as, path):
    metro = _text(login_as("manager_metropole").get(path))
    assert "Tassin" in metro  # the page does show other communes to the Métropole
    response = login_as("manager_ecully").get(path)
    assert response.status_code == 200
    text = _text(response)
    assert "Écully" in text or "69081" in text
    assert "Tassin" not in text and "69244" not in text and history["tassin_open"] not in text
    assert "Métropole (toutes communes)" not in text


def test_commune_manager_cannot_open_another_commune_ticket(app, history, login_as):
    client = login_as("manager_ecully")
    assert client.get(f"/rapports/tickets/{history['tassin_open']}").status_code == 404
    breaches = _csv_dicts(client.get("/rapports/sla/depassements.csv?period=2026-03"))
    assert len(breaches) == 1 and client.get(f"/rapports/tickets/{breaches[0]['reference']}").status_code == 200
    assert login_as("agent_ecully").get(f"/rapports/tickets/{breaches[0]['reference']}").status_code == 403


@pytest.mark.parametrize("path", ["/rapports/sla/depassements", "/rapports/sla/changements-priorite",
                                  "/rapports/sla/depassements.xlsx", "/rapports/sla/tendance.csv"])
def test_bad_filters_are_422_in_french(app, login_as, path):
    response = login_as("manager_metropole").get(f"{path}?period=2026-T5&kind=x&page=0")
    assert response.status_code == 422
    text = json.dumps(response.get_json(), ensure_ascii=False) if response.is_json else response.get_data(as_text=True)
    assert "Période attendue" in text and "Type de ticket inconnu." in text and "Numéro de page attendu" in text
