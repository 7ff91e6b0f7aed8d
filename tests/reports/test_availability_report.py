"""Availability report (/rapports/disponibilite): the figures are the SLA engine's (sla.availability) per service
and month, each with the outages behind it; non-conforme months are marked; CSV and XLSX exports; bad filters
explained in French; same figures for a commune's manager."""
from __future__ import annotations

import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.orgs.models import Service
from sau.reports import availability_report as avail
from sau.status import operations as status_ops
from sla.availability import OutageSpan, monthly_availability
from tests.conftest import DEMO_EMAILS
from tests.reports.helpers import ECULLY_MANAGER, add_ecully_manager, csv_dicts

PARIS = ZoneInfo("Europe/Paris")


def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def _outages(app, clock, make_request) -> None:
    """Toodego: February 2026 — 2 h total unplanned outage on 10 Feb (linked to 1 ticket), a planned one of 3 h
    on 12 Feb, a partial one of 40 min on 20 Feb; 31 Jan 23:00 → 1 Feb 01:00 (1 h in each month).
    Laclasse: nothing."""
    reference = make_request(commune="69081")
    with app.app_context():
        agent = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["agent_metropole"]))
        toodego = db.session.scalar(sa.select(Service).where(Service.code == "toodego"))
        now = clock.now()
        for start, end, kind, planned, refs in (
            (_at(2026, 2, 10, 9), _at(2026, 2, 10, 11), "total", False, [reference]),
            (_at(2026, 2, 12, 22), _at(2026, 2, 13, 1), "total", True, []),
            (_at(2026, 2, 20, 14), _at(2026, 2, 20, 14, 40), "partial", False, []),
            (_at(2026, 1, 31, 23), _at(2026, 2, 1, 1), "total", False, []),
        ):
            status_ops.record_outage(agent, now, toodego, start, end, kind, planned, "Panne", refs)
        db.session.commit()


def test_figures_are_the_engines_with_the_outages_behind_them(app, clock, make_request) -> None:
    _outages(app, clock, make_request)
    with app.app_context():
        report = avail.availability_report([(2026, 1), (2026, 2), (2026, 3)], clock.now(), partial_weight=0.5)
        toodego = next(s for s in report if s.code == "toodego")
        feb = toodego.months[1]
        # 2 h + 1 h (from the outage across the month change) + 40 min × 0.5 = 3 h 20 min; planned excluded.
        assert feb.figure.downtime == timedelta(hours=3, minutes=20)
        spans = [OutageSpan(_at(2026, 2, 10, 9), _at(2026, 2, 10, 11)),
                 OutageSpan(_at(2026, 2, 12, 22), _at(2026, 2, 13, 1), planned=True),
                 OutageSpan(_at(2026, 2, 20, 14), _at(2026, 2, 20, 14, 40), partial=True),
                 OutageSpan(_at(2026, 1, 31, 23), _at(2026, 2, 1, 1))]
        assert feb.figure == monthly_availability(spans, [], 2026, 2, clock.now(), partial_weight=0.5)
        assert not feb.figure.met  # 3 h 20 > 40 min 19 s allowed in a 28-day month
        assert [o.kind for o in feb.outages] == ["total", "total", "total", "partial"]
        first = feb.outages[0]
        assert first.duration == timedelta(hours=2) and first.in_month == timedelta(hours=1)
        linked = next(o for o in feb.outages if o.started_at == _at(2026, 2, 10, 9))
        assert linked.tickets == 1 and not linked.is_planned
        assert toodego.months[0].figure.downtime == timedelta(hours=1) and len(toodego.months[0].outages) == 1
        assert toodego.months[2].figure.met and toodego.months[2].outages == [] and toodego.months[2].is_current
        laclasse = next(s for s in report if s.code == "laclasse")
        assert all(m.figure.met and m.figure.percent == 100 for m in laclasse.months)
        assert toodego.non_conformes == 2 and laclasse.non_conformes == 0  # January: 1 h > 44 min 38 s


