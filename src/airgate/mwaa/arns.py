"""ARNs of MWAA resources, as IAM policies and the API name them."""

from __future__ import annotations

AIRFLOW_ROLES = ("Admin", "Op", "User", "Viewer", "Public")


def environment_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:airflow:{region}:{account_id}:environment/{name}"


def airflow_role_arn(region: str, account_id: str, environment: str, role: str) -> str:
    """The resource of InvokeRestApi and CreateWebLoginToken: an Airflow role in an env."""
    return f"arn:aws:airflow:{region}:{account_id}:role/{environment}/{role}"


def environment_name_from_arn(arn: str, region: str, account_id: str) -> str | None:
    """The environment an ARN names, if it names one of this gateway's environments."""
    prefix = environment_arn(region, account_id, "")
    name = arn[len(prefix):] if arn.startswith(prefix) else ""
    return name if name and "/" not in name else None
