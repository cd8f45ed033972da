"""Routes of the micromanager contract, for sidecars and for the admin; thin over the hub.

* ``sidecar`` – the contract's paths (:mod:`micromanager_kit.contract`), with the
  service's own bearer token (not the admin's): register, config, reports,
  input requests. Errors are :class:`~micromanager_kit.contract.ErrorBody`.
* ``admin`` – under ``/api/v1/micromanagers``, with the admin session or API
  token (and CSRF on writes, like the rest of the API): the status of every
  micromanaged service, its actions, running an action, retrying failed hooks.
* ``pages`` – the "Tools" part of a service's page in the wizard UI: the
  micromanager's state, a failed hook with its retry button, and a form per
  action (typed fields from the action's :class:`~micromanager_kit.contract.FormField`\\ s).

:func:`include` wires all of it into the app; the logic is in :mod:`.micromanagers`.
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.responses import JSONResponse, Response

from micromanager_kit import contract as c

from .auth import require_auth, verify_csrf_unsafe
from .micromanagers import ActionRequest, MicromanagerHub, MicromanagerStatus, Refused, RetryQueued
from .models import ErrorResponse

_CONTRACT_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": c.ErrorBody, "description": "no token, or not a micromanager token"},
    403: {"model": c.ErrorBody, "description": "another service's token, or a key out of scope"},
    404: {"model": c.ErrorBody, "description": "no such service, or it has no micromanager"},
    409: {"model": c.ErrorBody, "description": "another contract version, or an idempotency "
                                               "key reused for other values"},
    422: {"model": c.ErrorBody, "description": "a value that does not fit its input"},
    503: {"model": c.ErrorBody, "description": "no manifest yet, or values not readable here"},
}

sidecar = APIRouter(tags=["micromanager contract"], responses=_CONTRACT_ERRORS)
admin = APIRouter(
    prefix=c.API_PREFIX + "/micromanagers",
    tags=["micromanagers"],
    dependencies=[Depends(require_auth), Depends(verify_csrf_unsafe)],
    responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
)


def get_hub(request: Request) -> MicromanagerHub:
    hub: MicromanagerHub = request.app.state.micromanagers
    return hub


HubDep = Annotated[MicromanagerHub, Depends(get_hub)]


def _authorised(service: str, request: Request) -> str:
    """The path's service, when the bearer token is that service's (401/403 otherwise)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return get_hub(request).authorise(token.strip() if scheme.lower() == "bearer" else None,
                                      service)


ServiceDep = Annotated[str, Depends(_authorised)]


async def refused(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Refused)
    return JSONResponse(status_code=exc.status, content=exc.body.model_dump(mode="json"))


# --------------------------------------------------------------------------- sidecar → manager


@sidecar.post(c.PATH_REGISTER, response_model=c.RegistrationAccepted)
def register(service: ServiceDep, body: c.Registration, hub: HubDep) -> c.RegistrationAccepted:
    """A sidecar announces itself (again at each start): URL, hooks, actions, hook token."""
    return hub.register(service, body)


@sidecar.get(c.PATH_CONFIG, response_model=c.ConfigResponse)
def config(
    service: ServiceDep, hub: HubDep, key: Annotated[list[str] | None, Query()] = None
) -> Response:
    """The service's resolved values, only those its manifest entry references."""
    body = hub.config_for(service, key)
    # not through response_model: that would be fine, but say explicitly it must not be cached
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@sidecar.post(c.PATH_REPORT, response_model=c.ReportAccepted)
def report(service: ServiceDep, body: c.Report, hub: HubDep) -> c.ReportAccepted:
    """Values the sidecar created; they answer the service's inputs (once per idempotency key)."""
    return hub.report(service, body)


@sidecar.post(c.PATH_INPUT_REQUESTS, response_model=c.InputRequestsAccepted)
def input_requests(service: ServiceDep, body: c.InputRequests, hub: HubDep) -> c.InputRequestsAccepted:
    """Ask the wizard for more inputs of this service (idempotent by name)."""
    return hub.request_inputs(service, body)


# --------------------------------------------------------------------------- admin


@admin.get("", response_model=list[MicromanagerStatus])
def list_micromanagers(hub: HubDep) -> list[MicromanagerStatus]:
    """Every micromanaged service: registered or not, its actions, each hook's last outcome."""
    return hub.statuses()


@admin.get("/{service}", response_model=MicromanagerStatus, responses=_CONTRACT_ERRORS)
def get_micromanager(service: str, hub: HubDep) -> MicromanagerStatus:
    return hub.status(service)


@admin.get("/{service}/actions", response_model=list[c.ActionSpec], responses=_CONTRACT_ERRORS)
def list_actions(service: str, hub: HubDep) -> list[c.ActionSpec]:
    """The actions the service's micromanager offers, with their typed form fields."""
    return hub.actions(service)


@admin.post(
    "/{service}/actions/{name}",
    response_model=c.HookResult,
    responses={**_CONTRACT_ERRORS, 500: {"model": c.ErrorBody, "description": "the action failed"}},
)
async def run_action(service: str, name: str, body: ActionRequest, hub: HubDep) -> Response:
    """Run an action on the sidecar; its result, or its error (422 lists the wrong fields)."""
    code, result = await hub.action(service, name, body.values)
    return JSONResponse(status_code=code, content=result.model_dump(mode="json"),
                        headers={"Cache-Control": "no-store"})


@admin.post("/{service}/retry", response_model=RetryQueued, status_code=status.HTTP_202_ACCEPTED,
            responses=_CONTRACT_ERRORS)
def retry(service: str, hub: HubDep) -> RetryQueued:
    """Call the service's failed hooks again (its after-start hook when none failed)."""
    return hub.retry(service)


# --------------------------------------------------------------------------- wiring


def include(app: FastAPI, hub: MicromanagerHub) -> None:
    """Add the routes, the error handler and (when the wizard UI exists) the Tools pages."""
    app.state.micromanagers = hub
    app.add_exception_handler(Refused, refused)
    app.include_router(sidecar)
    app.include_router(admin)
    try:
        pages = importlib.import_module("manager_app.micromanager_pages")
    except ModuleNotFoundError as err:
        if err.name not in ("manager_app.micromanager_pages", "manager_app.web"):
            raise
        return
    pages.include(app)
