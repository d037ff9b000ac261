"""STS (query protocol, signed for `sts`): GetCallerIdentity, AssumeRole, GetSessionToken,
from airgate's identity store."""

from airgate.services.sts.service import StsService

__all__ = ["StsService"]
