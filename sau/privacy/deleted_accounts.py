"""Deleted accounts, both ways (Toodego annex § 8): "La Métropole fournit une API (Web Service) permettant à la
commune adhérente de lister les comptes GLC qui ont été supprimés. Il est à la charge de la commune adhérente de
supprimer les données après réception de cette information."

- Out: every account erased here leaves its (issuer, sub) in `deleted_accounts`, listed by
  GET /api/v1/deleted-accounts?since=… for connector clients (a Connecté commune's GRU) so they delete their copies.
  Only (issuer, sub, deleted_at) is kept: the sub is the one identifier they can match; no name, no e-mail.
- In: when GrandLyon Connect reports accounts it deleted (POST /api/v1/deleted-accounts, or an admin importing its
  list as CSV or JSON), the matching local accounts are erased with the same erasure as a usager's own request.
  A reported account we never had leaves no trace (listing it would publish the sub of someone who never used
  the SAU). Reporting the same account twice erases nothing more.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from sau.auth.models import Identity, User
from sau.errors import ValidationFailed
from sau.extensions import db
from sau.privacy.models import DeletedAccount

PARIS = ZoneInfo("Europe/Paris")
MAX_REPORTED = 10_000  # accounts per call or per imported file
MAX_IMPORT_BYTES = 2 * 1024 * 1024


def record_deleted(issuer: str, subject: str, now: datetime, source: str) -> DeletedAccount:
    """Record that the account (issuer, sub) was deleted at `now` (a second deletion of the same pair — the person
    came back and left again — moves its date, so it is listed again). Flushes."""
    row = db.session.scalar(sa.select(DeletedAccount).where(DeletedAccount.issuer == issuer,
                                                            DeletedAccount.subject == subject))
    if row is None:
        row = DeletedAccount(issuer=issuer, subject=subject, deleted_at=now, source=source)
        db.session.add(row)
    else:
        row.deleted_at, row.source = now, source
    db.session.flush()
    return row


def parse_since(value: str | None) -> datetime:
    """The `since` parameter: an ISO 8601 date (midnight, Paris time) or date-time (Paris time when it has no
    offset). Raises ValidationFailed naming the field."""
    raw = (value or "").strip()
    message = "Date ISO 8601 attendue, par exemple 2026-03-01 ou 2026-03-01T08:00:00+01:00."
    if not raw:
        raise ValidationFailed.for_fields({"since": "Paramètre obligatoire. " + message})
    try:
        if len(raw) == 10:
            parsed = datetime.combine(datetime.strptime(raw, "%Y-%m-%d").date(), time(0), tzinfo=PARIS)
        else:
            parsed = datetime.fromisoformat(raw)  # Python 3.11 reads a trailing Z
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=PARIS)
    except ValueError:
        raise ValidationFailed.for_fields({"since": message}) from None
    return parsed


@dataclass(frozen=True)
class Page:
    items: list[DeletedAccount]
    next_after: int | None  # the id to continue after, when more rows follow


def list_deleted(since: datetime, *, limit: int, after: int | None = None) -> Page:
    """Accounts deleted at or after `since`, oldest first (then by id); `after` continues a previous page."""
    stmt = sa.select(DeletedAccount).where(DeletedAccount.deleted_at >= since)
    if after is not None:
        last = db.session.get(DeletedAccount, after)
        if last is not None:
            stmt = stmt.where(sa.or_(DeletedAccount.deleted_at > last.deleted_at,
                                     sa.and_(DeletedAccount.deleted_at == last.deleted_at, DeletedAccount.id > after)))
    rows = list(db.session.scalars(stmt.order_by(DeletedAccount.deleted_at, DeletedAccount.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].id if more and rows else None)


@dataclass
class ReportResult:
    reported: int = 0
    erased: int = 0  # local accounts erased now
    unknown: int = 0  # no local account (never had it, or already erased)
    erased_user_ids: list[int] = field(default_factory=list)


def default_issuer() -> str | None:
    return current_app.config.get("OIDC_ISSUER") or None


def normalise_pairs(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Validate reported accounts [{issuer?, sub}]; the issuer defaults to GrandLyon Connect's (OIDC_ISSUER).
    Raises ValidationFailed with the position of the first bad item."""
    if len(items) > MAX_REPORTED:
        raise ValidationFailed.for_fields({"accounts": f"{MAX_REPORTED} comptes au plus par envoi."})
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ValidationFailed.for_fields({f"accounts[{index}]": "Un objet {issuer, sub} est attendu."})
        sub = str(item.get("sub") or "").strip()
        issuer = str(item.get("issuer") or "").strip() or default_issuer() or ""
        if not sub or len(sub) > 255:
            raise ValidationFailed.for_fields({f"accounts[{index}].sub": "Identifiant « sub » manquant ou trop long."})
        if not issuer or len(issuer) > 500:
            raise ValidationFailed.for_fields({f"accounts[{index}].issuer": "Émetteur « issuer » manquant ou trop long."})
        pairs.append((issuer, sub))
    return list(dict.fromkeys(pairs))


