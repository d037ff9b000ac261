"""IAM policy evaluation with AWS's semantics, for the requests the gateway authorizes.

A document is parsed and validated once (`parse_policy`); every wildcard pattern is compiled
then, so that `evaluate`, which runs on every API request, only matches. Identity-based
policies (and session policies, which have the same grammar) of one account are modelled,
and one kind of resource-based policy: a role's trust policy (`parse_trust_policy`,
`evaluate_trust`), whose statements name principals instead of resources. No permissions
boundaries or SCPs. The engine knows no service: actions, resources and context keys come
from the caller.

AWS behaviours this module had to decide, with the IAM User Guide page each follows:

* Evaluation: an explicit Deny in any statement wins, else any Allow, else an implicit deny
  ("Policy evaluation logic").
* Missing key without `IfExists` ("Condition operators", the "Important" note): "If the key
  that you specify in a policy condition is not present in the request context, the values do
  not match and the condition is false. If the policy condition requires that the key is not
  matched, such as StringNotLike or ArnNotLike, and the right key is not present, the condition
  is true." So a positive operator is false and every negated operator (StringNotEquals,
  StringNotEqualsIgnoreCase, StringNotLike, NumericNotEquals, DateNotEquals, NotIpAddress,
  ArnNotEquals, ArnNotLike) is true when the key is absent.
* Several values for one key are ORed; for a negated operator they are NORed ("Conditions with
  multiple context keys or values").
* `ForAllValues:` is true when the key is absent or has no values; `ForAnyValue:` is false then
  ("Set operators for multivalued context keys"; "Multivalued context key examples"). Each
  request value is tested with the operator, so `ForAllValues:StringNotLike` means "no request
  value is like any policy value".
* A plain operator on a multivalued request key: AWS says such keys "require a condition set
  operator" but does not document the plain case. Here a positive operator holds when any
  request value matches, and a negated operator is its exact negation (no request value
  matches), which also agrees with the absent-key rule above.
* An empty list in the request context is "a null data set": the key counts as absent, for
  `Null` too.
* Policy variables ("Variables and tags"): only with Version 2012-10-17; in Resource,
  NotResource and the values of String*, Arn* and Bool conditions (the operators the condition
  operator page marks "Policy variables: Supported"). Key names are case-insensitive, a default
  is `${key, 'text'}` with `''` for a quote, `${*}` `${?}` `${$}` are literal characters, and a
  substituted value is literal text, never a wildcard. A variable with no value (absent, or a
  multivalued key, which "cannot be used as a policy variable") and no default makes its entry
  match nothing; for a negated operator that entry therefore "does not match".
* Resource and Arn* patterns match per ARN segment: a wildcard in partition, service, region or
  account does not cross a colon; in the resource part it does. A pattern made only of
  wildcards matches anything; a request for resource "*" matches nothing else.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = [
    "AuthorizationRequest",
    "Caller",
    "ContextValue",
    "Decision",
    "MalformedPolicyDocument",
    "Policy",
    "TrustDecision",
    "evaluate",
    "evaluate_trust",
    "parse_policy",
    "parse_trust_policy",
]

_VERSION_2012 = "2012-10-17"
_VERSION_2008 = "2008-10-17"
_ARN_PREFIX_SEGMENTS = 5  # partition, service, region, account: wildcards stop at colons
_VENDOR = re.compile(r"[A-Za-z0-9-]+")
_SID = re.compile(r"[0-9A-Za-z]*")
_WILDCARD_SPLIT = re.compile(r"([*?])")
_VENDOR_MESSAGE = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."


class Decision(enum.Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


ContextValue = str | bool | int | float | datetime | Sequence[str]  # a Sequence: multivalued key
_Scalar = str | bool | int | float | datetime
_ContextValues = _Scalar | tuple[_Scalar, ...]  # a tuple: a multivalued key
_Context = Mapping[str, _ContextValues]  # key names lower-cased


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """What is being asked: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: Mapping[str, ContextValue]


