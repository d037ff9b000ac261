"""The `airgate` command: run the server, print its environment, manage identities.

`airgate iam ...` follows the AWS CLI: its commands are the IAM operations airgate serves
(and STS's assume-role), named, optioned, validated and printed as `aws iam ...` does them
(JSON output, policy documents decoded, every page; errors as "An error occurred (Code)
when calling the X operation: ..."). Each runs in-process through the same provider method
as the API's, as the account's root: whoever can read the airgate home is the account's
operator, so no policy is evaluated and no trust policy is asked.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import re
import shlex
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore import xform_name
from botocore.handlers import json_decode_policies
from botocore.model import OperationModel, Shape

from airgate import config
from airgate.auth.authorize import Authorization
from airgate.auth.identities import IamError, Identities
from airgate.aws.query import QueryProtocol
from airgate.aws.validate import validate
from airgate.call import Call, CallRecord
from airgate.environments.layout import COMPONENTS
from airgate.errors import ServiceError
from airgate.services import ProviderService

_OUTPUT_INDENT = 4
_PAGING_MEMBERS = ("Marker", "MaxItems", "IsTruncated")


# --- option helpers -----------------------------------------------------------------------


def _document(value: str) -> str:
    """A value given inline, or as file://PATH like the AWS CLI takes it."""
    if value.startswith("file://"):
        try:
            return Path(value[len("file://"):]).expanduser().read_text()
        except OSError as error:
            raise argparse.ArgumentTypeError(f"cannot read {value}: {error.strerror}") from None
    return value


def _json(value: str) -> Any:
    """A list or structure, as JSON (inline or file://PATH), as the AWS CLI takes it."""
    try:
        return json.loads(_document(value))
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error.msg}") from None


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
    member: str  # the operation's input member
    help: str
    required: bool
    type: Callable[[str], Any]
    boolean: bool = False  # --flag / --no-flag, as the AWS CLI has them


@dataclass(frozen=True)
class IamCommand:
    name: str
    service: str  # "iam" or "sts"
    operation: str  # the IAM/STS operation name
    help: str
    options: tuple[Option, ...]


def _first_sentence(documentation: str) -> str:
    """The first sentence of the model's HTML documentation, as plain text for --help."""
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", documentation)).split())
    sentence = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return sentence.replace("%", "%%")


_PARSERS: dict[str, Callable[[str], Any]] = {
    "integer": int, "long": int, "list": _json, "structure": _json, "map": _json}


def _option(name: str, shape: Shape, required: bool) -> Option:
    return Option(f"--{xform_name(name, '-')}", name, _first_sentence(shape.documentation),
                  required, _PARSERS.get(shape.type_name, _document),
                  boolean=shape.type_name == "boolean")


def _command(service: str, operation: OperationModel) -> IamCommand:
    shape = operation.input_shape
    options = [] if shape is None else [
        _option(name, member, name in shape.required_members)
        for name, member in shape.members.items() if name not in _PAGING_MEMBERS]
    if operation.name == "CreateRole":  # airgate's own default: a role this account trusts
        options = [_optional(o) if o.member == "AssumeRolePolicyDocument" else o
                   for o in options]
    if operation.name == "AssumeRole":  # the role by name, as airgate's CLI always took it
        options = [_optional(o) if o.member == "RoleArn" else o for o in options]
        options.insert(0, Option("--role-name", "RoleName", "name of the role (instead of "
                                 "--role-arn)", False, str))
    return IamCommand(xform_name(operation.name, "-"), service, operation.name,
                      _first_sentence(operation.documentation), tuple(options))


def _optional(option: Option) -> Option:
    return Option(option.flag, option.member, option.help + " (optional here)", False,
                  option.type, option.boolean)


def _services(identities: Identities, region: str) -> dict[str, ProviderService]:
    from airgate.services.iam import IamService
    from airgate.services.sts import StsService

    return {"iam": IamService(region, identities), "sts": StsService(region, identities)}


def _iam_commands() -> tuple[IamCommand, ...]:
    from airgate.services import service_model
    from airgate.services.iam import RESOURCES

    iam, sts = service_model("iam"), service_model("sts")
    commands = [_command("iam", iam.operation_model(name)) for name in iam.operation_names
                if name in RESOURCES]
    commands.append(_command("sts", sts.operation_model("AssumeRole")))
    return tuple(commands)


