"""The REST API under ``/api/v1`` (plus ``/healthz``): thin routes over :class:`~.core.Manager`.

Every route except ``/healthz`` and the login needs the admin session or the
API token (see :mod:`.auth`); with a session, writes also need the CSRF token
(``X-CSRF-Token``, as returned by the login). Validation errors are answered in FastAPI's shape
(``{"detail": [{"loc", "msg", "type"}]}``) but never with the submitted value, so
a mistyped secret is not sent back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from mora_dsl.manifest import Input

from .auth import client_key, get_auth, require_auth_csrf
from .cluster import (
    DEFAULT_TAIL,
    MAX_TAIL,
    ClusterError,
    NotDeployed,
    NotGenerated,
    NotStarted,
    RestartResult,
    SecretValue,
    ServiceLogs,
    ServiceStatus,
)
from .core import (
    InvalidAnswer,
    InvalidManifest,
    Manager,
    NoIngressCa,
    NoManifest,
    NotSupported,
    SecretRotated,
    UnknownInput,
    UnknownSecret,
    UnknownService,
    WrongConfirmation,
    WrongPassword,
    ingress_ca_certificate,
)
from .deployers import DeployError
from .models import (
    AnswerAccepted,
    AnswerRequest,
    AnswerStatus,
    DestroyRequest,
    DestroyResponse,
    ErrorResponse,
    Health,
    IngressCa,
    LoginRequest,
    LoginResponse,
    ManifestAccepted,
    ManifestSubmission,
    PlanResponse,
    PreviewResponse,
    PreviewStepModel,
    RemovalConfirmed,
    RevealedSecret,
    RevealRequest,
    SecretList,
    UpdateList,
    UpdateQueued,
    UpdateRequest,
)

PREFIX = "/api/v1"

public = APIRouter(tags=["health"])
session = APIRouter(prefix=PREFIX, tags=["session"])
router = APIRouter(
    prefix=PREFIX,
    # Cookie sessions must also send the CSRF token (header X-CSRF-Token) on writes.
    dependencies=[Depends(require_auth_csrf)],
    responses={
        401: {"model": ErrorResponse, "description": "not logged in, no valid token"},
        403: {"model": ErrorResponse, "description": "session without a valid CSRF token"},
    },
)


async def get_manager(request: Request) -> Manager:
    # async: a plain ``def`` dependency is run in the thread pool, a hop that cost more
    # than the lookup on every API call.
    manager: Manager = request.app.state.manager
    return manager


ManagerDep = Annotated[Manager, Depends(get_manager)]


def _is_secret(type_text: str) -> bool:
    return "secret" in type_text


# --------------------------------------------------------------------------- public


@public.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: answers as soon as the server runs (no auth, no database)."""
    return Health()


@session.post(
    "/login",
    response_model=LoginResponse,
    responses={401: {"model": ErrorResponse}, 429: {"model": ErrorResponse}},
)
def login(body: LoginRequest, request: Request, response: Response) -> LoginResponse:
    """Log in with the admin password; sets the session cookie, returns its CSRF token."""
    auth = get_auth(request)
    auth.check_password(request, body.password)
    return LoginResponse(csrf_token=auth.start_session(response))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, response: Response) -> Response:
    get_auth(request).end_session(request, response)
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


# --------------------------------------------------------------------------- manifests and plan


@router.post(
    "/manifests",
    response_model=ManifestAccepted,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"model": ErrorResponse}},
)
def post_manifest(body: ManifestSubmission, manager: ManagerDep) -> ManifestAccepted:
    """Receive a manifest (from `mora up`): store it, diff it, re-plan, trigger an update.

    A manifest naming things it does not define is refused with 422 (nothing stored).
    """
    try:
        changes = manager.receive_manifest(body.manifest, body.params)
    except InvalidManifest as err:
        return JSONResponse(  # type: ignore[return-value]
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": [{"loc": ["body", "manifest"], "msg": p, "type": "inconsistent"}
                                for p in err.problems]},
        )
    record = manager.manifest_record()
    queued = manager.store.next_queued()
    return ManifestAccepted(
        manifest_id=record.id, changes=changes, update_id=queued.id if queued else None
    )


@router.get("/plan", response_model=PlanResponse, responses={404: {"model": ErrorResponse}})
async def get_plan(request: Request) -> PlanResponse:
    """Every service with its state, the waves, and the inputs to ask now and later."""
    # The JSON is kept until the next write to the store, like the plan it shows; on the
    # event loop, not in the thread pool: the hop to a worker thread and back (and the
    # GIL handover it needs) cost more than a cached answer. The manager comes from the
    # request rather than ManagerDep: FastAPI solving one dependency fewer is measurable.
    manager: Manager = request.app.state.manager

    def body() -> bytes:
        plan = manager.plan()
        response = PlanResponse(
            project=manager.manifest().project.name,
            services=plan.services,
            waves=plan.waves,
            pending_inputs=plan.pending_inputs,
            upcoming_inputs=plan.upcoming_inputs,
            pending_removals=plan.pending_removals,
            complete=plan.complete,
        )
        return _PLAN_JSON.dump_json(response, by_alias=True)  # as FastAPI serializes it

    try:
        content = manager.store.memo("plan response", body)
    except NoManifest as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    return Response(content, media_type="application/json")  # type: ignore[return-value]