class MalformedPolicyDocument(ValueError):
    """The document is not a valid policy of its kind; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a request, as a trust policy's `Principal` element can name them."""

    account: str
    arn: str  # a user's ARN, or a role session's: arn:aws:sts::ACCOUNT:assumed-role/ROLE/NAME
    role_arn: str | None = None  # for a role session: the role's ARN
    service: str | None = None  # a service principal (airflow.amazonaws.com), not an ARN

    @classmethod
    def of_service(cls, service: str) -> Caller:
        """An AWS service acting on airgate's behalf, as a `Service` principal names it."""
        return cls(account="", arn=service.lower(), service=service.lower())


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """A trust policy's answer, and whether the Allow named the caller's own ARN (a user's
    or a role session's), which within one account makes an identity-policy Allow
    unnecessary ("Policy evaluation logic", same-account requests)."""

    decision: Decision
    names_caller: bool = False


# --- patterns: wildcards and policy variables ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Literal:
    text: str


@dataclass(frozen=True, slots=True)
class _Wildcard:
    char: str  # "*" or "?"


@dataclass(frozen=True, slots=True)
class _Variable:
    key: str  # lower-cased, since context keys are case-insensitive
    default: str | None


_Resolved = _Literal | _Wildcard
_Token = _Resolved | _Variable


def _tokenize(text: str, *, variables: bool, wildcards: bool) -> tuple[_Token, ...]:
    """Split policy text into literal text, wildcards and `${...}` variables."""
    tokens: list[_Token] = []
    start = i = 0

    def flush(end: int) -> None:
        if end > start:
            tokens.append(_Literal(text[start:end]))

    while i < len(text):
        if variables and text.startswith("${", i):
            flush(i)
            token, i = _read_variable(text, i)
            tokens.append(token)
            start = i
        elif wildcards and text[i] in "*?":
            flush(i)
            tokens.append(_Wildcard(text[i]))
            i += 1
            start = i
        else:
            i += 1
    flush(i)
    return tuple(tokens)


def _read_variable(text: str, at: int) -> tuple[_Token, int]:
    """Read the `${key}` or `${key, 'default'}` at `at`; return it and the index after it."""
    end = len(text)
    i = at + 2
    while i < end and text[i] not in ",}":
        i += 1
    key = text[at + 2:i].strip()
    if i == end or not key or any(ch.isspace() for ch in key):
        raise MalformedPolicyDocument(f"Invalid policy variable in {text!r}.")
    if text[i] == "}":
        if key in ("*", "?", "$"):
            return _Literal(key), i + 1
        return _Variable(key.lower(), None), i + 1
    i = _skip_spaces(text, i + 1)
    if i == end or text[i] != "'":
        raise MalformedPolicyDocument(f"Invalid default value for policy variable in {text!r}.")
    default: list[str] = []
    i += 1
    while True:
        quote = text.find("'", i)
        if quote < 0:
            raise MalformedPolicyDocument(f"Unterminated default value in {text!r}.")
        default.append(text[i:quote])
        if text.startswith("''", quote):
            default.append("'")
            i = quote + 2
            continue
        break
    i = _skip_spaces(text, quote + 1)
    if i == end or text[i] != "}":
        raise MalformedPolicyDocument(f"Invalid policy variable in {text!r}.")
    return _Variable(key.lower(), "".join(default)), i + 1


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] == " ":
        i += 1
    return i


