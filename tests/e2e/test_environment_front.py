"""What airgate serves at an environment's WebServerHostname: the CLI endpoint behind
CreateCliToken, the web login behind CreateWebLoginToken, and the environment's Airflow;
against a real Airflow environment serving examples/dags."""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import jwt
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.expected_conditions import (
    element_to_be_clickable as clickable,
)
from selenium.webdriver.support.expected_conditions import (
    visibility_of_element_located as visible,
)
from selenium.webdriver.support.wait import WebDriverWait

from airgate.web.sessions import REVIEW_INTERVAL
from tests.browser import headless_chromium, screenshot
from tests.e2e.serving import examples_environment, standard_aws_variables
from tests.e2e.test_invoke_rest_api import ROLE_ARN, role_policy
from tests.e2e.test_runtime import create_args, wait_for
from tests.support import RunningAirgate

# The module's environment (AVAILABLE within 240 s, its DAGs parsed within 90 s) starts in
# the first test's time: more than pytest's default 300 s with that test's own waits.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.timeout(600)]

ENV = "cli"
SESSION_COOKIE = f"airgate.session.{ENV}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAirgate]:
    with examples_environment(tmp_path_factory.mktemp("cli") / "home", ENV) as running:
        yield running


def cli(hostname: str, token: str, command: str) -> httpx.Response:
    return httpx.post(f"http://{hostname}/aws_mwaa/cli", content=command, timeout=120,
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": "text/plain"})


def output(answer: httpx.Response) -> tuple[str, str]:
    assert answer.status_code == 200, answer.text
    document = answer.json()
    return (base64.b64decode(document["stdout"]).decode(),
            base64.b64decode(document["stderr"]).decode())


def test_cli_token_round_trip(server: RunningAirgate) -> None:
    token = server.client().create_cli_token(Name=ENV)
    stdout, _ = output(cli(token["WebServerHostname"], token["CliToken"], "dags list -o json"))
    listed = json.loads(stdout[stdout.index("[{"):])  # after any warnings Airflow prints
    assert {dag["dag_id"] for dag in listed} == {"any_bash_command", "data_aware_pipeline"}
    output(cli(token["WebServerHostname"], token["CliToken"],
               "dags trigger any_bash_command --run-id from-cli -c '{\"command\": \"echo hi\"}'"))
    run = server.client().invoke_rest_api(Name=ENV, Method="GET",
                                          Path="/dags/any_bash_command/dagRuns/from-cli")
    assert run["RestApiResponse"]["conf"] == {"command": "echo hi"}


def test_bad_tokens_are_refused(server: RunningAirgate) -> None:
    token = server.client().create_cli_token(Name=ENV)
    hostname = token["WebServerHostname"]
    fronts = server.airgate.fronts
    assert fronts is not None
    expired = fronts.tokens.mint("cli", ENV, "user/admin", now=time.time() - 120)
    other_environment = fronts.tokens.mint("cli", "elsewhere", "user/admin")
    web_login = fronts.tokens.mint("web-login", ENV, "user/admin", "Admin")
    forged = token["CliToken"][:-4] + ("AAAA" if not token["CliToken"].endswith("AAAA")
                                       else "BBBB")
    for bad in (expired, other_environment, web_login, forged, "nonsense"):
        answer = cli(hostname, bad, "dags list")
        assert answer.status_code == 401, answer.text
        assert "error" in answer.json()
    assert httpx.post(f"http://{hostname}/aws_mwaa/cli", content="dags list").status_code == 401


def test_disallowed_commands_and_injection_run_nothing(server: RunningAirgate,
                                                      tmp_path: Path) -> None:
    token = server.client().create_cli_token(Name=ENV)
    marker = tmp_path / "injected"
    for command in ("db reset -y", "users create -u x", f"dags list; touch {marker}",
                    f"dags list && touch {marker}", f"variables set x $(touch {marker})"):
        answer = cli(token["WebServerHostname"], token["CliToken"], command)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]
    assert not marker.exists()


def test_create_cli_token_needs_permission(server: RunningAirgate) -> None:
    identities = server.airgate.identities
    identities.create_user("no-cli")
    identities.put_inline_policy("user", "no-cli", "invoke", role_policy(
        {"Effect": "Allow", "Action": "airflow:InvokeRestApi",
         "Resource": ROLE_ARN.format(env=ENV, role="Admin")}))
    client = server.client(identities.create_access_key("no-cli"))
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.create_cli_token(Name=ENV)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"


