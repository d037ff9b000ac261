"""Service errors: what a client can be told, mapped to HTTP once, at the edge.

Provider and auth code raise these; each service's wire protocol turns them into its own
error responses: rest-json with the `x-amzn-errortype` header for MWAA
(`airgate.aws.protocol`), XML `ErrorResponse` documents for IAM and STS (`airgate.aws.query`).
The classes below are named as MWAA names them; the query protocol translates the situations
every AWS service shares (a missing signature, an unknown key, a denial...) into its own
vocabulary (`MissingAuthenticationToken`, `InvalidClientTokenId`, `AccessDenied`...).
Errors a query service's model defines are raised as `ModeledError`, by their code.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error the client caused or may see; `code` is the AWS error code."""

    code: str = "InternalServerException"
    status: int = 500
    sender_fault: bool = False

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        # Extra modeled members, e.g. RestApiStatusCode for RestApiClientException.
        self.fields = fields


class ClientFault(ServiceError):
    sender_fault = True
    status = 400


class ModeledError(ClientFault):
    """An error named by its code in the service's model (IAM's NoSuchEntity,
    EntityAlreadyExists, ...), or by the service's common vocabulary (ValidationError); the
    protocol takes its HTTP status and fault from the model when the model has the code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- errors the MWAA model defines -------------------------------------------------------


class ValidationException(ClientFault):
    code = "ValidationException"


class ResourceNotFoundException(ClientFault):
    code = "ResourceNotFoundException"
    status = 404


class AccessDeniedException(ClientFault):
    code = "AccessDeniedException"
    status = 403


class InternalServerException(ServiceError):
    code = "InternalServerException"
    status = 500


class ServiceUnavailableException(ServiceError):
    code = "ServiceUnavailableException"
    status = 503


class RestApiClientException(ClientFault):
    code = "RestApiClientException"


class RestApiServerException(ClientFault):
    code = "RestApiServerException"


# --- errors every AWS service shares (not in the model) -----------------------------------


class MissingAuthenticationTokenException(ClientFault):
    code = "MissingAuthenticationTokenException"
    status = 403


class IncompleteSignatureException(ClientFault):
    code = "IncompleteSignatureException"
    status = 400


class InvalidSignatureException(ClientFault):
    code = "InvalidSignatureException"
    status = 403


class UnrecognizedClientException(ClientFault):
    code = "UnrecognizedClientException"
    status = 403


class ExpiredTokenException(ClientFault):
    code = "ExpiredTokenException"
    status = 403


class UnknownOperationException(ClientFault):
    code = "UnknownOperationException"
    status = 404


class MissingActionException(ClientFault):
    """A query-protocol request that names no operation (no `Action`)."""

    code = "MissingAction"


class ThrottlingException(ClientFault):
    code = "ThrottlingException"
    status = 429


class RequestEntityTooLargeException(ClientFault):
    code = "RequestEntityTooLargeException"
    status = 413
