"""Workload and speed (/rapports/activite): percentiles equal the standard library's on random data, business
durations equal the support calendar's, age buckets, monthly volumes, exports, a commune manager's isolation,
French errors on bad filters."""
from __future__ import annotations

import io
import random
import statistics
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlalchemy as sa

from sau.auth.models import User
from sau.extensions import db
from sau.orgs.models import Organisation
from sau.reports import workload
from sau.tickets import operations as ops
from sau.tickets.models import Ticket
from sau.tickets.sla import calendar
from tests.conftest import DEMO_EMAILS
from tests.reports.helpers import ECULLY_MANAGER, add_ecully_manager, csv_dicts

PARIS = ZoneInfo("Europe/Paris")


# --- percentiles ---------------------------------------------------------------------------------------------

def test_percentile_matches_the_standard_library_on_random_data() -> None:
    rng = random.Random(20261122)
    for _ in range(300):
        n = rng.randint(1, 60)
        values = sorted(rng.choice([rng.uniform(0, 500), float(rng.randint(0, 40))]) for _ in range(n))
        if n == 1:
            expected_p90 = values[0]
        else:
            expected_p90 = statistics.quantiles(values, n=10, method="inclusive")[8]
        assert workload.percentile(values, 0.9) == pytest.approx(expected_p90, abs=1e-9)
        assert workload.percentile(values, 0.5) == pytest.approx(statistics.median(values), abs=1e-9)
        for k in range(1, 100):
            if n > 1:
                reference = statistics.quantiles(values, n=100, method="inclusive")[k - 1]
                assert workload.percentile(values, k / 100) == pytest.approx(reference, abs=1e-9)


def test_percentile_edges() -> None:
    assert workload.percentile([], 0.5) is None
    assert workload.percentile([3.0], 0.9) == 3.0
    assert workload.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5  # mean of the two middle values
    assert workload.percentile([0.0, 10.0], 0.9) == 9.0
    assert workload.percentile([1.0, 5.0], 0.0) == 1.0 and workload.percentile([1.0, 5.0], 1.0) == 5.0
    with pytest.raises(ValueError):
        workload.percentile([1.0], 1.5)
    stats = workload.DurationStats.of([3600.0 * h for h in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)])
    assert stats.count == 10 and stats.median == timedelta(hours=5.5) and stats.p90 == timedelta(hours=9.1)


def test_age_buckets_bounds() -> None:
    assert workload.age_bucket(timedelta(hours=23, minutes=59)) == "moins_1j"
    assert workload.age_bucket(timedelta(days=1)) == "1_3j"
    assert workload.age_bucket(timedelta(days=6, hours=23)) == "3_7j"
    assert workload.age_bucket(timedelta(days=7)) == "7_30j"
    assert workload.age_bucket(timedelta(days=30)) == "30j_plus"


# --- fixtures ------------------------------------------------------------------------------------------------

def _agent(email_role: str) -> User:
    return db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS[email_role]))


def _history(app, clock, make_request) -> dict[str, list[str]]:
    """March 2026 (clock frozen on Tuesday 10 March, 10:00 Paris):
    Écully: 3 tickets created on Monday 2 March 10:00 — A answered at 14:00 and resolved Tuesday 3 March 10:00
    (8 business hours), B resolved Wednesday 4 March 11:00 (17 h), C still open (first answer Monday 16:00);
    Tassin: 1 ticket created on 9 March 10:00 (majeur), resolved 9 March 12:00.
    February: 1 Écully ticket created 16 February, still open (22 days old at report time)."""
    clock.set(datetime(2026, 2, 16, 10, tzinfo=PARIS))
    old = make_request(commune="69081", subject="Ancienne demande")
    clock.set(datetime(2026, 3, 2, 10, tzinfo=PARIS))
    ecully = [make_request(commune="69081", subject=f"Demande {i}") for i in range(3)]
    clock.set(datetime(2026, 3, 9, 10, tzinfo=PARIS))
    tassin = [make_request(commune="69244")]
    with app.app_context():
        agent_e, agent_t = _agent("agent_ecully"), _agent("agent_tassin")
        a, b, c = (ops.get_ticket(r) for r in ecully)
        ops.set_priority(a, agent_e, "bloquant", datetime(2026, 3, 2, 11, tzinfo=PARIS))
        ops.add_comment(a, agent_e, "Nous regardons.", datetime(2026, 3, 2, 14, tzinfo=PARIS), internal=False)
        ops.resolve(a, agent_e, "Fait", datetime(2026, 3, 3, 10, tzinfo=PARIS))
        ops.set_priority(b, agent_e, "majeur", datetime(2026, 3, 2, 11, tzinfo=PARIS))
        ops.resolve(b, agent_e, "Fait", datetime(2026, 3, 4, 11, tzinfo=PARIS))
        ops.add_comment(c, agent_e, "Pouvez-vous préciser ?", datetime(2026, 3, 2, 16, tzinfo=PARIS), internal=False)
        t = ops.get_ticket(tassin[0])
        ops.set_priority(t, agent_t, "majeur", datetime(2026, 3, 9, 10, 30, tzinfo=PARIS))
        ops.resolve(t, agent_t, "Fait", datetime(2026, 3, 9, 12, tzinfo=PARIS))
        db.session.commit()
    clock.set(datetime(2026, 3, 10, 10, tzinfo=PARIS))
    return {"ecully": ecully, "tassin": tassin, "old": [old]}