def _stringify(value: _Scalar) -> str:
    """A context value as the text that string operators and variables see."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _as_utc(value).isoformat().replace("+00:00", "Z")
    return str(value)


def _resolve(tokens: tuple[_Token, ...], ctx: _Context) -> tuple[_Resolved, ...] | None:
    """Substitute variables as literal text; None when one has neither a value nor a default."""
    resolved: list[_Resolved] = []
    for token in tokens:
        if isinstance(token, _Variable):
            value = ctx.get(token.key)
            if value is not None and not isinstance(value, tuple):
                resolved.append(_Literal(_stringify(value)))
            elif token.default is not None:
                resolved.append(_Literal(token.default))
            else:
                return None
        else:
            resolved.append(token)
    return tuple(resolved)


def _glob_tokens(text: str) -> tuple[_Resolved, ...]:
    """Wildcards and literal text only, as in Action patterns (which take no variables)."""
    parts = (part for part in _WILDCARD_SPLIT.split(text) if part)
    return tuple(_Wildcard(p) if p in ("*", "?") else _Literal(p) for p in parts)


def _has_variables(tokens: tuple[_Token, ...]) -> bool:
    return any(isinstance(t, _Variable) for t in tokens)


def _regex_source(tokens: tuple[_Resolved, ...], *, arn: bool) -> str:
    """A regex for resolved tokens; with `arn`, wildcards before the resource part stop at ':'.

    Matching must not backtrack without bound on request-controlled text, so every `*` but
    the last one is an atomic group that takes the leftmost match of the fixed-length run of
    text and `?` after it. For `*`/`?` patterns that greedy choice is always right, so the
    match costs O(len(text) * len(pattern)).
    """
    chunks: list[list[str]] = [[]]  # runs of literal text and `?` between the `*`s
    stars: list[str] = []  # the character class each `*` may consume
    colons = 0
    for token in tokens:
        any_char = "[^:]" if arn and colons < _ARN_PREFIX_SEGMENTS else "."
        if isinstance(token, _Literal):
            chunks[-1].append(re.escape(token.text))
            colons += token.text.count(":")
        elif token.char == "?":
            chunks[-1].append(any_char)
        else:
            stars.append(any_char)
            chunks.append([])
    parts = ["".join(chunks[0])]
    for star, chunk in zip(stars[:-1], chunks[1:-1], strict=True):
        parts.append(f"(?>{star}*?{''.join(chunk)})")
    if stars:
        parts.append(f"{stars[-1]}*{''.join(chunks[-1])}")
    return "".join(parts)


@functools.lru_cache(maxsize=4096)
def _compile(source: str, ignore_case: bool) -> re.Pattern[str]:
    """Shared compiled regexes: identical patterns in many policies compile once."""
    return re.compile(source, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A wildcard pattern: compiled at parse time unless it holds variables."""

    tokens: tuple[_Token, ...]
    arn: bool
    static: re.Pattern[str] | None
    all_wildcards: bool  # "*", "**", "?*"...: as a Resource, also matches the request "*"

    @classmethod
    def build(cls, text: str, *, variables: bool, arn: bool) -> _Pattern:
        tokens = _tokenize(text, variables=variables, wildcards=True)
        all_wildcards = bool(tokens) and all(isinstance(t, _Wildcard) for t in tokens)
        arn = arn and not all_wildcards
        plain = None if _has_variables(tokens) else _resolve(tokens, {})
        static = None if plain is None else _compile(_regex_source(plain, arn=arn), False)
        return cls(tokens, arn, static, all_wildcards)

    def matches(self, value: str, ctx: _Context) -> bool:
        regex = self.static
        if regex is None:
            resolved = _resolve(self.tokens, ctx)
            if resolved is None:
                return False
            regex = _compile(_regex_source(resolved, arn=self.arn), False)
        return regex.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class _Text:
    """Literal policy text (no wildcards), possibly with variables."""

    tokens: tuple[_Token, ...]

    @classmethod
    def build(cls, text: str, *, variables: bool) -> _Text:
        return cls(_tokenize(text, variables=variables, wildcards=False))

    def resolve(self, ctx: _Context) -> str | None:
        resolved = _resolve(self.tokens, ctx)
        if resolved is None:
            return None
        return "".join(t.text for t in resolved if isinstance(t, _Literal))


# --- condition operators ------------------------------------------------------------------

_Raw = str | bool | int | float  # a condition value as JSON gives it
_Predicate = Callable[[_Scalar, _Context], bool]  # does one request value match one policy value
_Factory = Callable[[_Raw, bool], _Predicate]  # (policy value, variables enabled) -> predicate


def _string_equals(raw: _Raw, variables: bool) -> _Predicate:
    text = _Text.build(_stringify(raw), variables=variables)

    def predicate(value: _Scalar, ctx: _Context) -> bool:
        return text.resolve(ctx) == _stringify(value)

    return predicate


def _string_equals_ignore_case(raw: _Raw, variables: bool) -> _Predicate:
    text = _Text.build(_stringify(raw), variables=variables)

    def predicate(value: _Scalar, ctx: _Context) -> bool:
        expected = text.resolve(ctx)
        return expected is not None and expected.casefold() == _stringify(value).casefold()

    return predicate


def _string_like(raw: _Raw, variables: bool) -> _Predicate:
    pattern = _Pattern.build(_stringify(raw), variables=variables, arn=False)
    return lambda value, ctx: pattern.matches(_stringify(value), ctx)


