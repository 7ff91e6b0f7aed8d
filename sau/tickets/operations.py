"""Operations that change tickets. Each takes the actor and `now` explicitly, records one or more
immutable events, refreshes the stored SLA figures and flushes; the caller (the request or job
boundary) commits.
"""
from __future__ import annotations

import functools
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from sau.auth import policy
from sau.auth.models import User
from sau.errors import ConflictError, NotFound, PermissionDenied, ValidationFailed, WorkflowError
from sau.extensions import db, on_postgresql
from sau.orgs.models import Organisation
from sau.routing.operations import RoutingDecision, RoutingRequest, commune_offer, metropole, route
from sau.tickets import sla as ticket_sla
from sau.tickets.models import (
    CLOS,
    DOUBLON,
    EN_ATTENTE,
    EN_COURS,
    KIND_DEMANDE,
    KIND_INCIDENT,
    NOUVEAU,
    OPEN_STATUSES,
    PRIORITIES,
    REJETE,
    RESOLU,
    STATUSES,
    Comment,
    ReferenceCounter,
    Ticket,
    TicketEvent,
)

PARIS = ZoneInfo("Europe/Paris")
SYSTEM_LABEL = "SAU (automatique)"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def next_reference(now: datetime) -> str:
    """Allocate the next reference of the year (Paris time), e.g. SAU-2026-000123.

    PostgreSQL: one statement (`INSERT … ON CONFLICT DO UPDATE … RETURNING`) on a connection of its own in
    autocommit mode, so the counter row's lock is held for that statement only, not until the request's commit
    (which made every submission wait for the previous one's whole write and WAL flush). That connection does not
    wait for the WAL flush (`synchronous_commit = off`): the ticket using the number commits later with a
    synchronous flush, which makes the counter's update durable too (WAL is flushed in order). A request that
    fails after this leaves a gap in the numbering, never a number given twice.
    SQLite (one writer at a time anyway) keeps the allocation in the request's transaction.
    """
    year = now.astimezone(PARIS).year
    if on_postgresql():
        from sau import autocommit

        return f"SAU-{year}-{autocommit.fetch_value(_PG_NEXT_NUMBER, (year,)):06d}"
    update = (
        sa.update(ReferenceCounter)
        .where(ReferenceCounter.year == year)
        .values(last_number=ReferenceCounter.last_number + 1)
        .returning(ReferenceCounter.last_number)
    )
    number = db.session.execute(update).scalar()
    if number is None:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        db.session.execute(sqlite_insert(ReferenceCounter).values(year=year, last_number=0).on_conflict_do_nothing())
        number = db.session.execute(update).scalar_one()
    return f"SAU-{year}-{number:06d}"


def _pg_next_number(values: str) -> str:
    """The year's next number on PostgreSQL, the counter's row made from `values` (a VALUES or SELECT clause giving
    the year and 1) if it does not exist yet."""
    return (f"INSERT INTO reference_counters (year, last_number) {values} "
            "ON CONFLICT (year) DO UPDATE SET last_number = reference_counters.last_number + 1 RETURNING last_number")


_PG_NEXT_NUMBER = _pg_next_number("VALUES (%s, 1)")


def _actor_label(actor: User | None) -> str:
    return actor.display_name if actor is not None else SYSTEM_LABEL


def record_event(
    ticket: Ticket,
    type_: str,
    now: datetime,
    actor: User | None,
    data: dict[str, Any] | None = None,
    *,
    is_public: bool = True,
    actor_label: str | None = None,
    notify: bool = True,
) -> TicketEvent:
    """Append an immutable event to the ticket's log. `notify=False`: the caller enqueues its notifications
    itself (`enqueue_for_events`, several events at once)."""
    event = TicketEvent(
        type=type_,
        at=now,
        actor=actor,
        actor_label=actor_label if actor_label is not None else _actor_label(actor),
        is_public=is_public,
        data=data or {},
    )
    ticket.events.append(event)
    ticket.updated_at = now
    if notify:
        from sau.notify.operations import enqueue_for_event, expand_fanouts_of

        # A ticket whose creation's notifications are still to be worked out (sau.notify.models.NotificationFanout):
        # they are worked out now, so that they come first, in the order things happened.
        expand_fanouts_of(ticket)
        enqueue_for_event(ticket, event, now)  # the outbox rows share this transaction
    return event