def _commune_manager(app, clock) -> None:
    with app.app_context():
        add_ecully_manager(clock.now())
        db.session.commit()
    DEMO_EMAILS["manager_ecully"] = ECULLY_MANAGER


@pytest.fixture()
def ecully_manager(app, clock):
    _commune_manager(app, clock)
    yield "manager_ecully"
    DEMO_EMAILS.pop("manager_ecully", None)


# --- computations --------------------------------------------------------------------------------------------

def test_speed_in_business_hours_per_group(app, clock, make_request) -> None:
    _history(app, clock, make_request)
    start, end = datetime(2026, 3, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=PARIS)
    with app.app_context():
        report = workload.speed(start, end)
        by_priority = {r.key: r for r in report.by_priority}
        # Resolutions: A 8 h (Mon 10:00 → Tue 10:00), B 17 h (Mon 10:00 → Wed 11:00), Tassin 2 h.
        assert by_priority["bloquant"].resolution == workload.DurationStats(1, timedelta(hours=8), timedelta(hours=8))
        assert by_priority["majeur"].resolution.count == 2
        assert by_priority["majeur"].resolution.median == timedelta(hours=9.5)  # (2 + 17) / 2
        assert by_priority["majeur"].resolution.p90 == timedelta(hours=2 + 0.9 * 15)
        # First responses: A 4 h, B 17 h (the resolution is its first answer), C 6 h, Tassin 2 h.
        overall = report.overall
        assert overall.first_response.count == 4 and overall.resolution.count == 3
        assert overall.first_response.median == timedelta(hours=5)
        # The February ticket was never answered: no first response, no resolution.
        by_org = {r.label: r for r in report.by_organisation}
        assert by_org["Écully"].first_response.count == 3 and by_org["Écully"].resolution.count == 2
        assert by_org["Tassin-la-Demi-Lune"].resolution.median == timedelta(hours=2)
        # Same figures as the support calendar itself, ticket by ticket.
        cal = calendar()
        rows = db.session.execute(sa.select(Ticket.created_at, Ticket.resolved_at)
                                  .where(Ticket.resolved_at.is_not(None))).all()
        seconds = sorted(cal.business_time_between(c, r).total_seconds() for c, r in rows)
        assert overall.resolution.median == timedelta(seconds=statistics.median(seconds))
        # A commune manager's scope and a service filter.
        ecully_id = db.session.scalar(sa.select(Organisation.id).where(Organisation.code == "69081"))
        scoped = workload.speed(start, end, communes={ecully_id})
        assert scoped.overall.first_response.count == 3 and scoped.overall.resolution.count == 2
        other = db.session.scalar(sa.text("SELECT id FROM services WHERE code = 'laclasse'"))
        assert workload.speed(start, end, service_id=other).overall.first_response.count == 0


def test_open_tickets_by_age_and_state(app, clock, make_request) -> None:
    _history(app, clock, make_request)
    with app.app_context():
        ages = workload.open_by_age(clock.now())
        # C created 2 March (8 days: 7–30 d), the February ticket 22 days (7–30 d); both open.
        assert ages.bucket_total("7_30j") == 2 and ages.total == 2
        c = ops.get_ticket(_ref_by_subject("Demande 2"))
        assert ages.count(c.status, "7_30j") >= 1
        clock.set(datetime(2026, 3, 20, 10, tzinfo=PARIS))
        later = workload.open_by_age(clock.now())
        assert later.bucket_total("30j_plus") == 1 and later.bucket_total("7_30j") == 1


def _ref_by_subject(subject: str) -> str:
    return db.session.scalar(sa.select(Ticket.reference).where(Ticket.subject == subject))


