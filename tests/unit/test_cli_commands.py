"""The MWAA CLI endpoint's command allowlist and splitting."""

from __future__ import annotations

import pytest

from airgate.web.cli_commands import CommandRefused, parse_command_line


@pytest.mark.parametrize(("text", "argv"), [
    ("dags list", ["dags", "list"]),
    ("airflow dags list -o json", ["dags", "list", "-o", "json"]),
    ("dags trigger my_dag -c '{\"a\": 1}'", ["dags", "trigger", "my_dag", "-c", '{"a": 1}']),
    ("variables set greeting 'hello world'", ["variables", "set", "greeting", "hello world"]),
    ("version", ["version"]),
    ("cheat-sheet", ["cheat-sheet"]),
    ("pools set etl 4 'ETL slots'", ["pools", "set", "etl", "4", "ETL slots"]),
    ("tasks --help", ["tasks", "--help"]),
])
def test_allowed_command_lines_are_split_without_a_shell(text: str, argv: list[str]) -> None:
    assert parse_command_line(text) == argv


@pytest.mark.parametrize(("text", "reason"), [
    ("", "Empty command line"),
    ("   ", "Empty command line"),
    ("airflow", "No Airflow CLI command"),
    ("db reset -y", "'db' is not supported"),
    ("users create", "'users' is not supported"),
    ("tasks test my_dag t1", "'tasks test' is not supported"),
    ("dags backfill my_dag", "'dags backfill' is not supported"),
    ("variables export /tmp/all.json", "'variables export' is not supported"),
    ("dags", "'dags' needs one of"),
    ("dags -v", "'dags' needs one of"),
    ("dags list; rm -rf /", "Shell syntax"),
    ("dags list && id", "Shell syntax"),
    ("dags list | nc host 1", "Shell syntax"),
    ("variables set x $(id)", "Shell syntax"),
    ("variables set x `id`", "Shell syntax"),
    ("variables set x ${HOME}", "Shell syntax"),
    ("dags list > /tmp/out", "Shell syntax"),
    ("dags list\nid", "Shell syntax"),
    ("dags trigger 'unterminated", "Can't split"),
    ("dags list " + "x" * 5000, "longer than"),
])
def test_other_command_lines_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(CommandRefused, match=reason.replace("(", r"\(").replace("$", r"\$")):
        parse_command_line(text)
