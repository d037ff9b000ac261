"""`airgate open` and `airgate console`: for any IAM user, with their own AWS credentials
(the standard chain: variables, profiles, SSO, ...), not airgate's administrator.

`open` is what MWAA's console does for "Open Airflow UI": CreateWebLoginToken, then the
environment's sign-in page with the token in the fragment. `console` asks airgate for a
one-use sign-in link to its console (see airgate.web.console).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import webbrowser
from urllib.parse import quote, urlsplit

from airgate import config

CLI_ERROR = 254  # what the AWS CLI exits with when the service refuses
NO_CREDENTIALS = 255


def endpoint_url(args: argparse.Namespace, settings: config.Settings) -> str:
    """--endpoint-url, else the endpoint MWAA clients are configured with, else the
    airgate running from this home."""
    for candidate in (args.endpoint_url, os.environ.get("AWS_ENDPOINT_URL_MWAA"),
                      os.environ.get("AWS_ENDPOINT_URL")):
        if candidate:
            return str(candidate).rstrip("/")
    if settings.server_file.exists():
        return str(json.loads(settings.server_file.read_text())["endpoint_url"])
    return settings.endpoint_url


def _region(args: argparse.Namespace, settings: config.Settings, session_region: str | None
            ) -> str:
    if args.region or session_region:
        return str(args.region or session_region)
    if settings.server_file.exists():
        return str(json.loads(settings.server_file.read_text())["region"])
    return settings.region


def _show(url: str, print_only: bool) -> int:
    if print_only or not webbrowser.open(url):
        print(url)
    return 0


def run_open(args: argparse.Namespace, settings: config.Settings) -> int:
    import boto3
    import botocore.config
    import botocore.exceptions

    session = boto3.session.Session(profile_name=args.profile)
    endpoint = endpoint_url(args, settings)
    client = session.client("mwaa", endpoint_url=endpoint,
                            region_name=_region(args, settings, session.region_name),
                            config=botocore.config.Config(inject_host_prefix=False))
    try:
        login = client.create_web_login_token(Name=args.environment)
    except botocore.exceptions.NoCredentialsError:
        print("airgate: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
              "AWS_SECRET_ACCESS_KEY, or a profile)", file=sys.stderr)
        return NO_CREDENTIALS
    except botocore.exceptions.ClientError as error:
        said = error.response.get("Error", {})
        print(f"An error occurred ({said.get('Code')}) when calling the CreateWebLoginToken "
              f"operation: {said.get('Message')}", file=sys.stderr)
        return CLI_ERROR
    scheme = urlsplit(endpoint).scheme or "http"
    return _show(f"{scheme}://{login['WebServerHostname']}/aws_mwaa/aws-console-sso"
                 f"?login=true#{login['WebToken']}", args.print_url)


def run_console(args: argparse.Namespace, settings: config.Settings) -> int:
    import boto3
    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    from airgate.web.console import PREFIX, SIGNIN_TOKEN_PATH, SIGNING_NAME

    session = boto3.session.Session(profile_name=args.profile)
    credentials = session.get_credentials()
    if credentials is None:
        print("airgate: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
              "AWS_SECRET_ACCESS_KEY, or a profile)", file=sys.stderr)
        return NO_CREDENTIALS
    endpoint = endpoint_url(args, settings)
    request = AWSRequest(method="POST", url=endpoint + SIGNIN_TOKEN_PATH, data=b"")
    SigV4Auth(credentials.get_frozen_credentials(), SIGNING_NAME,
              _region(args, settings, session.region_name)).add_auth(request)
    verify = os.environ.get("AWS_CA_BUNDLE") or True
    try:
        answer = httpx.post(request.url, headers=dict(request.headers.items()), content=b"",
                            verify=verify, timeout=30)
    except httpx.HTTPError as error:
        print(f"airgate: could not reach {endpoint}: {error}", file=sys.stderr)
        return 1
    if answer.status_code != 200:
        said = answer.json() if answer.headers.get("content-type", "").startswith(
            "application/json") else {}
        print(f"An error occurred ({said.get('__type', answer.status_code)}) when asking "
              f"for a console sign-in link: {said.get('message', answer.text)}",
              file=sys.stderr)
        return CLI_ERROR
    token = answer.json()["SigninToken"]
    return _show(f"{endpoint}{PREFIX}/signin?token={quote(token, safe='')}", args.print_url)
