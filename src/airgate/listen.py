"""How airgate listens: one uvicorn configuration for the MWAA API and every environment's
front, plain or TLS."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from airgate.tls import TlsFiles


def uvicorn_config(app: ASGIApp, host: str, port: int, tls: TlsFiles | None = None) -> Any:
    """How airgate serves HTTP(S): uvloop and httptools when present (uvicorn picks them),
    no access log of uvicorn's own (airgate writes one line per call itself)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                          server_header=False, lifespan="on",
                          ssl_certfile=str(tls.certificate) if tls else None,
                          ssl_keyfile=str(tls.private_key) if tls else None)
