"""The end-of-run secret scan finds what it is meant to find (so that its zero means
something)."""

from __future__ import annotations

import json

import jwt

from tests import leak_scan


def test_finds_issued_secrets_canaries_and_jwts() -> None:
    leak_scan._secrets.add("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    canary = leak_scan.remember_canary("canary-0123456789")
    token = jwt.encode({"sub": "user/a", "role": "admin"}, "k" * 32, algorithm="HS256")
    line = json.dumps({"message": "called", "key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                       "note": canary, "auth": f"Bearer {token}"})
    hits = leak_scan._hits(line)
    assert len(hits) == 3
    assert leak_scan._hits(json.dumps({"message": "called", "path": "/dags"})) == []


def test_the_modeled_airflow_answer_is_left_out_of_error_responses() -> None:
    canary = leak_scan.remember_canary("canary-answer-42")
    recorded = json.dumps({"status": 400, "body": json.dumps(
        {"message": "Airflow answered 400", "RestApiResponse": {"detail": canary}})})
    assert leak_scan._hits(leak_scan._error_response_text(recorded)) == []
    echoed = json.dumps({"status": 400, "body": json.dumps({"message": f"bad {canary}"})})
    assert leak_scan._hits(leak_scan._error_response_text(echoed)) != []