def test_volumes_per_commune_service_and_month(app, clock, make_request) -> None:
    _history(app, clock, make_request)
    with app.app_context():
        vols = workload.volumes(datetime(2026, 1, 1, tzinfo=PARIS), datetime(2026, 4, 1, tzinfo=PARIS))
        assert [m.isoformat() for m in vols.months] == ["2026-01-01", "2026-02-01", "2026-03-01"]
        ecully = db.session.scalar(sa.select(Organisation.id).where(Organisation.code == "69081"))
        assert [vols.commune_month(ecully, i) for i in range(3)] == [0, 1, 3]
        assert vols.total == 5 and vols.month_total(2) == 4
        rows = workload.volume_rows(vols)
        assert ["2026-03", "69081", "Écully", "toodego", rows[1][4], 3] in rows
        assert workload.month_starts(datetime(2026, 3, 15, tzinfo=PARIS), datetime(2026, 3, 20, tzinfo=PARIS)) == [
            datetime(2026, 3, 15, tzinfo=PARIS)]


# --- pages and exports ---------------------------------------------------------------------------------------

def test_activity_page_shows_the_tables(app, clock, make_request, login_as) -> None:
    _history(app, clock, make_request)
    response = login_as("manager_metropole").get("/rapports/activite?period=2026-03")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Tickets ouverts par ancienneté et état" in html and "jours calendaires" in html
    assert "Tassin-la-Demi-Lune" in html and "Écully" in html
    assert "8,0 h" in html  # bloquant median resolution
    assert "9,5 h" in html  # majeur median resolution
    assert 'role="img"' in html and "<caption>" in html


def test_exports_csv_and_xlsx(app, clock, make_request, login_as) -> None:
    _history(app, clock, make_request)
    client = login_as("manager_metropole")
    response = client.get("/rapports/activite.csv?period=2026-03&tableau=delais")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = csv_dicts(response)
    bloquant = next(r for r in rows if r["regroupement"] == "Priorité" and r["code"] == "bloquant")
    assert bloquant["resolution_mediane_heures_ouvrees"] == "8,00" and bloquant["resolution_tickets"] == "1"
    volumes = client.get("/rapports/activite.csv?period=2026-T1&tableau=volumes").get_data(as_text=True)
    assert "2026-02;69081;Écully;toodego" in volumes
    xlsx = client.get("/rapports/activite.xlsx?period=2026-03&tableau=anciennete")
    assert xlsx.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.get_data())).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[1][0] == "État" and values[-1][0] == "Total" and values[-1][-1] == 2


def test_commune_manager_sees_only_their_commune(app, clock, make_request, login_as, ecully_manager) -> None:
    _history(app, clock, make_request)
    client = login_as(ecully_manager)
    html = client.get("/rapports/activite?period=2026-03").get_data(as_text=True)
    assert "Périmètre : Écully" in html and "Tassin" not in html
    for table in ("delais", "volumes", "anciennete"):
        for fmt in ("csv", "xlsx"):
            response = client.get(f"/rapports/activite.{fmt}?period=2026-03&tableau={table}")
            assert response.status_code == 200
            if fmt == "csv":
                text = response.get_data(as_text=True)
            else:
                book = openpyxl.load_workbook(io.BytesIO(response.get_data()))
                text = " ".join(str(c.value) for row in book.active.iter_rows() for c in row)
            assert "Tassin" not in text and "69244" not in text
    rows = csv_dicts(client.get("/rapports/activite.csv?period=2026-03&tableau=delais"))
    overall = next(r for r in rows if r["regroupement"] == "Ensemble")
    assert overall["premiere_reponse_tickets"] == "3"  # Tassin's ticket is not counted


@pytest.mark.parametrize(("query", "field", "message"), [
    ("period=2026-13", "period", "Mois invalide."),
    ("start=2026-03-40&end=2026-03-31", "start", "Date de début attendue"),
    ("start=2020-01-01&end=2026-03-31", "end", "Période trop longue"),
    ("service=inconnu", "service", "Service inconnu."),
])
def test_bad_filters_are_explained_in_french(app, login_as, query, field, message) -> None:
    client = login_as("manager_metropole")
    page = client.get(f"/rapports/activite?{query}")
    assert page.status_code == 422 and message in page.get_data(as_text=True)
    export = client.get(f"/rapports/activite.csv?{query}")
    assert export.status_code == 422
    body = export.get_json()["error"]
    assert body["code"] == "validation_error" and message in body["fields"][field]


def test_unknown_table_and_access(app, login_as) -> None:
    client = login_as("manager_metropole")
    response = client.get("/rapports/activite.csv?tableau=personnes")
    assert response.status_code == 422 and "Tableau inconnu" in response.get_json()["error"]["message"]
    assert login_as("agent_ecully").get("/rapports/activite").status_code == 403
    assert login_as("usager_a").get("/rapports/activite.csv").status_code == 403
