"""The `airgate` command: run the server, print its environment, manage identities.

`airgate iam ...` follows the AWS CLI (same command and option names, JSON output, errors as
"An error occurred (Code) when calling the X operation: ..."), and works on the state store
directly: whoever can read the airgate home is the account's operator.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgate import config
from airgate.auth.identities import IamError, Identities

_OUTPUT_INDENT = 4


# --- option helpers -----------------------------------------------------------------------


def _document(value: str) -> str:
    """A policy document given inline, or as file://PATH like the AWS CLI takes it."""
    if value.startswith("file://"):
        try:
            return Path(value[len("file://"):]).expanduser().read_text()
        except OSError as error:
            raise argparse.ArgumentTypeError(f"cannot read {value}: {error.strerror}") from None
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="airgate home directory (AIRGATE_HOME, default "
                        "~/.airgate)")
    parser.add_argument("--database-url", help="state store URL, e.g. postgresql://... "
                        "(AIRGATE_DATABASE_URL; default SQLite in the home)")


def _settings(args: argparse.Namespace, **more: Any) -> config.Settings:
    return config.from_environment(home=args.home, database_url=args.database_url, **more)


# --- airgate iam --------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    required: bool = True
    type: Callable[[str], Any] = str


@dataclass(frozen=True)
class IamCommand:
    name: str
    operation: str  # the IAM/STS operation name, for error messages
    help: str
    options: tuple[Option, ...]
    run: Callable[[Identities, argparse.Namespace], Any]


USER = Option("--user-name", "name of the IAM user")
ROLE = Option("--role-name", "name of the IAM role")
POLICY_NAME = Option("--policy-name", "name of the policy")
POLICY_DOCUMENT = Option("--policy-document", "policy JSON, or file://PATH", type=_document)
POLICY_ARN = Option("--policy-arn", "ARN of the managed policy")
KEY_ID = Option("--access-key-id", "the access key id")
PATH = Option("--path", "IAM path, default /", required=False)


