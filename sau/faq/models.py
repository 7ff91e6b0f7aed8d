"""FAQ entries per service (convention art. 6.1: a FAQ for each digital service)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from sau.extensions import db
from sau.orgs.models import Service


class FaqEntry(db.Model):
    __tablename__ = "faq_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(sa.ForeignKey("services.id"), index=True)
    question: Mapped[str] = mapped_column(sa.String(300))
    answer: Mapped[str] = mapped_column(sa.Text)
    keywords: Mapped[str] = mapped_column(sa.String(500), default="")
    is_published: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime]

    service: Mapped[Service] = relationship()
