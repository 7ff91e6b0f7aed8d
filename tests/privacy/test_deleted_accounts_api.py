"""The deleted-accounts API both ways and the admin import (issue 8, point 3; Toodego annex § 8)."""
from __future__ import annotations

from datetime import datetime, timedelta
from io import BytesIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import Flask

from tests.conftest import DEMO_EMAILS, csrf_token, login
from tests.privacy.personal import ISSUER, create_person

PARIS = ZoneInfo("Europe/Paris")
URL = "/api/v1/deleted-accounts"


def _token(app: Flask, org_code: str, scopes: list[str]) -> dict[str, str]:
    from sau.auth.models import User
    from sau.auth.tokens import create_token
    from sau.clock import now_utc
    from sau.extensions import db
    from sau.orgs.models import Organisation

    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == DEMO_EMAILS["admin"]))
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == org_code))
        created = create_token(admin, org, f"Connecteur {org_code} {'-'.join(scopes)}", scopes, now_utc())
        db.session.commit()
        return {"Authorization": f"Bearer {created.secret}"}


def _seed_deleted(app: Flask) -> None:
    from sau.extensions import db
    from sau.privacy.deleted_accounts import record_deleted

    with app.app_context():
        for day, sub in ((1, "sub-fevrier"), (5, "sub-mars-a"), (8, "sub-mars-b"), (9, "sub-mars-c")):
            month = 2 if sub == "sub-fevrier" else 3
            record_deleted(ISSUER, sub, datetime(2026, month, day, 12, tzinfo=PARIS), "glc_api")
        db.session.commit()


def test_scopes_are_enforced_with_json_errors(app: Flask, client) -> None:
    anonymous = client.get(f"{URL}?since=2026-03-01")
    assert anonymous.status_code == 401 and anonymous.get_json()["error"]["code"] == "unauthorized"
    wrong_scope = client.get(f"{URL}?since=2026-03-01", headers=_token(app, "69081", ["tickets:read"]))
    assert wrong_scope.status_code == 403 and wrong_scope.get_json()["error"]["code"] == "insufficient_scope"
    reader = _token(app, "69081", ["accounts:read"])
    assert client.get(f"{URL}?since=2026-03-01", headers=reader).status_code == 200
    refused = client.post(URL, json=[{"issuer": ISSUER, "sub": "x"}], headers=reader)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "insufficient_scope"
    # accounts:write on a commune's token: only the Métropole (which runs GrandLyon Connect) may report deletions.
    commune_writer = _token(app, "69081", ["accounts:write"])
    refused = client.post(URL, json=[{"issuer": ISSUER, "sub": "x"}], headers=commune_writer)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    usager = login(app.test_client(), app, "usager_a")
    assert usager.get(f"{URL}?since=2026-03-01").status_code == 403


def test_since_filter_pagination_and_bad_since(app: Flask, client) -> None:
    _seed_deleted(app)
    reader = _token(app, "69081", ["accounts:read"])
    body = client.get(f"{URL}?since=2026-03-01", headers=reader).get_json()
    assert [a["sub"] for a in body["deleted_accounts"]] == ["sub-mars-a", "sub-mars-b", "sub-mars-c"]
    assert set(body["deleted_accounts"][0]) == {"issuer", "sub", "deleted_at"}
    assert body["deleted_accounts"][0]["issuer"] == ISSUER and body["next"] is None
    later = client.get(f"{URL}?since=2026-03-08T12:00:00%2B01:00", headers=reader).get_json()
    assert [a["sub"] for a in later["deleted_accounts"]] == ["sub-mars-b", "sub-mars-c"]
    # Pages of one.
    page = client.get(f"{URL}?since=2026-03-01&limit=1", headers=reader).get_json()
    subs = [a["sub"] for a in page["deleted_accounts"]]
    while page["next"]:
        page = client.get(page["next"], headers=reader).get_json()
        subs += [a["sub"] for a in page["deleted_accounts"]]
    assert subs == ["sub-mars-a", "sub-mars-b", "sub-mars-c"]
    for bad in ("", "?since=hier", "?since=2026-13-01", "?since=2026-03-01&limit=0", "?since=2026-03-01&limit=x"):
        response = client.get(URL + bad, headers=reader)
        assert response.status_code == 422, bad
        assert response.get_json()["error"]["fields"], bad


