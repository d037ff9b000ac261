"""Service errors: what a client can be told, mapped to HTTP once, at the edge.

Provider and auth code raise these; `airgate.aws.protocol` turns them into rest-json error
responses with the `x-amzn-errortype` header that botocore reads. Codes that the MWAA model
defines (ValidationException, ResourceNotFoundException, ...) are serialized with the members
of their model shape; the rest (the SigV4 errors every AWS service shares) carry `message`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    """An error the client caused or may see; `code` is the AWS error code."""

    code: ClassVar[str] = "InternalServerException"
    status: ClassVar[int] = 500
    sender_fault: ClassVar[bool] = False

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        # Extra modeled members, e.g. RestApiStatusCode for RestApiClientException.
        self.fields = fields


class ClientFault(ServiceError):
    sender_fault = True
    status = 400


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


class ThrottlingException(ClientFault):
    code = "ThrottlingException"
    status = 429


class RequestEntityTooLargeException(ClientFault):
    code = "RequestEntityTooLargeException"
    status = 413