def test_the_front_serves_the_environments_airflow(server: RunningAirgate) -> None:
    environment: dict[str, Any] = server.client().get_environment(Name=ENV)["Environment"]
    hostname = server.client().create_cli_token(Name=ENV)["WebServerHostname"]
    assert environment["WebserverUrl"] == f"http://{hostname}"
    # Airflow's public route answers anyone; an authenticated one wants a session.
    version = httpx.get(f"http://{hostname}/api/v2/version", timeout=30)
    assert (version.status_code, version.json()["version"]) == (200, "3.3.2")
    unsigned = httpx.get(f"http://{hostname}/api/v2/dags", timeout=30)
    assert unsigned.status_code == 401, unsigned.text
    assert httpx.get(environment["WebserverUrl"], follow_redirects=True).status_code == 200


# --- web login ------------------------------------------------------------------------------

def web_login_client(server: RunningAirgate, name: str, role: str) -> Any:
    identities = server.airgate.identities
    identities.create_user(name)
    identities.put_inline_policy("user", name, "login", role_policy(
        {"Effect": "Allow", "Action": "airflow:CreateWebLoginToken",
         "Resource": ROLE_ARN.format(env=ENV, role=role)}))
    return server.client(identities.create_access_key(name))


def airflow_api(server: RunningAirgate) -> str:
    """Where the environment's Airflow answers directly, without the front."""
    url: str = server.airgate.runtime.api_url(  # type: ignore[attr-defined]
        server.airgate.environments.get(ENV))
    return url


def sign_in(hostname: str, token: str, path: str = "/pluginsv2/aws_mwaa/login") -> httpx.Response:
    return httpx.post(f"http://{hostname}{path}", data={"token": token}, timeout=30)


def test_web_login_signs_in_once_as_the_iam_identity(server: RunningAirgate) -> None:
    client = web_login_client(server, "web-op", "Op")
    login = client.create_web_login_token(Name=ENV)
    assert login["IamIdentity"] == "arn:aws:iam::000000000000:user/web-op"
    assert login["AirflowIdentity"] == "user/web-op"
    hostname = login["WebServerHostname"]

    signed_in = sign_in(hostname, login["WebToken"])
    assert signed_in.status_code == 200 and 'url=/"' in signed_in.text
    session = signed_in.cookies[SESSION_COOKIE]
    assert signed_in.cookies["_token"] == session  # where MwaaHook reads it
    claims = jwt.decode(session, options={"verify_signature": False})
    # An airgate session, not an Airflow token: Airflow itself refuses it.
    assert (claims["aud"], claims["sub"], claims["role"]) == (
        f"urn:airgate:session:{ENV}", "user/web-op", "Op")
    assert httpx.get(f"{airflow_api(server)}/api/v2/dags",
                     headers={"Authorization": f"Bearer {session}"}).status_code == 403
    # Through the front, the session cookie signs the user in to Airflow's UI and API.
    with httpx.Client(base_url=f"http://{hostname}", cookies={SESSION_COOKIE: session}
                      ) as browser:
        assert browser.get("/api/v2/dags").status_code == 200
        assert browser.get("/", follow_redirects=True).status_code == 200

    assert sign_in(hostname, login["WebToken"]).status_code == 401  # used up
    airflow2_path = sign_in(hostname, client.create_web_login_token(Name=ENV)["WebToken"],
                            "/aws_mwaa/login")
    assert airflow2_path.status_code == 200 and "_token" in airflow2_path.cookies


def test_a_viewer_signed_in_may_not_trigger(server: RunningAirgate) -> None:
    login = web_login_client(server, "web-viewer", "Viewer").create_web_login_token(Name=ENV)
    session = sign_in(login["WebServerHostname"], login["WebToken"]).cookies[SESSION_COOKIE]
    with httpx.Client(base_url=f"http://{login['WebServerHostname']}",
                      cookies={SESSION_COOKIE: session}) as browser:
        assert browser.get("/api/v2/dags").status_code == 200
        trigger = browser.post("/api/v2/dags/any_bash_command/dagRuns",
                               json={"logical_date": None})
        assert trigger.status_code == 403


