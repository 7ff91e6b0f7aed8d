"""What the report tests share: Écully's commune manager and reading a CSV export as dicts."""
from __future__ import annotations

import csv
import io
from datetime import datetime

import sqlalchemy as sa

from sau.auth.models import Membership, User
from sau.extensions import db
from sau.orgs.models import Organisation

ECULLY_MANAGER = "chef@ville-ecully.example"


def add_ecully_manager(now: datetime) -> User:
    """Add (not commit) a manager of Écully (69081) to the session; needs an app context."""
    ecully = db.session.scalar(sa.select(Organisation).where(Organisation.code == "69081"))
    manager = User(email=ECULLY_MANAGER, given_name="Chef", family_name="Écully", created_at=now)
    db.session.add(manager)
    db.session.add(Membership(user=manager, organisation=ecully, role="manager", created_at=now))
    return manager


def csv_dicts(response) -> list[dict[str, str]]:
    """The rows of a `;`-separated CSV export (byte order mark dropped) keyed by the header line."""
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")), delimiter=";"))
