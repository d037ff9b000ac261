"""Whether a browser's request comes from a page of the site it is addressed to (login
and form CSRF), for the environments' fronts and the console."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import Scope


def from_own_page(scope: Scope, required: bool = False) -> bool:
    """Whether a browser's POST comes from a page of this front: its Origin, else its
    Referer, names the origin the request was addressed to. Clients that send neither
    (requests, MwaaHook) are not browsers on another site's page, unless `required` (a
    page only browsers use)."""
    claimed = header(scope, b"origin") or header(scope, b"referer")
    if not claimed:
        return not required
    own = origin(f"{scope.get('scheme', 'http')}://{header(scope, b'host')}")
    return own is not None and origin(claimed) == own


def origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""
