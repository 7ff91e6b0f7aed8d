"""Optimistic locking: when two agents change the same ticket, one succeeds and the other is told, in the UI
(a conflict message) or the API (409); nothing is overwritten silently, also under true concurrency."""
from __future__ import annotations

import threading
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm.exc import StaleDataError

from sau.auth.models import Membership, User
from sau.extensions import db
from sau.orgs.models import Organisation
from sau.tickets import operations as ops
from sau.tickets.models import Comment, Ticket, TicketEvent
from tests.conftest import user_id

CONFLICT_TEXT = "modifié par quelqu'un d'autre"


class _Page(HTMLParser):
    """Collects the values of <input> fields and the flash messages (class "alert alert-<category>")."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.flashes: list[tuple[str, str]] = []
        self._flash: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and "name" in a:
            self.inputs[a["name"]] = a.get("value", "")
        classes = a.get("class", "").split()
        if tag == "div" and "alert" in classes and a.get("role") in ("alert", "status"):
            category = next((c[len("alert-"):] for c in classes if c.startswith("alert-")), "")
            self._flash = category
            self.flashes.append((category, ""))

    def handle_data(self, data: str) -> None:
        if self._flash is not None:
            category, text = self.flashes[-1]
            self.flashes[-1] = (category, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._flash = None


def page(client: FlaskClient, path: str) -> _Page:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    parsed = _Page()
    parsed.feed(response.get_data(as_text=True))
    return parsed


def make_agent(app: Flask, email: str, commune: str) -> int:
    """A second agent of `commune`, created through the models as an admin would."""
    from sau.clock import now_utc

    with app.app_context():
        org = db.session.scalar(sa.select(Organisation).where(Organisation.code == commune))
        user = User(email=email, given_name="Élise", family_name="Second", created_at=now_utc())
        db.session.add(user)
        db.session.add(Membership(user=user, organisation=org, role="agent", created_at=now_utc()))
        db.session.commit()
        return user.id


def signed_in(app: Flask, uid: int) -> FlaskClient:
    client = app.test_client()
    with client.session_transaction() as sess:
        sess["_user_id"] = str(uid)
        sess["_fresh"] = True
    return client


def state(app: Flask, reference: str) -> dict[str, Any]:
    with app.app_context():
        t = db.session.scalar(sa.select(Ticket).where(Ticket.reference == reference))
        return {
            "version": t.version, "status": t.status, "priority": t.priority, "assignee_id": t.assignee_id,
            "comments": [c.body for c in db.session.scalars(sa.select(Comment).where(Comment.ticket_id == t.id)
                                                            .order_by(Comment.id))],
            "event_types": [e.type for e in db.session.scalars(sa.select(TicketEvent)
                                                                .where(TicketEvent.ticket_id == t.id)
                                                                .order_by(TicketEvent.id))],
        }


@pytest.fixture()
def two_agents(app: Flask) -> tuple[FlaskClient, FlaskClient]:
    first = signed_in(app, user_id(app, "agent_ecully"))
    second = signed_in(app, make_agent(app, "elise.second@ville-ecully.example", "69081"))
    return first, second


# --- (a) the agent workspace ------------------------------------------------------------------------------------


def test_ui_second_agent_gets_a_conflict_message_and_nothing_is_saved(app, make_request, two_agents):
    ref = make_request()
    first, second = two_agents
    url = f"/agent/tickets/{ref}"
    first_page, second_page = page(first, url), page(second, url)  # both open the ticket
    read_version = second_page.inputs["comment-version"]
    assert first_page.inputs["priority-version"] == read_version == str(state(app, ref)["version"])

    response = first.post(f"{url}/priorite", data={
        "priority-csrf_token": first_page.inputs["priority-csrf_token"],
        "priority-version": first_page.inputs["priority-version"],
        "priority-priority": "majeur", "priority-justification": "Fonction non essentielle indisponible"})
    assert response.status_code == 303
    assert ("success", "Priorité enregistrée.") in page(first, url).flashes
    after_first = state(app, ref)
    assert after_first["priority"] == "majeur" and after_first["version"] > int(read_version)

    response = second.post(f"{url}/commenter", data={
        "comment-csrf_token": second_page.inputs["comment-csrf_token"],
        "comment-version": read_version, "comment-body": "Réponse écrite sur une page périmée"})
    assert response.status_code == 303 and response.headers["Location"].endswith(url)

    shown = page(second, url)
    conflicts = [text for category, text in shown.flashes if category == "conflict"]
    assert len(conflicts) == 1 and CONFLICT_TEXT in conflicts[0], shown.flashes
    assert state(app, ref) == after_first  # the comment was not saved, nothing else moved
    # The reloaded page carries the new version: the second agent can now post.
    assert shown.inputs["comment-version"] == str(after_first["version"])
    response = second.post(f"{url}/commenter", data={
        "comment-csrf_token": shown.inputs["comment-csrf_token"], "comment-version": shown.inputs["comment-version"],
        "comment-body": "Réponse écrite après rechargement"})
    assert ("success", "Message enregistré.") in page(second, url).flashes
    final = state(app, ref)
    assert final["comments"] == ["Réponse écrite après rechargement"] and final["priority"] == "majeur"


def test_ui_stale_status_change_is_refused(app, make_request, two_agents):
    ref = make_request()
    first, second = two_agents
    url = f"/agent/tickets/{ref}"
    first_page, second_page = page(first, url), page(second, url)

    first.post(f"{url}/resoudre", data={"resolve-csrf_token": first_page.inputs["resolve-csrf_token"],
                                         "resolve-version": first_page.inputs["resolve-version"],
                                         "resolve-note": "Cache vidé : la démarche fonctionne."})
    resolved = state(app, ref)
    assert resolved["status"] == "resolu"
    second.post(f"{url}/rejeter", data={"reject-csrf_token": second_page.inputs["reject-csrf_token"],
                                         "reject-version": second_page.inputs["reject-version"],
                                         "reject-reason": "Hors champ"})
    assert any(c == "conflict" and CONFLICT_TEXT in t for c, t in page(second, url).flashes)
    assert state(app, ref) == resolved


# --- (b) the API, sequentially ----------------------------------------------------------------------------------


def test_api_same_if_match_twice_one_200_one_409(app, make_request, two_agents):
    ref = make_request()
    first, second = two_agents
    version = first.get(f"/api/v1/requests/{ref}").get_json()["version"]
    assert second.get(f"/api/v1/requests/{ref}").get_json()["version"] == version
    headers = {"If-Match": f'"{version}"'}

    ok = first.post(f"/api/v1/tickets/{ref}/priority", json={"priority": "bloquant"}, headers=headers)
    stale = second.post(f"/api/v1/tickets/{ref}/comments", json={"body": "Réponse périmée"}, headers=headers)

    assert ok.status_code == 200, ok.get_data(as_text=True)
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "conflict"
    assert CONFLICT_TEXT in stale.get_json()["error"]["message"]
    final = state(app, ref)
    assert final["priority"] == "bloquant" and final["comments"] == []
    assert final["version"] == ok.get_json()["version"]


# --- (c) true concurrency ---------------------------------------------------------------------------------------

Action = Callable[[Ticket, User, int], Any]


def _set_priority(priority: str) -> Action:
    return lambda ticket, actor, version: ops.set_priority(ticket, actor, priority, ops_now(), version)


def _comment(body: str) -> Action:
    return lambda ticket, actor, version: ops.add_comment(ticket, actor, body, ops_now(), internal=False,
                                                         expected_version=version)


def _resolve(note: str) -> Action:
    return lambda ticket, actor, version: ops.resolve(ticket, actor, note, ops_now(), version)


def ops_now() -> Any:
    from sau.clock import now_utc

    return now_utc()


def _race(app: Flask, reference: str, actors: list[int], actions: list[Action]) -> list[str]:
    """Run each action in its own thread and app context; every thread reads the ticket, then all wait at a
    barrier, then all write. Returns "ok" or "conflict" per thread."""
    barrier = threading.Barrier(len(actions), timeout=30)
    results: list[str] = ["?"] * len(actions)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        with app.app_context():
            try:
                ticket = ops.get_ticket(reference)
                actor = db.session.get(User, actors[index])
                version = ticket.version
                # Load what the operation reads lazily, so both reads are complete before the barrier.
                _ = (actor.memberships, [m.organisation for m in actor.memberships], ticket.organisation,
                     ticket.events, ticket.comments, ticket.assignee)
                barrier.wait()
                try:
                    actions[index](ticket, actor, version)
                    db.session.commit()
                    results[index] = "ok"
                except StaleDataError:
                    # Both read the same version: the application-level check passed for both, and it is the
                    # database's versioned UPDATE that refuses the second write.
                    db.session.rollback()
                    results[index] = "conflict"
            except Exception as exc:  # noqa: BLE001 — re-raised by the main thread
                errors.append(exc)
                barrier.abort()
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(actions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors
    return results


RACES = {
    "two-priorities": ([_set_priority("bloquant"), _set_priority("mineur")],
                       [lambda s: s["priority"] == "bloquant", lambda s: s["priority"] == "mineur"]),
    "priority-vs-reply": ([_set_priority("majeur"), _comment("Réponse concurrente")],
                          [lambda s: s["priority"] == "majeur" and s["comments"] == [],
                           lambda s: s["priority"] is None and s["comments"] == ["Réponse concurrente"]]),
    "reply-vs-resolve": ([_comment("Une précision"), _resolve("Réglé")],
                         [lambda s: s["status"] == "en_cours" and s["comments"] == ["Une précision"],
                          lambda s: s["status"] == "resolu" and s["comments"] == []]),
}


@pytest.mark.parametrize(("actions", "winner_states"), RACES.values(), ids=RACES.keys())
def test_concurrent_operations_exactly_one_wins(app, make_request, actions, winner_states):
    ref = make_request()
    second = make_agent(app, "elise.second@ville-ecully.example", "69081")
    before = state(app, ref)

    results = _race(app, ref, [user_id(app, "agent_ecully"), second], actions)

    assert sorted(results) == ["conflict", "ok"], results
    winner = results.index("ok")
    final = state(app, ref)
    assert winner_states[winner](final), (results, final)
    assert not winner_states[1 - winner](final), (results, final)  # the loser's change is nowhere
    assert final["version"] > before["version"]
    new_events = final["event_types"][len(before["event_types"]):]
    assert new_events.count("priority.set") + new_events.count("comment.public") \
        + new_events.count("ticket.resolved") == 1, new_events


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_api_calls_one_200_one_409(app, make_request, two_agents, round_):
    ref = make_request()
    clients = two_agents
    payloads = [("priority", {"priority": "bloquant"}), ("priority", {"priority": "mineur"})]
    barrier = threading.Barrier(2, timeout=30)
    responses: list[Any] = [None, None]
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            version = clients[index].get(f"/api/v1/requests/{ref}").get_json()["version"]
            barrier.wait()  # both have read the ticket before either writes
            action, payload = payloads[index]
            responses[index] = clients[index].post(f"/api/v1/tickets/{ref}/{action}", json=payload,
                                                   headers={"If-Match": f'"{version}"'})
        except Exception as exc:  # noqa: BLE001 — re-raised by the main thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 409], [r.get_data(as_text=True) for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
    loser = responses[1 - winner]
    assert loser.get_json()["error"]["code"] == "conflict"
    final = state(app, ref)
    assert final["priority"] == payloads[winner][1]["priority"]
    assert final["event_types"].count("priority.set") == 1