IAM_COMMANDS: tuple[IamCommand, ...] = _iam_commands()


def _run_iam(args: argparse.Namespace) -> int:
    from airgate.server import open_state

    command: IamCommand = args.iam_command
    settings = _settings(args)
    db, identities, _ = open_state(settings)
    try:
        service = _services(identities, settings.region)[command.service]
        try:
            result = _call(service, command, identities, args)
        except ServiceError as error:
            code = service.wire.words(error)[0] if isinstance(service.wire, QueryProtocol) \
                else error.code
            print(f"An error occurred ({code}) when calling the {command.operation} "
                  f"operation: {error.message}", file=sys.stderr)
            return 254
    finally:
        db.close()
    if result:
        print(json.dumps(result, indent=_OUTPUT_INDENT, default=_json_value))
    return 0


def _call(service: ProviderService, command: IamCommand, identities: Identities,
          args: argparse.Namespace) -> dict[str, Any]:
    """The operation's output as the AWS CLI prints it: every page, documents decoded."""
    params = {option.member: getattr(args, option.member)
              for option in command.options if getattr(args, option.member) is not None}
    if command.operation == "CreateRole":
        params.setdefault("AssumeRolePolicyDocument", identities.default_trust_policy())
    if command.operation == "AssumeRole" and "RoleName" in params:
        params.setdefault("RoleArn", _role_arn(identities, params.pop("RoleName")))
    operation = service.model.operation_model(command.operation)
    if operation.input_shape is not None:
        validate(operation.input_shape, params)
    handler = service.handler(command.operation)
    assert handler is not None
    call = Call(str(uuid.uuid4()), datetime.datetime.now(datetime.UTC), identities.root(),
                Authorization(f"{command.service}:{command.operation}", "*"),
                CallRecord(request_id="cli"))
    result: dict[str, Any] = dict(handler(params, call))
    while result.get("IsTruncated"):  # every page, as the AWS CLI gathers them
        more = handler({**params, "Marker": result.pop("Marker")}, call)
        for name, value in more.items():
            result[name] = result[name] + value if isinstance(value, list) else value
    for member in _PAGING_MEMBERS:
        result.pop(member, None)
    if command.service == "iam":
        json_decode_policies(result, operation)  # what botocore does for `aws iam`
    return result


def _role_arn(identities: Identities, name: str) -> str:
    arn = identities.role_arn_of(name)
    if arn is None:
        raise IamError("NoSuchEntity", f"The role with name {name} cannot be found.")
    return arn


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


# --- airgate up / shellenv ----------------------------------------------------------------


def _run_up(args: argparse.Namespace) -> int:
    from airgate.server import serve

    settings = _settings(args, host=args.host, port=args.port, region=args.region,
                         account_id=args.account_id,
                         airflow_database_url=args.airflow_database_url,
                         broker_url=args.broker_url,
                         advertise_address=args.advertise_address,
                         tls=True if args.tls else None, sandbox=args.sandbox,
                         forwarded_allow_ips=config.address_list(args.forwarded_allow_ips)
                         if args.forwarded_allow_ips is not None else None)
    dags = Path(args.dags) if args.dags else None
    if dags is not None and not dags.is_dir():
        print(f"airgate: --dags {dags} is not a folder", file=sys.stderr)
        return 2
    serve(settings, dags=dags, default_environment=not args.no_default_environment)
    return 0


def _run_worker(args: argparse.Namespace) -> int:
    from airgate.worker import serve_workers

    serve_workers(_settings(args, sandbox=args.sandbox), args.environment, args.workers)
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


def _add_caller_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--print-url", action="store_true",
                        help="print the address instead of opening a browser")
    parser.add_argument("--endpoint-url", help="airgate's address (default: "
                        "AWS_ENDPOINT_URL_MWAA, else the airgate running from this home)")
    parser.add_argument("--profile", help="an AWS profile for your credentials")
    parser.add_argument("--region", help="the region to sign for (default: your AWS "
                        "configuration's, else airgate's)")


def _run_open(args: argparse.Namespace) -> int:
    from airgate import cli_browse

    return cli_browse.run_open(args, _settings(args))


