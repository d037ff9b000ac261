"""What differs between Airflow 2 and 3 at a front (airgate/web/signin.py), and the front's
own answers for Airflow 2: its reserved sign-in route and where `/login/` sends a browser
back to."""

from __future__ import annotations

import pytest

from airgate.web.front import _local_path, _reserved
from airgate.web.signin import AIRFLOW_2_SIGN_IN, AIRFLOW_3_SIGN_IN, sign_in_for


def test_the_sign_in_follows_the_major_version() -> None:
    assert sign_in_for("2.10.3") is AIRFLOW_2_SIGN_IN
    assert sign_in_for("2.7.2") is AIRFLOW_2_SIGN_IN
    assert sign_in_for("3.3.2") is AIRFLOW_3_SIGN_IN
    with pytest.raises(ValueError):
        sign_in_for("1.10.12")
    assert (AIRFLOW_2_SIGN_IN.login_path, AIRFLOW_3_SIGN_IN.login_path) == (
        "/aws_mwaa/login", "/pluginsv2/aws_mwaa/login")
    assert AIRFLOW_3_SIGN_IN.password_pages == frozenset()


def test_cookies_a_login_sets_and_a_sign_out_clears() -> None:
    assert AIRFLOW_2_SIGN_IN.cookies("blue", "S", "/aws_mwaa/login", True) == [
        b"airgate.session.blue=S; Path=/; HttpOnly; SameSite=Lax; Secure",
        b"session=S; Path=/; HttpOnly; SameSite=Lax; Secure"]
    assert AIRFLOW_3_SIGN_IN.cookies("blue", "S", "/aws_mwaa/login", False) == [
        b"airgate.session.blue=S; Path=/; HttpOnly; SameSite=Lax",
        b"_token=S; Path=/aws_mwaa/login; HttpOnly; SameSite=Lax"]
    assert AIRFLOW_2_SIGN_IN.cleared_cookies("blue", False) == [
        b"airgate.session.blue=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        b"session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
    assert AIRFLOW_3_SIGN_IN.cleared_cookies("blue", False) == [
        b"airgate.session.blue=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]


@pytest.mark.parametrize(("method", "path", "status", "cleared", "airflow_2", "airflow_3"), [
    ("POST", "/logout/", 302, frozenset(), True, False),  # Airflow 2.10+: POST with CSRF
    ("GET", "/logout/", 302, frozenset(), True, False),  # before 2.10
    ("POST", "/logout/", 400, frozenset(), False, False),  # its CSRF check refused it
    ("GET", "/home", 200, frozenset({"session"}), True, False),
    ("GET", "/api/v2/auth/logout", 307, frozenset({"_token"}), False, True),
    ("GET", "/home", 302, frozenset(), False, False),
])
def test_what_signs_a_user_out(method: str, path: str, status: int,
                               cleared: frozenset[str], airflow_2: bool,
                               airflow_3: bool) -> None:
    assert AIRFLOW_2_SIGN_IN.signed_out(method, path, status, cleared) is airflow_2
    assert AIRFLOW_3_SIGN_IN.signed_out(method, path, status, cleared) is airflow_3


@pytest.mark.parametrize(("path", "reserved"), [
    ("/airgate/login", True), ("/airgate/login/", True), ("//airgate/login", True),
    ("/./airgate/login", True), ("/AIRGATE/login", True), ("/airgate", True),
    ("/airgates/login", False), ("/home", False), ("/api/v1/airgate/login", False),
])
def test_airgates_own_routes_are_reserved(path: str, reserved: bool) -> None:
    assert _reserved(path) is reserved


@pytest.mark.parametrize(("next_url", "location"), [
    ("/home", "/home"),
    ("/dags/x/grid?tab=graph", "/dags/x/grid?tab=graph"),
    ("http://127.0.0.1:41234/home", "/home"),  # Airflow names its own port: ours instead
    ("https://evil.example/steal?x=1", "/steal?x=1"),  # the path only, on this origin
    ("//evil.example/x", "/x"), ("/\\evil.example/x", "/"), ("http://x//evil.example", "/"),
    ("javascript:alert(1)", "/"), ("", "/"), ("/a\r\nSet-Cookie: x=1", "/"),
    ("/a\tb", "/"), ("/caf\u00e9", "/"),
])
def test_login_sends_a_browser_back_only_to_this_origin(next_url: str,
                                                        location: str) -> None:
    assert _local_path(next_url) == location