CONFLICT_MESSAGE = (
    "Ce ticket a été modifié par quelqu'un d'autre pendant que vous le consultiez : votre modification "
    "n'a pas été enregistrée. Rechargez la page pour voir ses dernières modifications, puis recommencez."
)


def _check_version(ticket: Ticket, expected_version: int | None) -> None:
    if expected_version is not None and ticket.version != expected_version:
        raise ConflictError(CONFLICT_MESSAGE)


def _require_work(actor: User, ticket: Ticket) -> None:
    if not policy.can_work(actor, ticket):
        raise PermissionDenied("Vous n'êtes pas habilité à traiter ce ticket.")


def _require_open(ticket: Ticket, action: str) -> None:
    if ticket.status not in OPEN_STATUSES:
        raise WorkflowError(f"Impossible de {action} : le ticket est « {ticket.status_label} ».")


def _set_status(ticket: Ticket, status: str, now: datetime, actor: User | None, **data: Any) -> None:
    before = ticket.status
    ticket.status = status
    record_event(ticket, "status.changed", now, actor, {"before": before, "after": status, **data})


def _finish(ticket: Ticket, now: datetime) -> Ticket:
    ticket_sla.refresh(ticket, now)
    db.session.flush()
    return ticket


# --- creation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewRequest:
    """A request to create. `service`, `category`, `commune` and `school` are read by id (and the category by
    code): the reference snapshot's records (sau.refdata, what the form and the API resolve) or ORM objects."""

    service: Any
    subject: str
    description: str
    category: Any | None = None
    commune: Any | None = None
    school: Any | None = None
    email: str | None = None
    page_url: str | None = None
    kind: str = KIND_DEMANDE


@dataclass(frozen=True)
class Created:
    ticket_id: int
    reference: str
    tracking_token: str | None  # given once to an anonymous requester
    values: dict[str, Any]  # the ticket's columns as written
    event_values: tuple[dict[str, Any], ...]  # its two events'

    @property
    def ticket(self) -> Ticket:
        """The ticket in the session (read on first use, in the creating transaction)."""
        ticket = db.session.get(Ticket, self.ticket_id)
        assert ticket is not None
        return ticket

    @functools.cached_property
    def view(self) -> Ticket:
        """The ticket as written, with its two events: a copy outside the session, for the creation's answer (the
        API's body) without reading the row back."""
        return _detached(self.values, self.event_values)


@functools.cache
def _creation_statements() -> tuple[Any, Any, Any]:
    from sau.notify.models import NotificationFanout

    tickets, events = Ticket.__table__, TicketEvent.__table__
    return (sa.insert(tickets).returning(tickets.c.id),
            sa.insert(events).returning(events.c.id, sort_by_parameter_order=True),
            sa.insert(NotificationFanout.__table__))


