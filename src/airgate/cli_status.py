"""`airgate status`: the command's glue (settings, store, the running server)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from airgate import config, status


def run(args: argparse.Namespace, settings: config.Settings) -> int:
    from airgate.environments.store import EnvironmentStore
    from airgate.store.db import Database

    if not settings.home.is_dir():
        print(f"airgate: no airgate state in {settings.home}: start it with `airgate up`",
              file=sys.stderr)
        return 1
    db = Database(settings.effective_database_url)
    try:
        store = EnvironmentStore(db)

        def look() -> list[dict[str, Any]]:
            return status.describe_all(store.all(), _components(settings))

        views = look()
        missing = sorted(set(args.environments) - {view["Name"] for view in views})
        if missing:
            print(f"airgate: no environment named {', '.join(missing)}", file=sys.stderr)
            return 1
        if args.watch:
            try:
                status.watch(look, args.environments, sys.stdout, args.interval, args.json)
            except KeyboardInterrupt:
                return 130
            return 0
        if args.environments:
            views = [view for view in views if view["Name"] in args.environments]
        if args.json:
            print(json.dumps({"Environments": views}, indent=4, default=str))
        else:
            print(status.table(views))
        return 0
    finally:
        db.close()


def _components(settings: config.Settings) -> status.Components | None:
    """From the airgate serving this home, if one is running."""
    if not settings.server_file.exists():
        return None
    running = json.loads(settings.server_file.read_text())
    endpoint = str(running["endpoint_url"])
    ca = settings.tls_dir / "ca.pem"
    verify: str | bool = str(ca) if endpoint.startswith("https://") and ca.exists() else True
    return status.live_components(endpoint, settings.metrics_token, verify)
