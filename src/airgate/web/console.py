"""airgate's console, at /console on its listener: MWAA's console, small. It lists the
environments the signed-in caller may see (`airflow:GetEnvironment`), with their status,
Airflow version, last error and recent InvokeRestApi traffic, and opens an environment's
Airflow UI through the same web login as CreateWebLoginToken (`airflow:CreateWebLoginToken`,
as the Airflow role the caller's policies allow).

Signing in, like AWS's federation sign-in: `airgate console` signs `POST
/console/api/signin-token` with the caller's own AWS credentials (SigV4, service
`airflow`), and gets a one-use token valid for a minute; the link it prints,
`/console/signin?token=...`, turns that into a session cookie from a page of the console
itself (a form posted from another site is refused: login CSRF). The session names the
access key it was signed with and ends when that key is deleted or its session expires;
every page and action is decided by the key's principal's policies as they are now.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

import jwt
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from airgate.asgi import signed_request
from airgate.auth import sigv4
from airgate.auth.authorize import Authorization, RequestFacts
from airgate.auth.identities import Credential, Identities, Principal
from airgate.aws.wire import Response
from airgate.call import Call, CallRecord
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.errors import ServiceError
from airgate.gateway import authenticate
from airgate.metrics.calls import RECENT_MINUTES, RecentCalls
from airgate.mwaa.provider import INVOCABLE, MwaaProvider
from airgate.mwaa.service import MwaaAuthorizer
from airgate.web.credentials import AIRGATE_COOKIE_PREFIX, set_cookie
from airgate.web.origin import from_own_page

PREFIX = "/console"
SIGNIN_TOKEN_PATH = "/console/api/signin-token"
COOKIE = f"{AIRGATE_COOKIE_PREFIX}console"  # fronts never pass airgate.* cookies on
SIGNIN_TOKEN_TTL = 60
SESSION_TTL = 12 * 3600
SIGNING_NAME = "airflow"  # MWAA's: the console is part of the MWAA service
_AUDIENCE = "urn:airgate:console"


@dataclass(frozen=True, slots=True)
class _Pending:
    access_key_id: str
    principal_arn: str
    session_ends: float
    expires: float


@dataclass(frozen=True, slots=True)
class _Session:
    principal: Principal
    csrf: str


class Console:
    def __init__(self, identities: Identities, environments: EnvironmentStore,
                 provider: MwaaProvider, authorizer: MwaaAuthorizer, recent: RecentCalls,
                 key: bytes, region: str, web_scheme: str) -> None:
        self._identities = identities
        self._environments = environments
        self._provider = provider
        self._authorizer = authorizer
        self._recent = recent
        self._key = key
        self._region = region
        self._web_scheme = web_scheme
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    async def respond(self, scope: Scope, body: bytes, source_ip: str,
                      record: CallRecord) -> Response:
        path, method = scope["path"], scope["method"]
        record.service = "console"
        facts = RequestFacts(source_ip, scope.get("scheme") == "https",
                             datetime.datetime.now(datetime.UTC))
        if path == SIGNIN_TOKEN_PATH and method == "POST":
            record.operation = "ConsoleSigninToken"
            return await run_in_threadpool(self._signin_token, scope, body, facts, record)
        if path == f"{PREFIX}/signin":
            record.operation = "ConsoleSignIn"
            if method == "GET":
                return _page("Signing in", _SIGNIN_FORM.format(token=html.escape(
                    _form(scope.get("query_string", b"")).get("token", ""))), status=200)
            if method == "POST":
                return await run_in_threadpool(self._sign_in, scope, body, facts)
        session = await run_in_threadpool(self._session, scope, facts)
        if path in (PREFIX, f"{PREFIX}/") and method == "GET":
            record.operation = "ConsoleEnvironments"
            if session is None:
                return _signed_out(401)
            record.principal = session.principal.arn
            return await run_in_threadpool(self._environments_page, session, facts)
        if method == "POST" and path.startswith(f"{PREFIX}/environments/") \
                and path.endswith("/open"):
            record.operation = "ConsoleOpenAirflowUi"
            name = path[len(f"{PREFIX}/environments/"):-len("/open")]
            record.resource = name
            if session is None:
                return _signed_out(401)
            record.principal = session.principal.arn
            if not self._posted_by_page(scope, body, session):
                return _page("Refused", "<p>That form did not come from this console.</p>",
                             status=403)
            return await run_in_threadpool(self._open, name, session, facts, record)
        if path == f"{PREFIX}/signout" and method == "POST":
            record.operation = "ConsoleSignOut"
            if session is not None and not self._posted_by_page(scope, body, session):
                return _page("Refused", "<p>That form did not come from this console.</p>",
                             status=403)
            response = _signed_out(200)
            response.headers["set-cookie"] = self._cookie(scope, "", clear=True)
            return response
        return _page("Not found", "<p>There is no such console page.</p>", status=404)

    # --- signing in ------------------------------------------------------------------

    def _signin_token(self, scope: Scope, body: bytes, facts: RequestFacts,
                      record: CallRecord) -> Response:
        """A one-use sign-in token for the credentials that signed the request."""
        request = signed_request(scope, body)
        try:
            credential = authenticate(self._identities, request, sigv4.read_claims(request),
                                      frozenset({self._region}), SIGNING_NAME, facts.now)
        except ServiceError as error:
            record.error_code = error.code
            return Response(error.status, json.dumps({"__type": error.code,
                                                      "message": error.message}).encode(),
                            {"content-type": "application/json"}, error.code)
        record.principal = credential.principal.arn
        token = secrets.token_urlsafe(32)
        now = time.time()
        ends = now + SESSION_TTL
        if credential.expires_at is not None:
            ends = min(ends, credential.expires_at.timestamp())
        with self._lock:
            self._pending = {t: p for t, p in self._pending.items() if p.expires > now}
            self._pending[_digest(token)] = _Pending(credential.access_key_id,
                                                     credential.principal.arn, ends,
                                                     now + SIGNIN_TOKEN_TTL)
        return Response(200, json.dumps({"SigninToken": token,
                                         "ExpiresIn": SIGNIN_TOKEN_TTL}).encode(),
                        {"content-type": "application/json"})

    def _sign_in(self, scope: Scope, body: bytes, facts: RequestFacts) -> Response:
        if not from_own_page(scope, required=True):
            return _page("Refused", "<p>Can't sign in: the sign-in form was not sent from "
                         "this console's own page.</p>", status=403)
        token = _form(body).get("token", "")
        with self._lock:
            pending = self._pending.pop(_digest(token), None)  # one use
        if pending is None or pending.expires <= time.time():
            return _page("Can't sign in", "<p>Can't sign in: the link was used already or "
                         "has expired. Run <code>airgate console</code> again.</p>",
                         status=401)
        session = jwt.encode({"aud": _AUDIENCE, "sub": pending.principal_arn,
                              "akid": pending.access_key_id, "sid": uuid.uuid4().hex,
                              "exp": int(pending.session_ends)}, self._key, "HS256")
        return Response(303, b"", {"location": f"{PREFIX}/",
                                   "set-cookie": self._cookie(scope, session)})

    def _session(self, scope: Scope, facts: RequestFacts) -> _Session | None:
        """The signed-in caller, as their key's principal is now; None when signed out,
        the key is gone or its session ended."""
        value = _cookies(scope).get(COOKIE)
        if not value:
            return None
        try:
            claims = jwt.decode(value, self._key, algorithms=["HS256"], audience=_AUDIENCE)
        except jwt.PyJWTError:
            return None
        credential: Credential | None = self._identities.credential(str(claims["akid"]))
        if credential is None or credential.principal.arn != claims["sub"]:
            return None
        if credential.expires_at is not None and facts.now >= credential.expires_at:
            return None
        csrf = hmac.new(self._key, f"csrf:{claims['sid']}".encode(), hashlib.sha256)
        return _Session(credential.principal, csrf.hexdigest())

    def _posted_by_page(self, scope: Scope, body: bytes, session: _Session) -> bool:
        given = _form(body).get("csrf", "")
        return from_own_page(scope, required=True) and hmac.compare_digest(given, session.csrf)

    def _cookie(self, scope: Scope, value: str, clear: bool = False) -> str:
        cookie = set_cookie(COOKIE, value, PREFIX, scope.get("scheme") == "https", clear)
        return cookie.decode("latin-1").replace("SameSite=Lax", "SameSite=Strict")

    # --- pages -----------------------------------------------------------------------

    def _allowed(self, operation: str, record: EnvironmentRecord, principal: Principal,
                 facts: RequestFacts) -> Authorization | None:
        try:
            return self._authorizer.authorize(operation, {"Name": record.name}, principal,
                                              facts, record.tags)
        except ServiceError:  # AccessDeniedException, or tags that differ only in case
            return None

    def _environments_page(self, session: _Session, facts: RequestFacts) -> Response:
        principal = session.principal
        rows = []
        for record in self._environments.all():
            if self._allowed("GetEnvironment", record, principal, facts) is None:
                continue
            rows.append(self._row(record, session,
                                  self._allowed("CreateWebLoginToken", record, principal,
                                                facts)))
        table = ("<table><thead><tr><th>Environment</th><th>Status</th><th>Airflow</th>"
                 f"<th>InvokeRestApi, last {RECENT_MINUTES} min</th><th>Last update</th>"
                 "<th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
                 if rows else "<p class=empty>No environments you may see.</p>")
        body = (f"<header><h1>Environments</h1><p>Signed in as "
                f"<b>{html.escape(principal.arn)}</b></p>"
                f"<form method=post action='{PREFIX}/signout'>"
                f"<input type=hidden name=csrf value='{session.csrf}'>"
                "<button>Sign out</button></form></header>" + table)
        return _page("Environments", body, status=200)

    def _row(self, record: EnvironmentRecord, session: _Session,
             login: Authorization | None) -> str:
        traffic = self._recent.of(record.name)
        said = f"{traffic.calls} calls"
        problems = [f"{count} {what}" for count, what in (
            (traffic.client_errors, "4xx"), (traffic.server_errors, "failed"),
            (traffic.throttled, "throttled")) if count]
        if problems:
            said += " (" + ", ".join(problems) + ")"
        update = record.last_update or {}
        error = update.get("Error") or {}
        last = html.escape(f"{update.get('Status', '-')} {str(update.get('CreatedAt', ''))[:19]}"
                           .replace("T", " "))
        if error:
            last += (f"<div class=error>{html.escape(str(error.get('ErrorCode')))}: "
                     f"{html.escape(str(error.get('ErrorMessage')))}</div>")
        action = ""
        if login is not None and record.status in INVOCABLE:
            role = login.airflow_role or "Public"
            action = (f"<form method=post action='{PREFIX}/environments/"
                      f"{quote(record.name, safe='')}/open'>"
                      f"<input type=hidden name=csrf value='{session.csrf}'>"
                      f"<button>Open Airflow UI</button> <small>as {html.escape(role)}"
                      "</small></form>")
        status = html.escape(record.status)
        return (f"<tr><td class=name>{html.escape(record.name)}</td>"
                f"<td><span class='status {status.lower()}'>{status}</span></td>"
                f"<td>{html.escape(str(record.spec.get('AirflowVersion', '-')))}</td>"
                f"<td>{html.escape(said)}</td><td>{last}</td><td>{action}</td></tr>")

    def _open(self, name: str, session: _Session, facts: RequestFacts,
              record: CallRecord) -> Response:
        """CreateWebLoginToken as the caller, then to the environment's sign-in page."""
        environment = self._environments.find(name)
        authorization = None if environment is None else self._allowed(
            "CreateWebLoginToken", environment, session.principal, facts)
        if environment is None or authorization is None:
            return _page("Refused", f"<p>You may not open {html.escape(name)}'s Airflow "
                         "UI.</p>", status=403)
        record.airflow_role = authorization.airflow_role
        call = Call(record.request_id, facts.now, session.principal, authorization, record,
                    environment)
        try:
            login = self._provider.create_web_login_token({"Name": name}, call)
        except ServiceError as error:
            record.error_code = error.code
            return _page("Can't open", f"<p>{html.escape(error.message)}</p>", status=409)
        url = (f"{self._web_scheme}://{login['WebServerHostname']}/aws_mwaa/aws-console-sso"
               f"?login=true#{login['WebToken']}")
        return Response(303, b"", {"location": url, "cache-control": "no-store"})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _form(data: bytes) -> dict[str, str]:
    try:
        parsed = parse_qs(data.decode("utf-8"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {key: values[0] for key, values in parsed.items()}


def _cookies(scope: Scope) -> Mapping[str, str]:
    found: dict[str, str] = {}
    for key, value in scope["headers"]:
        if key == b"cookie":
            for pair in value.decode("latin-1").split(";"):
                name, _, cookie = pair.strip().partition("=")
                found.setdefault(name, cookie)
    return found


def _signed_out(status: int) -> Response:
    return _page("Signed out", "<p>You are not signed in. Run <code>airgate console</code> "
                 "with your AWS credentials and open the link it prints.</p>", status=status)


_SIGNIN_FORM = """<p>Signing you in&hellip;</p>
<form id=signin method=post action="/console/signin">
<input type=hidden name=token value="{token}"><noscript><button>Sign in</button></noscript>
</form><script>document.getElementById("signin").submit()</script>"""

_STYLE = """body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#16191f}
nav{background:#232f3e;color:#fff;padding:.7em 1.5em;font-weight:600}
main{padding:1.5em}header{display:flex;gap:1.5em;align-items:baseline}
header form{margin-left:auto}h1{font-size:1.4em;margin:0 0 .8em}
table{border-collapse:collapse;background:#fff;width:100%;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:.6em .8em;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#fafafa;font-size:.85em;color:#545b64}.name{font-weight:600}
.status{padding:.15em .5em;border-radius:1em;font-size:.85em;background:#e3e6ea}
.status.available{background:#d6f5dd;color:#1d6b30}
.status.create_failed,.status.update_failed,.status.unavailable{background:#fde2e0;
color:#a3241b}.error{color:#a3241b;font-size:.85em;margin-top:.3em}
button{background:#ff9900;border:0;border-radius:.3em;padding:.4em .8em;font-weight:600;
cursor:pointer}small{color:#545b64}"""


def _page(title: str, body: str, status: int) -> Response:
    document = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
                f"<title>{html.escape(title)} - airgate</title><style>{_STYLE}</style></head>"
                f"<body><nav>airgate &middot; Managed Workflows for Apache Airflow</nav>"
                f"<main>{body}</main></body></html>")
    return Response(status, document.encode(), {
        "content-type": "text/html; charset=utf-8", "cache-control": "no-store",
        "x-frame-options": "DENY", "referrer-policy": "same-origin",
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "script-src 'unsafe-inline'; form-action 'self' "
                                   "http: https:; frame-ancestors 'none'"})