def test_bad_web_login_tokens_are_refused(server: RunningAirgate) -> None:
    fronts = server.airgate.fronts
    assert fronts is not None
    hostname = server.client().create_cli_token(Name=ENV)["WebServerHostname"]
    for bad in (fronts.tokens.mint("web-login", ENV, "user/a", "Admin", now=time.time() - 90),
                fronts.tokens.mint("web-login", "elsewhere", "user/a", "Admin"),
                fronts.tokens.mint("cli", ENV, "user/a"), "forged", ""):
        refused = sign_in(hostname, bad)
        assert refused.status_code == 401 and "_token" not in refused.cookies


def test_the_sso_page_posts_the_token_from_the_address(server: RunningAirgate) -> None:
    hostname = server.client().create_cli_token(Name=ENV)["WebServerHostname"]
    page = httpx.get(f"http://{hostname}/aws_mwaa/aws-console-sso", params={"login": "true"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'action="/pluginsv2/aws_mwaa/login"' in page.text and "location.hash" in page.text


def test_web_login_needs_an_allowed_airflow_role(server: RunningAirgate) -> None:
    identities = server.airgate.identities
    identities.create_user("no-web")
    client = server.client(identities.create_access_key("no-web"))
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        client.create_web_login_token(Name=ENV)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "Airflow role" in refused.value.response["Error"]["Message"]


def test_a_session_ends_when_the_policy_that_allowed_it_is_removed(
        server: RunningAirgate) -> None:
    login = web_login_client(server, "web-revoked", "Op").create_web_login_token(Name=ENV)
    hostname = login["WebServerHostname"]
    session = sign_in(hostname, login["WebToken"]).cookies[SESSION_COOKIE]
    front = server.airgate.fronts.front(ENV) if server.airgate.fronts else None
    assert front is not None
    front.sessions.review_interval = 0.5  # instead of every 5 minutes
    try:
        with httpx.Client(base_url=f"http://{hostname}", cookies={SESSION_COOKIE: session},
                          timeout=30) as browser:
            assert browser.get("/api/v2/dags").status_code == 200
            assert browser.get("/", follow_redirects=True).status_code == 200
            server.airgate.identities.delete_inline_policy("user", "web-revoked", "login")
            refused = wait_for(lambda: (answer := browser.get("/api/v2/dags")).status_code
                               != 200 and answer, 60, "the session to end", 0.1)
        assert (refused.status_code, refused.json()) == (401, {
            "error": "The session has ended: user/web-revoked may no longer sign in to "
                     f"environment {ENV} as Op; sign in again"})
        assert refused.headers["set-cookie"] == (f"{SESSION_COOKIE}=; Path=/; HttpOnly; "
                                                 "SameSite=Lax; Max-Age=0")
    finally:
        front.sessions.review_interval = REVIEW_INTERVAL


# --- web login in a real browser ------------------------------------------------------------

def sso_url(login: dict[str, Any]) -> str:
    """The address the MWAA console opens for "Open Airflow UI"."""
    return (f"http://{login['WebServerHostname']}/aws_mwaa/aws-console-sso?login=true"
            f"#{login['WebToken']}")


def signed_in_as(driver: webdriver.Chrome) -> str:
    """The user Airflow's UI says is signed in, from its user menu."""
    waiting(driver).until(visible((By.XPATH, "//button[@aria-label='User']"))).click()
    waiting(driver).until(visible((By.XPATH, "//*[contains(text(), 'Signed in as')]")))
    page = driver.find_element(By.TAG_NAME, "body")
    menu = page.text[page.text.index("Signed in as"):]
    page.send_keys(Keys.ESCAPE)
    return menu.splitlines()[1]


def waiting(driver: webdriver.Chrome) -> WebDriverWait[webdriver.Chrome]:
    return WebDriverWait(driver, 30)


@pytest.mark.browser
def test_a_browser_signs_in_through_the_console_link_and_sees_the_dags(
        server: RunningAirgate) -> None:
    login = web_login_client(server, "browser-op", "Op").create_web_login_token(Name=ENV)
    with headless_chromium("web-login-op") as driver:
        driver.get(sso_url(login))
        waiting(driver).until(visible((By.XPATH, "//*[text()='Welcome']")))
        assert driver.current_url == f"http://{login['WebServerHostname']}/"  # token gone
        assert "user/browser-op" in signed_in_as(driver)
        # The browser holds the session, never an Airflow token.
        cookies = {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}
        assert "_token" not in cookies
        assert jwt.decode(cookies[SESSION_COOKIE], options={"verify_signature": False})[
            "aud"] == f"urn:airgate:session:{ENV}"

        driver.get(f"http://{login['WebServerHostname']}/dags")
        for dag_id in ("any_bash_command", "data_aware_pipeline"):
            waiting(driver).until(visible((By.LINK_TEXT, dag_id)))
        screenshot(driver, "web-login-op-dags")

        # Op may trigger: the UI's own trigger form makes a run as the IAM identity.
        trigger_from_the_ui(driver, login["WebServerHostname"])
        waiting(driver).until(lambda _: any(
            run["triggering_user_name"] == "user/browser-op"
            for run in runs_of("any_bash_command", server)))

    # The token was used up by the first sign-in.
    with headless_chromium("web-login-reused") as again:
        again.get(sso_url(login))
        waiting(again).until(visible((By.XPATH, "//*[contains(text(), 'Can')]")))
        assert not {"_token", SESSION_COOKIE} & {cookie["name"] for cookie in
                                                 again.get_cookies()}


@pytest.mark.browser
def test_a_viewer_in_the_browser_may_not_trigger(server: RunningAirgate) -> None:
    login = web_login_client(server, "browser-viewer", "Viewer").create_web_login_token(
        Name=ENV)
    with headless_chromium("web-login-viewer") as driver:
        driver.get(sso_url(login))
        waiting(driver).until(visible((By.XPATH, "//*[text()='Welcome']")))
        assert "user/browser-viewer" in signed_in_as(driver)
        trigger_from_the_ui(driver, login["WebServerHostname"])
        # Airflow's UI reports the refusal in the form or in a toast, depending on timing.
        waiting(driver).until(visible(
            (By.XPATH, "//*[text()='403 Forbidden' or text()='Access Denied']")))
        screenshot(driver, "web-login-viewer-trigger-refused")
    assert not [run for run in runs_of("any_bash_command", server)
                if run["triggering_user_name"] == "user/browser-viewer"]


def trigger_from_the_ui(driver: webdriver.Chrome, hostname: str) -> None:
    driver.get(f"http://{hostname}/dags/any_bash_command")
    waiting(driver).until(clickable((By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"))
                          ).click()
    waiting(driver).until(clickable(
        (By.XPATH, "//*[@role='dialog']//button[normalize-space()='Trigger']"))).click()


def runs_of(dag_id: str, server: RunningAirgate) -> list[dict[str, Any]]:
    answer = server.client().invoke_rest_api(Name=ENV, Method="GET",
                                             Path=f"/dags/{dag_id}/dagRuns")
    return list(answer["RestApiResponse"]["dag_runs"])


# --- `airgate open` and the console, for users who are not the administrator ------------------

def caller(server: RunningAirgate, name: str, scratch: Path,
           *statements: dict[str, Any]) -> dict[str, str]:
    """A new IAM user with these policy statements: the variables of a shell configured
    with their credentials only (no airgate home to read)."""
    identities = server.airgate.identities
    identities.create_user(name)
    if statements:
        identities.put_inline_policy("user", name, "p", role_policy(*statements))
    variables = standard_aws_variables(server, identities.create_access_key(name), scratch)
    variables["AIRGATE_HOME"] = str(scratch / "not-airgate-s-home")
    return variables


def airgate_as(variables: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airgate.cli", *args], env=variables,
                          capture_output=True, text=True, timeout=60)


def login_statement(role: str) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": "airflow:CreateWebLoginToken",
            "Resource": ROLE_ARN.format(env=ENV, role=role)}


@pytest.mark.browser
def test_airgate_open_signs_a_user_in_with_their_own_credentials(
        server: RunningAirgate, tmp_path: Path) -> None:
    hostname = server.client().create_cli_token(Name=ENV)["WebServerHostname"]
    opener = caller(server, "opener", tmp_path, login_statement("User"))
    done = airgate_as(opener, "open", ENV, "--print-url")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(f"http://{hostname}/aws_mwaa/aws-console-sso?login=true#"), url
    with headless_chromium("airgate-open") as driver:
        driver.get(url)
        waiting(driver).until(visible((By.XPATH, "//*[text()='Welcome']")))
        assert "user/opener" in signed_in_as(driver)

    refused = airgate_as(caller(server, "not-opener", tmp_path), "open", ENV, "--print-url")
    assert refused.returncode == 254
    assert refused.stderr.startswith("An error occurred (AccessDeniedException) when calling "
                                     "the CreateWebLoginToken operation: "), refused.stderr
    assert refused.stdout == ""


def traffic(driver: webdriver.Chrome) -> tuple[int, int]:
    """The console's recent InvokeRestApi calls to the environment, and Airflow's 4xx."""
    said = driver.find_element(By.TAG_NAME, "body").text
    found = re.search(r"(\d+) calls(?: \((\d+) 4xx)?", said)
    assert found is not None, said
    return int(found.group(1)), int(found.group(2) or 0)


def console_rows(driver: webdriver.Chrome) -> list[str]:
    waiting(driver).until(visible((By.XPATH, "//h1[text()='Environments']")))
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "td.name")]


@pytest.mark.browser
def test_the_console_shows_what_a_user_may_see_and_opens_its_ui(
        server: RunningAirgate, tmp_path: Path) -> None:
    store = server.airgate.environments
    if store.find("ingest") is None:  # an environment whose start failed, as the runtime
        store.create("ingest", {**create_args("ingest"), "AirflowVersion": "3.3.2"}, {},
                     datetime.datetime.now(datetime.UTC), source="CUSTOMER")
        store.transition("ingest", allowed_from=None, status="CREATE_FAILED", last_update={
            "Status": "FAILED", "CreatedAt": datetime.datetime.now(datetime.UTC).isoformat(),
            "Source": "CUSTOMER", "Error": {"ErrorCode": "INCORRECT_CONFIGURATION",
                                            "ErrorMessage": "requirements.txt: no such "
                                                            "version of pandas"}})
    viewer = caller(server, "console-viewer", tmp_path, login_statement("Viewer"), {
        "Effect": "Allow", "Action": ["airflow:GetEnvironment", "airflow:InvokeRestApi"],
        "Resource": [f"arn:aws:airflow:us-east-1:000000000000:environment/{ENV}",
                     ROLE_ARN.format(env=ENV, role="Viewer")]})
    mwaa = server.client({"AccessKeyId": viewer["AWS_ACCESS_KEY_ID"],
                          "SecretAccessKey": viewer["AWS_SECRET_ACCESS_KEY"]})
    link = airgate_as(viewer, "console", "--print-url")
    assert link.returncode == 0, link.stderr
    with headless_chromium("console-viewer") as driver:
        driver.get(link.stdout.strip())
        assert console_rows(driver) == [ENV]
        calls, client_errors = traffic(driver)
        for _ in range(3):
            mwaa.invoke_rest_api(Name=ENV, Method="GET", Path="/dags")
        with pytest.raises(mwaa.exceptions.RestApiClientException):
            mwaa.invoke_rest_api(Name=ENV, Method="GET", Path="/dags/no-such-dag")
        driver.refresh()
        assert console_rows(driver) == [ENV]
        assert traffic(driver) == (calls + 4, client_errors + 1)
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "arn:aws:iam::000000000000:user/console-viewer" in page
        assert "AVAILABLE" in page and "3.3.2" in page
        screenshot(driver, "console-viewer")
        driver.find_element(By.XPATH, "//button[text()='Open Airflow UI']").click()
        waiting(driver).until(visible((By.XPATH, "//*[text()='Welcome']")))
        assert "user/console-viewer" in signed_in_as(driver)

    administrator = standard_aws_variables(server, server.admin, tmp_path)
    administrator["AIRGATE_HOME"] = str(tmp_path / "not-airgate-s-home")
    link = airgate_as(administrator, "console", "--print-url")
    with headless_chromium("console-admin") as driver:
        driver.get(link.stdout.strip())
        assert console_rows(driver) == [ENV, "ingest"]
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "INCORRECT_CONFIGURATION: requirements.txt: no such version of pandas" in page
        screenshot(driver, "console")
