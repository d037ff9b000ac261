"""The MWAA control plane: one method per operation, plain data in and out, no HTTP.

Input has already been validated against the model; what is checked here are the rules the
model can't express (version support, worker ranges, relative paths, lifecycle states).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import json
import time
from typing import Any, Protocol

from airgate.call import Call
from airgate.environments.runtime import Runtime
from airgate.environments.sources import bucket_name, valid_bucket_name
from airgate.environments.store import EnvironmentRecord, EnvironmentStore
from airgate.errors import (
    ResourceNotFoundException,
    ServiceError,
    ServiceUnavailableException,
    ThrottlingException,
    ValidationException,
)
from airgate.metrics.calls import CallMetrics
from airgate.mwaa.admission import Admission
from airgate.mwaa.arns import environment_arn, environment_name_from_arn
from airgate.mwaa.rest_api import Invocation, RestApiProxy, request_target
from airgate.web.tokens import EnvironmentTokens

ENVIRONMENT_CLASSES = ("mw1.micro", "mw1.small", "mw1.medium", "mw1.large", "mw1.xlarge",
                       "mw1.2xlarge")
DEFAULT_PAGE_SIZE = 25
UPDATE_SOURCE = "CUSTOMER"  # LastUpdate.Source of changes made through the API
_PATH_MEMBERS = ("DagS3Path", "PluginsS3Path", "RequirementsS3Path", "StartupScriptS3Path")
# Members the caller sets that GetEnvironment reports back as they were given.
_SPEC_MEMBERS = (
    "ExecutionRoleArn", "SourceBucketArn", "DagS3Path", "NetworkConfiguration",
    "PluginsS3Path", "PluginsS3ObjectVersion", "RequirementsS3Path",
    "RequirementsS3ObjectVersion", "StartupScriptS3Path", "StartupScriptS3ObjectVersion",
    "AirflowConfigurationOptions", "EnvironmentClass", "MaxWorkers", "MinWorkers", "KmsKey",
    "AirflowVersion", "LoggingConfiguration", "WeeklyMaintenanceWindowStart",
    "WebserverAccessMode", "Schedulers", "EndpointManagement", "MinWebservers", "MaxWebservers",
)
# UNAVAILABLE: a component other than the api-server may be down; the call is still tried.
# UPDATE_FAILED is MWAA's "restored to its previous state successfully and ready to use".
INVOCABLE = frozenset({"AVAILABLE", "UNAVAILABLE", "UPDATE_FAILED"})


class WebAccess(Protocol):
    """What the token operations need: the tokens, and where an environment's front is."""

    tokens: EnvironmentTokens

    def hostname(self, record: EnvironmentRecord) -> str | None: ...
_UPDATABLE_FROM = frozenset({"AVAILABLE", "UPDATE_FAILED"})
_DELETABLE_FROM = frozenset({"CREATING", "CREATE_FAILED", "AVAILABLE", "UPDATE_FAILED",
                             "UNAVAILABLE"})


