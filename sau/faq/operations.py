"""FAQ search: the entries of a service matching what the usager types, best first."""
from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa

from sau.extensions import db
from sau.faq.models import FaqEntry
from sau.orgs.models import Service

STOPWORDS = frozenset(
    ["le", "la", "les", "un", "une", "des", "de", "du", "d", "l", "et", "ou", "a", "au", "aux", "en", "dans", "sur", "pour", "par", "pas", "ne", "je", "j", "me", "mon", "ma", "mes", "il", "elle", "on", "nous", "vous", "ils", "est", "sont", "ai", "suis", "que", "qui", "quoi", "comment", "pourquoi", "quand", "ce", "cette", "ces", "se", "sa", "son", "avec", "plus"]
)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", normalise(text)) if len(w) > 1 and w not in STOPWORDS]


def search(service: Service, query: str, limit: int = 5) -> list[FaqEntry]:
    """Published entries of the service ranked by shared words (question and keywords weigh more)."""
    entries = db.session.scalars(
        sa.select(FaqEntry).where(FaqEntry.service_id == service.id, FaqEntry.is_published.is_(True))
    ).all()
    terms = set(words(query))
    if not terms:
        return list(entries)[:limit] if not query.strip() else []
    scored = []
    for entry in entries:
        head = set(words(entry.question + " " + entry.keywords))
        body = set(words(entry.answer))
        score = 0.0
        for term in terms:
            if term in head or any(h.startswith(term) for h in head if len(term) >= 4):
                score += 3
            elif term in body:
                score += 1
        if score:
            scored.append((score, entry.id, entry))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [e for _, _, e in scored[:limit]]
