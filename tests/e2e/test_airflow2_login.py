"""CreateWebLoginToken on an Airflow 2 environment (2.10.3, installed on first use), as MWAA
serves it: `/aws_mwaa/aws-console-sso` and `POST /aws_mwaa/login` sign the browser in to
Airflow 2's UI, with the cookie `session` that also works for `/api/v1`.

airgate's front signs the user in to Airflow (its web server's `/airgate/login`, for airgate
only) and keeps the Flask session Airflow answers inside airgate's own session: what the
browser holds under `session` (and `airgate.session.<ENV>`) is airgate's, which Airflow
refuses, and Airflow gets its Flask session only through this environment's front.

Against real Airflow: the API with the cookie (a Viewer refused by Airflow, an Op allowed),
refused tokens, sign-out, Airflow's password page, cookies between an Airflow 2 and an
Airflow 3 environment seen by code inside each (a plugin), a real browser, and the Amazon
provider's MwaaHook web-login fallback over HTTPS. The module shares one airgate home and
environment; the HTTPS test, last, starts airgate again over it with --tls.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
import ssl
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import jwt
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import (
    element_to_be_clickable as clickable,
)
from selenium.webdriver.support.expected_conditions import (
    visibility_of_element_located as visible,
)
from selenium.webdriver.support.wait import WebDriverWait

from airgate.airflow.tokens import audience
from airgate.server import local_runtime
from airgate.web.tokens import EnvironmentTokens
from tests.browser import headless_chromium, screenshot
from tests.e2e.serving import standard_aws_variables
from tests.e2e.test_runtime import api_url, create_args, wait_for, wait_for_status
from tests.support import RunningAirgate, running_airgate

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]

ENV = "classic"  # Airflow 2.10.3
ENV3 = "current"  # Airflow 3 (the one installed with airgate), for cookies between the two
SESSION_COOKIE = f"airgate.session.{ENV}"
ROLE_ARN = "arn:aws:airflow:us-east-1:000000000000:role/{env}/{role}"
DAG_ID = "airgate_hello"
DAG = f'''
import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(dag_id="{DAG_ID}", schedule=None, catchup=False,
         start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):
    BashOperator(task_id="say_hello", bash_command="echo hello")
'''
# Tenant code in each environment that shows what reaches its Airflow of a request.
ECHO_AIRFLOW_2 = '''
from airflow.plugins_manager import AirflowPlugin
from flask import Blueprint, jsonify, request

echo = Blueprint("airgate_echo", __name__)


@echo.route("/echo/request")
def what_reached_airflow():
    return jsonify(cookie=request.headers.get("Cookie", ""),
                   authorization=request.headers.get("Authorization", ""))


class EchoPlugin(AirflowPlugin):
    name = "echo"
    flask_blueprints = [echo]
'''
ECHO_AIRFLOW_3 = '''
from fastapi import FastAPI, Request

from airflow.plugins_manager import AirflowPlugin

app = FastAPI()


@app.get("/request")
def what_reached_airflow(request: Request):
    return {"cookie": request.headers.get("cookie", ""),
            "authorization": request.headers.get("authorization", "")}


class EchoPlugin(AirflowPlugin):
    name = "echo"
    fastapi_apps = [{"app": app, "url_prefix": "/echo", "name": "echo"}]
'''


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class Airgate:
    """airgate over one home with the Airflow 2 environment, started again with or without
    TLS when a test needs the other (the environment, its runtime and data kept)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.tls: bool | None = None
        self._context: Any = None
        self._server: RunningAirgate | None = None

    def serve(self, tls: bool = False) -> RunningAirgate:
        if self._server is not None and self.tls == tls:
            return self._server
        self.stop()
        self._context = running_airgate(self.home, runtime_factory=local_runtime, tls=tls)
        server: RunningAirgate = self._context.__enter__()
        self._server, self.tls = server, tls
        mwaa = server.client()
        if ENV not in mwaa.list_environments()["Environments"]:
            mwaa.create_environment(**create_args(
                ENV, AirflowVersion="2.10.3", DagS3Path="dags2",
                PluginsS3Path="plugins2.zip"))
        wait_for_status(mwaa, ENV, "AVAILABLE", timeout=900)  # the runtime's install first
        wait_for(lambda: dag_ids(server) == [DAG_ID], 180, "the DAG to be parsed", 1.0)
        return server

    def stop(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = self._server = None


def dag_ids(server: RunningAirgate) -> list[str] | None:
    try:
        answer = server.client().invoke_rest_api(Name=ENV, Method="GET", Path="/dags")
    except botocore.exceptions.ClientError:  # Airflow not answering yet, after a restart
        return None
    return [dag["dag_id"] for dag in answer["RestApiResponse"]["dags"]]


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airgate]:
    home = tmp_path_factory.mktemp("airflow2") / "home"
    bucket = home / "buckets" / "data-team"
    (bucket / "dags2").mkdir(parents=True)
    (bucket / "dags2" / f"{DAG_ID}.py").write_text(DAG)
    (bucket / "dags3").mkdir()
    (bucket / "plugins2.zip").write_bytes(zipped({"airgate_echo.py": ECHO_AIRFLOW_2}))
    (bucket / "plugins3.zip").write_bytes(zipped({"airgate_echo.py": ECHO_AIRFLOW_3}))
    harness = Airgate(home)
    yield harness
    harness.stop()


