"""The sidecar's HTTP side: serves a :class:`~.micromanager.Micromanager` to the manager.

Every ``/hooks/*`` call goes through :func:`run_hook`: read the service's
config (pushed along by the manager, or fetched with the client), build the
:class:`~.context.HookContext`, run the hook (sync hooks in a worker thread),
send what it reported or requested, and answer with a
:class:`~.contract.HookResult` or a structured :class:`~.contract.ErrorBody`.
The error body is for a person (the wizard shows it with a retry): one line,
secrets masked, never a traceback; the traceback goes to the log, without the
exception's message, which is logged scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import logging
import traceback
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from mora_dsl.builtins import to_text
from mora_dsl.validate import InvalidValue, parse_value

from . import contract as c
from .context import HookContext, ServiceConfig
from .errors import HookError, ManagerError, NotReady, describe, scrub

if TYPE_CHECKING:
    from .client import ManagerClient
    from .micromanager import HookFunction, Micromanager

log = logging.getLogger("micromanager_kit")

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": c.ErrorBody, "description": "missing or wrong hook token"},
    409: {"model": c.ErrorBody, "description": "another contract version"},
    422: {"model": c.ErrorBody, "description": "invalid body or form fields"},
    500: {"model": c.ErrorBody, "description": "the hook failed (retry may help)"},
    503: {"model": c.ErrorBody, "description": "a value is not known yet, or the manager is unreachable"},
}


def error_response(status: int, body: c.ErrorBody) -> JSONResponse:
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"))


class _Failure(Exception):
    """Internal: stop handling a call with this error response."""

    def __init__(self, status: int, body: c.ErrorBody) -> None:
        super().__init__(body.detail)
        self.status = status
        self.body = body


class SidecarState:
    """What the routes share: the micromanager, its service, its client and hook token."""

    def __init__(
        self,
        mm: Micromanager,
        *,
        service: str | None,
        client: ManagerClient | None,
        hook_token: str | None,
        service_host: str | None = None,
        service_ports: dict[str, int] | None = None,
    ) -> None:
        self.mm = mm
        self.service_host = service_host
        self.service_ports = dict(service_ports or {})
        self.service = service
        self.client = client
        self.hook_token = hook_token

    async def config_for(self, call: c.HookCall, hook: str) -> ServiceConfig:
        if call.config is not None:
            return ServiceConfig(call.config)
        if self.client is None:
            raise _Failure(503, c.ErrorBody(
                detail="the sidecar has no manager to read its config from",
                code="unavailable", retryable=False, hook=hook,
                hint="run it with --manager and --token, or send the config in the call",
            ))
        try:
            return ServiceConfig(await self.client.read_config())
        except ManagerError as err:
            raise _Failure(503, c.ErrorBody(
                detail=f"could not read the service's config from the manager: {err}",
                code="unavailable", retryable=True, hook=hook,
            )) from None

    async def flush(self, ctx: HookContext) -> None:
        """Send what the hook requested and reported (input requests first: reports may answer them)."""
        if not ctx.input_requests and not ctx.reports:
            return
        if self.client is None:
            raise ManagerError("the sidecar has no manager to send its reports to")
        if ctx.input_requests:
            await self.client.request_inputs(list(ctx.input_requests.values()))
        if ctx.reports:
            # One key per hook run, reused by every retry of the client, so a
            # report the manager stored but could not acknowledge lands once.
            await self.client.report(ctx.reports, idempotency_key=f"{ctx.call.call_id or 'call'}:{uuid.uuid4()}")


async def _invoke(fn: HookFunction, ctx: HookContext) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(ctx)
    result = await anyio.to_thread.run_sync(fn, ctx)
    if inspect.isawaitable(result):
        result = await result
    return result


def _check_call(state: SidecarState, call: c.HookCall, hook: str) -> None:
    if call.contract_version != c.CONTRACT_VERSION:
        raise _Failure(409, c.ErrorBody(
            detail=f"the manager speaks contract version {call.contract_version}, "
            f"this sidecar {c.CONTRACT_VERSION}",
            code="contract_version", hook=hook,
            hint="run the micromanager image that matches the manager's version",
        ))
    if state.service is not None and call.service != state.service:
        raise _Failure(422, c.ErrorBody(
            detail=f"this sidecar serves {state.service!r}, not {call.service!r}",
            code="invalid", hook=hook,
        ))


async def run_hook(
    state: SidecarState,
    hook: str,
    fn: HookFunction,
    call: c.HookCall,
    values: dict[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
) -> tuple[HookContext, Any]:
    """Run one hook around its context; raises :class:`_Failure` with the error to answer."""
    _check_call(state, call, hook)
    config = await state.config_for(call, hook)
    ctx = HookContext(
        micromanager=state.mm.name, hook=hook, call=call, config=config, values=values,
        service_host=state.service_host, service_ports=state.service_ports,
    )
    for secret in secrets:  # an action's secret fields: masked in its error messages
        ctx.add_secret(secret)
    failure: _Failure | None = None
    result: Any = None
    try:
        result = await _invoke(fn, ctx)
    except HookError as err:
        failure = _Failure(503 if isinstance(err, NotReady) else 500, c.ErrorBody(
            detail=describe(err, ctx.secret_values()),
            code="not_ready" if isinstance(err, NotReady) else "hook_failed",
            retryable=err.retryable, hook=hook,
            hint=describe(HookError(err.hint), ctx.secret_values()) if err.hint else None,
        ))
        log.warning("%s %s: %s", call.service, hook, failure.body.detail)
    except Exception as err:
        detail = describe(err, ctx.secret_values())
        failure = _Failure(500, c.ErrorBody(
            detail=f"{hook.replace('_', ' ')} failed: {detail}", code="hook_failed",
            retryable=True, hook=hook, hint="check the service is running, then retry",
        ))
        # frames only: the exception's own text may hold a secret; it is logged scrubbed
        log.error("%s %s failed: %s\n%s", call.service, hook, detail,
                  "".join(traceback.format_tb(err.__traceback__)))
    try:
        await state.flush(ctx)
    except ManagerError as err:
        if failure is None:
            failure = _Failure(503, c.ErrorBody(
                detail=f"{hook.replace('_', ' ')} ran, but sending its results to the manager "
                f"failed: {describe(err, ctx.secret_values())}",
                code="unavailable", retryable=True, hook=hook,
            ))
    if failure is not None:
        raise failure
    return ctx, result


def _result(hook: str, ctx: HookContext, returned: Any) -> c.HookResult:
    message = returned if isinstance(returned, str) else None
    data = returned if isinstance(returned, dict) else {}
    return c.HookResult(
        hook=hook,
        message=message,
        changes=ctx.changes,
        reported=sorted(ctx.reports),
        requested_inputs=sorted(ctx.input_requests),
        data=data,
    )


def parse_action_values(spec: c.ActionSpec, raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The action's typed values, or per-field messages (which never repeat a value)."""
    known = {f.name: f for f in spec.fields}
    values: dict[str, Any] = {}
    problems = {name: "not a field of this action" for name in raw if name not in known}
    for name, field in known.items():
        value = raw.get(name)
        if value is None or value == "":
            if field.default is not None:
                values[name] = field.default
            elif field.required:
                problems[name] = "required"
            else:
                values[name] = None
            continue
        if field.type.name == "string" and isinstance(value, str):
            values[name] = value
            continue
        text = value if isinstance(value, str) else to_text(value)
        try:
            values[name] = parse_value(field.type, text)
        except InvalidValue as err:  # its message quotes the text ('"x" is not a whole number')
            problems[name] = scrub(str(err), [text])
    return values, problems