def create_request(req: NewRequest, requester: User | None, now: datetime, *, standalone: bool = False,
                   record_with: Callable[[Ticket, str | None], dict[str, Any]] | None = None) -> Created:
    """Create a help request, route it and log both; its notifications are worked out by the dispatcher
    (`NotificationFanout`). Raises ValidationFailed (e.g. a service without SAU).

    `standalone=True`, for a caller with nothing else to write with the request: on PostgreSQL it is committed at
    once, on its own (one statement on a connection of its own), whatever the session's transaction does
    afterwards; elsewhere it stays in the session's transaction, which the caller commits.

    `record_with` (standalone creations on PostgreSQL only): called with the ticket as it will be written, its
    reference still a placeholder (random, one per call), and its tracking token; returns the column values of
    an idempotency record (sau.api.idempotency), which the same statement writes with the ticket's reference in
    place of that placeholder, in `resource_ref` and in the stored answer. A record already holding that client
    and key makes the whole statement fail (IntegrityError): nothing is written.

    The reference data (service, commune, subscriptions, rules, calendar) comes from the per-process snapshot and
    the ticket is written with foreign keys only: the request reads nothing else, and writes the ticket, its two
    events and the fan-out row (issue 9)."""
    from sau import refdata

    snap = refdata.current()
    service = snap.services_by_id[req.service.id]
    if not service.has_sau:
        raise ValidationFailed(
            f"Le service {service.name} ne dispose pas du SAU. {service.no_sau_reason}".strip(),
            {"service": "Ce service n'a pas d'assistance SAU."},
        )
    if requester is None and not req.email:
        raise ValidationFailed("Indiquez une adresse e-mail pour être tenu informé.", {"email": "Champ obligatoire."})
    routing_request = RoutingRequest(
        service=service,
        category_code=req.category.code if req.category else None,
        commune=req.commune,
        school=req.school,
        on=now.astimezone(PARIS).date(),
    )
    if req.kind == KIND_INCIDENT:
        # A commune's incident goes to the Métropole's support whatever the routing rules (which are admin data)
        # say: the convention binds the Métropole to resolve it (Toodego annex § 6.1.a).
        assert snap.metropole is not None
        decision = RoutingDecision(
            snap.metropole, 1, "Incident d'une commune : support de la Métropole (annexe Toodego § 6.1.a).", None,
            False, commune_offer(req.commune, service, routing_request.on, snap),
        )
    else:
        decision = route(routing_request, snap)
    token = secrets.token_urlsafe(24) if requester is None else None
    postgresql = on_postgresql()
    if not (postgresql and standalone):
        refdata.verify()  # an optimistic view's snapshot (sau.refdata), checked before anything is written
    # Written from plain values with table-level statements (the ticket, its two events, the notification fan-out):
    # the ORM's unit of work was a third of a submission's cost, and building the ORM objects alone a tenth
    # (issue 9). A standalone creation on PostgreSQL takes its number in the same statement (`_creation_sql_pg`).
    ticket: dict[str, Any] = {
        "reference": "" if postgresql and standalone else next_reference(now),
        "kind": req.kind,
        "service_id": service.id,
        "category_id": req.category.id if req.category else None,
        "commune_id": req.commune.id if req.commune else None,
        "school_id": req.school.id if req.school else None,
        "organisation_id": decision.organisation.id,
        "level": decision.level,
        "routing_reason": decision.reason,
        "needs_triage": decision.needs_triage,
        "subject": req.subject,
        "description": req.description,
        "page_url": req.page_url,
        "requester_id": requester.id if requester is not None else None,
        "requester_email": req.email if requester is None else (req.email or requester.email),
        "tracking_token_hash": hash_token(token) if token else None,
        "status": NOUVEAU,
        "created_at": now,
        "updated_at": now,
        "version": 1,
        "sla_paused": False,
    }
    label = requester.display_name if requester else (req.email or "Demandeur")
    events = (
        _event_row("ticket.created", now, requester,
                   {"kind": req.kind, "service": service.code, "subject": req.subject, "page_url": req.page_url},
                   actor_label=label),
        _event_row("ticket.routed", now, None, {
            "organisation": decision.organisation.code,
            "organisation_name": decision.organisation.name,
            "level": decision.level,
            "rule_id": decision.rule_id,
            "offer": decision.offer,
            "reason": decision.reason,
            "needs_triage": decision.needs_triage,
        }),
    )
    ticket |= ticket_sla.new_ticket_values(((e["type"], e["at"], e["data"]) for e in events), now,
                                           cal=snap.calendar, service=service)
    # Its notifications are worked out by the dispatcher, or by the next notifying event of this ticket
    # (record_event), whichever comes first.
    fanout = {"tracking_token": token, "created_at": now}
    if postgresql:
        record = None
        if record_with is not None:
            if not standalone:
                raise ValueError("record_with needs a standalone creation")
            ticket["reference"] = f"SAU-{secrets.token_hex(12)}"  # no one can put it in a request on purpose
            view = _detached(ticket, events)
            record = record_with(view, token)
        ticket_id, created_id, routed_id, reference = _write_creation_pg(
            ticket, events, fanout, numbered_in=now.astimezone(PARIS).year if standalone else None,
            ref_version=snap.version, record=record, placeholder=ticket["reference"],
        )
    else:
        # Table-level statements built once, with the values as parameters: no ORM bookkeeping.
        insert_ticket, insert_events, insert_fanout = _creation_statements()
        conn = db.session.connection()
        ticket_id = conn.execute(insert_ticket, ticket).scalar_one()
        created_id, routed_id = conn.execute(
            insert_events, [e | {"ticket_id": ticket_id} for e in events]
        ).scalars().all()
        conn.execute(insert_fanout, {"ticket_id": ticket_id, "first_event_id": created_id,
                                     "last_event_id": routed_id, **fanout})
        reference = ticket["reference"]
    ticket |= {"id": ticket_id, "reference": reference}
    events = (events[0] | {"id": created_id, "ticket_id": ticket_id}, events[1] | {"id": routed_id, "ticket_id": ticket_id})
    return Created(ticket_id, reference, token, ticket, events)