@pytest.fixture
def server(harness: Airgate) -> RunningAirgate:
    return harness.serve(tls=False)


def tokens(server: RunningAirgate) -> EnvironmentTokens:
    fronts = server.airgate.fronts
    assert fronts is not None
    return fronts.tokens


def login_client(server: RunningAirgate, name: str, role: str,
                 environments: tuple[str, ...] = (ENV,)) -> Any:
    """A boto3 MWAA client for a new IAM user allowed to sign in with `role`."""
    identities = server.airgate.identities
    identities.create_user(name)
    identities.put_inline_policy("user", name, "login", json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "airflow:CreateWebLoginToken",
             "Resource": [ROLE_ARN.format(env=env, role=role) for env in environments]}]}))
    return server.client(identities.create_access_key(name))


def sign_in(login: dict[str, Any], scheme: str = "http", **options: Any) -> httpx.Response:
    """What MWAA's documented Airflow 2 client does: POST the token to /aws_mwaa/login."""
    return httpx.post(f"{scheme}://{login['WebServerHostname']}/aws_mwaa/login",
                      data={"token": login["WebToken"]}, timeout=60, **options)


def flask_session_of(server: RunningAirgate, session: str) -> str:
    """The Flask session Airflow issued, which airgate's session keeps sealed."""
    kept = tokens(server).check(session, "session", ENV).airflow_session
    assert kept is not None and re.fullmatch(r"[0-9a-f-]{36}\.[\w-]+", kept), kept
    return kept


# --- the web login, with clients --------------------------------------------------------------

def test_a_login_gives_mwaas_session_cookie_which_works_for_the_api(
        server: RunningAirgate) -> None:
    login = login_client(server, "web-op", "Op").create_web_login_token(Name=ENV)
    assert login["AirflowIdentity"] == "user/web-op"
    answer = sign_in(login)
    assert answer.status_code == 200 and 'url=/"' in answer.text
    session = answer.cookies["session"]
    assert answer.headers.get_list("set-cookie") == [
        f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax",
        f"session={session}; Path=/; HttpOnly; SameSite=Lax"]
    # What the browser holds is not Airflow's session: Airflow itself refuses it.
    webserver = api_url(server, ENV)
    assert httpx.get(f"{webserver}/api/v1/dags", cookies={"session": session}
                     ).status_code == 401
    claims = jwt.decode(session, options={"verify_signature": False})
    assert (claims["aud"], claims["sub"], claims["role"]) == (
        f"urn:airgate:session:{ENV}", "user/web-op", "Op")

    # As MWAA's documentation and dagster-airlift do: cookies={"session": ...}.
    with httpx.Client(base_url=f"http://{login['WebServerHostname']}", timeout=60,
                      cookies={"session": session}) as client:
        dags = client.get("/api/v1/dags")
        assert dags.status_code == 200, dags.text
        assert [dag["dag_id"] for dag in dags.json()["dags"]] == [DAG_ID]
        created = client.post("/api/v1/variables", json={"key": "from-op", "value": "1"})
        assert created.status_code == 200, created.text
        home = client.get("/home")
        assert home.status_code == 200 and 'title="user/web-op (IAM)"' in home.text
        assert home.headers.get_list("set-cookie") == []  # Airflow's own never gets out

    # The Flask session airgate keeps for it is Airflow's, which the browser never sees.
    flask_session = flask_session_of(server, session)
    assert flask_session not in session
    assert httpx.get(f"{webserver}/api/v1/dags", cookies={"session": flask_session}
                     ).status_code == 200
    # Airflow's own session, presented to the front, is not a session there.
    refused = httpx.get(f"http://{login['WebServerHostname']}/api/v1/dags",
                        cookies={"session": flask_session})
    assert refused.status_code == 401