def _arn_like(raw: _Raw, variables: bool) -> _Predicate:
    pattern = _Pattern.build(_stringify(raw), variables=variables, arn=True)
    return lambda value, ctx: pattern.matches(_stringify(value), ctx)


def _bool(raw: _Raw, variables: bool) -> _Predicate:
    text = _Text.build(_stringify(raw), variables=variables)
    if not _has_variables(text.tokens):
        literal = text.resolve({})
        if literal is None or literal.lower() not in ("true", "false"):
            raise MalformedPolicyDocument(f"Bool condition value {raw!r} is not true or false.")

    def predicate(value: _Scalar, ctx: _Context) -> bool:
        expected = text.resolve(ctx)
        return expected is not None and expected.lower() == _stringify(value).lower()

    return predicate


def _to_decimal(value: _Scalar) -> Decimal | None:
    if isinstance(value, bool | datetime):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else repr(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _numeric(compare: Callable[[Any, Any], bool]) -> _Factory:
    def factory(raw: _Raw, variables: bool) -> _Predicate:
        expected = _to_decimal(raw)
        if expected is None:
            raise MalformedPolicyDocument(f"Numeric condition value {raw!r} is not a number.")

        def predicate(value: _Scalar, ctx: _Context) -> bool:
            actual = _to_decimal(value)
            return actual is not None and compare(actual, expected)

        return predicate

    return factory


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _to_datetime(value: _Scalar) -> datetime | None:
    """ISO 8601 (date-only means midnight UTC; no offset means UTC) or epoch seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return _as_utc(value)
    try:
        if isinstance(value, str):
            epoch = _to_decimal(value)
            if epoch is None:
                return _as_utc(datetime.fromisoformat(value.strip()))
            value = float(epoch)
        return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _date(compare: Callable[[Any, Any], bool]) -> _Factory:
    def factory(raw: _Raw, variables: bool) -> _Predicate:
        expected = _to_datetime(raw)
        if expected is None:
            raise MalformedPolicyDocument(f"Date condition value {raw!r} is not a valid date.")

        def predicate(value: _Scalar, ctx: _Context) -> bool:
            actual = _to_datetime(value)
            return actual is not None and compare(actual, expected)

        return predicate

    return factory


def _ip_address(raw: _Raw, variables: bool) -> _Predicate:
    try:
        network = ipaddress.ip_network(_stringify(raw).strip(), strict=False)
    except ValueError:
        raise MalformedPolicyDocument(
            f"IP address condition value {raw!r} is not an IP address or CIDR block.") from None

    def predicate(value: _Scalar, ctx: _Context) -> bool:
        try:
            return ipaddress.ip_address(_stringify(value).strip()) in network
        except ValueError:
            return False

    return predicate


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _binary_equals(raw: _Raw, variables: bool) -> _Predicate:
    expected = _b64decode(raw) if isinstance(raw, str) else None
    if expected is None:
        raise MalformedPolicyDocument(f"Binary condition value {raw!r} is not valid base64.")
    return lambda value, ctx: isinstance(value, str) and _b64decode(value) == expected


# Operator name -> (predicate factory, negated). A negated operator holds for a request value
# that matches none of the policy values.
_OPERATORS: dict[str, tuple[_Factory, bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "NumericEquals": (_numeric(operator.eq), False),
    "NumericNotEquals": (_numeric(operator.eq), True),
    "NumericLessThan": (_numeric(operator.lt), False),
    "NumericLessThanEquals": (_numeric(operator.le), False),
    "NumericGreaterThan": (_numeric(operator.gt), False),
    "NumericGreaterThanEquals": (_numeric(operator.ge), False),
    "DateEquals": (_date(operator.eq), False),
    "DateNotEquals": (_date(operator.eq), True),
    "DateLessThan": (_date(operator.lt), False),
    "DateLessThanEquals": (_date(operator.le), False),
    "DateGreaterThan": (_date(operator.gt), False),
    "DateGreaterThanEquals": (_date(operator.ge), False),
    "Bool": (_bool, False),
    "BinaryEquals": (_binary_equals, False),
    "IpAddress": (_ip_address, False),
    "NotIpAddress": (_ip_address, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
}
# Operators whose values may hold policy variables; elsewhere "${" is just text.
_VARIABLE_OPERATORS = frozenset(
    name for name, (factory, _) in _OPERATORS.items()
    if factory in (_string_equals, _string_equals_ignore_case, _string_like, _arn_like, _bool)
)
_Quantifier = Literal["any", "all"]  # ForAnyValue:, ForAllValues:
_SET_PREFIXES: dict[str, _Quantifier] = {"ForAnyValue:": "any", "ForAllValues:": "all"}
_IF_EXISTS = "IfExists"


@dataclass(frozen=True, slots=True)
class _Condition:
    """One key under one operator: any policy value (OR), or none of them when negated."""

    key: str
    predicates: tuple[_Predicate, ...]
    negated: bool
    if_exists: bool
    quantifier: _Quantifier | None

    def holds(self, ctx: _Context) -> bool:
        found = ctx.get(self.key)
        if found is None:  # absent: see the module docstring for AWS's rules
            if self.if_exists or self.quantifier == "all":
                return True
            return self.quantifier is None and self.negated
        values = found if isinstance(found, tuple) else (found,)
        # Without a set operator, a positive operator needs one matching request value and a
        # negated one needs all of them to pass, i.e. it is the positive operator's negation.
        if self.quantifier == "all" or (self.quantifier is None and self.negated):
            return all(self._matches(v, ctx) != self.negated for v in values)
        return any(self._matches(v, ctx) != self.negated for v in values)

    def _matches(self, value: _Scalar, ctx: _Context) -> bool:
        return any(predicate(value, ctx) for predicate in self.predicates)


@dataclass(frozen=True, slots=True)
class _NullCheck:
    """`Null`: "true" holds when the key is absent, "false" when it is present."""

    key: str
    expect_absent: frozenset[bool]  # the listed values, as "key is absent" expectations

    def holds(self, ctx: _Context) -> bool:
        return (self.key not in ctx) in self.expect_absent


# --- principals (trust policies) ---------------------------------------------------------

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_PRINCIPAL_ARN = re.compile(
    r"arn:aws:iam::(?P<iam>[0-9]{12}):(?:root|user/.+|role/.+)"
    r"|arn:aws:sts::(?P<sts>[0-9]{12}):assumed-role/[^/]+/[^/]+")
_PRINCIPAL_KINDS = ("AWS", "Service", "Federated", "CanonicalUser")


class _Match(enum.Enum):
    NONE = 0
    INDIRECT = 1  # everyone, the caller's account, or the caller's role
    DIRECT = 2  # the caller's own ARN


@dataclass(frozen=True, slots=True)
class _Principals:
    """A `Principal` element. `AWS` principals are airgate's signed callers; `Service`
    principals are services airgate plays itself (MWAA assuming an environment's execution
    role); `Federated` and `CanonicalUser` entries are valid but name nobody here."""

    everyone: bool  # "*" or {"AWS": "*"}
    aws: frozenset[str]  # account ids and principal ARNs
    services: frozenset[str] = frozenset()  # e.g. airflow.amazonaws.com

    def match(self, caller: Caller) -> _Match:
        if caller.service is not None:
            if caller.service in self.services:
                return _Match.DIRECT
            return _Match.INDIRECT if self.everyone or "*" in self.services else _Match.NONE
        if caller.arn in self.aws:
            return _Match.DIRECT
        if self.everyone or caller.role_arn in self.aws or caller.account in self.aws \
                or f"arn:aws:iam::{caller.account}:root" in self.aws:
            return _Match.INDIRECT
        return _Match.NONE


def _parse_principals(value: Any) -> _Principals:
    """"*", or a map of principal kinds to a string or a list of strings. AWS allows no
    partial wildcard in a principal: "*" alone names everyone."""
    if value == "*":
        return _Principals(True, frozenset())
    if not isinstance(value, Mapping) or not value:
        raise MalformedPolicyDocument("Invalid principal in policy.")
    everyone = False
    aws: set[str] = set()
    services: set[str] = set()
    for kind, entries in value.items():
        if kind not in _PRINCIPAL_KINDS:
            raise MalformedPolicyDocument(f"Invalid principal in policy: {kind!r}.")
        for entry in _strings(entries, "Principal"):
            if kind != "AWS":
                if not entry or ("*" in entry and entry != "*"):
                    raise MalformedPolicyDocument(
                        f'Invalid principal in policy: "{kind}":"{entry}"')
                if kind == "Service":
                    services.add(entry.lower())  # service names are not case-sensitive
                continue
            if entry == "*":
                everyone = True
            elif _ACCOUNT_ID.fullmatch(entry) or (_PRINCIPAL_ARN.fullmatch(entry)
                                                  and "*" not in entry):
                aws.add(entry)
            else:
                raise MalformedPolicyDocument(f'Invalid principal in policy: "AWS":"{entry}"')
    return _Principals(everyone, frozenset(aws), frozenset(services))


# --- statements and policies --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Statement:
    sid: str | None
    deny: bool
    actions: re.Pattern[str]  # all Action/NotAction patterns as one case-insensitive regex
    not_action: bool
    resources: tuple[_Pattern, ...]  # empty in a trust policy: the role it is attached to
    not_resource: bool
    conditions: tuple[_Condition | _NullCheck, ...]
    principals: _Principals | None = None  # trust policies only
    not_principal: bool = False

    def applies(self, request: AuthorizationRequest, ctx: _Context) -> bool:
        if (self.actions.fullmatch(request.action) is None) is not self.not_action:
            return False
        if self.resources:
            matched = any(_resource_matches(p, request.resource, ctx) for p in self.resources)
            if matched is self.not_resource:
                return False
        return all(condition.holds(ctx) for condition in self.conditions)

    def names(self, caller: Caller) -> _Match:
        """Whether this statement's Principal (or NotPrincipal) takes in `caller`."""
        if self.principals is None:
            return _Match.NONE
        match = self.principals.match(caller)
        if self.not_principal:
            return _Match.NONE if match is not _Match.NONE else _Match.INDIRECT
        return match


def _resource_matches(pattern: _Pattern, resource: str, ctx: _Context) -> bool:
    if resource == "*" and not pattern.all_wildcards:
        return False
    return pattern.matches(resource, ctx)


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed, validated policy (parse once, evaluate many times)."""

    version: str  # "2012-10-17" or "2008-10-17" (also when the document has no Version)
    policy_id: str | None
    statements: tuple[_Statement, ...]


def parse_policy(document: str | Mapping[str, Any]) -> Policy:
    """Validate an identity (or session) policy, JSON text or parsed, and compile its
    patterns."""
    return _parse(document, trust=False)


def parse_trust_policy(document: str | Mapping[str, Any]) -> Policy:
    """Validate a role's trust policy: statements name a Principal (or NotPrincipal) and no
    Resource, as IAM's CreateRole and UpdateAssumeRolePolicy require."""
    return _parse(document, trust=True)


def _parse(document: str | Mapping[str, Any], trust: bool) -> Policy:
    root = _load(document) if isinstance(document, str) else document
    if not isinstance(root, Mapping):
        raise MalformedPolicyDocument("Syntax errors in policy.")
    _reject_unknown(root, {"Version", "Id", "Statement"}, "policy")
    version = root.get("Version", _VERSION_2008)
    if version not in (_VERSION_2012, _VERSION_2008):
        raise MalformedPolicyDocument("The policy must contain a valid version string")
    policy_id = root.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicyDocument("Id must be a string.")
    if "Statement" not in root:
        raise MalformedPolicyDocument("Missing required field Statement")
    raw = root["Statement"]
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, list | tuple) or not items:
        raise MalformedPolicyDocument("Statement must be an object or a non-empty list.")
    variables = version == _VERSION_2012
    statements = tuple(_parse_statement(item, variables, trust) for item in items)
    sids = [s.sid for s in statements if s.sid]
    if len(sids) != len(set(sids)):
        raise MalformedPolicyDocument("Statement IDs (SID) in a single policy must be unique.")
    return Policy(version, policy_id, statements)


