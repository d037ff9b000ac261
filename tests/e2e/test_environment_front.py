"""What airgate serves at an environment's WebServerHostname: the CLI endpoint behind
CreateCliToken, the web login behind CreateWebLoginToken, and the environment's Airflow;
against a real Airflow environment serving examples/dags."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import jwt
import pytest

from tests.e2e.serving import examples_environment
from tests.e2e.test_invoke_rest_api import ROLE_ARN, role_policy
from tests.support import RunningAirgate

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ENV = "cli"


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
    assert httpx.get(f"http://{hostname}/api/v2/version").status_code in (200, 401)
    assert httpx.get(environment["WebserverUrl"], follow_redirects=True).status_code == 200


# --- web login ------------------------------------------------------------------------------

def web_login_client(server: RunningAirgate, name: str, role: str) -> Any:
    identities = server.airgate.identities
    identities.create_user(name)
    identities.put_inline_policy("user", name, "login", role_policy(
        {"Effect": "Allow", "Action": "airflow:CreateWebLoginToken",
         "Resource": ROLE_ARN.format(env=ENV, role=role)}))
    return server.client(identities.create_access_key(name))


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
    session = signed_in.cookies["_token"]
    claims = jwt.decode(session, options={"verify_signature": False})
    assert (claims["sub"], claims["role"]) == ("user/web-op", "OP")
    # The cookie is what Airflow's UI and API read: the user is signed in through the front.
    with httpx.Client(base_url=f"http://{hostname}", cookies={"_token": session}) as browser:
        assert browser.get("/api/v2/dags").status_code == 200
        assert browser.get("/", follow_redirects=True).status_code == 200

    assert sign_in(hostname, login["WebToken"]).status_code == 401  # used up
    airflow2_path = sign_in(hostname, client.create_web_login_token(Name=ENV)["WebToken"],
                            "/aws_mwaa/login")
    assert airflow2_path.status_code == 200 and "_token" in airflow2_path.cookies


def test_a_viewer_signed_in_may_not_trigger(server: RunningAirgate) -> None:
    login = web_login_client(server, "web-viewer", "Viewer").create_web_login_token(Name=ENV)
    session = sign_in(login["WebServerHostname"], login["WebToken"]).cookies["_token"]
    with httpx.Client(base_url=f"http://{login['WebServerHostname']}",
                      cookies={"_token": session}) as browser:
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