def _run_console(args: argparse.Namespace) -> int:
    from airgate import cli_browse

    return cli_browse.run_console(args, _settings(args))


def _run_status(args: argparse.Namespace) -> int:
    from airgate import cli_status

    return cli_status.run(args, _settings(args))


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
        "AWS_ENDPOINT_URL_STS": endpoint,  # the same listener serves STS and IAM
        "AWS_ENDPOINT_URL_IAM": endpoint,
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
    up.add_argument("--broker-url", help="a Redis or RabbitMQ broker (redis://..., "
                    "amqp://...): environments run Airflow's CeleryExecutor with autoscaled "
                    "workers, each on its own login there (AIRGATE_BROKER_URL; needs "
                    "--airflow-database-url; default the LocalExecutor)")
    up.add_argument("--advertise-address", metavar="ADDRESS",
                    help="this machine's address as other machines reach it: environments "
                    "run here then listen on every address, so other gateways on the store "
                    "and `airgate worker` machines reach them (AIRGATE_ADVERTISE_ADDRESS; "
                    "default: only this machine reaches them)")
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

    worker = commands.add_parser(
        "worker", help="run a Celery environment's workers on this machine",
        description="Celery workers of an environment that a gateway on the same state store "
        "runs (airgate up --broker-url), on this machine: give the gateways' store "
        "(--database-url or AIRGATE_DATABASE_URL) and master key (AIRGATE_MASTER_KEY). DAGs, "
        "plugins, requirements and the startup script come from the environment's bucket; "
        "the environment's autoscaler counts these workers toward MinWorkers and MaxWorkers. "
        "Runs until interrupted or the environment is deleted.")
    _add_common(worker)
    worker.add_argument("--environment", required=True, help="environment name")
    worker.add_argument("--workers", type=int, default=1,
                        help="how many workers to run here (default 1)")
    worker.add_argument("--sandbox", choices=["auto", "required", "off"],
                        help="how the workers are isolated (AIRGATE_SANDBOX), as for airgate up")
    worker.set_defaults(run=_run_worker)

    logs = commands.add_parser("logs", help="print an environment's component logs",
                               description="The last lines of an environment's logs: setup "
                               "(requirements, startup script, migrations) and each component.")
    _add_common(logs)
    logs.add_argument("environment", help="environment name")
    logs.add_argument("component", nargs="?",
                      choices=["setup", *COMPONENTS],
                      help="one component (default: all)")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines per log (default 50)")
    logs.set_defaults(run=_run_logs)

    show = commands.add_parser(
        "status", help="show every environment at a glance",
        description="Every environment: status, Airflow version, executor and workers, "
        "components (as the running airgate reports them), web UI and last update.")
    _add_common(show)
    show.add_argument("environments", nargs="*", metavar="NAME",
                      help="only these environments")
    show.add_argument("--json", action="store_true", help="JSON, for scripts")
    show.add_argument("--watch", action="store_true",
                      help="print each change (status, start steps, last update) as it "
                      "happens; with names, until they are settled")
    show.add_argument("--interval", type=float, default=1.0,
                      help="seconds between looks with --watch (default 1)")
    show.set_defaults(run=_run_status)

    opening = commands.add_parser(
        "open", help="open an environment's Airflow UI, signed in as you",
        description="CreateWebLoginToken with your own AWS credentials (the standard chain), "
        "then the environment's Airflow UI in your browser, signed in with the Airflow role "
        "your policies allow.")
    _add_common(opening)
    opening.add_argument("environment", help="environment name")
    _add_caller_options(opening)
    opening.set_defaults(run=_run_open)

    console = commands.add_parser(
        "console", help="open airgate's console, signed in as you",
        description="A one-use link (valid for a minute) that signs your browser in to "
        "airgate's console with your own AWS credentials: the environments your policies "
        "let you see, their status and traffic, and their Airflow UIs.")
    _add_common(console)
    _add_caller_options(console)
    console.set_defaults(run=_run_console)

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
            if option.boolean:
                sub.add_argument(option.flag, dest=option.member, help=option.help,
                                 action=argparse.BooleanOptionalAction)
            else:
                sub.add_argument(option.flag, dest=option.member, help=option.help,
                                 required=option.required, type=option.type,
                                 metavar=option.flag[2:].upper().replace("-", "_"))
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
