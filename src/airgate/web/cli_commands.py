"""Which Airflow CLI command lines the MWAA CLI endpoint (`POST /aws_mwaa/cli`) runs.

MWAA runs a fixed set of Airflow CLI commands for CLI tokens; anything else is refused
before a process starts. A command line is split like a POSIX shell would split it, but no
shell ever sees it, and text with shell syntax (pipes, redirections, substitutions, command
separators) is refused outright rather than passed on as literal arguments, so that a
caller can't be surprised by what ran.
"""

from __future__ import annotations

import shlex

MAX_COMMAND_LINE = 4096

# command -> subcommands allowed (None: the command takes no subcommand). Left out on
# purpose: anything that runs task code in the CLI process (tasks run/test, dags test,
# backfill), reads or writes files on the environment's machine (import/export), or
# changes the database schema (db).
ALLOWED_COMMANDS: dict[str, frozenset[str] | None] = {
    "cheat-sheet": None,
    "version": None,
    "dags": frozenset({"delete", "details", "list", "list-import-errors", "list-jobs",
                       "list-runs", "next-execution", "pause", "report", "state", "trigger",
                       "unpause"}),
    "tasks": frozenset({"clear", "failed-deps", "list", "render", "state",
                        "states-for-dag-run"}),
    "variables": frozenset({"delete", "get", "list", "set"}),
    "connections": frozenset({"add", "delete", "get", "list"}),
    "pools": frozenset({"delete", "get", "list", "set"}),
}
_SHELL_SYNTAX = ("|", "&", ";", "<", ">", "`", "$(", "${", "\n", "\r", "\x00")


class CommandRefused(ValueError):
    """A command line the CLI endpoint won't run; the message says why."""


def parse_command_line(text: str) -> list[str]:
    """The arguments for `airflow`, if `text` is a command line MWAA allows."""
    if not text.strip():
        raise CommandRefused("Empty command line: send an Airflow CLI command such as "
                             "'dags list'")
    if len(text) > MAX_COMMAND_LINE:
        raise CommandRefused(f"Command line longer than {MAX_COMMAND_LINE} characters")
    found = [syntax for syntax in _SHELL_SYNTAX if syntax in text]
    if found:
        raise CommandRefused("Shell syntax is not allowed in a CLI command: "
                             + ", ".join(repr(syntax) for syntax in found))
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise CommandRefused(f"Can't split the command line: {error}") from None
    if argv and argv[0] == "airflow":
        argv = argv[1:]  # `airflow dags list` and `dags list` are the same command
    if not argv:
        raise CommandRefused("No Airflow CLI command given")
    command = argv[0]
    if command not in ALLOWED_COMMANDS:
        raise CommandRefused(f"Airflow CLI command {command!r} is not supported; supported: "
                             + ", ".join(sorted(ALLOWED_COMMANDS)))
    subcommands = ALLOWED_COMMANDS[command]
    if subcommands is not None:
        if len(argv) < 2 or argv[1].startswith("-"):
            if len(argv) >= 2 and argv[1] in ("-h", "--help"):
                return argv
            raise CommandRefused(f"'{command}' needs one of: {', '.join(sorted(subcommands))}")
        if argv[1] not in subcommands:
            raise CommandRefused(f"'{command} {argv[1]}' is not supported; supported: "
                                 + ", ".join(f"{command} {s}" for s in sorted(subcommands)))
    return argv