def test_a_viewer_may_read_but_airflow_refuses_its_changes(server: RunningAirgate) -> None:
    login = login_client(server, "web-viewer", "Viewer").create_web_login_token(Name=ENV)
    session = sign_in(login).cookies["session"]
    with httpx.Client(base_url=f"http://{login['WebServerHostname']}", timeout=60,
                      cookies={"session": session}) as client:
        assert client.get("/api/v1/dags").status_code == 200
        refused = client.post("/api/v1/variables", json={"key": "from-viewer", "value": "1"})
        assert refused.status_code == 403
        assert refused.json()["title"] == "Forbidden"  # Airflow's own answer


def test_used_forged_and_other_environments_tokens_are_refused(
        server: RunningAirgate) -> None:
    login = login_client(server, "web-once", "Op").create_web_login_token(Name=ENV)
    assert sign_in(login).status_code == 200
    issued = tokens(server)
    for bad in (login["WebToken"],  # used up
                issued.mint("web-login", "elsewhere", "user/web-once", "Op"),
                issued.mint("web-login", ENV3, "user/web-once", "Op"),
                issued.mint("cli", ENV, "user/web-once"), "forged", ""):
        refused = sign_in({**login, "WebToken": bad})
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"].startswith("Can't sign in: ")
        assert refused.headers.get_list("set-cookie") == []


def test_airflows_sign_in_route_is_not_reachable_through_the_front(
        server: RunningAirgate) -> None:
    key = server.airgate.runtime.signing_key(ENV)  # type: ignore[attr-defined]

    def assertion() -> str:
        return str(key.mint(subject="user/intruder", role="ADMIN", environment=ENV, ttl=30,
                            extra={"purpose": "web-login"}))

    hostname = server.client().create_cli_token(Name=ENV)["WebServerHostname"]
    for path in ("/airgate/login", "//airgate/login", "/airgate/%6Cogin"):
        answer = httpx.post(f"http://{hostname}{path}", data={"assertion": assertion()})
        assert (answer.status_code, answer.headers.get_list("set-cookie")) == (404, [])
        assert answer.json() == {"error": "Not found"}
    # The route is there, for airgate, on the web server's own port.
    direct = httpx.post(f"{api_url(server, ENV)}/airgate/login",
                        data={"assertion": assertion()})
    assert direct.status_code == 302 and "session" in direct.cookies


def test_signing_out_ends_the_session(server: RunningAirgate) -> None:
    login = login_client(server, "web-leaver", "Op").create_web_login_token(Name=ENV)
    session = sign_in(login).cookies["session"]
    flask_session = flask_session_of(server, session)
    front = f"http://{login['WebServerHostname']}"
    with httpx.Client(base_url=front, cookies={"session": session}, timeout=60) as browser:
        page = browser.get("/home").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        out = browser.post("/logout/", data={"csrf_token": csrf.group(1)},
                           headers={"Origin": front, "Referer": f"{front}/home"})
    assert out.status_code == 302
    assert out.headers.get_list("set-cookie") == [
        f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        "session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"]
    for cookie in ("session", SESSION_COOKIE):
        refused = httpx.get(f"{front}/api/v1/dags", cookies={cookie: session})
        assert (refused.status_code, refused.json()) == (401, {
            "error": f"Not signed in to environment {ENV}: The session has ended: sign in "
                     "again"})
    # Airflow signed its own session out as well.
    assert httpx.get(f"{api_url(server, ENV)}/api/v1/dags",
                     cookies={"session": flask_session}).status_code == 401


