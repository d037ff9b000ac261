"""Input validation driven by the service model: types, required members, lengths, ranges,
patterns and enums, reported the way AWS services report them.

AWS (Coral) validation messages look like
    2 validation errors detected: Value null at 'executionRoleArn' failed to satisfy
    constraint: Member must not be null; Value 'x y' at 'name' failed to satisfy constraint:
    Member must satisfy regular expression pattern: [a-zA-Z][0-9a-zA-Z-_]*
and we keep that form because scripts and people recognise it. Patterns use the `regex`
module because the model's patterns use `\\p{L}`-style classes, and match the whole value as
Java's `String.matches` does, with Java's ASCII-only `\\d` and `\\w`.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from typing import Any

import regex
from botocore.model import ListShape, MapShape, Shape, StructureShape

from airgate.errors import ValidationException

_MAX_ECHO = 100  # longest value echoed back in a message


_PLAIN_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "boolean": (bool, "Member must be a boolean"),
    "timestamp": (datetime.datetime, "Member must be a timestamp"),
    "blob": ((bytes, str), "Member must be binary data"),
}
_JAVA_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_JAVA_CLASSES = {"d": "0-9", "w": "a-zA-Z0-9_"}


@functools.cache
def _compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(_java_classes(pattern))


def _java_classes(pattern: str) -> str:
    """Java's \\d and \\w are ASCII-only, while \\p{L} is Unicode: spell the first two out."""
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped in _JAVA_CLASSES:
                ranges = _JAVA_CLASSES[escaped]
                out.append(ranges if in_class else f"[{ranges}]")
            else:
                out.append(pattern[index:index + 2])
            index += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


def _field_name(member: str) -> str:
    """Coral names members in camelCase: ExecutionRoleArn -> executionRoleArn."""
    return member[:1].lower() + member[1:]


def _echo(value: Any, shape: Shape) -> str:
    if shape.metadata.get("sensitive"):
        return "Value"
    if value is None:
        return "Value null"
    text = str(value)
    if len(text) > _MAX_ECHO:
        return "Value"
    return f"Value '{text}'"


def validate(shape: StructureShape, params: dict[str, Any]) -> None:
    """Raise ValidationException listing every problem in `params`, or return."""
    problems = list(_check_structure(shape, params, path=""))
    if not problems:
        return
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    raise ValidationException(f"{count} validation {noun} detected: " + "; ".join(problems))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _fail(value: Any, shape: Shape, path: str, constraint: str) -> str:
    return f"{_echo(value, shape)} at '{path}' failed to satisfy constraint: {constraint}"


def _check(shape: Shape, value: Any, path: str) -> Iterator[str]:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        if shape.metadata.get("document"):
            return  # a JSON document: any JSON value
        if not isinstance(value, dict):
            yield _fail(value, shape, path, "Member must be a structure")
            return
        yield from _check_structure(shape, value, path)
    elif kind == "list":
        assert isinstance(shape, ListShape)
        yield from _check_list(shape, value, path)
    elif kind == "map":
        assert isinstance(shape, MapShape)
        yield from _check_map(shape, value, path)
    elif kind == "string":
        yield from _check_string(shape, value, path)
    elif kind in ("integer", "long"):
        yield from _check_number(shape, value, path, integral=True)
    elif kind in ("double", "float"):
        yield from _check_number(shape, value, path, integral=False)
    elif kind in _PLAIN_TYPES:
        expected, constraint = _PLAIN_TYPES[kind]
        if not isinstance(value, expected):
            yield _fail(value, shape, path, constraint)


def _check_structure(shape: StructureShape, value: dict[str, Any], path: str) -> Iterator[str]:
    for name in shape.required_members:
        if value.get(name) is None:
            yield _fail(None, shape.members[name], _join(path, _field_name(name)),
                        "Member must not be null")
    for name, member in shape.members.items():
        if value.get(name) is not None:
            yield from _check(member, value[name], _join(path, _field_name(name)))


def _check_length(shape: Shape, value: Any, size: int, path: str, what: str) -> Iterator[str]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        yield _fail(value, shape, path, f"Member must have {what} greater than or equal to {low}")
    if high is not None and size > high:
        yield _fail(value, shape, path, f"Member must have {what} less than or equal to {high}")


def _check_list(shape: ListShape, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, list):
        yield _fail(value, shape, path, "Member must be a list")
        return
    yield from _check_length(shape, value, len(value), path, "length")
    for index, item in enumerate(value, start=1):
        item_path = f"{path}.{index}.member"
        if item is None:
            yield _fail(None, shape.member, item_path, "Member must not be null")
        else:
            yield from _check(shape.member, item, item_path)


def _check_map(shape: MapShape, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, dict):
        yield _fail(value, shape, path, "Member must be a map")
        return
    yield from _check_length(shape, value, len(value), path, "length")
    for key, item in value.items():
        yield from _check(shape.key, key, f"{path}.key")
        if item is None:
            yield _fail(None, shape.value, f"{path}.value", "Member must not be null")
        else:
            yield from _check(shape.value, item, f"{path}.value")


def _check_string(shape: Shape, value: Any, path: str) -> Iterator[str]:
    if not isinstance(value, str):
        yield _fail(value, shape, path, "Member must be a string")
        return
    yield from _check_length(shape, value, len(value), path, "length")
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        yield _fail(value, shape, path,
                    f"Member must satisfy enum value set: [{', '.join(enum)}]")
    pattern = shape.metadata.get("pattern")
    if pattern and not _compiled(pattern).fullmatch(value):
        yield _fail(value, shape, path,
                    f"Member must satisfy regular expression pattern: {pattern}")


def _check_number(shape: Shape, value: Any, path: str, *, integral: bool) -> Iterator[str]:
    valid = isinstance(value, int) if integral else isinstance(value, (int, float))
    if isinstance(value, bool) or not valid:
        yield _fail(value, shape, path,
                    "Member must be an integer" if integral else "Member must be a number")
        return
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if shape.type_name in _JAVA_RANGES:  # what the service's Java types can hold
        java_low, java_high = _JAVA_RANGES[shape.type_name]
        low = java_low if low is None else max(low, java_low)
        high = java_high if high is None else min(high, java_high)
    if low is not None and value < low:
        yield _fail(value, shape, path, f"Member must have value greater than or equal to {low}")
    if high is not None and value > high:
        yield _fail(value, shape, path, f"Member must have value less than or equal to {high}")