def _event_row(type_: str, now: datetime, actor: User | None, data: dict[str, Any], *,
               actor_label: str | None = None) -> dict[str, Any]:
    """A new event's column values, as `record_event` makes them (public, labelled with its actor)."""
    return {"type": type_, "at": now, "actor_id": actor.id if actor is not None else None,
            "actor_label": actor_label if actor_label is not None else _actor_label(actor), "is_public": True,
            "data": data}


def _detached(ticket: dict[str, Any], events: tuple[dict[str, Any], ...]) -> Ticket:
    """A ticket and its events as ORM objects outside any session, from their column values: what an answer
    about a creation reads (the API's body), without reading the rows back."""
    view = Ticket()
    # The values as a load from the database sets them (the instance's dict is its state's: no history, no attribute
    # events), not through the constructor, which cost four times as much on the API's path (issue 9).
    view.__dict__.update(ticket)
    logged = []
    for values in events:
        event = TicketEvent()
        event.__dict__.update(values)
        logged.append(event)
    set_committed_value(view, "events", logged)
    return view


@functools.lru_cache(maxsize=16)
def _creation_sql_pg(ticket_columns: tuple[str, ...], event_columns: tuple[str, ...], numbered: bool,
                     record_columns: tuple[str, ...] = ()) -> str:
    """One statement writing a new ticket, its two events (in this order: the second is made from the first's
    row) and its fan-out row, and returning the three ids and the reference. Each row is made from the previous
    statement's row, so nothing is written unless everything is.

    Each row's values come as one JSON parameter (`t` the ticket, `e1` and `e2` the events, `f` the fan-out, `i`
    the record), read as a row of its table (`json_populate_record`, which gives each value its column's type).
    Five parameters instead of eighty: psycopg converts and caches the query once, instead of parsing it and
    adapting each value on every call (a twentieth of a submission's cost, issue 9).

    `numbered`: the statement also takes the year's next number (`_pg_next_number`, parameter `n_year`) and
    makes the reference of it as `next_reference` does, provided the reference data's version is still
    `ref_version` (sau.refdata: else it writes nothing and returns no row). The counter's row lock is then held
    until this statement commits (its own transaction: the writes and the WAL flush, well under a millisecond).

    `record_columns`: also an idempotency record (`create_request`'s `record_with`), its `resource_ref` the
    ticket's reference, which also replaces the placeholder (parameter `placeholder`) in its stored answer."""
    from sqlalchemy.dialects import postgresql

    from sau.notify.models import NotificationFanout
    from sau.refdata import VERSION_SQL

    quote = postgresql.dialect().identifier_preparer.quote
    tickets, events = Ticket.__table__, TicketEvent.__table__

    def insert(table: sa.Table, key: str, given: dict[str, str], columns: tuple[str, ...], source: str) -> str:
        """INSERT … SELECT from `source` and the parameter `key`, read as a row of `table`."""
        columns = tuple(c for c in columns if c not in given)
        names = [quote(c) for c in (*given, *columns)]
        values = [*given.values(), *(f"r.{quote(c)}" for c in columns)]
        return (f"INSERT INTO {quote(table.name)} ({', '.join(names)}) SELECT {', '.join(values)} FROM "
                f"{source}{', ' if source else ''}json_populate_record(NULL::{quote(table.name)}, CAST(%({key})s AS JSON)) r")

    head = "WITH "
    if numbered:
        counter = _pg_next_number(f"SELECT %(n_year)s, 1 WHERE COALESCE(({VERSION_SQL}), 0) = %(ref_version)s")
        # SAU-2026-000123, as next_reference() writes it (at least six digits).
        reference = ("'SAU-' || %(n_year)s::text || '-' || lpad(n.last_number::text, "
                     "greatest(6, length(n.last_number::text)), '0')")
        head += f"n AS ({counter}), t AS ({insert(tickets, 't', {'reference': reference}, ticket_columns, 'n')}"
    else:
        head += f"t AS ({insert(tickets, 't', {}, ticket_columns, '')}"
    fanout = {"ticket_id": "e1.ticket_id", "first_event_id": "e1.id", "last_event_id": "e2.id"}
    sql = (
        f"{head} RETURNING id, reference), "
        f"e1 AS ({insert(events, 'e1', {'ticket_id': 't.id'}, event_columns, 't')} RETURNING id, ticket_id), "
        f"e2 AS ({insert(events, 'e2', {'ticket_id': 'e1.ticket_id'}, event_columns, 'e1')} RETURNING id), "
        f"f AS ({insert(NotificationFanout.__table__, 'f', fanout, ('tracking_token', 'created_at'), 'e1, e2')}) "
    )
    if record_columns:
        from sau.api.idempotency import IdempotencyRecord

        placeholder = "CAST(%(placeholder)s AS TEXT)"
        answer = {
            "resource_ref": "t.reference",
            "response_body": f"replace(r.response_body, {placeholder}, t.reference)",
            "response_headers": f"CAST(replace(CAST(r.response_headers AS TEXT), {placeholder}, t.reference) AS JSON)",
        }
        sql += f", i AS ({insert(IdempotencyRecord.__table__, 'i', answer, record_columns, 't')}) "
    return sql + "SELECT e1.ticket_id, e1.id, e2.id, t.reference FROM t, e1, e2"