def build_app(
    mm: Micromanager,
    *,
    service: str | None,
    client: ManagerClient | None,
    hook_token: str | None,
    advertise_url: str | None,
    reregister_every: float,
    service_host: str | None = None,
    service_ports: dict[str, int] | None = None,
) -> FastAPI:
    """See :meth:`Micromanager.app`."""
    state = SidecarState(mm, service=service, client=client, hook_token=hook_token,
                         service_host=service_host, service_ports=service_ports)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if client is not None and advertise_url and service:
            registration = mm.registration(service=service, url=advertise_url, hook_token=hook_token)
            task = asyncio.create_task(_keep_registered(client, registration, reregister_every))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title=f"mora micromanager: {mm.name}",
        version=mm.version,
        description="Hooks the mora manager calls on this sidecar "
        f"(contract version {c.CONTRACT_VERSION}).",
        lifespan=lifespan,
    )
    app.state.sidecar = state

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Locations only: the submitted values may be secrets.
        fields = {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.errors()}
        return error_response(422, c.ErrorBody(detail="the request body does not match the contract",
                                               code="invalid", fields=fields))

    @app.exception_handler(_Failure)
    async def _failed(request: Request, exc: _Failure) -> JSONResponse:
        return error_response(exc.status, exc.body)

    async def require_hook_token(request: Request) -> None:
        if state.hook_token is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), state.hook_token):
            raise _Failure(401, c.ErrorBody(
                detail="missing or wrong hook token", code="unauthorized",
                hint="the manager sends the token the sidecar registered with",
            ))

    @app.get(c.PATH_HEALTHZ, response_model=c.Liveness, tags=["health"])
    async def healthz() -> c.Liveness:
        """Liveness of the sidecar process (the service's health is ``/hooks/health``)."""
        return c.Liveness(micromanager=mm.name)

    hooks = APIRouter(tags=["hooks"], dependencies=[Depends(require_hook_token)],
                      responses=_ERROR_RESPONSES)

    def lifecycle_route(hook: c.HookName) -> None:
        async def route(call: c.HookCall) -> c.HookResult:
            fn = mm.hooks.get(hook)
            if fn is None:  # not implemented: nothing to do is a success
                return c.HookResult(hook=hook, message=f"{mm.name} has no {hook} hook")
            ctx, returned = await run_hook(state, hook, fn, call)
            return _result(hook, ctx, returned)

        hooks.add_api_route(c.HOOK_PATHS[hook], route, methods=["POST"], response_model=c.HookResult,
                            name=hook, summary=hook.replace("_", " "))

    for hook in c.LIFECYCLE_HOOKS:
        if hook != "health":  # its own route below: it answers a HealthResult
            lifecycle_route(hook)

    @hooks.post(c.PATH_HOOK_HEALTH, response_model=c.HealthResult,
                responses={503: {"model": c.HealthResult, "description": "unhealthy"}})
    async def health(call: c.HookCall) -> Any:
        """The service's health as the micromanager sees it: 200 healthy, 503 not."""
        fn = mm.hooks.get("health")
        if fn is None:
            return c.HealthResult(healthy=True, message="no health check")
        try:
            _, returned = await run_hook(state, "health", fn, call)
        except _Failure as failure:
            if failure.body.code in ("contract_version", "invalid", "unauthorized"):
                raise
            body = c.HealthResult(healthy=False, message=failure.body.detail)
            return JSONResponse(status_code=503, content=body.model_dump(mode="json"))
        if returned is False:
            body = c.HealthResult(healthy=False)
            return JSONResponse(status_code=503, content=body.model_dump(mode="json"))
        return c.HealthResult(healthy=True, message=returned if isinstance(returned, str) else None)

    @hooks.get("/hooks/actions", response_model=list[c.ActionSpec])
    async def list_actions() -> list[c.ActionSpec]:
        """The actions this micromanager offers (also sent at registration)."""
        return [a.spec for a in mm.actions.values()]

    @hooks.post(c.PATH_HOOK_ACTION, response_model=c.HookResult)
    async def action(name: str, call: c.ActionCall) -> c.HookResult:
        """Run an action with the form's values."""
        found = mm.actions.get(name)
        hook = f"action:{name}"
        if found is None:
            raise _Failure(404, c.ErrorBody(detail=f"{mm.name} offers no action {name!r}",
                                            code="not_found", hook=hook))
        values, problems = parse_action_values(found.spec, dict(call.values))
        if problems:
            raise _Failure(422, c.ErrorBody(detail="some fields need another value", code="invalid",
                                            hook=hook, fields=problems))
        secrets = tuple(str(values[f.name]) for f in found.spec.fields if f.secret and values.get(f.name))
        ctx, returned = await run_hook(state, hook, found.function, call, values, secrets)
        return _result(hook, ctx, returned)

    app.include_router(hooks)
    return app


async def _keep_registered(client: ManagerClient, registration: c.Registration, every: float) -> None:
    """Register now (the client retries until the manager answers), then again periodically."""
    while True:
        try:
            await client.register(registration)
            log.info("registered %s (%s) with the manager", registration.service, registration.micromanager)
        except ManagerError as err:
            log.warning("registration with the manager failed: %s", err)
        await asyncio.sleep(every)
