"""One environment's web sessions: started by a web login, recognised on each request to the
environment's front, and ended when signed out or when IAM no longer allows them.

A session is a token of airgate/web/tokens.py (purpose `session`), never an Airflow token
(with Airflow 2 it carries, sealed, the Flask session airgate signed the user in with).
Its identity is checked against IAM when it starts and again once per `review_interval`
while it is used (airgate/web/review.py), for the request at hand: a deleted identity, one
made again under the same name, or one whose policies no longer allow signing in with the
session's Airflow role ends it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from airgate.web.credentials import Presented
from airgate.web.tokens import EnvironmentTokens, TokenClaims, TokenRefused

REVIEW_INTERVAL = 300.0  # seconds a session goes on before its identity is checked again
# (IAM identity, Airflow role, source address, https) -> the identity's principal id if it
# may be signed in to this environment with that role now (airgate/web/review.py), else None.
SessionReview = Callable[[str, str, str, bool], str | None]
# (IAM identity, Airflow role) -> what a new session keeps of signing in to Airflow (Airflow
# 2's Flask session), or None (airgate/web/signin.py).
AirflowSignInStep = Callable[[str, str], Awaitable[str | None]]
_log = logging.getLogger("airgate.web")


class SessionRefused(Exception):
    """A session that can't start or go on; the message is safe to show the caller."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a request is signed in as: a session, or no one."""

    session: TokenClaims | None = None
    from_bearer: bool = False  # the session came as `Authorization: Bearer`, not a cookie


class WebSessions:
    def __init__(self, environment: str, tokens: EnvironmentTokens, review: SessionReview,
                 review_interval: float = REVIEW_INTERVAL) -> None:
        self.environment = environment
        self.review_interval = review_interval
        self._tokens = tokens
        self._review = review
        self._reviewed: dict[str, tuple[float, float]] = {}  # session id: checked, expires

    async def start(self, login: TokenClaims, source_ip: str, secure: bool,
                    sign_in_to_airflow: AirflowSignInStep | None = None) -> str:
        """A session for a checked web-login token's identity and Airflow role, if IAM
        still allows it (and then signed in to Airflow by `sign_in_to_airflow`, whose
        errors are raised as they are); SessionRefused otherwise. Store errors are raised
        as they are."""
        role = login.airflow_role or "Public"
        principal_id = await run_in_threadpool(self._review, login.identity, role,
                                               source_ip, secure)
        if principal_id is None:
            raise SessionRefused(f"{login.identity} may no longer sign in to environment "
                                 f"{self.environment} as {role}")
        airflow_session = (None if sign_in_to_airflow is None
                           else await sign_in_to_airflow(login.identity, role))
        return self._tokens.mint("session", self.environment, login.identity, role,
                                 principal_id=principal_id, airflow_session=airflow_session)

    def renew(self, session: TokenClaims, airflow_session: str | None) -> str:
        """The same session (identity, role, principal, end), signed in to Airflow again."""
        return self._tokens.mint("session", self.environment, session.identity,
                                 session.airflow_role, principal_id=session.principal_id,
                                 airflow_session=airflow_session,
                                 expires_at=session.expires_at)

    async def signed_in(self, presented: Presented, source_ip: str,
                        secure: bool) -> SignedIn:
        """The session a request carries for this environment (a Bearer token before
        cookies), checked, and reviewed when due; SessionRefused if it carries one that is
        not valid (any more). Store errors, when reviewing, are raised as they are."""
        from_bearer = presented.bearer_session is not None
        candidates = [presented.bearer_session] if presented.bearer_session is not None \
            else presented.session_cookies
        if not candidates:
            return SignedIn()
        refusal = "Not signed in"
        for candidate in candidates:
            try:
                # Off the event loop: whether the session was ended is in the store.
                claims = await run_in_threadpool(self._tokens.check, candidate, "session",
                                                 self.environment)
            except TokenRefused as refused:
                refusal = str(refused)
                continue
            await self._review_if_due(claims, source_ip, secure)
            return SignedIn(claims, from_bearer)
        raise SessionRefused(f"Not signed in to environment {self.environment}: {refusal}")

    def end(self, session: TokenClaims) -> None:
        """Signed out: the session is refused from now on."""
        self._tokens.end(session)
        self._reviewed.pop(session.token_id, None)

    async def _review_if_due(self, session: TokenClaims, source_ip: str,
                             secure: bool) -> None:
        now = time.time()
        checked = self._reviewed.get(session.token_id, (session.issued_at, 0.0))[0]
        if now - checked < self.review_interval:
            return
        role = session.airflow_role or "Public"
        principal_id = await run_in_threadpool(self._review, session.identity, role,
                                               source_ip, secure)
        if principal_id is None or principal_id != session.principal_id:
            await run_in_threadpool(self.end, session)
            _log.info("web session ended", extra={"fields": {
                "environment": self.environment, "principal": session.identity,
                "airflow_role": role, "reason": "no longer allowed"}})
            raise SessionRefused(f"The session has ended: {session.identity} may no longer "
                                 f"sign in to environment {self.environment} as {role}; "
                                 "sign in again")
        for stale in [k for k, (_, expires) in self._reviewed.items() if expires <= now]:
            del self._reviewed[stale]
        self._reviewed[session.token_id] = (now, session.expires_at)