class MwaaProvider:
    def __init__(self, region: str, account_id: str, store: EnvironmentStore,
                 runtime: Runtime, rest_api: RestApiProxy | None = None,
                 admission: Admission | None = None,
                 web: WebAccess | None = None, metrics: CallMetrics | None = None) -> None:
        self._region = region
        self._account = account_id
        self._store = store
        self._runtime = runtime
        self._rest_api = rest_api
        self._admission = admission
        self._web = web
        self._metrics = metrics

    def arn(self, name: str) -> str:
        return environment_arn(self._region, self._account, name)

    # --- operations --------------------------------------------------------------------

    def create_environment(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"Arn": self.create(params, call.now)}

    def create(self, params: dict[str, Any], now: datetime.datetime) -> str:
        """Record a new environment and hand it to the runtime; its ARN. (Also how airgate
        makes its default environment.)"""
        name = params["Name"]
        spec = {k: params[k] for k in _SPEC_MEMBERS if k in params}
        spec.setdefault("AirflowVersion", self._runtime.supported_versions[0])
        self._check_spec(spec)
        record = self._store.create(name, spec, params.get("Tags", {}), now,
                                    source=UPDATE_SOURCE)
        self._runtime.begin_create(record)
        return self.arn(name)

    def get_environment(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        return {"Environment": self._view(self._store.get(params["Name"]))}

    def list_environments(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        limit = params.get("MaxResults", DEFAULT_PAGE_SIZE)
        after = _decode_token(params["NextToken"]) if params.get("NextToken") else None
        names = self._store.names(after, limit + 1)
        result: dict[str, Any] = {"Environments": names[:limit]}
        if len(names) > limit:
            result["NextToken"] = _encode_token(names[limit - 1])
        return result

    def update_environment(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        name = params["Name"]
        current = self._store.get(name)
        changes = {k: v for k, v in params.items() if k in _SPEC_MEMBERS}
        if "NetworkConfiguration" in changes:  # only security groups can change
            network = dict(current.spec.get("NetworkConfiguration", {}))
            network.update(changes["NetworkConfiguration"])
            changes["NetworkConfiguration"] = network
        spec = {**current.spec, **changes}
        self._check_spec(spec)
        _check_upgrade(current.spec["AirflowVersion"], spec["AirflowVersion"])
        last_update: dict[str, Any] = {"Status": "PENDING", "CreatedAt": call.now.isoformat(),
                                       "Source": UPDATE_SOURCE}
        if "WorkerReplacementStrategy" in params:
            last_update["WorkerReplacementStrategy"] = params["WorkerReplacementStrategy"]
        record = self._store.transition(name, allowed_from=_UPDATABLE_FROM, status="UPDATING",
                                        spec=spec, last_update=last_update)
        self._runtime.begin_update(record, current.spec)
        return {"Arn": self.arn(name)}

    def delete_environment(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        record = self._store.transition(params["Name"], allowed_from=_DELETABLE_FROM,
                                        status="DELETING")
        self._runtime.begin_delete(record)
        return {}

    def tag_resource(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._store.tag(self._name_from_arn(params["ResourceArn"]), params["Tags"])
        return {}

    def untag_resource(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        self._store.untag(self._name_from_arn(params["ResourceArn"]), params["tagKeys"])
        return {}

    def list_tags_for_resource(self, params: dict[str, Any],
                               call: Call) -> dict[str, Any]:
        record = self._store.get(self._name_from_arn(params["ResourceArn"]))
        return {"Tags": record.tags}

    async def invoke_rest_api(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        """Airflow's REST API, called as the caller with the Airflow role they were allowed."""
        name = params["Name"]
        audit = call.record.extra
        audit.update(environment=name, method=params["Method"])
        # Logged only once checked, never as sent; without its query, as QueryParameters.
        path, query = request_target(params["Path"], params.get("QueryParameters"))
        audit["path"] = path
        record = call.environment
        if record is None:
            raise ResourceNotFoundException(f"Environment {name} was not found.")
        if record.status not in INVOCABLE or self._rest_api is None:
            raise ValidationException(f"Environment {name} is {record.status}: InvokeRestApi "
                                      "needs an AVAILABLE environment")
        invocation = Invocation(
            environment=name, api_url=self._rest_api.api_url(record),
            method=params["Method"], path=path,
            query=query, body=params.get("Body"),
            identity=call.principal.airflow_identity,
            airflow_role=call.authorization.airflow_role or "Public")
        started: float | None = None  # when Airflow was called, if it was
        try:
            if self._admission is not None:
                await self._admission.wait_for_slot(name)
            with (self._admission.admit(name) if self._admission is not None
                  else contextlib.nullcontext()):
                started = time.perf_counter()
                result = await self._rest_api.send(invocation)
        except ServiceError as error:
            status = error.fields.get("RestApiStatusCode")
            audit["rest_api_status"] = status
            if self._metrics is not None:
                if isinstance(error, ThrottlingException) and started is None:
                    self._metrics.throttled_call(name)
                self._metrics.rest_api_call(
                    name, invocation.method, error.code if status is None else str(status),
                    None if started is None else time.perf_counter() - started)
            raise
        audit["rest_api_status"] = result["RestApiStatusCode"]
        if self._metrics is not None:
            self._metrics.rest_api_call(name, invocation.method,
                                        str(result["RestApiStatusCode"]),
                                        time.perf_counter() - started)
        return result

    def create_cli_token(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        """A 60-second token for running Airflow CLI commands at the environment's
        WebServerHostname (`POST /aws_mwaa/cli`), as the caller."""
        web, hostname = self._front(params["Name"], call, "CreateCliToken")
        token = web.tokens.mint("cli", params["Name"], call.principal.airflow_identity)
        return {"CliToken": token, "WebServerHostname": hostname}

    def create_web_login_token(self, params: dict[str, Any], call: Call) -> dict[str, Any]:
        """A 60-second, one-use token that signs the caller in to the environment's Airflow
        UI at its WebServerHostname, with the Airflow role their policies allow."""
        web, hostname = self._front(params["Name"], call, "CreateWebLoginToken")
        identity = call.principal.airflow_identity
        role = call.authorization.airflow_role or "Public"
        return {"WebToken": web.tokens.mint("web-login", params["Name"], identity, role),
                "WebServerHostname": hostname, "IamIdentity": call.principal.arn,
                "AirflowIdentity": identity[:64]}

    # --- helpers -----------------------------------------------------------------------

    def _front(self, name: str, call: Call, operation: str) -> tuple[WebAccess, str]:
        """The token issuer and WebServerHostname of a running environment, or the error
        MWAA gives for a missing or not running one."""
        record = call.environment
        if record is None:
            raise ResourceNotFoundException(f"Environment {name} was not found.")
        web = self._web
        if web is None or record.status not in INVOCABLE:
            raise ValidationException(f"Environment {name} is {record.status}: "
                                      f"{operation} needs an AVAILABLE environment")
        hostname = web.hostname(record)
        if hostname is None:
            raise ServiceUnavailableException(
                f"Environment {name}'s web server can't be reached through this gateway: "
                "send the call to the gateway that runs it, or start that one with "
                "--advertise-address")
        return web, hostname

    def _name_from_arn(self, arn: str) -> str:
        name = environment_name_from_arn(arn, self._region, self._account)
        if name is None:
            raise ResourceNotFoundException(f"Resource {arn} was not found.")
        return name

    def _check_spec(self, spec: dict[str, Any]) -> None:
        versions = self._runtime.supported_versions
        if spec["AirflowVersion"] not in versions:
            raise ValidationException(
                f"Airflow version {spec['AirflowVersion']} is not supported. Supported "
                f"versions: {', '.join(versions)}")
        environment_class = spec.get("EnvironmentClass")
        if environment_class is not None and environment_class not in ENVIRONMENT_CLASSES:
            raise ValidationException(
                f"Invalid EnvironmentClass {environment_class}. Valid values: "
                + ", ".join(ENVIRONMENT_CLASSES))
        for low, high in (("MinWorkers", "MaxWorkers"), ("MinWebservers", "MaxWebservers")):
            if low in spec and high in spec and spec[low] > spec[high]:
                raise ValidationException(f"{low} ({spec[low]}) must not be greater than "
                                          f"{high} ({spec[high]})")
        if spec.get("Schedulers") is not None and not 1 <= spec["Schedulers"] <= 5:
            raise ValidationException("Schedulers must be between 1 and 5")
        bucket = bucket_name(spec["SourceBucketArn"])
        if not valid_bucket_name(bucket):
            raise ValidationException(
                "SourceBucketArn must name a valid S3 bucket: 3 to 63 lowercase letters, "
                "digits, '.' and '-', starting and ending with a letter or digit, without "
                "'..' and not shaped like an IP address")
        for member in _PATH_MEMBERS:
            if member in spec:
                _check_relative_path(member, spec[member])
        self._runtime.check_spec(spec)

    def _view(self, record: EnvironmentRecord) -> dict[str, Any]:
        """GetEnvironment's Environment: only what is true of this environment."""
        view: dict[str, Any] = {
            "Name": record.name,
            "Status": record.status,
            "Arn": self.arn(record.name),
            "CreatedAt": record.created_at,
            **record.spec,
            "Tags": record.tags,
        }
        if record.last_update is not None:
            view["LastUpdate"] = _last_update_view(record.last_update)
        url = self._runtime.webserver_url(record)
        if url is not None:
            if self._web is not None:
                self._web.hostname(record)  # the front behind the URL answers by now
            view["WebserverUrl"] = url
        return view


def _check_upgrade(before: str, after: str) -> None:
    """Airflow upgrades in place, as on MWAA; it never goes back, since its metadata has
    been migrated (a new environment can run the older version)."""
    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split(".") if part.isdigit())

    if key(after) < key(before):
        raise ValidationException(
            f"Airflow can't be downgraded in place from {before} to {after}: the "
            f"environment's metadata is migrated to {before}. Create a new environment to "
            f"run {after}.")


def _check_relative_path(member: str, path: str) -> None:
    """Bucket keys map to files under the bucket's folder: they must stay inside it."""
    parts = path.replace("\\", "/").split("/")
    if path.startswith("/") or ".." in parts or any(ord(c) < 32 for c in path):
        raise ValidationException(f"{member} must be a relative path inside the bucket "
                                  "without '..' components")


def _last_update_view(stored: dict[str, Any]) -> dict[str, Any]:
    view = dict(stored)
    view["CreatedAt"] = datetime.datetime.fromisoformat(stored["CreatedAt"])
    return view


def _encode_token(last_name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_name}).encode()).decode()


def _decode_token(token: str) -> str:
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValidationException("The NextToken is not valid.") from None
    if not isinstance(after, str):
        raise ValidationException("The NextToken is not valid.")
    return after