def test_post_erases_matching_local_accounts_idempotently_and_they_are_then_listed(app: Flask, client, clock) -> None:
    from sau.extensions import db
    from sau.privacy.models import ErasedAccount

    with app.app_context():
        person = create_person(clock.now())
    writer = _token(app, "metropole", ["accounts:write"])
    body = [{"issuer": ISSUER, "sub": person.sub}, {"issuer": ISSUER, "sub": "jamais-vu"}]
    first = client.post(URL, json=body, headers=writer)
    assert first.status_code == 200 and first.get_json() == {"reported": 2, "erased": 1, "unknown": 1}
    again = client.post(URL, json={"accounts": body}, headers=writer)
    assert again.status_code == 200 and again.get_json() == {"reported": 2, "erased": 0, "unknown": 2}
    with app.app_context():
        assert db.session.get(ErasedAccount, person.user_id).source == "glc_api"
    listed = client.get(f"{URL}?since=2026-03-10", headers=_token(app, "69081", ["accounts:read"])).get_json()
    assert [a["sub"] for a in listed["deleted_accounts"]] == [person.sub]  # never the unknown "jamais-vu"
    # Bad bodies: JSON errors, nothing erased.
    assert client.post(URL, data="sub", headers=writer, content_type="text/plain").status_code == 415
    for bad in ([], {"accounts": "x"}, [{"issuer": ISSUER}], [{"sub": "x" * 300}], ["x"]):
        response = client.post(URL, json=bad, headers=writer)
        assert response.status_code == 422, bad
        assert response.get_json()["error"]["code"] == "validation_failed" or response.get_json()["error"]["fields"]


def test_admin_imports_a_csv_after_a_preview(app: Flask, clock) -> None:
    from sau.admin.models import AuditEvent
    from sau.extensions import db
    from sau.privacy.models import ErasedAccount

    with app.app_context():
        person = create_person(clock.now(), with_history=False)
    admin = login(app.test_client(), app, "admin")
    token = csrf_token(admin, "/admin/comptes-supprimes")
    csv = f"issuer;sub\n{ISSUER};{person.sub}\n{ISSUER};inconnu-42\n".encode()
    preview = admin.post("/admin/comptes-supprimes", data={"csrf_token": token, "file": (BytesIO(csv), "glc.csv")},
                         content_type="multipart/form-data")
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "1 compte(s) du SAU seront supprimés" in html
    with app.app_context():
        assert db.session.get(ErasedAccount, person.user_id) is None  # a preview changes nothing
    payload = html.split('name="payload" type="hidden" value="')[1].split('"')[0].replace("&#34;", '"')
    done = admin.post("/admin/comptes-supprimes/confirmer", data={"csrf_token": token, "payload": payload})
    assert done.status_code == 303
    page = admin.get("/admin/comptes-supprimes").get_data(as_text=True)
    assert "1 compte(s) supprimé(s) ici" in page and person.sub in page
    with app.app_context():
        assert db.session.get(ErasedAccount, person.user_id).source == "glc_import"
        assert db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "deleted_accounts.imported"))
    bad = admin.post("/admin/comptes-supprimes", data={"csrf_token": token, "file": (BytesIO(b"nom\nx\n"), "l.csv")},
                     content_type="multipart/form-data")
    assert bad.status_code == 422 and "doit nommer la colonne « sub »" in bad.get_data(as_text=True)
    agent = login(app.test_client(), app, "agent_metropole")
    assert agent.get("/admin/comptes-supprimes").status_code == 403


def test_deleted_account_list_is_purged_after_its_retention(app: Flask, ctx: None, clock) -> None:
    from sau.extensions import db
    from sau.privacy.models import DeletedAccount
    from sau.privacy.retention import run_retention

    _seed_deleted(app)
    clock.advance(timedelta(days=363))  # 2027-03-08 10:00: kept from 2026-03-08 10:00 on
    assert run_retention(clock.now()).deleted_records_purged == 2
    assert sorted(db.session.scalars(sa.select(DeletedAccount.subject))) == ["sub-mars-b", "sub-mars-c"]
    assert run_retention(clock.now()).deleted_records_purged == 0