_PLAN_JSON = TypeAdapter(PlanResponse)


@router.post(
    "/removals/{service}/confirm",
    response_model=RemovalConfirmed,
    responses={404: {"model": ErrorResponse}},
)
def confirm_removal(service: str, manager: ManagerDep) -> RemovalConfirmed:
    """Confirm removing a service that left the manifest; its volumes are kept."""
    if not manager.confirm_removal(service):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no removal of {service!r} is pending")
    queued = manager.store.next_queued()
    return RemovalConfirmed(service=service, update_id=queued.id if queued else None)


# --------------------------------------------------------------------------- answers


def _input_or_404(manager: Manager, input_id: str) -> Input:
    try:
        return manager.input(input_id)
    except (NoManifest, UnknownInput) as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None


@router.get(
    "/answers/{input_id}", response_model=AnswerStatus, responses={404: {"model": ErrorResponse}}
)
def get_answer(input_id: str, manager: ManagerDep) -> AnswerStatus:
    """Whether the input is answered; the value only when the input is not a secret."""
    spec = _input_or_404(manager, input_id)
    type_text = str(spec.type)
    secret = _is_secret(type_text)
    updated = manager.store.answered().get(input_id)
    value = None if secret or updated is None else manager.store.answer(input_id)
    return AnswerStatus(
        id=spec.id, title=spec.title, type=type_text, answered=updated is not None,
        secret=secret, value=value, updated_at=updated,
    )


@router.put(
    "/answers/{input_id}",
    response_model=AnswerAccepted,
    responses={404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
def put_answer(input_id: str, body: AnswerRequest, manager: ManagerDep) -> AnswerAccepted:
    """Answer an input. A value that does not fit the input's type is refused with 422."""
    _input_or_404(manager, input_id)
    try:
        changed = manager.submit_answer(input_id, body.value)
    except InvalidAnswer as err:
        return JSONResponse(  # type: ignore[return-value]
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={"detail": [{"loc": ["body", "value"], "msg": err.message,
                                 "type": "invalid_answer"}]},
        )
    queued = manager.store.next_queued()
    return AnswerAccepted(id=input_id, changed=changed, update_id=queued.id if queued else None)


# --------------------------------------------------------------------------- updates


@router.get("/updates", response_model=UpdateList)
def get_updates(manager: ManagerDep, limit: int = 50) -> UpdateList:
    """Update history, newest first: triggers, what changed, status, error, times."""
    return UpdateList(updates=manager.updates(max(1, min(limit, 500))))


@router.post("/updates", response_model=UpdateQueued, status_code=status.HTTP_202_ACCEPTED)
def post_update(manager: ManagerDep, body: UpdateRequest | None = None) -> UpdateQueued:
    """Trigger an update (a retry after a failure, or a refresh of everything)."""
    reason = body.reason if body else "requested"
    return UpdateQueued(update_id=manager.trigger_update(reason))


# --------------------------------------------------------------------------- the whole stack


@contextmanager
def _stack_errors() -> Iterator[None]:
    """404 no manifest (or no CA), 422 wrong confirmation, 501 unsupported, 502 engine."""
    try:
        yield
    except (NoManifest, NoIngressCa) as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    except WrongConfirmation as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from None
    except NotSupported as err:
        raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, str(err)) from None
    except DeployError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from None


_STACK_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "no manifest yet (or, for the CA, none made)"},
    502: {"model": ErrorResponse, "description": "the engine failed (its error, no values)"},
}


@router.post("/preview", response_model=PreviewResponse, responses=_STACK_ERRORS)
async def preview_stack(request: Request) -> PreviewResponse:
    """What the next update would change: change counts and one step per object or resource.

    Dry run: the rendered objects against the last update's; otherwise a Pulumi
    preview. Waits for a running update (one operation at a time). Never a value.
    """
    manager: Manager = request.app.state.manager
    with _stack_errors():
        outcome, deploy = await request.app.state.runner.preview()
    return PreviewResponse(
        stack=manager.settings.stack, dry_run=manager.settings.dry_run,
        changes=outcome.changes, deploy=deploy,
        steps=[PreviewStepModel(operation=s.operation, type=s.type, name=s.name)
               for s in outcome.steps],
    )


@router.post(
    "/destroy",
    response_model=DestroyResponse,
    responses={**_STACK_ERRORS, 422: {"model": ErrorResponse,
                                      "description": "`confirm` is not the stack's name"}},
)
async def destroy_stack(body: DestroyRequest, request: Request) -> DestroyResponse:
    """Destroy the services' stack (after a running update); cancels queued updates.

    ``confirm`` must be the manager's stack name. Volumes (claims) and the
    namespace are kept unless ``delete_volumes``. Answers and manifests stay: the
    next `mora up` deploys the stack again.
    """
    manager: Manager = request.app.state.manager
    with _stack_errors():
        manager.check_destroy(body.confirm)
        changes, cancelled = await request.app.state.runner.destroy(body.delete_volumes)
    return DestroyResponse(stack=manager.settings.stack, changes=changes,
                           volumes_kept=not body.delete_volumes, cancelled_updates=cancelled)