def _json_value(value: Any) -> Any:
    """What `json.dumps` cannot write itself: an instant, as the UTC column type writes it (aware, in UTC; a naive
    datetime is refused)."""
    if isinstance(value, datetime):
        return _utc_on_pg()(value).isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@functools.cache
def _utc_on_pg() -> Callable[[datetime], datetime]:
    from sqlalchemy.dialects import postgresql

    from sau.modelbase import UTCDateTime

    return functools.partial(UTCDateTime().process_bind_param, dialect=postgresql.dialect())  # type: ignore[return-value]


def _write_creation_pg(ticket: dict[str, Any], events: tuple[dict[str, Any], dict[str, Any]],
                       fanout: dict[str, Any], numbered_in: int | None, ref_version: int,
                       record: dict[str, Any] | None = None, placeholder: str | None = None) -> tuple[int, int, int, str]:
    """Write a new ticket, its two events and its fan-out row in one statement (PostgreSQL); returns the ticket's
    and the events' ids and the ticket's reference (`record`: an idempotency record written with them, with the
    ticket's reference in place of `placeholder` in its answer).

    `numbered_in` (a year): a standalone creation. The statement also takes the ticket's number, checks that the
    reference data is still at `ref_version` (else raises refdata.StaleSnapshot, nothing written), and is its own
    durable transaction, on a connection of its own: one round trip in all, no BEGIN, no COMMIT. Otherwise
    (`ticket` has its reference already) it runs in the session's transaction."""
    from sau import refdata

    record = record or {}
    # A numbered creation's reference is made by the statement (the placeholder, longer, would not fit the
    # column's type, which json_populate_record checks).
    ticket = {k: v for k, v in ticket.items() if k != "id" and not (numbered_in is not None and k == "reference")}
    events = ({k: v for k, v in events[0].items() if k not in ("id", "ticket_id")},
              {k: v for k, v in events[1].items() if k not in ("id", "ticket_id")})
    sql = _creation_sql_pg(tuple(ticket), tuple(events[0]), numbered_in is not None, tuple(record))
    params: dict[str, Any] = {"t": ticket, "e1": events[0], "e2": events[1], "f": fanout}
    if record:
        params["i"], params["placeholder"] = record, placeholder
    params = {key: json.dumps(row, default=_json_value) if isinstance(row, dict) else row
              for key, row in params.items()}
    if numbered_in is not None:
        from sau import autocommit, resilience

        params["n_year"], params["ref_version"] = numbered_in, ref_version
        row = autocommit.fetch_row(sql, params, durable=True)
        refdata.confirm(row is not None)  # else nothing was written: StaleSnapshot
        resilience.note_commit()  # accepted: a 503 from here on would make the requester submit it again
    else:
        row = tuple(db.session.connection().exec_driver_sql(sql, params).one())
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), str(row[3])