def test_airflows_password_page_sends_the_browser_to_sign_in_from_the_console(
        server: RunningAirgate) -> None:
    front = f"http://{server.client().create_cli_token(Name=ENV)['WebServerHostname']}"
    answer = httpx.get(f"{front}/login/")
    assert (answer.status_code, answer.headers.get("location")) == (
        302, "/aws_mwaa/aws-console-sso")
    # Not signed in, the UI ends there too: /home -> /login/ -> the SSO page, which says
    # how to sign in.
    landed = httpx.get(f"{front}/home", follow_redirects=True)
    assert [str(r.url.path) for r in landed.history] == ["/home", "/login/"]
    assert landed.url.path == "/aws_mwaa/aws-console-sso" and landed.status_code == 200
    assert "CreateWebLoginToken" in landed.text and 'action="/aws_mwaa/login"' in landed.text


def test_a_browser_whose_flask_session_airflow_lost_is_signed_in_to_airflow_again(
        server: RunningAirgate) -> None:
    """Airflow forgets Flask sessions (expired, `airflow db clean`): the browser it then
    sends to /login/ comes back, still signed in to airgate, with a new one."""
    login = login_client(server, "web-forgotten", "Op").create_web_login_token(Name=ENV)
    session = sign_in(login).cookies["session"]
    first = flask_session_of(server, session)
    database = server.airgate.runtime._layout(ENV).database  # type: ignore[attr-defined]
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        assert connection.execute("DELETE FROM session").rowcount >= 1
    front = f"http://{login['WebServerHostname']}"
    with httpx.Client(base_url=front, cookies={"session": session}, timeout=60) as browser:
        home = browser.get("/home", follow_redirects=True)
        assert [(r.status_code, r.url.path) for r in home.history] == [
            (302, "/home"), (302, "/login/")]
        assert (home.status_code, home.url.path) == (200, "/home")
        assert 'title="user/web-forgotten (IAM)"' in home.text
        renewed = home.history[1].cookies["session"]  # set by the front's /login/
    second = flask_session_of(server, renewed)
    assert renewed != session and second != first
    assert tokens(server).check(renewed, "session", ENV).expires_at == tokens(server).check(
        session, "session", ENV).expires_at


# --- cookies between an Airflow 2 and an Airflow 3 environment --------------------------------

@pytest.fixture
def airflow3(server: RunningAirgate) -> Iterator[str]:
    """An Airflow 3 environment beside the Airflow 2 one, on the same host."""
    mwaa = server.client()
    mwaa.create_environment(**create_args(ENV3, DagS3Path="dags3",
                                          PluginsS3Path="plugins3.zip"))
    try:
        environment = wait_for_status(mwaa, ENV3, "AVAILABLE")
        yield str(environment["WebserverUrl"])
    finally:
        mwaa.delete_environment(Name=ENV3)
        wait_for(lambda: ENV3 not in mwaa.list_environments()["Environments"], 120,
                 f"{ENV3} to be deleted")


