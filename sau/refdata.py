"""A per-process snapshot of the reference data a help request is checked and routed against: services and their
categories, organisations, schools, subscriptions (adhésions), active routing rules and the business calendar.

These rows change a few times a year (admins edit them) and are read by every submission: reading them from the
snapshot instead of the database saves about a third of a submission's work (bench/RESULTS.md, issue 9).

Invalidation across processes (gunicorn workers, several nodes): the single row of `reference_data_version` holds
a number that any flush touching one of these tables increments in the same transaction (`before_flush` below).
`current()` reads that number — one primary-key read — and rebuilds the snapshot when it moved. A change is
therefore seen by every process from the first request that starts after its commit, never later.
Writes that bypass the ORM unit of work (`sa.update(Service)…`) must call `bump()` themselves.

Optimistic views (`@optimistic`: the public help form) skip that read: they work on the process's snapshot as it
is, and check its number where it matters instead. A new request written in one statement checks it in that
statement (sau.tickets.operations, `_creation_sql_pg`): no round trip at all. Any other write checks it first
(`verify()`), and so does any answer that wrote nothing (an error page, a refusal). A snapshot found older is
dropped and the view runs again from the start on a fresh one: no answer ever rests on outdated reference data.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import g, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from sau.extensions import db, on_postgresql


class ReferenceDataVersion(db.Model):
    """One row: incremented by every change of the reference data (see the module's docstring)."""

    __tablename__ = "reference_data_version"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(sa.BigInteger, default=0)


# The committed version: read by `_version()`, and the condition of a new request's one statement on PostgreSQL
# (sau.tickets.operations, `_creation_sql_pg`).
VERSION_SQL = "SELECT version FROM reference_data_version WHERE id = 1"
_VERSION_SELECT = sa.text(VERSION_SQL)


@dataclass(frozen=True)
class OrgInfo:
    id: int
    kind: str
    code: str
    name: str
    is_active: bool

    @property
    def is_metropole(self) -> bool:
        return self.kind == "metropole"


@dataclass(frozen=True)
class CategoryInfo:
    id: int
    code: str
    label: str
    requires_commune: bool


@dataclass(frozen=True)
class ServiceInfo:
    id: int
    code: str
    name: str
    has_sau: bool
    no_sau_reason: str
    asks_school: bool
    sla_bloquant_hours: float | None
    sla_majeur_hours: float | None
    categories: tuple[CategoryInfo, ...]

    def category(self, code: str) -> CategoryInfo | None:
        return next((c for c in self.categories if c.code == code), None)


@dataclass(frozen=True)
class SchoolInfo:
    id: int
    uai: str
    name: str
    commune_id: int


@dataclass(frozen=True)
class SubscriptionInfo:
    service_id: int
    offer: str | None
    starts_on: date
    ends_on: date | None

    def is_active_on(self, on: date) -> bool:
        return self.starts_on <= on and (self.ends_on is None or on <= self.ends_on)


@dataclass(frozen=True)
class RuleInfo:
    id: int
    name: str
    reason: str
    service_id: int | None
    category_code: str | None
    commune_id: int | None
    offer: str | None
    target: str
    target_organisation_id: int | None
    level: int


@dataclass
class Snapshot:
    version: int
    services: dict[str, ServiceInfo] = field(default_factory=dict)
    services_by_id: dict[int, ServiceInfo] = field(default_factory=dict)
    organisations: dict[int, OrgInfo] = field(default_factory=dict)
    communes_by_code: dict[str, OrgInfo] = field(default_factory=dict)
    metropole: OrgInfo | None = None
    schools: dict[str, SchoolInfo] = field(default_factory=dict)  # by UAI
    schools_by_id: dict[int, SchoolInfo] = field(default_factory=dict)
    subscriptions: dict[int, tuple[SubscriptionInfo, ...]] = field(default_factory=dict)  # by organisation id
    rules: tuple[RuleInfo, ...] = ()
    calendar: Any = None  # sla.BusinessCalendar

    def subscription(self, organisation_id: int, service_id: int, on: date) -> SubscriptionInfo | None:
        for sub in self.subscriptions.get(organisation_id, ()):
            if sub.service_id == service_id and sub.is_active_on(on):
                return sub
        return None


_G_KEY = "sau_refdata"
_G_OPTIMISTIC = "sau_refdata_optimistic"  # the request may use the process's snapshot unverified
_G_UNVERIFIED = "sau_refdata_unverified"  # the request's snapshot was taken without reading the version
_BUMPED = "sau.refdata_bumped"  # session.info: this transaction changed the reference data
_lock = threading.Lock()
_snapshot: Snapshot | None = None


class StaleSnapshot(Exception):
    """The request worked on a snapshot older than the committed reference data (an optimistic view reruns)."""


def _version() -> int:
    if on_postgresql():
        # The committed version, in one round trip outside the request's transaction (sau.autocommit).
        from sau import autocommit

        value = autocommit.fetch_value(VERSION_SQL)
    else:
        value = db.session.connection().execute(_VERSION_SELECT).scalar()
    return int(value or 0)


def current() -> Snapshot:
    """The snapshot matching the database's reference data: one primary-key read per HTTP request (the first
    call; later ones in the same request reuse it), a rebuild when the version moved."""
    if has_request_context():
        snap = g.get(_G_KEY)
        if snap is None:
            cached = _snapshot
            if g.get(_G_OPTIMISTIC) and cached is not None and not _bumped():
                setattr(g, _G_UNVERIFIED, True)  # checked by the write, or before answering (`optimistic`)
                snap = g.setdefault(_G_KEY, cached)
            else:
                snap = g.setdefault(_G_KEY, _current())
        return snap
    return _current()


def unverified_version() -> int | None:
    """The version of the request's snapshot if it was taken without reading the database's (an optimistic view),
    else None."""
    if has_request_context() and g.get(_G_UNVERIFIED):
        return int(g.get(_G_KEY).version)
    return None


def confirm(matched: bool) -> None:
    """The outcome of a write that checked the request's snapshot itself (its version was a condition of the
    statement): it matched, or it did not and nothing was written (raises StaleSnapshot)."""
    if not matched:
        _forget()
        raise StaleSnapshot
    if has_request_context():
        g.pop(_G_UNVERIFIED, None)


def verify() -> None:
    """Check the request's snapshot against the database's version if it was taken unverified (one read); raises
    StaleSnapshot if it is older. A no-op otherwise."""
    expected = unverified_version()
    if expected is not None:
        confirm(_version() == expected)


def optimistic(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let `view` work on the process's snapshot without reading the version first (see the module's docstring).
    Its writes check the snapshot (create_request); an answer that did not is checked before it leaves. A stale
    snapshot reruns the view once, from the start, on a fresh snapshot (its transaction rolled back)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from sau.resilience import is_database_unavailable

        setattr(g, _G_OPTIMISTIC, True)
        try:
            try:
                response = view(*args, **kwargs)
            except StaleSnapshot:
                raise
            except Exception as exc:
                if not is_database_unavailable(exc):
                    verify()  # the error answers from this snapshot too
                raise
            verify()
            return response
        except StaleSnapshot:
            db.session.rollback()
            for key in (_G_OPTIMISTIC, _G_UNVERIFIED, _G_KEY):
                g.pop(key, None)
            return view(*args, **kwargs)

    return wrapper


def _current() -> Snapshot:
    global _snapshot
    version = _version()
    if _bumped():
        # This transaction changed the reference data and has not committed: its snapshot is its own, never the
        # process's (a rollback would leave it cached under a number another worker's change may take).
        return _load(version)
    snap = _snapshot
    if snap is not None and snap.version == version:
        return snap
    with _lock:
        if _snapshot is None or _snapshot.version != version:
            _snapshot = _load(version)
        return _snapshot


def _load(version: int) -> Snapshot:
    from sau.orgs.models import Category, Organisation, School, Service, Subscription
    from sau.routing.models import RoutingRule
    from sau.tickets.sla import calendar

    s = db.session
    snap = Snapshot(version=version)
    categories: dict[int, list[CategoryInfo]] = {}
    for c in s.execute(sa.select(Category.id, Category.service_id, Category.code, Category.label,
                                 Category.requires_commune).order_by(Category.position, Category.id)):
        categories.setdefault(c.service_id, []).append(CategoryInfo(c.id, c.code, c.label, c.requires_commune))
    for r in s.execute(sa.select(Service.id, Service.code, Service.name, Service.has_sau, Service.no_sau_reason,
                                 Service.asks_school, Service.sla_bloquant_hours, Service.sla_majeur_hours)):
        info = ServiceInfo(r.id, r.code, r.name, r.has_sau, r.no_sau_reason or "", r.asks_school,
                           r.sla_bloquant_hours, r.sla_majeur_hours, tuple(categories.get(r.id, ())))
        snap.services[info.code] = info
        snap.services_by_id[info.id] = info
    for r in s.execute(sa.select(Organisation.id, Organisation.kind, Organisation.code, Organisation.name,
                                 Organisation.is_active)):
        org = OrgInfo(r.id, r.kind, r.code, r.name, r.is_active)
        snap.organisations[org.id] = org
        if org.kind == "commune":
            snap.communes_by_code[org.code] = org
        elif org.is_metropole:
            snap.metropole = org
    for r in s.execute(sa.select(School.id, School.uai, School.name, School.commune_id)):
        school = SchoolInfo(r.id, r.uai, r.name, r.commune_id)
        snap.schools[school.uai] = school
        snap.schools_by_id[school.id] = school
    subs: dict[int, list[SubscriptionInfo]] = {}
    for r in s.execute(sa.select(Subscription.organisation_id, Subscription.service_id, Subscription.offer,
                                 Subscription.starts_on, Subscription.ends_on).order_by(Subscription.id)):
        subs.setdefault(r.organisation_id, []).append(SubscriptionInfo(r.service_id, r.offer, r.starts_on, r.ends_on))
    snap.subscriptions = {k: tuple(v) for k, v in subs.items()}
    snap.rules = tuple(
        RuleInfo(r.id, r.name, r.reason or "", r.service_id, r.category_code, r.commune_id, r.offer, r.target,
                 r.target_organisation_id, r.level)
        for r in s.execute(sa.select(RoutingRule).where(RoutingRule.is_active.is_(True))
                           .order_by(RoutingRule.position, RoutingRule.id)).scalars()
    )
    snap.calendar = calendar()
    return snap


def _bumped() -> bool:
    """Whether the request's transaction changed the reference data (a request without a session has none: none is
    opened to ask)."""
    return db.session.registry.has() and bool(db.session.info.get(_BUMPED))


def bump() -> None:
    """Mark the reference data as changed (in the caller's transaction)."""
    _bump(db.session)


def _bump(session: Session) -> None:
    session.info[_BUMPED] = True
    updated = session.execute(sa.update(ReferenceDataVersion).where(ReferenceDataVersion.id == 1)
                              .values(version=ReferenceDataVersion.version + 1))
    if not updated.rowcount:  # type: ignore[attr-defined]
        session.execute(sa.insert(ReferenceDataVersion).values(id=1, version=1))
    _forget()  # this process rebuilds at its next read, even before the commit is visible to it


def _reference_classes() -> tuple[type, ...]:
    from sau.orgs.models import CalendarClosure, Category, Organisation, School, Service, Subscription
    from sau.routing.models import RoutingRule

    return (Service, Category, Organisation, School, Subscription, RoutingRule, CalendarClosure)


@event.listens_for(Session, "before_flush")
def _bump_on_change(session: Session, _context: Any, _instances: Any) -> None:
    classes = _reference_classes()
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, classes):
            _bump(session)
            return
    for obj in session.dirty:
        if isinstance(obj, classes) and session.is_modified(obj, include_collections=False):
            _bump(session)
            return


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_ended(session: Session) -> None:
    if session.info.pop(_BUMPED, None):
        _forget()


def _forget() -> None:
    """Drop this process's snapshot, and the current request's: the next read rebuilds it."""
    global _snapshot
    _snapshot = None
    if has_request_context():
        g.pop(_G_KEY, None)
