"""« Mes demandes »: the signed-in usager's own requests."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, render_template
from flask_login import current_user, login_required

from sau.extensions import db
from sau.tickets.models import Ticket

bp = Blueprint("usager", __name__)


@bp.route("/mes-demandes")
@login_required
def my_requests() -> Any:
    tickets = db.session.scalars(
        sa.select(Ticket).where(Ticket.requester_id == current_user.id).order_by(Ticket.created_at.desc())
    ).all()
    return render_template("usager/list.html", tickets=tickets)