IAM_COMMANDS: tuple[IamCommand, ...] = (
    IamCommand("create-user", "CreateUser", "create a user", (USER, PATH),
               lambda i, a: {"User": i.create_user(a.user_name, a.path or "/")}),
    IamCommand("get-user", "GetUser", "show a user", (USER,),
               lambda i, a: {"User": i.get_user(a.user_name)}),
    IamCommand("list-users", "ListUsers", "list users", (),
               lambda i, a: {"Users": i.list_users()}),
    IamCommand("delete-user", "DeleteUser", "delete a user (keys and policies first)", (USER,),
               lambda i, a: i.delete_user(a.user_name)),
    IamCommand("create-access-key", "CreateAccessKey",
               "create an access key; the secret is shown only now", (USER,),
               lambda i, a: {"AccessKey": i.create_access_key(a.user_name)}),
    IamCommand("list-access-keys", "ListAccessKeys", "list a user's access keys", (USER,),
               lambda i, a: {"AccessKeyMetadata": i.list_access_keys(a.user_name)}),
    IamCommand("update-access-key", "UpdateAccessKey", "set a key Active or Inactive",
               (USER, KEY_ID, Option("--status", "Active or Inactive")),
               lambda i, a: i.update_access_key(a.user_name, a.access_key_id, a.status)),
    IamCommand("delete-access-key", "DeleteAccessKey", "delete an access key", (USER, KEY_ID),
               lambda i, a: i.delete_access_key(a.user_name, a.access_key_id)),
    IamCommand("put-user-policy", "PutUserPolicy", "add or replace a user's inline policy",
               (USER, POLICY_NAME, POLICY_DOCUMENT),
               lambda i, a: i.put_inline_policy("user", a.user_name, a.policy_name,
                                                a.policy_document)),
    IamCommand("get-user-policy", "GetUserPolicy", "show a user's inline policy",
               (USER, POLICY_NAME),
               lambda i, a: i.get_inline_policy("user", a.user_name, a.policy_name)),
    IamCommand("list-user-policies", "ListUserPolicies", "list a user's inline policies",
               (USER,),
               lambda i, a: {"PolicyNames": i.list_inline_policies("user", a.user_name)}),
    IamCommand("delete-user-policy", "DeleteUserPolicy", "delete a user's inline policy",
               (USER, POLICY_NAME),
               lambda i, a: i.delete_inline_policy("user", a.user_name, a.policy_name)),
    IamCommand("create-role", "CreateRole", "create a role",
               (ROLE, Option("--assume-role-policy-document",
                             "trust policy JSON or file://PATH (default: this account)",
                             required=False, type=_document),
                PATH, Option("--max-session-duration", "seconds, 3600 to 43200",
                             required=False, type=int)),
               lambda i, a: {"Role": i.create_role(
                   a.role_name, a.assume_role_policy_document, a.path or "/",
                   a.max_session_duration or 3600)}),
    IamCommand("get-role", "GetRole", "show a role", (ROLE,),
               lambda i, a: {"Role": i.get_role(a.role_name)}),
    IamCommand("list-roles", "ListRoles", "list roles", (),
               lambda i, a: {"Roles": i.list_roles()}),
    IamCommand("delete-role", "DeleteRole", "delete a role (policies first)", (ROLE,),
               lambda i, a: i.delete_role(a.role_name)),
    IamCommand("put-role-policy", "PutRolePolicy", "add or replace a role's inline policy",
               (ROLE, POLICY_NAME, POLICY_DOCUMENT),
               lambda i, a: i.put_inline_policy("role", a.role_name, a.policy_name,
                                                a.policy_document)),
    IamCommand("get-role-policy", "GetRolePolicy", "show a role's inline policy",
               (ROLE, POLICY_NAME),
               lambda i, a: i.get_inline_policy("role", a.role_name, a.policy_name)),
    IamCommand("list-role-policies", "ListRolePolicies", "list a role's inline policies",
               (ROLE,),
               lambda i, a: {"PolicyNames": i.list_inline_policies("role", a.role_name)}),
    IamCommand("delete-role-policy", "DeleteRolePolicy", "delete a role's inline policy",
               (ROLE, POLICY_NAME),
               lambda i, a: i.delete_inline_policy("role", a.role_name, a.policy_name)),
    IamCommand("create-policy", "CreatePolicy", "create a managed policy",
               (POLICY_NAME, POLICY_DOCUMENT, PATH),
               lambda i, a: {"Policy": i.create_policy(a.policy_name, a.policy_document,
                                                       a.path or "/")}),
    IamCommand("get-policy", "GetPolicy", "show a managed policy's document", (POLICY_ARN,),
               lambda i, a: {"PolicyDocument": i.get_policy_document(a.policy_arn)}),
    IamCommand("list-policies", "ListPolicies", "list managed policies", (),
               lambda i, a: {"Policies": i.list_policies()}),
    IamCommand("delete-policy", "DeletePolicy", "delete a managed policy (detach first)",
               (POLICY_ARN,), lambda i, a: i.delete_policy(a.policy_arn)),
    IamCommand("attach-user-policy", "AttachUserPolicy", "attach a managed policy to a user",
               (USER, POLICY_ARN),
               lambda i, a: i.attach_policy("user", a.user_name, a.policy_arn)),
    IamCommand("detach-user-policy", "DetachUserPolicy", "detach a managed policy from a user",
               (USER, POLICY_ARN),
               lambda i, a: i.detach_policy("user", a.user_name, a.policy_arn)),
    IamCommand("list-attached-user-policies", "ListAttachedUserPolicies",
               "list managed policies attached to a user", (USER,),
               lambda i, a: {"AttachedPolicies": i.list_attached_policies("user", a.user_name)}),
    IamCommand("attach-role-policy", "AttachRolePolicy", "attach a managed policy to a role",
               (ROLE, POLICY_ARN),
               lambda i, a: i.attach_policy("role", a.role_name, a.policy_arn)),
    IamCommand("detach-role-policy", "DetachRolePolicy", "detach a managed policy from a role",
               (ROLE, POLICY_ARN),
               lambda i, a: i.detach_policy("role", a.role_name, a.policy_arn)),
    IamCommand("list-attached-role-policies", "ListAttachedRolePolicies",
               "list managed policies attached to a role", (ROLE,),
               lambda i, a: {"AttachedPolicies": i.list_attached_policies("role", a.role_name)}),
    IamCommand("assume-role", "AssumeRole",
               "temporary credentials for a session of a role (as sts assume-role)",
               (ROLE, Option("--role-session-name", "name of the session, shown as "
                             "assumed-role/ROLE/SESSION"),
                Option("--duration-seconds", "lifetime, 900 up to the role's maximum",
                       required=False, type=int)),
               lambda i, a: i.assume_role(a.role_name, a.role_session_name,
                                          a.duration_seconds or 3600)),
)


def _run_iam(args: argparse.Namespace) -> int:
    from airgate.server import open_state

    command: IamCommand = args.iam_command
    db, identities, _ = open_state(_settings(args))
    try:
        result = command.run(identities, args)
    except IamError as error:
        print(f"An error occurred ({error.code}) when calling the {command.operation} "
              f"operation: {error.message}", file=sys.stderr)
        return 254
    finally:
        db.close()
    if result is not None:
        print(json.dumps(result, indent=_OUTPUT_INDENT))
    return 0


# --- airgate up / shellenv ----------------------------------------------------------------


def _run_up(args: argparse.Namespace) -> int:
    from airgate.server import serve

    settings = _settings(args, host=args.host, port=args.port, region=args.region,
                         account_id=args.account_id,
                         airflow_database_url=args.airflow_database_url,
                         tls=True if args.tls else None, sandbox=args.sandbox,
                         forwarded_allow_ips=config.address_list(args.forwarded_allow_ips)
                         if args.forwarded_allow_ips is not None else None)
    dags = Path(args.dags) if args.dags else None
    if dags is not None and not dags.is_dir():
        print(f"airgate: --dags {dags} is not a folder", file=sys.stderr)
        return 2
    serve(settings, dags=dags, default_environment=not args.no_default_environment)
    return 0


