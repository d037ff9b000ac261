"""Sign-in for an Airflow 2 environment run by airgate: the only `[api] auth_backends`.

- `/api/v1` with `Authorization: Bearer <JWT>`: the JWT must be signed (EdDSA) by a key in
  the JWKS file `[airgate] jwks_path` (airgate's key for this environment: public keys only),
  for this environment (`aud`), from airgate (`iss`), unexpired, with `sub` = the caller's IAM
  identity and `role` = ADMIN, OP, USER, VIEWER or PUBLIC. The Flask-AppBuilder user named
  `sub` is created on first use and its roles are set to exactly that role, so the user is
  kept in step with what IAM allows; the request then runs as that user and Airflow's own
  permissions decide. A Bearer token that fails any check is refused here; Airflow then
  tries its session backend (listed after this one), which signs in only a request that
  also carries a valid Flask session, i.e. one airgate's front signed in.
- `/api/v1` with no Authorization header: the browser's Flask session, so a web sign-in
  also works for the API (as MWAA's does).
- `POST /airgate/login` (form field `assertion`, purpose `web-login`): the web sign-in that
  airgate's front makes on a browser's behalf; Flask-Login signs the user in and Flask issues
  its `session` cookie. API tokens can't start sessions and sign-in assertions can't call
  the API.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import jwt
from airflow.configuration import conf
from flask import Blueprint, Response, current_app, redirect, request
from flask_login import current_user, login_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import generate_password_hash

log = logging.getLogger(__name__)

CLIENT_AUTH = None  # Airflow's own API client has no way to use this backend
ALGORITHMS = ["EdDSA"]
LEEWAY = 5  # seconds of clock skew
ROLES = {"ADMIN": "Admin", "OP": "Op", "USER": "User", "VIEWER": "Viewer", "PUBLIC": "Public"}
LOGIN_PURPOSE = "web-login"
EMAIL_DOMAIN = "users.airgate.invalid"  # RFC 2606: never a real mailbox

F = TypeVar("F", bound=Callable[..., Any])


class Refused(Exception):
    """Why a token is not accepted (logged, never sent to the caller)."""


_keys_lock = threading.Lock()
_keys_cache: tuple[tuple[str, int, int], dict[str, Any]] | None = None


def _keys() -> dict[str, Any]:
    """kid -> public key, from the JWKS file, read again whenever the file changes."""
    global _keys_cache
    path = conf.get("airgate", "jwks_path")
    stat = os.stat(path)
    stamp = (path, stat.st_mtime_ns, stat.st_size)
    with _keys_lock:
        if _keys_cache is None or _keys_cache[0] != stamp:
            with open(path) as source:
                document = json.load(source)
            keys = {jwk["kid"]: jwt.PyJWK(jwk, algorithm="EdDSA").key
                    for jwk in document.get("keys", [])
                    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and jwk.get("kid")}
            _keys_cache = (stamp, keys)
        return _keys_cache[1]


def verify(token: str, purpose: str | None) -> dict[str, Any]:
    """The claims of an airgate token for this environment and `purpose`, or Refused."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise Refused(f"malformed token: {error}") from None
    if header.get("alg") not in ALGORITHMS:  # never HS256 with a public key, never "none"
        raise Refused(f"algorithm {header.get('alg')!r} not accepted")
    try:
        key = _keys().get(str(header.get("kid", "")))
    except (OSError, ValueError, jwt.PyJWTError) as error:  # fail closed, never a 500
        raise Refused(f"trusted keys unreadable: {error}") from None
    if key is None:
        raise Refused(f"unknown key id {header.get('kid')!r}")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=ALGORITHMS, leeway=LEEWAY,
            audience=conf.get("airgate", "audience"), issuer=conf.get("airgate", "issuer"),
            options={"require": ["exp", "iat", "sub", "aud", "iss"]})
    except jwt.PyJWTError as error:
        raise Refused(str(error)) from None
    if claims.get("purpose") != purpose:
        raise Refused(f"a token for {claims.get('purpose') or 'the API'}, "
                      f"not {purpose or 'the API'}")
    if claims.get("role") not in ROLES:
        raise Refused(f"unknown role {claims.get('role')!r}")
    if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 256:
        raise Refused("bad subject")
    return claims