# --- agent actions ----------------------------------------------------------------------------


def take(ticket: Ticket, actor: User, now: datetime, expected_version: int | None = None) -> Ticket:
    return assign(ticket, actor, actor, now, expected_version)


def assign(
    ticket: Ticket, actor: User, assignee: User | None, now: datetime, expected_version: int | None = None
) -> Ticket:
    """Give the ticket to `assignee` (None to unassign). Taking a new ticket puts it "en cours"."""
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    _require_open(ticket, "l'attribuer")
    if assignee is not None and not policy.can_work(assignee, ticket):
        raise ValidationFailed(
            f"{assignee.display_name} ne peut pas traiter les tickets de {ticket.organisation.name}.",
            {"assignee": "Personne non habilitée pour cette file."},
        )
    before = ticket.assignee.display_name if ticket.assignee else None
    ticket.assignee = assignee
    record_event(
        ticket,
        "ticket.assigned",
        now,
        actor,
        {"before": before, "after": assignee.display_name if assignee else None},
        is_public=False,
    )
    if assignee is not None and ticket.status == NOUVEAU:
        _set_status(ticket, EN_COURS, now, actor)
    return _finish(ticket, now)


def set_priority(
    ticket: Ticket, actor: User, priority: str, now: datetime, expected_version: int | None = None,
    justification: str = "",
) -> Ticket:
    """Set the priority after diagnosis (Toodego annex § 6.1.a); the SLA clock starts at the first one."""
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    _require_open(ticket, "changer la priorité")
    if priority not in PRIORITIES:
        raise ValidationFailed("Priorité inconnue.", {"priority": "Choisissez bloquant, majeur ou mineur."})
    if priority == ticket.priority:
        raise WorkflowError(f"La priorité est déjà « {PRIORITIES[priority]} ».")
    before = ticket.priority
    ticket.priority = priority
    if ticket.priority_set_at is None:
        ticket.priority_set_at = now
    record_event(
        ticket,
        "priority.set",
        now,
        actor,
        {"before": before, "after": priority, "justification": justification.strip()},
        is_public=False,
    )
    if ticket.status == NOUVEAU:
        if ticket.assignee is None:
            ticket.assignee = actor
        _set_status(ticket, EN_COURS, now, actor)
    return _finish(ticket, now)


def add_comment(
    ticket: Ticket, actor: User, body: str, now: datetime, *, internal: bool, expected_version: int | None = None
) -> Comment:
    """A public reply (the requester sees it) or an internal note."""
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    body = _clean_body(body)
    if ticket.status in (CLOS, REJETE, DOUBLON) and not internal:
        raise WorkflowError(f"Impossible de répondre : le ticket est « {ticket.status_label} ».")
    comment = Comment(
        author=actor, author_label=actor.display_name, is_internal=internal, body=body, created_at=now
    )
    ticket.comments.append(comment)
    db.session.flush()
    if not internal and ticket.first_response_at is None:
        ticket.first_response_at = now
    record_event(
        ticket,
        "comment.internal" if internal else "comment.public",
        now,
        actor,
        {"comment_id": comment.id},
        is_public=not internal,
    )
    if not internal and ticket.status == NOUVEAU:
        if ticket.assignee is None:
            ticket.assignee = actor
        _set_status(ticket, EN_COURS, now, actor)
    _finish(ticket, now)
    return comment


def request_information(
    ticket: Ticket, actor: User, question: str, now: datetime, expected_version: int | None = None
) -> Ticket:
    """Ask the requester a question: a public reply, and the ticket waits ("en attente")."""
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    _require_open(ticket, "demander des informations")
    if ticket.status == EN_ATTENTE:
        raise WorkflowError("Le ticket est déjà en attente d'une réponse du demandeur.")
    add_comment(ticket, actor, question, now, internal=False)
    _set_status(ticket, EN_ATTENTE, now, actor)
    record_event(ticket, "ticket.waiting", now, actor, {}, is_public=False)
    return _finish(ticket, now)