def matching_users(pairs: list[tuple[str, str]]) -> tuple[list[User], int]:
    """The local accounts holding one of the identities (issuer, sub), and how many pairs matched one."""
    users: dict[int, User] = {}
    matched = 0
    for issuer, sub in pairs:
        identity = db.session.scalar(sa.select(Identity).where(Identity.issuer == issuer, Identity.subject == sub))
        if identity is not None:
            matched += 1
            users[identity.user_id] = identity.user
    return list(users.values()), matched


def apply_reported(pairs: list[tuple[str, str]], now: datetime, *, source: str,
                   actor: User | None = None) -> ReportResult:
    """Erase the local accounts GrandLyon Connect reported deleted. Idempotent: an account already erased has no
    identity left, so it is not found again. Flushes; the caller commits."""
    from sau.privacy.erasure import erase_account

    users, matched = matching_users(pairs)
    for user in users:
        erase_account(user, now, source=source, actor=actor)
    return ReportResult(reported=len(pairs), erased=len(users), unknown=len(pairs) - matched,
                        erased_user_ids=[u.id for u in users])


def parse_import(data: bytes, filename: str) -> list[tuple[str, str]]:
    """Read GrandLyon Connect's list of deleted accounts: JSON ([{issuer, sub}] or {"deleted_accounts": [...]}) or
    CSV with a header naming the columns `sub` (or `subject`) and optionally `issuer`. Raises ValidationFailed
    naming the `file` field, in French."""
    if not data:
        raise ValidationFailed.for_fields({"file": "Le fichier est vide."})
    if len(data) > MAX_IMPORT_BYTES:
        raise ValidationFailed.for_fields({"file": "Le fichier dépasse 2 Mo."})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed.for_fields({"file": "Le fichier doit être encodé en UTF-8."}) from None
    if filename.lower().endswith(".json") or text.lstrip().startswith(("[", "{")):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationFailed.for_fields({"file": f"JSON invalide (ligne {exc.lineno})."}) from None
        if isinstance(parsed, dict):
            parsed = parsed.get("deleted_accounts")
        if not isinstance(parsed, list):
            raise ValidationFailed.for_fields({"file": "Une liste JSON [{\"issuer\": …, \"sub\": …}] est attendue."})
        items = parsed
    else:
        reader = csv.DictReader(io.StringIO(text), delimiter=";" if text.split("\n", 1)[0].count(";") else ",")
        headers = {(h or "").strip().lower() for h in reader.fieldnames or []}
        if not headers & {"sub", "subject"}:
            raise ValidationFailed.for_fields({"file": "La première ligne du CSV doit nommer la colonne « sub »."})
        items = []
        for row in reader:
            clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k}
            items.append({"issuer": clean.get("issuer", ""), "sub": clean.get("sub") or clean.get("subject", "")})
    try:
        pairs = normalise_pairs(items)
    except ValidationFailed as exc:
        detail = "; ".join(f"{k.replace('accounts', 'ligne ')} : {v}" for k, v in (exc.fields or {}).items())
        raise ValidationFailed.for_fields({"file": detail or exc.message}) from None
    if not pairs:
        raise ValidationFailed.for_fields({"file": "Le fichier ne contient aucun compte."})
    return pairs
