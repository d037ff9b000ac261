"""The query protocol (IAM, STS): form-encoded requests in, XML documents out.

A request names its operation with `Action` and the API version with `Version`, and flattens
its input into `Name`, `Name.member.N`, `Name.entry.N.key`, `Name.Member` keys, in a
form-encoded POST body (what botocore sends) or in the query string (presigned GETs). The
answer is `<{Operation}Response>` holding `<{Operation}Result>` (the output shape's
resultWrapper) and `<ResponseMetadata><RequestId>`; an error is an `<ErrorResponse>`. Names,
nesting, list and map forms, types and error codes all come from the service's model: this
is the inverse of botocore's QuerySerializer and QueryParser, and tests hold the two against
each other.

The situations every AWS service shares (a missing or bad signature, an unknown key, a
denial, bad input) have their own words in query services: `COMMON_ERRORS` translates
airgate's errors, which are named as MWAA names them, into those.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from airgate.auth.sigv4 import QueryParameter, SignedRequest
from airgate.aws.validate import validate
from airgate.aws.wire import Response
from airgate.errors import (
    AccessDeniedException,
    ExpiredTokenException,
    IncompleteSignatureException,
    InternalServerException,
    InvalidSignatureException,
    MissingActionException,
    MissingAuthenticationTokenException,
    RequestEntityTooLargeException,
    ServiceError,
    ServiceUnavailableException,
    ThrottlingException,
    UnknownOperationException,
    UnrecognizedClientException,
    ValidationException,
)

XML_CONTENT_TYPE = "text/xml"
_PRESIGNING_PREFIX = "X-Amz-"  # a presigned URL's own parameters, not operation input
_MAX_FIELDS = 10_000
# Characters XML 1.0 can't carry at all, even as references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NO_VERSION = "NO_VERSION_SPECIFIED"


@dataclass(frozen=True, slots=True)
class Word:
    """How a query service says one of the shared situations."""

    code: str
    status: int
    message: str | None = None  # when the service words it in its own way


COMMON_ERRORS: Mapping[type[ServiceError], Word] = {
    MissingAuthenticationTokenException: Word("MissingAuthenticationToken", 403,
                                              "Request is missing Authentication Token"),
    IncompleteSignatureException: Word("IncompleteSignature", 400),
    InvalidSignatureException: Word("SignatureDoesNotMatch", 403),
    UnrecognizedClientException: Word("InvalidClientTokenId", 403),
    ExpiredTokenException: Word("ExpiredToken", 403),
    AccessDeniedException: Word("AccessDenied", 403),
    ValidationException: Word("ValidationError", 400),
    UnknownOperationException: Word("InvalidAction", 400),
    MissingActionException: Word("MissingAction", 400),
    ThrottlingException: Word("Throttling", 400),
    RequestEntityTooLargeException: Word("RequestEntityTooLarge", 413),
    InternalServerException: Word("InternalFailure", 500),
    ServiceUnavailableException: Word("ServiceUnavailable", 503),
}

_MISSING = object()


class QueryProtocol:
    """The query protocol for one service model."""

    def __init__(self, model: ServiceModel,
                 vocabulary: Mapping[type[ServiceError], Word] = COMMON_ERRORS) -> None:
        self._model = model
        self._version: str = model.api_version
        self._namespace: str = model.metadata["xmlNamespace"]
        self._operations = frozenset(model.operation_names)
        self._vocabulary = vocabulary
        self._modeled = {shape.error_code: shape.metadata.get("error", {})
                         for shape in model.error_shapes}

    # --- reading -------------------------------------------------------------------------

    def read(self, request: SignedRequest, query: Sequence[QueryParameter]
             ) -> tuple[OperationModel, dict[str, Any]]:
        flat = _parameters(request, query)
        action = flat.pop("Action", "")
        version = flat.pop("Version", _NO_VERSION)
        if not action:
            raise MissingActionException("Missing Action")
        if action not in self._operations or version != self._version:
            raise UnknownOperationException(
                f"Could not find operation {action[:128]} for version {version[:32]}")
        operation = self._model.operation_model(action)
        shape = operation.input_shape
        if shape is None:
            return operation, {}
        params = _Reader(flat).structure(shape, "", "")
        validate(shape, params)
        return operation, params

    def recognizes(self, request: SignedRequest) -> bool:
        """A request of this service's API version, or without one but naming one of its
        operations."""
        try:
            fields: dict[str, str] = dict(parse_qsl(request.raw_query, keep_blank_values=True))
            fields.update(parse_qsl(request.body.decode(), keep_blank_values=True,
                                    max_num_fields=_MAX_FIELDS))
        except (UnicodeDecodeError, ValueError):
            return False
        if "Version" in fields:
            return fields["Version"] == self._version
        return fields.get("Action") in self._operations

    # --- writing -------------------------------------------------------------------------

    def write(self, operation: OperationModel, result: Mapping[str, Any],
              request_id: str) -> Response:
        name = operation.name
        out = [f'<{name}Response xmlns="{self._namespace}">']
        shape = operation.output_shape
        if shape is not None:
            assert isinstance(shape, StructureShape)
            wrapper = shape.serialization.get("resultWrapper", f"{name}Result")
            out.append(f"<{wrapper}>")
            _write_members(shape, result, out)
            out.append(f"</{wrapper}>")
        out.append(f"<ResponseMetadata><RequestId>{_text(request_id)}</RequestId>"
                   f"</ResponseMetadata></{name}Response>")
        return Response(200, "".join(out).encode(), {"content-type": XML_CONTENT_TYPE})

    def words(self, error: ServiceError) -> tuple[str, int, bool, str]:
        """How this service says `error`: its code, HTTP status, whether the sender is at
        fault, and its message."""
        word = self._vocabulary.get(type(error))
        if word is not None:
            return word.code, word.status, word.status < 500, word.message or error.message
        if error.code in self._modeled:
            traits = self._modeled[error.code]
            return (error.code, int(traits.get("httpStatusCode", error.status)),
                    bool(traits.get("senderFault", False)), error.message)
        return error.code, error.status, error.sender_fault, error.message

    def write_error(self, error: ServiceError, request_id: str) -> Response:
        code, status, sender, message = self.words(error)
        body = (f'<ErrorResponse xmlns="{self._namespace}"><Error>'
                f'<Type>{"Sender" if sender else "Receiver"}</Type>'
                f"<Code>{_text(code)}</Code><Message>{_text(message)}</Message></Error>"
                f"<RequestId>{_text(request_id)}</RequestId></ErrorResponse>")
        return Response(status, body.encode(), {"content-type": XML_CONTENT_TYPE},
                        error_code=code)


# --- reading ---------------------------------------------------------------------------


def _parameters(request: SignedRequest, query: Sequence[QueryParameter]) -> dict[str, str]:
    """Every input parameter, from the query string (as the signature read it) and the
    form-encoded body; a parameter given twice is refused, as it would have two readings."""
    pairs: list[tuple[str, str]] = []
    for parameter in query:
        try:
            key, value = parameter.key.decode(), parameter.value.decode()
        except UnicodeDecodeError:
            raise ValidationException("The query string is not valid UTF-8 once "
                                      "percent-decoded") from None
        if key.startswith(_PRESIGNING_PREFIX):
            continue
        if parameter.bare_plus:
            raise ValidationException(
                f"Query parameter '{key[:64]}' contains a bare '+', which may mean a space or "
                "a plus: percent-encode it, as '%20' for a space or '%2B' for a plus")
        pairs.append((key, value))
    if request.body:
        try:
            pairs += parse_qsl(request.body.decode("ascii"), keep_blank_values=True,
                               strict_parsing=True, errors="strict",
                               max_num_fields=_MAX_FIELDS)
        except UnicodeDecodeError:
            raise ValidationException("The request body is not form-encoded UTF-8") from None
        except ValueError:
            raise ValidationException("The request body is not a valid form-encoded "
                                      "(application/x-www-form-urlencoded) document") from None
    parameters: dict[str, str] = {}
    for key, value in pairs:
        if key in parameters:
            raise ValidationException(f"Parameter '{key[:64]}' must not repeat: it takes one "
                                      "value")
        parameters[key] = value
    return parameters


class _Reader:
    """Input from the flat parameters, shape by shape (botocore's QuerySerializer, read
    backwards)."""

    def __init__(self, flat: Mapping[str, str]) -> None:
        self._flat = flat
        # Every dotted prefix of every key: "A.member.1.Key" gives "A", "A.member", ...
        self._prefixes = {key[:index] for key in flat
                          for index, char in enumerate(key) if char == "."}

    def _present(self, key: str) -> bool:
        return key in self._flat or key in self._prefixes

    def read(self, shape: Shape, key: str, path: str) -> Any:
        kind = shape.type_name
        if kind == "structure":
            assert isinstance(shape, StructureShape)
            return self.structure(shape, key, path) if self._present(key) else _MISSING
        if kind == "list":
            assert isinstance(shape, ListShape)
            return self._list(shape, key, path)
        if kind == "map":
            assert isinstance(shape, MapShape)
            return self._map(shape, key, path)
        text = self._flat.get(key)
        return _MISSING if text is None else _scalar(shape, text, path)

    def structure(self, shape: StructureShape, key: str, path: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            value = self.read(member, f"{key}.{wire}" if key else wire,
                              _join(path, _field_name(name)))
            if value is not _MISSING:
                values[name] = value
        return values

    def _list(self, shape: ListShape, key: str, path: str) -> Any:
        if self._flat.get(key) == "" and key not in self._prefixes:
            return []  # botocore sends an empty list as `Name=`
        member_name = shape.member.serialization.get("name")
        if shape.serialization.get("flattened"):
            items_key = ".".join([*key.split(".")[:-1], member_name]) if member_name else key
        else:
            items_key = f"{key}.{member_name or 'member'}"
        items = []
        index = 1
        while self._present(f"{items_key}.{index}"):
            items.append(self.read(shape.member, f"{items_key}.{index}",
                                   f"{path}.{index}.member"))
            index += 1
        return items if items else _MISSING

    def _map(self, shape: MapShape, key: str, path: str) -> Any:
        entries_key = key if shape.serialization.get("flattened") else f"{key}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        entries: dict[Any, Any] = {}
        index = 1
        while self._present(f"{entries_key}.{index}"):
            entry = f"{entries_key}.{index}"
            found = self.read(shape.key, f"{entry}.{key_name}", f"{path}.key")
            value = self.read(shape.value, f"{entry}.{value_name}", f"{path}.value")
            if found is not _MISSING:
                entries[found] = None if value is _MISSING else value
            index += 1
        return entries if entries else _MISSING


def _scalar(shape: Shape, text: str, path: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "boolean":
            if text not in ("true", "false"):
                raise ValueError
            return text == "true"
        if kind == "timestamp":
            return _timestamp_from_text(text)
        if kind == "blob":
            return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error, OverflowError):
        raise ValidationException(
            f"1 validation error detected: Value '{text[:100]}' at '{path}' failed to satisfy "
            f"constraint: Member must be a valid {kind}") from None
    return text


def _timestamp_from_text(text: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        moment = datetime.datetime.fromtimestamp(float(text), datetime.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _field_name(member: str) -> str:
    """As AWS names members in messages: RoleSessionName -> roleSessionName."""
    return member[:1].lower() + member[1:]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# --- writing ---------------------------------------------------------------------------


def _write_members(shape: StructureShape, value: Mapping[str, Any], out: list[str]) -> None:
    for name, member in shape.members.items():
        item = value.get(name)
        if item is not None:
            _write_member(member, member.serialization.get("name", name), item, out)


def _write_member(shape: Shape, tag: str, value: Any, out: list[str]) -> None:
    if shape.type_name == "list" and shape.serialization.get("flattened"):
        assert isinstance(shape, ListShape)
        item_tag = shape.member.serialization.get("name", tag)
        for item in value:
            _write_member(shape.member, item_tag, item, out)
        return
    out.append(f"<{tag}>")
    _write_value(shape, value, out)
    out.append(f"</{tag}>")


def _write_value(shape: Shape, value: Any, out: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        _write_members(shape, value, out)
    elif kind == "list":
        assert isinstance(shape, ListShape)
        item_tag = shape.member.serialization.get("name", "member")
        for item in value:
            _write_member(shape.member, item_tag, item, out)
    elif kind == "map":
        assert isinstance(shape, MapShape)
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        flattened = shape.serialization.get("flattened")
        for key, item in value.items():
            if not flattened:
                out.append("<entry>")
            _write_member(shape.key, key_tag, key, out)
            _write_member(shape.value, value_tag, item, out)
            if not flattened:
                out.append("</entry>")
    else:
        out.append(_text(_scalar_text(shape, value)))


def _scalar_text(shape: Shape, value: Any) -> str:
    kind = shape.type_name
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("integer", "long"):
        return str(int(value))
    if kind == "timestamp":
        return _timestamp_text(value, shape.serialization.get("timestampFormat", "iso8601"))
    if kind == "blob":
        data = value.encode() if isinstance(value, str) else value
        return base64.b64encode(data).decode()
    return str(value)


def _timestamp_text(moment: datetime.datetime, form: str) -> str:
    moment = moment.astimezone(datetime.UTC)
    if form == "unixTimestamp":
        return str(moment.timestamp())
    if form == "rfc822":
        return formatdate(moment.timestamp(), usegmt=True)
    fraction = f".{moment.microsecond // 1000:03d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _text(text: str) -> str:
    """Element text: escaped, with a carriage return kept as a reference (a parser would
    turn it into a newline), and what XML can't hold at all replaced."""
    return escape(_NOT_XML.sub("\ufffd", text)).replace("\r", "&#13;")
