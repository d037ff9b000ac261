"""The console's sign-in and what it shows, without a browser or Airflow: `airgate console`
(a real process, the caller's own AWS credentials) gets a one-use link; the link, used from
the console's own page, gives a session; the page lists only what the caller's policies let
them see; everything else is refused. tests/e2e/test_console.py drives it in Chromium
against a real environment."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airgate.environments.store import EnvironmentStore
from tests.support import (
    RunningAirgate,
    UpstreamRuntime,
    create_environment_args,
    running_airgate,
    trivial_upstream,
)

pytestmark = pytest.mark.e2e

ENV_ARN = "arn:aws:airflow:us-east-1:000000000000:environment/{env}"
ROLE_ARN = "arn:aws:airflow:us-east-1:000000000000:role/{env}/{role}"
LINK = re.compile(r"^(http://127\.0\.0\.1:\d+)/console/signin\?token=([A-Za-z0-9_-]+)$")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningAirgate,
                                                                      dict[str, Any]]]:
    with trivial_upstream() as upstream, running_airgate(
            tmp_path_factory.mktemp("console"),
            runtime_factory=UpstreamRuntime.factory(upstream.port)) as server:
        admin = server.client()
        for name in ("team-a", "team-b"):
            admin.create_environment(**create_environment_args(name))
        fail(server.airgate.environments, "team-b")
        identities = server.airgate.identities
        keys = {}
        for user, documents in {
            "alice": [policy({"Effect": "Allow", "Action": ["airflow:GetEnvironment",
                                                            "airflow:InvokeRestApi"],
                              "Resource": [ENV_ARN.format(env="team-a"),
                                           ROLE_ARN.format(env="team-a", role="Viewer")]})],
            "nobody": [],
        }.items():
            identities.create_user(user)
            for index, document in enumerate(documents):
                identities.put_inline_policy("user", user, f"p{index}", document)
            keys[user] = identities.create_access_key(user)
        yield server, keys


def fail(store: EnvironmentStore, name: str) -> None:
    """An environment whose last update failed, as a runtime records it."""
    store.transition(name, allowed_from=None, status="CREATE_FAILED", last_update={
        "Status": "FAILED", "CreatedAt": datetime.datetime.now(datetime.UTC).isoformat(),
        "Source": "CUSTOMER", "Error": {"ErrorCode": "STARTUP_SCRIPT_FAILED",
                                        "ErrorMessage": "the startup script exited with 3"}})


def console_link(server: RunningAirgate, credentials: dict[str, str], tmp_path: Path,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
    """`airgate console --print-url` as the caller, configured only by AWS's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRGATE_"))}
    env.update(AWS_ACCESS_KEY_ID=credentials["AccessKeyId"],
               AWS_SECRET_ACCESS_KEY=credentials["SecretAccessKey"],
               AWS_ENDPOINT_URL_MWAA=server.endpoint_url, AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AIRGATE_HOME=str(tmp_path / "not-airgate-s-home"))
    done = subprocess.run([sys.executable, "-m", "airgate.cli", "console", "--print-url"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode == 0) == check, done.stderr
    return done


def sign_in(link: str) -> httpx.Client:
    """What the link's page does in a browser: post its token from the console's page."""
    browser = httpx.Client(timeout=30)
    page = browser.get(link)
    assert page.status_code == 200 and "Signing you in" in page.text
    token = re.search(r'name=token value="([^"]+)"', page.text)
    assert token is not None
    origin = link.split("/console/")[0]
    signed_in = browser.post(f"{origin}/console/signin", data={"token": token.group(1)},
                             headers={"Origin": origin})
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/console/")
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    return browser


def environments_shown(page: str) -> list[str]:
    return re.findall(r"<td class=name>([^<]+)</td>", page)


def test_a_user_sees_only_the_environments_their_policies_allow(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Path) -> None:
    server, keys = served
    alice = server.client(keys["alice"])
    alice.invoke_rest_api(Name="team-a", Method="GET", Path="/version")
    with pytest.raises(alice.exceptions.RestApiClientException):
        alice.invoke_rest_api(Name="team-a", Method="GET", Path="/status/404")

    link = console_link(server, keys["alice"], tmp_path).stdout.strip()
    match = LINK.match(link)
    assert match is not None and match.group(1) == server.endpoint_url, link
    page = sign_in(link).get(f"{server.endpoint_url}/console/")
    assert page.status_code == 200
    assert environments_shown(page.text) == ["team-a"]
    assert "arn:aws:iam::000000000000:user/alice" in page.text
    assert "2 calls (1 4xx)" in page.text
    assert "Open Airflow UI" not in page.text  # no airflow:CreateWebLoginToken

    admin_link = console_link(server, server.admin, tmp_path).stdout.strip()
    everything = sign_in(admin_link).get(f"{server.endpoint_url}/console/").text
    assert environments_shown(everything) == ["team-a", "team-b"]
    assert "STARTUP_SCRIPT_FAILED: the startup script exited with 3" in everything
    # The administrator may open both, as Admin, but team-b is not running.
    assert everything.count("Open Airflow UI") == 1

    nobody_link = console_link(server, keys["nobody"], tmp_path).stdout.strip()
    nothing = sign_in(nobody_link).get(f"{server.endpoint_url}/console/").text
    assert environments_shown(nothing) == []
    assert "No environments you may see." in nothing


def test_a_link_is_used_once_from_the_console_s_own_page(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Path) -> None:
    server, keys = served
    link = console_link(server, keys["alice"], tmp_path).stdout.strip()
    token = link.rsplit("=", 1)[1]
    signin = f"{server.endpoint_url}/console/signin"
    # Another site's page may not sign a browser in (login CSRF), nor may a post without
    # an origin; neither uses the token up.
    for headers in ({"Origin": "http://evil.example"}, {}):
        refused = httpx.post(signin, data={"token": token}, headers=headers)
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    sign_in(link)
    again = httpx.post(signin, data={"token": token},
                       headers={"Origin": server.endpoint_url})
    assert again.status_code == 401 and "used already or has expired" in again.text


def test_a_session_ends_with_its_key_and_forms_need_their_csrf_token(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Path) -> None:
    server, _ = served
    identities = server.airgate.identities
    identities.create_user("carol")
    identities.put_inline_policy("user", "carol", "all", policy(
        {"Effect": "Allow", "Action": "airflow:*", "Resource": "*"}))
    key = identities.create_access_key("carol")
    browser = sign_in(console_link(server, key, tmp_path).stdout.strip())
    console = f"{server.endpoint_url}/console"
    assert browser.get(f"{console}/").status_code == 200
    own = {"Origin": server.endpoint_url}
    forged = browser.post(f"{console}/environments/team-a/open", data={"csrf": "x"},
                          headers=own)
    assert forged.status_code == 403
    csrf = re.search(r"name=csrf value='([0-9a-f]+)'", browser.get(f"{console}/").text)
    assert csrf is not None
    # A real open, of an environment without a web front here: refused in MWAA's words.
    not_running = browser.post(f"{console}/environments/team-b/open",
                               data={"csrf": csrf.group(1)}, headers=own)
    assert not_running.status_code == 409
    assert "CreateWebLoginToken needs an AVAILABLE environment" in not_running.text

    identities.delete_access_key("carol", key["AccessKeyId"])
    assert browser.get(f"{console}/").status_code == 401
    assert httpx.get(f"{console}/").status_code == 401  # and no cookie: signed out


def test_a_bad_signature_or_no_credentials_get_no_link(
        served: tuple[RunningAirgate, dict[str, Any]], tmp_path: Path) -> None:
    server, keys = served
    wrong = {**keys["alice"], "SecretAccessKey": "x" * 40}
    done = console_link(server, wrong, tmp_path, check=False)
    assert done.returncode == 254
    assert "An error occurred (InvalidSignatureException) when asking for a console sign-in " \
        "link: The request signature we calculated does not match" in done.stderr, done.stderr
    assert "signin?token=" not in done.stdout
    unsigned = httpx.post(f"{server.endpoint_url}/console/api/signin-token")
    assert (unsigned.status_code, unsigned.json()) == (403, {
        "__type": "MissingAuthenticationTokenException",
        "message": "Missing Authentication Token"})