def test_a_browser_signed_in_to_both_versions_gives_each_airflow_only_its_own(
        server: RunningAirgate, airflow3: str) -> None:
    """Cookies ignore ports: one cookie jar, as a browser's, sends both fronts every
    cookie. What reaches each environment's Airflow (where tenant code, here a plugin,
    reads it) is only what that environment's front put there."""
    both = login_client(server, "web-both", "Op", (ENV, ENV3))
    two, three = (both.create_web_login_token(Name=env) for env in (ENV, ENV3))
    with httpx.Client(timeout=60) as browser:
        assert browser.post(f"http://{two['WebServerHostname']}/aws_mwaa/login",
                            data={"token": two["WebToken"]}).status_code == 200
        assert browser.post(f"http://{three['WebServerHostname']}/pluginsv2/aws_mwaa/login",
                            data={"token": three["WebToken"]}).status_code == 200
        jar = {cookie.name: cookie.value or "" for cookie in browser.cookies.jar}
        assert set(jar) == {"session", SESSION_COOKIE, f"airgate.session.{ENV3}", "_token"}
        seen_by_2 = browser.get(f"http://{two['WebServerHostname']}/echo/request").json()
        seen_by_3 = browser.get(f"{airflow3}/echo/request").json()
    assert seen_by_2 == {"cookie": f"session={flask_session_of(server, jar['session'])}",
                         "authorization": ""}
    name, _, token = seen_by_3["cookie"].partition("=")
    assert (name, seen_by_3["authorization"]) == ("_token", "")  # that cookie alone
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["aud"], claims["sub"]) == (audience(ENV3), "user/web-both")

    # Each one's credentials sent, alone, to the other: nothing reaches it.
    flask_session = flask_session_of(server, jar["session"])
    for cookies in ({"session": jar["session"]}, {SESSION_COOKIE: jar["session"]},
                    {"session": flask_session}):
        assert httpx.get(f"{airflow3}/echo/request", cookies=cookies).json() == {
            "cookie": "", "authorization": ""}
    seen = httpx.get(f"http://{two['WebServerHostname']}/echo/request",
                     cookies={f"airgate.session.{ENV3}": jar[f"airgate.session.{ENV3}"],
                              "_token": token, "session": jar[f"airgate.session.{ENV3}"]})
    assert seen.json() == {"cookie": "", "authorization": ""}


# --- in a real browser ------------------------------------------------------------------------

def sso_url(login: dict[str, Any]) -> str:
    """The address the MWAA console opens for "Open Airflow UI"."""
    return (f"http://{login['WebServerHostname']}/aws_mwaa/aws-console-sso?login=true"
            f"#{login['WebToken']}")


def waiting(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, 60)


def signed_in_as(driver: webdriver.Chrome) -> str:
    """The user Airflow 2's UI says is signed in (its user menu's icon)."""
    icon = waiting(driver).until(visible((By.CSS_SELECTOR, ".navbar-user-icon")))
    return str(icon.get_attribute("title"))


TRIGGER_BUTTON = (By.CSS_SELECTOR, "a[aria-label='Trigger DAG']")


def flash(text: str) -> tuple[str, str]:
    """Where Airflow 2's UI shows a message after a form (a flashed alert)."""
    return By.XPATH, f"//div[contains(@class, 'alert') and contains(., '{text}')]"


def trigger_from_the_ui(driver: webdriver.Chrome, hostname: str) -> None:
    driver.get(f"http://{hostname}/dags/{DAG_ID}/grid")
    waiting(driver).until(clickable(TRIGGER_BUTTON)).click()


def triggers_by(server: RunningAirgate, identity: str) -> int:
    """The UI triggers of the DAG Airflow's audit log records for `identity`."""
    answer = server.client().invoke_rest_api(
        Name=ENV, Method="GET", Path="/eventLogs",
        QueryParameters={"dag_id": DAG_ID, "limit": 100})
    return sum(1 for event in answer["RestApiResponse"]["event_logs"]
               if event["event"] == "trigger" and event["owner"] == identity)


def runs(server: RunningAirgate) -> int:
    answer = server.client().invoke_rest_api(Name=ENV, Method="GET",
                                             Path=f"/dags/{DAG_ID}/dagRuns")
    return int(answer["RestApiResponse"]["total_entries"])


