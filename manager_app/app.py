"""The FastAPI application: wiring of settings, store, auth, runner and routers.

:func:`create_app` opens the store and checks the credentials at once (so an
in-process test client works without running the lifespan); the lifespan only
starts and stops the update runner. The wizard's pages live in
``manager_app.web`` and are included when that package exists, through its
``router`` (an :class:`fastapi.APIRouter`); they use ``app.state.manager`` and
the helpers of :mod:`manager_app.auth`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from . import api, micromanager_api
from .auth import Auth, CsrfCookieMiddleware
from .core import Manager
from .credentials import Generated, ensure_credentials
from .deployers import Deployer, make_deployer
from .micromanagers import MicromanagerHub
from .runner import Runner
from .settings import Settings
from .store import Store

log = logging.getLogger("mora.manager")


def create_app(settings: Settings, *, deployer: Deployer | None = None) -> FastAPI:
    """The manager app for ``settings``; ``deployer`` replaces the one settings choose (tests).

    ``app.state`` holds ``settings``, ``store``, ``manager``, ``auth``, ``runner`` and
    ``generated`` (credentials generated on this start, to print once).
    """
    store = Store.open(settings.data_dir)
    generated: Generated = ensure_credentials(store, settings)
    manager = Manager(settings, store)
    runner = Runner(manager, deployer or make_deployer(settings))
    micromanagers = MicromanagerHub(manager)  # the manager's listener: tokens, hooks, requests

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await micromanagers.start()
        await runner.start()
        try:
            yield
        finally:
            await runner.stop()
            await micromanagers.stop()

    app = FastAPI(
        title="mora manager",
        version="1",
        summary="Deploys a mora project in waves and asks its owner what no machine can know.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.manager = manager
    app.state.auth = Auth(store, settings)
    app.state.runner = runner
    app.state.generated = generated

    app.add_exception_handler(RequestValidationError, api.validation_error)
    app.include_router(api.public)
    app.include_router(api.session)
    _include_web(app, "hot")  # the wizard page, ahead of the API's routes (see web.routes)
    app.include_router(api.router)
    micromanager_api.include(app, micromanagers)
    _include_web(app)

    app.add_middleware(CsrfCookieMiddleware, settings=settings)

    return app


def _include_web(app: FastAPI, name: str = "router") -> None:
    """Mount the wizard's pages when ``manager_app.web`` is installed (it is optional).

    ``name``: which of its routers; ``hot`` (optional) holds the page asked most often.
    """
    try:
        web = importlib.import_module("manager_app.web")
    except ModuleNotFoundError as err:
        if err.name != "manager_app.web":
            raise
        return
    router = getattr(web, name, None)
    if router is None and name != "router":
        return
    if router is None:  # the package exists but does not offer pages (yet)
        log.warning("manager_app.web has no `router`; the wizard pages are not served")
        return
    app.include_router(router)
