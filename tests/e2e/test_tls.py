"""`airgate up --tls`: the MWAA API and every environment's front over HTTPS from airgate's
local CA, so that clients which hard-code https:// (the Amazon provider's web-login
fallback) work unchanged."""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.serving import examples_environment, standard_aws_variables
from tests.support import RunningAirgate

# The module's environment (AVAILABLE within 240 s, its DAGs parsed within 90 s) starts in
# the first test's time: more than pytest's default 300 s with that test's own waits.
pytestmark = [pytest.mark.e2e, pytest.mark.airflow, pytest.mark.timeout(600)]

ENV = "secure"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAirgate]:
    with examples_environment(tmp_path_factory.mktemp("tls") / "home", ENV,
                              tls=True) as running:
        yield running


def test_the_api_and_the_front_speak_https(server: RunningAirgate) -> None:
    assert server.endpoint_url.startswith("https://")
    tls = server.airgate.tls
    assert tls is not None and tls.private_key.stat().st_mode & 0o777 == 0o600
    environment = server.client().get_environment(Name=ENV)["Environment"]
    assert environment["WebserverUrl"].startswith("https://")
    token = server.client().create_cli_token(Name=ENV)
    answer = httpx.post(f"https://{token['WebServerHostname']}/aws_mwaa/cli",
                        content="version", timeout=60,
                        verify=ssl.create_default_context(cafile=tls.ca_bundle),
                        headers={"Authorization": f"Bearer {token['CliToken']}"})
    assert answer.status_code == 200
    assert base64.b64decode(answer.json()["stdout"]).decode().strip() == "3.3.2"
    # Served, and trusted with airgate's CA; without it, refused for the certificate (not
    # for a refused connection: ConnectError covers both).
    trusted = httpx.get(environment["WebserverUrl"], follow_redirects=True, timeout=30,
                        verify=ssl.create_default_context(cafile=tls.ca_bundle))
    assert trusted.status_code == 200
    with pytest.raises(httpx.ConnectError, match=r"\[SSL: CERTIFICATE_VERIFY_FAILED\] "
                       "certificate verify failed: self-signed certificate in certificate chain"):
        httpx.get(environment["WebserverUrl"])
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(server.endpoint_url)


def test_mwaa_hook_local_web_token_over_tls(server: RunningAirgate, tmp_path: Path) -> None:
    """The provider's fallback: CreateWebLoginToken, then https://{WebServerHostname}
    /pluginsv2/aws_mwaa/login and the REST API with the session's JWT."""
    tls = server.airgate.tls
    assert tls is not None
    script = ("import json\n"
              "from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook\n"
              f"answer = MwaaHook().invoke_rest_api(env_name={ENV!r}, path='/dags', "
              "method='GET', generate_local_token=True, airflow_version=3)\n"
              "print(json.dumps(answer))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          env=standard_aws_variables(server, server.admin, tmp_path),
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"RestApiStatusCode": 200' in done.stdout
    assert '"total_entries": 2' in done.stdout


def test_web_sessions_over_https_are_secure_cookies(server: RunningAirgate) -> None:
    tls = server.airgate.tls
    assert tls is not None
    login = server.client().create_web_login_token(Name=ENV)
    own_page = f"https://{login['WebServerHostname']}"
    answer = httpx.post(f"{own_page}/pluginsv2/aws_mwaa/login",
                        data={"token": login["WebToken"]}, headers={"Origin": own_page},
                        verify=ssl.create_default_context(cafile=tls.ca_bundle))
    assert answer.status_code == 200, answer.text
    session = answer.cookies[f"airgate.session.{ENV}"]
    assert answer.headers.get_list("set-cookie") == [
        f"airgate.session.{ENV}={session}; Path=/; HttpOnly; SameSite=Lax; Secure",
        f"_token={session}; Path=/pluginsv2/aws_mwaa/login; HttpOnly; SameSite=Lax; Secure"]
