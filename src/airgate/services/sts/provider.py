"""STS: one method per served operation, plain data in and out, no HTTP.

Who may call each operation was decided before (`airgate.services.sts.service`): here are
the rules of the operation itself (durations, who may ask for a session token) and the
credentials it issues.
"""

from __future__ import annotations

from typing import Any

from airgate.auth.authorize import denial
from airgate.auth.identities import IamError, Identities
from airgate.call import Call
from airgate.errors import AccessDeniedException, ValidationException

DEFAULT_ROLE_SESSION_SECONDS = 3600
DEFAULT_USER_SESSION_SECONDS = 43_200
# "Role chaining limits your AWS CLI or AWS API role session to a maximum of one hour."
CHAINED_SESSION_SECONDS = 3600
_UNSUPPORTED_MEMBERS = {
    "Tags": "session tags", "TransitiveTagKeys": "session tags",
    "SourceIdentity": "a source identity", "ProvidedContexts": "provided contexts",
}


class StsProvider:
    def __init__(self, identities: Identities) -> None:
        self._identities = identities

    def get_caller_identity(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        principal = call.principal
        return {"UserId": principal.user_id, "Account": self._identities.account_id,
                "Arn": principal.arn}

    def assume_role(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        """Credentials for a session of the role, narrowed by the session policies given
        (`Policy` and the managed policies in `PolicyArns`)."""
        for member, what in _UNSUPPORTED_MEMBERS.items():
            if params.get(member):
                raise ValidationException(f"airgate does not support {what} ({member})")
        _refuse_mfa(params)
        role = self._identities.role_named_by(params["RoleArn"])
        if role is None:  # deleted since it was authorised: as AWS answers for no role
            raise denial(call.principal, "sts:AssumeRole", params["RoleArn"])
        duration = params.get("DurationSeconds", DEFAULT_ROLE_SESSION_SECONDS)
        if call.principal.kind == "AssumedRole" and duration > CHAINED_SESSION_SECONDS:
            raise ValidationException("The requested DurationSeconds exceeds the 1 hour "
                                      "session limit for roles assumed by role chaining.")
        documents = [params["Policy"]] if params.get("Policy") else []
        for descriptor in params.get("PolicyArns") or []:
            arn = descriptor.get("arn", "")
            try:
                documents.append(self._identities.policy_document(arn))
            except IamError:
                raise ValidationException(f"PolicyArns: {arn} is not a managed policy of "
                                          "this account") from None
        return self._identities.assume_role(role["RoleName"], params["RoleSessionName"],
                                            duration, documents)

    def get_session_token(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        """Temporary credentials of the calling IAM user, with that user's permissions."""
        principal = call.principal
        if principal.temporary or principal.kind != "User" or principal.username is None:
            raise AccessDeniedException("Cannot call GetSessionToken with session credentials")
        _refuse_mfa(params)
        return self._identities.get_session_token(
            principal.username, params.get("DurationSeconds", DEFAULT_USER_SESSION_SECONDS))


def _refuse_mfa(params: dict[str, Any]) -> None:
    """airgate has no MFA devices, so no code can be checked."""
    if params.get("SerialNumber") or params.get("TokenCode"):
        raise AccessDeniedException("MultiFactorAuthentication failed: airgate has no MFA "
                                    "devices")
