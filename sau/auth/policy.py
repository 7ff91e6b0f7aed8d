"""The one policy layer: every HTML view and every API endpoint asks here what a user may do.

Tenant isolation: an agent sees only the queues of their organisation(s); a school administrator the
level-1 laclasse.com tickets of their school; a commune's référent and manager see the commune's tickets;
a usager only their own requests (or the one whose secret tracking link they hold).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from sau.auth.models import ROLE_ADMIN, ROLE_AGENT, ROLE_MANAGER, ROLE_REFERENT, Membership, User
from sau.extensions import db
from sau.orgs.models import ORG_COMMUNE, ORG_METROPOLE, SchoolAdministrator
from sau.tickets.models import KIND_INCIDENT, Ticket

WORK_ROLES = (ROLE_AGENT, ROLE_MANAGER, ROLE_ADMIN)
VIEW_ROLES = (ROLE_AGENT, ROLE_MANAGER, ROLE_ADMIN, ROLE_REFERENT)


@dataclass
class Principal:
    """Who is acting: a signed-in user, and/or the tickets whose tracking link was opened this session."""

    user: User | None = None
    tracked_ticket_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_authenticated(self) -> bool:
        return self.user is not None


def _memberships(user: User | None) -> list[Membership]:
    return list(user.memberships) if user is not None else []


def org_ids(user: User | None, roles: tuple[str, ...]) -> set[int]:
    return {m.organisation_id for m in _memberships(user) if m.role in roles}


def school_ids(user: User | None) -> set[int]:
    if user is None:
        return set()
    return set(db.session.scalars(sa.select(SchoolAdministrator.school_id).where(SchoolAdministrator.user_id == user.id)))


def is_admin(user: User | None) -> bool:
    """Admins of the Métropole manage reference data and memberships."""
    return any(m.role == ROLE_ADMIN and m.organisation.kind == ORG_METROPOLE for m in _memberships(user))


def is_staff(user: User | None) -> bool:
    """Has any working or viewing role (or administers a school)."""
    return bool(org_ids(user, VIEW_ROLES)) or bool(school_ids(user))


def is_metropole_agent(user: User | None) -> bool:
    return any(m.role in WORK_ROLES and m.organisation.kind == ORG_METROPOLE for m in _memberships(user))


def can_manage_faq(user: User | None) -> bool:
    """The FAQ of each service is maintained by Métropole agents (issue 2, point 3) and by admins."""
    return is_admin(user) or is_metropole_agent(user)


def can_work(user: User | None, ticket: Ticket) -> bool:
    """Agent actions (take, prioritise, reply, resolve, escalate…) on the ticket."""
    if user is None:
        return False
    if is_admin(user) or ticket.organisation_id in org_ids(user, WORK_ROLES):
        return True
    return ticket.level == 1 and ticket.school_id is not None and ticket.school_id in school_ids(user)


def can_view_as_staff(user: User | None, ticket: Ticket) -> bool:
    """Sees the whole ticket, internal notes included."""
    if user is None:
        return False
    if can_work(user, ticket):
        return True
    viewer_orgs = org_ids(user, (ROLE_REFERENT, ROLE_MANAGER))
    return ticket.organisation_id in viewer_orgs or (ticket.commune_id is not None and ticket.commune_id in viewer_orgs)


def is_requester(principal: Principal, ticket: Ticket) -> bool:
    if ticket.id in principal.tracked_ticket_ids:
        return True
    return principal.user is not None and ticket.requester_id == principal.user.id


def can_view(principal: Principal, ticket: Ticket) -> bool:
    return is_requester(principal, ticket) or can_view_as_staff(principal.user, ticket)


def staff_ticket_filter(user: User) -> sa.ColumnElement[bool]:
    """SQL condition selecting the tickets `user` may see as staff (for queues and lists)."""
    if is_admin(user):
        return sa.true()
    conditions: list[sa.ColumnElement[bool]] = []
    work = org_ids(user, WORK_ROLES)
    if work:
        conditions.append(Ticket.organisation_id.in_(work))
    viewer = org_ids(user, (ROLE_REFERENT, ROLE_MANAGER))
    if viewer:
        conditions.append(Ticket.organisation_id.in_(viewer))
        conditions.append(Ticket.commune_id.in_(viewer))
    schools = school_ids(user)
    if schools:
        conditions.append(sa.and_(Ticket.school_id.in_(schools), Ticket.level == 1))
    return sa.or_(*conditions) if conditions else sa.false()


def workable_organisation_ids(user: User) -> set[int]:
    return org_ids(user, WORK_ROLES)


def can_view_reports(user: User | None) -> bool:
    """Managers (and admins) watch SLA compliance; a commune's manager sees only their commune."""
    return is_admin(user) or bool(org_ids(user, (ROLE_MANAGER,)))