def _run_logs(args: argparse.Namespace) -> int:
    from airgate.environments.layout import COMPONENTS, EnvironmentLayout

    layout = EnvironmentLayout.of(_settings(args).home, args.environment)
    if not layout.root.is_dir():
        print(f"airgate: no environment named {args.environment}", file=sys.stderr)
        return 1
    components = [args.component] if args.component else ["setup", *COMPONENTS]
    for component in components:
        path = layout.log_file(component)
        if not path.exists():
            continue
        lines = path.read_text(errors="replace").splitlines()[-args.lines:]
        if len(components) > 1:
            print(f"==> {component} ({path}) <==")
        print("\n".join(lines))
    return 0


def _run_shellenv(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.credentials_file.exists():
        print(f"no credentials in {settings.home}: start airgate once with `airgate up`",
              file=sys.stderr)
        return 1
    credentials = json.loads(settings.credentials_file.read_text())
    endpoint, region = settings.endpoint_url, settings.region
    if settings.server_file.exists():
        running = json.loads(settings.server_file.read_text())
        endpoint, region = running["endpoint_url"], running["region"]
    variables = {
        "AWS_ENDPOINT_URL_MWAA": endpoint,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
    }
    if endpoint.startswith("https://"):  # `airgate up --tls`: trust airgate's local CA
        bundle = str(settings.tls_dir / "ca.pem")
        variables.update(AWS_CA_BUNDLE=bundle, REQUESTS_CA_BUNDLE=bundle)
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    print("unset AWS_SESSION_TOKEN AWS_PROFILE")
    return 0


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airgate", description="A self-hosted control plane for Apache Airflow that "
        "speaks the Amazon MWAA API.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run airgate in the foreground",
                             description="Serve the MWAA API. On first start, creates the "
                             "state store and the bootstrap administrator.")
    _add_common(up)
    up.add_argument("--host", help="address to listen on (AIRGATE_HOST, default 127.0.0.1)")
    up.add_argument("--port", type=int, help=f"port (AIRGATE_PORT, default "
                    f"{config.DEFAULT_PORT})")
    up.add_argument("--region", help=f"region in ARNs and signatures (AIRGATE_REGION, "
                    f"default {config.DEFAULT_REGION})")
    up.add_argument("--account-id", help="12-digit account id in ARNs (AIRGATE_ACCOUNT_ID)")
    up.add_argument("--airflow-database-url", help="a PostgreSQL server for the "
                    "environments' metadata, one database each (AIRGATE_AIRFLOW_DATABASE_URL; "
                    "default SQLite per environment)")
    up.add_argument("--dags", help="a folder of DAGs for the default environment, wired in "
                    "directly (edits are picked up within 30 s)")
    up.add_argument("--no-default-environment", action="store_true",
                    help="do not create the environment named 'default'")
    up.add_argument("--tls", action="store_true",
                    help="serve HTTPS with a local certificate authority (AIRGATE_TLS=1)")
    up.add_argument("--sandbox", choices=["auto", "required", "off"],
                    help="how environments are isolated from airgate and each other "
                    "(AIRGATE_SANDBOX): auto, the best this machine allows (default); "
                    "required, refuse to start without isolation; off")
    up.add_argument("--forwarded-allow-ips", metavar="ADDRS",
                    help="comma-separated addresses or networks of reverse proxies whose "
                    "X-Forwarded-For and X-Forwarded-Proto are believed for aws:SourceIp and "
                    "aws:SecureTransport (AIRGATE_FORWARDED_ALLOW_IPS; default none: the "
                    "headers are ignored)")
    up.set_defaults(run=_run_up)

    logs = commands.add_parser("logs", help="print an environment's component logs",
                               description="The last lines of an environment's logs: setup "
                               "(requirements, startup script, migrations) and each component.")
    _add_common(logs)
    logs.add_argument("environment", help="environment name")
    logs.add_argument("component", nargs="?",
                      choices=["setup", "api-server", "scheduler", "dag-processor", "triggerer"],
                      help="one component (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines per log (default 50)")
    logs.set_defaults(run=_run_logs)

    shellenv = commands.add_parser(
        "shellenv", help="print the environment for boto3 and the AWS CLI",
        description='Print shell exports for the administrator: eval "$(airgate shellenv)".')
    _add_common(shellenv)
    shellenv.set_defaults(run=_run_shellenv)

    iam = commands.add_parser("iam", help="manage users, roles, keys and policies",
                              description="IAM for airgate's account, in the AWS CLI's style.")
    iam_commands = iam.add_subparsers(dest="iam", required=True, metavar="IAM_COMMAND")
    for command in IAM_COMMANDS:
        sub = iam_commands.add_parser(command.name, help=command.help,
                                      description=command.help)
        _add_common(sub)
        for option in command.options:
            sub.add_argument(option.flag, help=option.help, required=option.required,
                             type=option.type)
        sub.set_defaults(run=_run_iam, iam_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except config.ConfigError as error:
        print(f"airgate: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine, not the user: say what, without a traceback
        print(f"airgate: {error.strerror or error}"
              + (f": {error.filename}" if error.filename else ""), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
