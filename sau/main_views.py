"""Home page."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from sau.help import intake

bp = Blueprint("main", __name__)


@bp.route("/")
def index() -> Any:
    return render_template("main/index.html", services=intake.sau_services())


@bp.route("/healthz")
def healthz() -> Any:
    import sqlalchemy as sa

    from sau.extensions import db

    db.session.execute(sa.text("SELECT 1"))
    return {"status": "ok"}