@pytest.mark.browser
def test_a_browser_signs_in_through_the_console_link_and_triggers_as_op(
        server: RunningAirgate) -> None:
    login = login_client(server, "browser-op", "Op").create_web_login_token(Name=ENV)
    hostname = login["WebServerHostname"]
    before = runs(server)
    with headless_chromium("airflow2-web-login-op") as driver:
        driver.get(sso_url(login))
        assert signed_in_as(driver) == "user/browser-op (IAM)"
        assert driver.current_url == f"http://{hostname}/home"  # the token gone
        waiting(driver).until(visible((By.XPATH, f"//a[normalize-space()='{DAG_ID}']")))
        screenshot(driver, "airflow2-web-login-op-dags")
        # The browser holds airgate's session, never Airflow's.
        cookies = {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}
        assert set(cookies) == {"session", SESSION_COOKIE}
        assert cookies["session"] == cookies[SESSION_COOKIE]
        assert flask_session_of(server, cookies["session"]) not in cookies.values()

        trigger_from_the_ui(driver, hostname)
        waiting(driver).until(visible(flash(f"Triggered {DAG_ID}")))
        assert driver.current_url.startswith(f"http://{hostname}/dags/{DAG_ID}/grid")
        assert signed_in_as(driver) == "user/browser-op (IAM)"
        screenshot(driver, "airflow2-web-login-op-triggered")
    assert runs(server) == before + 1
    assert triggers_by(server, "user/browser-op") == 1

    # The token was used up by the first sign-in.
    with headless_chromium("airflow2-web-login-reused") as again:
        again.get(sso_url(login))
        waiting(again).until(visible((By.XPATH, "//*[contains(text(), 'Can')]")))
        assert "already been used" in again.page_source
        assert not again.get_cookies()


@pytest.mark.browser
def test_a_viewer_in_the_browser_may_not_trigger(server: RunningAirgate) -> None:
    login = login_client(server, "browser-viewer", "Viewer").create_web_login_token(Name=ENV)
    before = runs(server)
    with headless_chromium("airflow2-web-login-viewer") as driver:
        driver.get(sso_url(login))
        assert signed_in_as(driver) == "user/browser-viewer (IAM)"
        driver.get(f"http://{login['WebServerHostname']}/dags/{DAG_ID}/grid")
        button = waiting(driver).until(visible(TRIGGER_BUTTON))
        assert "disabled" in str(button.get_attribute("class"))  # the UI offers nothing
        # The request the button makes, made anyway: Airflow itself refuses it.
        driver.execute_script("triggerDag(arguments[0], arguments[1])", button, DAG_ID)
        waiting(driver).until(visible(flash("Access is Denied")))
        screenshot(driver, "airflow2-web-login-viewer-trigger-refused")
    assert runs(server) == before
    assert triggers_by(server, "user/browser-viewer") == 0


# --- over HTTPS: the Amazon provider's web-login fallback (last: airgate starts again) --------

def test_mwaa_hook_local_web_token_for_airflow_2_over_tls(harness: Airgate,
                                                          tmp_path: Path) -> None:
    """MwaaHook(...).invoke_rest_api(generate_local_token=True, airflow_version=2):
    CreateWebLoginToken, POST https://{WebServerHostname}/aws_mwaa/login with
    requests.Session, then https://{WebServerHostname}/api/v1{Path} with that session's
    cookie jar."""
    server = harness.serve(tls=True)
    tls = server.airgate.tls
    assert tls is not None
    script = ("import json\n"
              "from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook\n"
              "hook = MwaaHook()\n"
              f"dags = hook.invoke_rest_api(env_name={ENV!r}, path='/dags', method='GET', "
              "generate_local_token=True, airflow_version=2)\n"
              f"made = hook.invoke_rest_api(env_name={ENV!r}, path='/variables', "
              "method='POST', body={'key': 'from-hook', 'value': 'over tls'}, "
              "generate_local_token=True, airflow_version=2)\n"
              "print(json.dumps([dags, made]))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=standard_aws_variables(server, server.admin, tmp_path),
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    dags, made = json.loads(done.stdout.strip().splitlines()[-1])
    assert dags["RestApiStatusCode"] == 200
    assert [dag["dag_id"] for dag in dags["RestApiResponse"]["dags"]] == [DAG_ID]
    assert (made["RestApiStatusCode"], made["RestApiResponse"]["key"]) == (200, "from-hook")

    # Over HTTPS, both cookies are Secure.
    login = server.client().create_web_login_token(Name=ENV)
    answer = sign_in(login, "https", verify=ssl.create_default_context(cafile=tls.ca_bundle))
    session = answer.cookies["session"]
    assert answer.headers.get_list("set-cookie") == [
        f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax; Secure",
        f"session={session}; Path=/; HttpOnly; SameSite=Lax; Secure"]