def _security_manager() -> Any:
    return current_app.appbuilder.sm  # the same on every Airflow 2 (2.7 to 2.11)


def _email(username: str) -> str:
    """Flask-AppBuilder wants a unique email; usernames are unique ignoring case, so the
    email is derived from the lowered name."""
    return hashlib.sha256(username.lower().encode()).hexdigest()[:32] + "@" + EMAIL_DOMAIN


def user_for(username: str, role_name: str) -> Any:
    """The user `username`, created if new, whose roles are exactly [role_name]."""
    manager = _security_manager()
    role = manager.find_role(role_name)
    if role is None:
        raise Refused(f"role {role_name} does not exist in this environment")
    for _ in range(3):
        user = manager.find_user(username=username)
        if user is None:
            # add_user commits, or rolls back and returns False when another process made
            # the same user at the same moment: the unique index decides, and the next pass
            # finds the winner's user.
            created = manager.add_user(
                username=username, first_name=username[:64], last_name="(IAM)",
                email=_email(username), role=role,
                # A password nobody knows: no one signs in as this user but through airgate.
                hashed_password=generate_password_hash(secrets.token_urlsafe(32)))
            if created:
                log.info("airgate: created Airflow user %s with role %s", username, role_name)
                return created
            continue
        if not user.is_active:
            raise Refused(f"user {username} is deactivated in Airflow")
        if [r.name for r in user.roles] != [role_name]:
            before = [r.name for r in user.roles]
            user.roles = [role]
            if not manager.update_user(user):  # rolled back by a concurrent change: again
                continue
            log.info("airgate: roles of %s: %s -> %s", username, before, [role_name])
        return user
    raise Refused(f"could not create or update user {username}")


def _sign_in(claims: dict[str, Any]) -> Any:
    user = user_for(claims["sub"], ROLES[claims["role"]])
    login_user(user, remember=False)
    return user


def init_app(app: Any) -> None:
    """Called by Airflow with the web server's Flask app: adds the web sign-in route."""
    app.register_blueprint(login_blueprint)
    csrf = app.extensions.get("csrf")
    if csrf is not None:  # the signed assertion, not a form token, protects this POST
        csrf.exempt(login_blueprint)


def _unauthorized() -> Response:
    return Response("Unauthorized", 401, {"WWW-Authenticate": 'Bearer realm="airflow"'})


def requires_authentication(function: F) -> F:
    @wraps(function)
    def decorated(*args: Any, **kwargs: Any) -> Any:
        authorization = request.headers.get("Authorization", "")
        if authorization[:7].lower() == "bearer ":
            try:
                _sign_in(verify(authorization[7:].strip(), purpose=None))
            except Refused as refused:
                log.info("airgate: API token refused: %s", refused)
                return _unauthorized()
            except SQLAlchemyError:
                log.exception("airgate: could not sign the caller in")
                return Response("Service Unavailable", 503, {})
            return function(*args, **kwargs)
        if authorization:
            return _unauthorized()  # Basic or anything else is not accepted here
        if current_user.is_authenticated and current_user.is_active:
            return function(*args, **kwargs)  # the browser's session (a web sign-in)
        return _unauthorized()

    return cast(F, decorated)


login_blueprint = Blueprint("airgate_login", __name__)


@login_blueprint.route("/airgate/login", methods=["POST"])
def airgate_login() -> Any:
    """The web sign-in airgate's front makes on a browser's behalf (never reachable through
    the front itself)."""
    try:
        claims = verify(request.form.get("assertion", ""), purpose=LOGIN_PURPOSE)
        user = _sign_in(claims)
    except Refused as refused:
        log.info("airgate: web sign-in refused: %s", refused)
        return Response("Unauthorized", 401, {})
    log.info("airgate: web sign-in of %s", user.username)
    return redirect("/home")
