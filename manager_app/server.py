"""Running the manager: build the app, load the project's manifest, serve with uvicorn.

Separate from :mod:`.app` so tests can build the app without a server, and from
the CLI so the CLI stays a thin argument parser. The listening URL is printed
once uvicorn has bound its socket, so ``--port 0`` (a free port, used by tests)
prints the real port.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from mora_dsl.manifest import Manifest

from .app import create_app
from .settings import ADMIN_PASSWORD_ENV, API_TOKEN_ENV, Settings

Announce = Callable[[str], None]


class _Server(uvicorn.Server):
    """uvicorn's server, telling us its real address once it listens."""

    def __init__(self, config: uvicorn.Config, on_listen: Callable[[str, int], None]) -> None:
        super().__init__(config)
        self._on_listen = on_listen

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.servers and self.servers[0].sockets:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self._on_listen(str(host), int(port))


def prepare(settings: Settings, manifest: Manifest | None, announce: Announce) -> FastAPI:
    """The app with ``manifest`` received (an update is queued when it changed)."""
    app = create_app(settings)
    if manifest is not None:
        app.state.manager.receive_manifest(manifest, settings.params)
    generated = app.state.generated
    if generated.admin_password:
        announce(
            f"Admin password (generated, shown once; set {ADMIN_PASSWORD_ENV} to choose one): "
            f"{generated.admin_password}"
        )
    if generated.api_token:
        announce(
            f"API token (generated, shown once; set {API_TOKEN_ENV} to choose one): "
            f"{generated.api_token}"
        )
    return app


def serve(settings: Settings, manifest: Manifest | None, announce: Announce = print) -> None:
    """Serve until interrupted; prints the URL and how to log in."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    app = prepare(settings, manifest, announce)
    generated = app.state.generated

    def on_listen(host: str, port: int) -> None:
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        mode = " (dry run: nothing is deployed to a cluster)" if settings.dry_run else ""
        announce(f"mora manager for stack {settings.stack!r} listening on http://{shown}:{port}/{mode}")
        if not generated.admin_password:
            announce(
                "Log in with the admin password "
                f"({'from ' + ADMIN_PASSWORD_ENV if settings.admin_password else 'printed at first start'})."
            )
        announce(f"API: http://{shown}:{port}/docs (bearer token); health: /healthz")
        sys.stdout.flush()

    # "auto" picks uvloop and httptools (the C HTTP parser) when installed, as
    # uvicorn[standard] in our dependencies makes sure; else asyncio and h11. uvloop comes in
    # as a loop factory for this loop only (no global policy), so the event loops of
    # deployers' threads stay asyncio's.
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", access_log=False,
        lifespan="on", loop="auto", http="auto",
    )
    _Server(config, on_listen).run()