def _load(text: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise MalformedPolicyDocument(f"Syntax errors in policy: duplicate key {key!r}.")
            result[key] = value
        return result

    try:
        return json.loads(text, object_pairs_hook=no_duplicates)
    except (json.JSONDecodeError, RecursionError):
        raise MalformedPolicyDocument("Syntax errors in policy.") from None


def _reject_unknown(element: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in element:
        if key not in allowed:
            raise MalformedPolicyDocument(f"Syntax errors in policy: unknown {where} element "
                                          f"{key!r}.")


_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource",
                   "Condition", "Principal", "NotPrincipal"}


def _parse_statement(item: Any, variables: bool, trust: bool = False) -> _Statement:
    if not isinstance(item, Mapping):
        raise MalformedPolicyDocument("Syntax errors in policy: a statement must be an object.")
    _reject_unknown(item, _STATEMENT_KEYS, "statement")
    principal_key: str | None = None
    if trust:
        for prohibited in ("Resource", "NotResource"):
            if prohibited in item:
                raise MalformedPolicyDocument(f"Has prohibited field {prohibited}")
        if "Principal" in item and "NotPrincipal" in item:
            raise MalformedPolicyDocument("A statement cannot contain both Principal and "
                                          "NotPrincipal.")
        principal_key = "Principal" if "Principal" in item else "NotPrincipal"
        if principal_key not in item:
            raise MalformedPolicyDocument("Missing required field Principal")
    elif "Principal" in item or "NotPrincipal" in item:
        raise MalformedPolicyDocument("Policy document should not specify a principal.")
    sid = item.get("Sid")
    if sid is not None and not (isinstance(sid, str) and _SID.fullmatch(sid)):
        raise MalformedPolicyDocument("Statement IDs (SID) must be alpha-numeric. Check that "
                                      "your input satisfies the regular expression [0-9A-Za-z]*")
    if "Effect" not in item:
        raise MalformedPolicyDocument("Missing required field Effect")
    effect = item["Effect"]
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicyDocument(f'Invalid effect {effect!r}: must be "Allow" or "Deny".')
    action_key, actions = _one_of(item, "Action", "NotAction")
    resource_key, resources = ("Resource", []) if trust \
        else _one_of(item, "Resource", "NotResource")
    return _Statement(
        sid=sid,
        deny=effect == "Deny",
        actions=_compile_actions(actions),
        not_action=action_key == "NotAction",
        resources=tuple(_parse_resource(r, variables) for r in resources),
        not_resource=resource_key == "NotResource",
        conditions=_parse_conditions(item.get("Condition", {}), variables),
        principals=None if principal_key is None else _parse_principals(item[principal_key]),
        not_principal=principal_key == "NotPrincipal",
    )


def _one_of(item: Mapping[str, Any], positive: str, negative: str) -> tuple[str, list[str]]:
    """Exactly one of Action/NotAction (or Resource/NotResource), as a list of strings."""
    if positive in item and negative in item:
        raise MalformedPolicyDocument(f"A statement cannot contain both {positive} and "
                                      f"{negative}.")
    key = positive if positive in item else negative
    if key not in item:
        raise MalformedPolicyDocument(f"Missing required field {positive}")
    return key, _strings(item[key], key)


def _strings(value: Any, key: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not (isinstance(values, list | tuple) and values
            and all(isinstance(v, str) for v in values)):
        raise MalformedPolicyDocument(f"{key} must be a string or a non-empty list of strings.")
    return list(values)


def _compile_actions(actions: list[str]) -> re.Pattern[str]:
    sources = []
    for action in actions:
        if action.strip("*"):
            vendor, colon, name = action.partition(":")
            if not colon or not name:
                raise MalformedPolicyDocument(_VENDOR_MESSAGE)
            if not _VENDOR.fullmatch(vendor):
                raise MalformedPolicyDocument(f"Action vendor in {action!r} must be fully "
                                              "qualified and cannot contain wildcards.")
        sources.append(_regex_source(_glob_tokens(action), arn=False))
    return _compile("|".join(f"(?:{source})" for source in sources), True)


def _parse_resource(resource: str, variables: bool) -> _Pattern:
    pattern = _Pattern.build(resource, variables=variables, arn=True)
    if not pattern.all_wildcards:
        literal_colons = sum(t.text.count(":") for t in pattern.tokens if isinstance(t, _Literal))
        if not resource.startswith("arn:") or literal_colons < _ARN_PREFIX_SEGMENTS:
            raise MalformedPolicyDocument(f'Resource {resource} must be in ARN format or "*".')
    return pattern


def _parse_conditions(block: Any, variables: bool) -> tuple[_Condition | _NullCheck, ...]:
    if not isinstance(block, Mapping):
        raise MalformedPolicyDocument("Condition must be an object of condition operators.")
    conditions: list[_Condition | _NullCheck] = []
    for name, keys in block.items():
        if not isinstance(keys, Mapping) or not keys:
            raise MalformedPolicyDocument(f"Condition operator {name} must map at least one "
                                          "condition key to its values.")
        for key, values in keys.items():
            _check_condition_key(key)
            conditions.append(_parse_condition(name, key.lower(), _condition_values(name, values),
                                               variables))
    return tuple(conditions)


def _check_condition_key(key: Any) -> None:
    vendor, colon, name = key.partition(":") if isinstance(key, str) else ("", "", "")
    if not (colon and name and _VENDOR.fullmatch(vendor)):
        raise MalformedPolicyDocument(_VENDOR_MESSAGE)


def _condition_values(name: str, values: Any) -> list[_Raw]:
    items = values if isinstance(values, list | tuple) else [values]
    if not items or not all(isinstance(v, str | bool | int | float) for v in items):
        raise MalformedPolicyDocument(f"Condition operator {name}: values must be strings, "
                                      "numbers or booleans, or a non-empty list of them.")
    return list(items)


def _parse_condition(name: str, key: str, values: list[_Raw],
                     variables: bool) -> _Condition | _NullCheck:
    quantifier: _Quantifier | None = None
    base = name
    for prefix, kind in _SET_PREFIXES.items():
        if base.startswith(prefix):
            quantifier, base = kind, base[len(prefix):]
            break
    if_exists = base.endswith(_IF_EXISTS)
    if if_exists:
        base = base[:-len(_IF_EXISTS)]
    if base == "Null" and quantifier is None and not if_exists:
        return _NullCheck(key, frozenset(_null_value(v) for v in values))
    if base not in _OPERATORS:
        raise MalformedPolicyDocument(f"Invalid condition operator {name!r}.")
    factory, negated = _OPERATORS[base]
    with_variables = variables and base in _VARIABLE_OPERATORS
    predicates = tuple(factory(value, with_variables) for value in values)
    return _Condition(key, predicates, negated, if_exists, quantifier)


def _null_value(value: _Raw) -> bool:
    text = _stringify(value).lower()
    if text not in ("true", "false"):
        raise MalformedPolicyDocument(f"Null condition value {value!r} is not true or false.")
    return text == "true"


# --- evaluation ---------------------------------------------------------------------------


def _normalize_context(context: Mapping[str, ContextValue]) -> dict[str, _ContextValues]:
    """Lower-case key names; a multivalued key becomes a tuple, and an empty one is absent."""
    normalized: dict[str, _ContextValues] = {}
    for key, value in context.items():
        if isinstance(value, str | bool | int | float | datetime):
            normalized[key.lower()] = value
        elif values := tuple(value):
            normalized[key.lower()] = values
    return normalized


def evaluate(policies: Iterable[Policy], request: AuthorizationRequest) -> Decision:
    """Explicit Deny in any statement wins; else any Allow allows; else implicit deny."""
    statements = [s for policy in policies for s in policy.statements]
    ctx = _normalize_context(request.context)
    if any(s.deny and s.applies(request, ctx) for s in statements):
        return Decision.EXPLICIT_DENY
    if any(not s.deny and s.applies(request, ctx) for s in statements):
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def evaluate_trust(policy: Policy, request: AuthorizationRequest,
                   caller: Caller) -> TrustDecision:
    """A trust policy's decision for `caller` (a statement applies when its Principal takes
    the caller in, its Action matches and its conditions hold): an explicit Deny wins, then
    an Allow, which says whether it named the caller's own ARN."""
    ctx = _normalize_context(request.context)
    allowed = _Match.NONE
    for statement in policy.statements:
        named = statement.names(caller)
        if named is _Match.NONE or not statement.applies(request, ctx):
            continue
        if statement.deny:
            return TrustDecision(Decision.EXPLICIT_DENY)
        allowed = max(allowed, named, key=lambda match: match.value)
    if allowed is _Match.NONE:
        return TrustDecision(Decision.IMPLICIT_DENY)
    return TrustDecision(Decision.ALLOW, names_caller=allowed is _Match.DIRECT)