def report_commune_ids(user: User) -> set[int] | None:
    """The communes whose figures `user` may see: None for all (Métropole managers, admins)."""
    if is_admin(user) or any(m.role == ROLE_MANAGER and m.organisation.kind == ORG_METROPOLE for m in _memberships(user)):
        return None
    return {m.organisation_id for m in _memberships(user) if m.role == ROLE_MANAGER}


def can_manage_api_tokens(user: User | None) -> bool:
    """API tokens of every organisation are created and revoked by Métropole admins."""
    return is_admin(user)


def incident_commune_ids(user: User | None) -> set[int]:
    """The communes for which `user` may open incident tickets and security alerts, and see them: those where
    they are référent or agent (Toodego annex § 6.1.a)."""
    return {m.organisation_id for m in _memberships(user)
            if m.role in (ROLE_REFERENT, ROLE_AGENT) and m.organisation.kind == ORG_COMMUNE}


def can_open_incident(user: User | None) -> bool:
    return bool(incident_commune_ids(user))


def can_view_incident(user: User | None, ticket: Ticket) -> bool:
    """A commune's incident: the staff who see the ticket, and the commune's référents and agents."""
    if can_view_as_staff(user, ticket):
        return True
    return ticket.kind == KIND_INCIDENT and ticket.commune_id is not None and ticket.commune_id in incident_commune_ids(user)


def can_view_access_log(user: User | None) -> bool:
    """The access log (who read or exported personal data, issue 8 point 5) is shown to Métropole admins only."""
    return is_admin(user)


def can_export_commune(user: User | None) -> bool:
    """A commune's full export (convention art. 12.3: the commune gets back all of its data) holds every
    requester's personal data: Métropole admins only."""
    return is_admin(user)


def can_view_report_ticket(user: User | None, ticket: Ticket) -> bool:
    """A ticket behind the SLA report (a breach, a priority change), read-only: a commune's ticket within the
    communes whose figures the manager may see (report_commune_ids; a commune's manager: only their commune's)."""
    if user is None or not can_view_reports(user) or ticket.commune_id is None:
        return False
    communes = report_commune_ids(user)
    return communes is None or ticket.commune_id in communes


# --- personal data (issue 8) -------------------------------------------------------------------------------------


def can_delete_own_account(user: User | None) -> bool:
    """A usager deletes their own account from « Mes données »; staff accounts (memberships, schools) and API token
    accounts are managed by administrators, who remove the memberships first."""
    if user is None or is_staff(user):
        return False
    from sau.auth.models import ApiToken

    return db.session.scalar(sa.select(ApiToken.id).where(ApiToken.user_id == user.id).limit(1)) is None


def can_redact(user: User | None, ticket: Ticket) -> bool:
    """Masking personal data typed into a ticket's free text: whoever may work the ticket."""
    return can_work(user, ticket)


def can_read_deleted_accounts(user: User | None, token: object | None = None) -> bool:
    """GET /api/v1/deleted-accounts (annex Toodego § 8): a connector's token with the `accounts:read` scope, or an
    admin."""
    scopes = getattr(token, "scope_set", frozenset())
    return is_admin(user) or "accounts:read" in scopes


def can_report_deleted_accounts(user: User | None, token: object | None = None) -> bool:
    """Reporting accounts GrandLyon Connect deleted (they are then erased here): an admin (the import page), or a
    token of the Métropole — which operates GrandLyon Connect — with the `accounts:write` scope."""
    if is_admin(user):
        return True
    scopes = getattr(token, "scope_set", frozenset())
    organisation = getattr(token, "organisation", None)
    return "accounts:write" in scopes and organisation is not None and organisation.kind == ORG_METROPOLE