@router.get("/ca", response_model=IngressCa, responses=_STACK_ERRORS)
async def ingress_ca(request: Request) -> IngressCa:
    """The certificate of the CA that signs the stack's ingress certificates (public).

    404 with the reason when there is none: a dry run makes no CA, a cert-manager
    issuer replaces it, or no update has deployed a service with a subdomain yet.
    """
    manager: Manager = request.app.state.manager
    with _stack_errors():
        outputs = await request.app.state.runner.outputs()
        pem = ingress_ca_certificate(manager.settings, outputs)
    return IngressCa(stack=manager.settings.stack, cert_pem=pem)


# --------------------------------------------------------------------------- everyday tools


@contextmanager
def _tool_errors() -> Iterator[None]:
    """The tools' exceptions as HTTP answers: 404 unknown or absent, 409 not yet, 502 cluster."""
    try:
        yield
    except (NoManifest, UnknownService, UnknownSecret, NotDeployed) as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    except (NotStarted, NotGenerated) as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from None
    except ClusterError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from None


_TOOL_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorResponse, "description": "no such service or secret, or not deployed"},
    409: {"model": ErrorResponse, "description": "not there yet (a pod not started, a secret "
                                                 "not generated)"},
    502: {"model": ErrorResponse, "description": "the cluster could not be asked"},
}


@router.post("/services/{name}/restart", response_model=RestartResult, responses=_TOOL_ERRORS)
def restart_service(name: str, manager: ManagerDep) -> RestartResult:
    """Restart a service's pods, as `kubectl rollout restart` does (dry-run: recorded only)."""
    with _tool_errors():
        return manager.restart_service(name)


@router.get("/services/{name}/logs", response_model=ServiceLogs, responses=_TOOL_ERRORS)
def service_logs(
    name: str,
    manager: ManagerDep,
    tail_lines: Annotated[int, Query(ge=1, le=MAX_TAIL)] = DEFAULT_TAIL,
) -> ServiceLogs:
    """The last lines of the service's newest pod (dry-run: its recorded events)."""
    with _tool_errors():
        return manager.service_logs(name, tail_lines)


@router.get("/services/{name}/status", response_model=ServiceStatus, responses=_TOOL_ERRORS)
def service_status(name: str, manager: ManagerDep) -> ServiceStatus:
    """The service's Deployment: desired and ready replicas, last restart."""
    with _tool_errors():
        return manager.service_status(name)


@router.get("/secrets", response_model=SecretList, responses={404: {"model": ErrorResponse}})
def list_secrets(manager: ManagerDep) -> SecretList:
    """The generated secrets (ids, kinds, users, last rotation); never their values."""
    with _tool_errors():
        return SecretList(secrets=manager.generated_secrets())


def reveal_checked(request: Request, manager: Manager, secret_id: str, password: str) -> SecretValue:
    """:meth:`Manager.reveal_secret` behind the login's rate limit (for this route and the pages).

    Wrong passwords count as failed logins, so the reveal form cannot be used to
    guess the password faster than the login page: 429 once over the limit, 403
    for a wrong password (401 would read as "your session ended").
    """
    limiter = get_auth(request).limiter
    client = client_key(request)
    wait = limiter.retry_after(client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many wrong passwords; wait a minute and try again",
            headers={"Retry-After": str(wait)},
        )
    with _tool_errors():
        try:
            value = manager.reveal_secret(secret_id, password)
        except WrongPassword:
            limiter.failed(client)
            raise HTTPException(status.HTTP_403_FORBIDDEN, "wrong password") from None
    limiter.succeeded(client)
    return value


@router.post(
    "/secrets/{secret_id}/reveal",
    response_model=RevealedSecret,
    responses={**_TOOL_ERRORS, 429: {"model": ErrorResponse, "description": "too many wrong "
                                     "passwords"}},
)
def reveal_secret(
    secret_id: str, body: RevealRequest, request: Request, response: Response,
    manager: ManagerDep,
) -> RevealedSecret:
    """A generated secret's value; the admin password must be sent again (`password`).

    403 for a wrong password (also with a valid session or token); wrong passwords
    share the login's rate limit.
    """
    value = reveal_checked(request, manager, secret_id, body.password)
    response.headers["Cache-Control"] = "no-store"
    return RevealedSecret(id=secret_id, value=value)


@router.post(
    "/secrets/{secret_id}/rotate",
    response_model=SecretRotated,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_TOOL_ERRORS,
)
def rotate_secret(secret_id: str, manager: ManagerDep) -> SecretRotated:
    """Replace a generated secret by a new random value; the queued update applies it."""
    with _tool_errors():
        return manager.rotate_secret(secret_id)


# --------------------------------------------------------------------------- errors


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 without the ``input``/``ctx`` echo (which could hold a secret)."""
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail})