def resolve(ticket: Ticket, actor: User, note: str, now: datetime, expected_version: int | None = None) -> Ticket:
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    _require_open(ticket, "résoudre le ticket")
    note = _clean_body(note, field="resolution_note", what="la note de résolution")
    if ticket.status == EN_ATTENTE:
        record_event(ticket, "ticket.waiting_ended", now, actor, {}, is_public=False)
    ticket.resolution_note = note
    ticket.resolved_at = now
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    if ticket.assignee is None:
        ticket.assignee = actor
    _set_status(ticket, RESOLU, now, actor)
    record_event(ticket, "ticket.resolved", now, actor, {"resolution_note": note})
    return _finish(ticket, now)


def close(ticket: Ticket, actor: User | None, now: datetime, expected_version: int | None = None) -> Ticket:
    """Close a resolved ticket (by an agent, or by the system after the reopen window)."""
    _check_version(ticket, expected_version)
    if actor is not None:
        _require_work(actor, ticket)
    if ticket.status != RESOLU:
        raise WorkflowError("Seul un ticket résolu peut être clos.")
    ticket.closed_at = now
    _set_status(ticket, CLOS, now, actor)
    record_event(ticket, "ticket.closed", now, actor, {})
    return _finish(ticket, now)


def reject(
    ticket: Ticket, actor: User, reason: str, now: datetime, expected_version: int | None = None,
    duplicate_of: Ticket | None = None,
) -> Ticket:
    """Reject the ticket, or mark it a duplicate of another, with a reason."""
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    _require_open(ticket, "rejeter le ticket")
    reason = _clean_body(reason, field="reason", what="le motif")
    if duplicate_of is not None:
        if duplicate_of.id == ticket.id:
            raise ValidationFailed("Un ticket ne peut pas être le doublon de lui-même.", {"duplicate_of": "Invalide."})
        ticket.duplicate_of = duplicate_of
    status = DOUBLON if duplicate_of is not None else REJETE
    ticket.status_reason = reason
    ticket.closed_at = now
    _set_status(ticket, status, now, actor, reason=reason,
                duplicate_of=duplicate_of.reference if duplicate_of is not None else None)
    record_event(
        ticket, "ticket.duplicate" if duplicate_of else "ticket.rejected", now, actor,
        {"reason": reason, "duplicate_of": duplicate_of.reference if duplicate_of else None},
    )
    return _finish(ticket, now)


def escalate(ticket: Ticket, actor: User, reason: str, now: datetime, expected_version: int | None = None) -> Ticket:
    """Level 1 → level 2: the Métropole's support (laclasse.com annex: 2nd level by the Métropole)."""
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    _require_open(ticket, "escalader le ticket")
    if ticket.level == 2:
        raise WorkflowError("Le ticket est déjà au niveau 2.")
    reason = _clean_body(reason, field="reason", what="le motif")
    target = metropole()
    before = {"organisation": ticket.organisation.code, "level": ticket.level}
    ticket.organisation = target
    ticket.level = 2
    ticket.assignee = None
    ticket.needs_triage = False
    record_event(
        ticket, "ticket.escalated", now, actor,
        {"before": before, "after": {"organisation": target.code, "level": 2}, "organisation_name": target.name,
         "reason": reason},
    )
    if ticket.status != NOUVEAU:
        _set_status(ticket, NOUVEAU, now, actor)
    return _finish(ticket, now)


def transfer(
    ticket: Ticket, actor: User, organisation: Organisation, reason: str, now: datetime,
    expected_version: int | None = None,
) -> Ticket:
    """Send the ticket to another organisation's queue, with a reason."""
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    _require_open(ticket, "transférer le ticket")
    if organisation.id == ticket.organisation_id:
        raise ValidationFailed("Le ticket est déjà dans la file de cette organisation.", {"organisation": "Identique."})
    reason = _clean_body(reason, field="reason", what="le motif")
    before = {"organisation": ticket.organisation.code, "level": ticket.level}
    ticket.organisation = organisation
    ticket.assignee = None
    ticket.needs_triage = False
    record_event(
        ticket, "ticket.transferred", now, actor,
        {"before": before, "after": {"organisation": organisation.code, "level": ticket.level},
         "organisation_name": organisation.name, "reason": reason},
    )
    if ticket.status != NOUVEAU:
        _set_status(ticket, NOUVEAU, now, actor)
    return _finish(ticket, now)


def reopen_by_agent(ticket: Ticket, actor: User, reason: str, now: datetime, expected_version: int | None = None) -> Ticket:
    _check_version(ticket, expected_version)
    _require_work(actor, ticket)
    if ticket.status != RESOLU:
        raise WorkflowError("Seul un ticket résolu peut être rouvert.")
    reason = _clean_body(reason, field="reason", what="le motif")
    return _reopen(ticket, actor, reason, now)


