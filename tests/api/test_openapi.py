"""The OpenAPI document at /api/v1/openapi.json describes the API that is actually served."""
from __future__ import annotations

import re
from typing import Any

import pytest

DOC_URL = "/api/v1/openapi.json"


@pytest.fixture()
def doc(client) -> dict[str, Any]:
    response = client.get(DOC_URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def test_document_is_openapi_3_1_with_resolvable_refs(doc):
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["servers"] == [{"url": "/api/v1"}]
    refs = _refs(doc)
    assert refs, "the document should share its schemas through $ref"
    for ref in refs:
        _resolve(doc, ref)


def test_every_served_api_route_is_documented(app, doc):
    served: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == DOC_URL:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len("/api/v1"):])
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method.lower()))
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert served, "no API route found"
    assert served <= documented, f"undocumented: {sorted(served - documented)}"
    assert documented <= served, f"documented but not served: {sorted(documented - served)}"


def test_contract_operations_are_present(doc):
    paths = doc["paths"]
    assert "post" in paths["/requests"] and "201" in paths["/requests"]["post"]["responses"]
    assert "get" in paths["/requests/{reference}"]
    for action in ("priority", "status", "comments", "assign", "escalate", "transfer"):
        operation = paths[f"/tickets/{{reference}}/{action}"]["post"]
        assert "409" in operation["responses"] and "422" in operation["responses"]
        assert any(p["name"] == "If-Match" and p["in"] == "header" for p in operation["parameters"])


def test_new_request_schema_matches_the_contract(doc):
    schema = _resolve(doc, doc["paths"]["/requests"]["post"]["requestBody"]["content"]["application/json"]["schema"]
                      ["$ref"])
    assert set(schema["required"]) == {"service", "subject", "description"}
    assert {"service", "subject", "description", "commune", "category", "email", "page_url"} <= set(
        schema["properties"])
    assert schema["additionalProperties"] is False  # unknown fields are refused, as the API does
    assert schema["properties"]["subject"]["maxLength"] == 200
    assert schema["properties"]["description"]["maxLength"] == 10_000


def test_created_request_conforms_to_the_documented_ticket(client, doc):
    ticket_schema = doc["components"]["schemas"]["Ticket"]
    response = client.post("/api/v1/requests", json={
        "service": "toodego", "category": "compte", "subject": "Compte bloqué",
        "description": "Je ne peux plus me connecter à mon compte.", "email": "a@example.org"})
    assert response.status_code == 201
    data = response.get_json()

    for key in ticket_schema["required"]:
        assert key in data, key
    assert re.fullmatch(ticket_schema["properties"]["reference"]["pattern"], data["reference"])
    assert data["status"] in ticket_schema["properties"]["status"]["enum"]
    assert data["level"] in ticket_schema["properties"]["level"]["enum"]
    org = doc["components"]["schemas"]["Organisation"]
    assert set(data["routed_to"]) == set(org["properties"])
    assert data["routed_to"]["kind"] in org["properties"]["kind"]["enum"]


def test_documented_error_shape_is_the_one_served(client, doc):
    error_schema = doc["components"]["schemas"]["Error"]
    response = client.post("/api/v1/requests", json={"service": "geonet"})
    assert response.status_code == 422
    body = response.get_json()
    assert set(body) == set(error_schema["required"])
    assert set(error_schema["properties"]["error"]["required"]) <= set(body["error"])
    assert set(body["error"]) <= set(error_schema["properties"]["error"]["properties"])


def test_every_post_documents_idempotency_headers(doc):
    posts = {path: item["post"] for path, item in doc["paths"].items() if "post" in item}
    assert posts
    for path, operation in posts.items():
        params = [_resolve(doc, p["$ref"]) if "$ref" in p else p for p in operation.get("parameters", [])]
        keys = [p for p in params if p["name"] == "Idempotency-Key"]
        assert len(keys) == 1 and keys[0]["in"] == "header" and not keys[0]["required"], path
        assert keys[0]["schema"]["maxLength"] >= 36, path  # a UUID fits
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert successes, path
        for response in successes.values():
            assert "Idempotent-Replayed" in response.get("headers", {}), path
    for item in doc["paths"].values():  # not on reads
        for method, operation in item.items():
            if method == "get":
                assert all("Idempotency" not in str(p) for p in operation.get("parameters", []))


def test_documented_replay_header_is_what_a_replay_sends(client, doc):
    body = {"service": "toodego", "category": "teleservice-communal", "commune": "69081",
            "subject": "Inscription cantine impossible", "description": "Le paiement échoue à la dernière étape.",
            "email": "parent@example.org"}
    headers = {"Idempotency-Key": "openapi-replay-1"}
    first = client.post("/api/v1/requests", json=body, headers=headers)
    again = client.post("/api/v1/requests", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    header = doc["components"]["headers"]["IdempotentReplayed"]
    assert again.headers["Idempotent-Replayed"] in header["schema"]["enum"]
    assert again.get_json()["reference"] == first.get_json()["reference"]
