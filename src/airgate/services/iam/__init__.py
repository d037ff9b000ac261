"""IAM (query protocol, signed for `iam`, global): users, roles, access keys, inline and
managed policies, from airgate's identity store."""

from airgate.services.iam.service import RESOURCES, IamService

__all__ = ["RESOURCES", "IamService"]