# --- requester actions ------------------------------------------------------------------------


def requester_reply(
    ticket: Ticket, principal: policy.Principal, body: str, now: datetime, expected_version: int | None = None
) -> Comment:
    """The requester answers; a ticket waiting for them goes back "en cours"."""
    _check_version(ticket, expected_version)
    if not policy.is_requester(principal, ticket):
        raise PermissionDenied("Seul le demandeur peut répondre ici.")
    if ticket.status not in OPEN_STATUSES:
        raise WorkflowError(
            f"Votre demande est « {ticket.status_label} » : vous ne pouvez plus y répondre."
            + (" Vous pouvez la rouvrir si le problème persiste." if ticket.status == RESOLU else "")
        )
    body = _clean_body(body)
    label = principal.user.display_name if principal.user else (ticket.requester_email or "Demandeur")
    comment = Comment(
        author=principal.user, author_label=label, is_internal=False, is_from_requester=True, body=body,
        created_at=now,
    )
    ticket.comments.append(comment)
    db.session.flush()
    record_event(ticket, "requester.replied", now, principal.user, {"comment_id": comment.id}, actor_label=label)
    if ticket.status == EN_ATTENTE:
        record_event(ticket, "ticket.waiting_ended", now, principal.user, {}, is_public=False, actor_label=label)
        _set_status(ticket, EN_COURS, now, principal.user)
    _finish(ticket, now)
    return comment


def reopen_window_ends_at(ticket: Ticket, window_days: int) -> datetime | None:
    if ticket.status != RESOLU or ticket.resolved_at is None:
        return None
    return ticket.resolved_at + timedelta(days=window_days)


def reopen_by_requester(
    ticket: Ticket, principal: policy.Principal, reason: str, now: datetime, window_days: int,
    expected_version: int | None = None,
) -> Ticket:
    _check_version(ticket, expected_version)
    if not policy.is_requester(principal, ticket):
        raise PermissionDenied("Seul le demandeur peut rouvrir sa demande.")
    if ticket.status != RESOLU:
        raise WorkflowError("Seule une demande résolue peut être rouverte.")
    ends_at = reopen_window_ends_at(ticket, window_days)
    if ends_at is not None and now > ends_at:
        raise WorkflowError(
            f"Le délai de réouverture ({window_days} jours après la résolution) est dépassé : "
            "merci de faire une nouvelle demande."
        )
    reason = _clean_body(reason, field="reason", what="le motif")
    label = principal.user.display_name if principal.user else (ticket.requester_email or "Demandeur")
    comment = Comment(author=principal.user, author_label=label, is_from_requester=True, body=reason, created_at=now)
    ticket.comments.append(comment)
    db.session.flush()
    return _reopen(ticket, principal.user, reason, now, actor_label=label, comment_id=comment.id)


def _reopen(
    ticket: Ticket, actor: User | None, reason: str, now: datetime, actor_label: str | None = None,
    comment_id: int | None = None,
) -> Ticket:
    ticket.resolved_at = None
    before = ticket.status
    ticket.status = EN_COURS
    record_event(ticket, "status.changed", now, actor, {"before": before, "after": EN_COURS}, actor_label=actor_label)
    record_event(ticket, "ticket.reopened", now, actor, {"reason": reason, "comment_id": comment_id},
                 actor_label=actor_label)
    return _finish(ticket, now)


# --- helpers ----------------------------------------------------------------------------------

MAX_BODY = 20_000


def _clean_body(body: str | None, field: str = "body", what: str = "le message") -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationFailed(f"Saisissez {what}.", {field: "Champ obligatoire."})
    if len(body) > MAX_BODY:
        raise ValidationFailed(
            f"{what.capitalize()} est trop long ({len(body)} caractères, {MAX_BODY} au plus).",
            {field: f"{MAX_BODY} caractères au plus."},
        )
    return body


def get_ticket(reference: str) -> Ticket:
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
    if ticket is None:
        raise NotFound("Aucun ticket ne porte cette référence.")
    return ticket


def status_label(status: str) -> str:
    return STATUSES.get(status, status)