def test_months_filters() -> None:
    now = _at(2026, 3, 10, 10)
    assert avail.parse_months({}, now) == [(2025, m) for m in range(4, 13)] + [(2026, 1), (2026, 2), (2026, 3)]
    assert avail.parse_months({"year": "2026"}, now) == [(2026, 1), (2026, 2), (2026, 3)]
    assert len(avail.parse_months({"year": "2025"}, now)) == 12
    for bad, message in (("26", "AAAA"), ("2027", "pas encore commencé"), ("1999", "antérieure")):
        with pytest.raises(avail.FilterError) as exc:
            avail.parse_months({"year": bad}, now)
        assert message in exc.value.fields["year"]
    # Truncated, never rounded up: 99.8996 % reads 99.899.
    figure = monthly_availability([OutageSpan(_at(2026, 2, 1), _at(2026, 2, 1) + timedelta(seconds=2429))], [],
                                  2026, 2, now)
    assert str(avail.percent(figure)) == "99.899" and not figure.met


def test_page_marks_non_conforme_months_and_lists_outages(app, clock, make_request, login_as) -> None:
    _outages(app, clock, make_request)
    response = login_as("manager_metropole").get("/rapports/disponibilite?year=2026")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "février 2026" in html and "non conforme" in html and "2 mois non conformes" in html
    assert "Du 10/02/2026 09:00 au 10/02/2026 11:00" in html and "1 ticket lié" in html
    assert "programmée (exclue du calcul)" in html and "indisponibilité partielle" in html
    assert "3 h 20 min" in html  # counted downtime of February
    assert 'role="img"' in html and "Disponibilité de Toodego par mois" in html


def test_exports(app, clock, make_request, login_as) -> None:
    _outages(app, clock, make_request)
    client = login_as("manager_metropole")
    response = client.get("/rapports/disponibilite.csv?year=2026&service=toodego")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = csv_dicts(response)
    assert [r["mois"] for r in rows] == ["2026-01", "2026-02", "2026-03"]
    feb = rows[1]
    assert feb["conforme"] == "non" and feb["indisponibilite_minutes"] == "200,00" and feb["indisponibilites"] == "4"
    assert feb["objectif_pourcent"] == "99,9" and feb["disponibilite_pourcent"] == "99,503"  # 1 − 200/40320
    outages = client.get("/rapports/disponibilite.csv?year=2026&tableau=indisponibilites").get_data(as_text=True)
    assert "2026-02;toodego;" in outages and "Indisponibilité partielle" in outages
    xlsx = client.get("/rapports/disponibilite.xlsx?year=2026&tableau=mois")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.get_data())).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    header = values[1]
    assert header[0] == "Mois" and len(values) == 2 + 3 * 5  # 5 services × 3 months


def test_bad_filters_and_access(app, clock, login_as) -> None:
    client = login_as("manager_metropole")
    page = client.get("/rapports/disponibilite?year=abc")
    assert page.status_code == 422 and "Année attendue au format AAAA" in page.get_data(as_text=True)
    export = client.get("/rapports/disponibilite.csv?service=nope")
    assert export.status_code == 422 and export.get_json()["error"]["fields"]["service"] == "Service inconnu."
    assert client.get("/rapports/disponibilite.csv?tableau=x").status_code == 422
    assert login_as("agent_metropole").get("/rapports/disponibilite").status_code == 403
    assert login_as("usager_a").get("/rapports/disponibilite.xlsx").status_code == 403


def test_commune_manager_sees_the_same_availability(app, clock, make_request, login_as) -> None:
    _outages(app, clock, make_request)
    with app.app_context():
        add_ecully_manager(clock.now())
        db.session.commit()
    DEMO_EMAILS["manager_ecully"] = ECULLY_MANAGER
    try:
        mine = login_as("manager_ecully").get("/rapports/disponibilite.csv?year=2026").get_data()
        metro = login_as("manager_metropole").get("/rapports/disponibilite.csv?year=2026").get_data()
        assert mine == metro
    finally:
        DEMO_EMAILS.pop("manager_ecully", None)
