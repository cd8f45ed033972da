"""Test a micromanager without the real manager: an in-process stand-in and a harness.

:class:`StandInManager` implements the manager's side of the contract in a
few lines of FastAPI: per-service tokens, scoping (403 outside the service's
manifest entry, via :func:`~.contract.ref_in_scope` and
:func:`~.contract.scoped_config`, the same functions the real manager uses),
idempotent reports and input requests, reported values checked against their
input's type. Its state lives on the object, not in
the app, so a test can serve it with a real uvicorn, stop it and start it
again ("a manager restart") without losing what was stored.

:class:`Harness` wires a micromanager's app to a stand-in entirely in process
(``httpx.ASGITransport`` both ways) and calls its hooks as the manager would::

    async with Harness(ldap.mm, manifest, "lldap", values={...}) as h:
        result = await h.hook("after_start")
        await h.action("add_person", {"uid": "ada", ...})

:func:`hook_context` builds the context of a hook called directly, without HTTP.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import JsonValue

from mora_dsl.builtins import to_text
from mora_dsl.manifest import Manifest
from mora_dsl.validate import InvalidValue, parse_value

from . import contract as c
from .client import ManagerClient
from .context import HookContext, ServiceConfig
from .micromanager import Micromanager


class _Refused(Exception):
    def __init__(self, status: int, code: c.ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.body = c.ErrorBody(detail=detail, code=code, retryable=status >= 500)


def _authorised(service: str, request: Request) -> str:
    """The path's service, when the bearer token is that service's (401/403 otherwise)."""
    stand_in: StandInManager = request.app.state.stand_in
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    owner = stand_in.token_owner(token.strip()) if scheme.lower() == "bearer" else None
    if owner is None:
        raise _Refused(401, "unauthorized", "missing or unknown token")
    if owner != service:
        raise _Refused(403, "forbidden", f"this token belongs to another service, not {service}")
    return service


_ServiceDep = Annotated[str, Depends(_authorised)]


class StandInManager:
    """The manager's side of the contract, small enough to read in one sitting.

    ``values`` is everything the manager knows by ref key (params, generated
    secrets, answers, addresses); reports write answers into it.
    ``fail_after_store`` makes the next N reports be stored and then answered
    with 503, as a manager that crashed before it could answer.
    """

    def __init__(self, manifest: Manifest, values: Mapping[str, JsonValue] | None = None) -> None:
        self.manifest = manifest
        self.values: dict[str, JsonValue] = dict(values or {})
        self.registrations: dict[str, c.Registration] = {}
        self.stored_reports: list[tuple[str, c.Report]] = []  # each accepted report, once
        self.requested_inputs: dict[str, c.InputRequest] = {}  # by input id
        self.fail_after_store = 0
        self._tokens: dict[str, str] = {}  # token → service
        self._idempotency: dict[tuple[str, str], tuple[str, c.ReportAccepted]] = {}

    # ------------------------------------------------------------------ state

    def issue_token(self, service: str) -> str:
        """A bearer token for ``service``'s sidecar (the real manager puts it in a Secret)."""
        self.manifest.service(service)  # KeyError for a service not in the manifest
        token = secrets.token_urlsafe(24)
        self._tokens[token] = service
        return token

    def token_owner(self, token: str) -> str | None:
        return self._tokens.get(token)

    def config_for(self, service: str, keys: list[str] | None = None) -> c.ConfigResponse:
        extra = {f"input:{i}" for i, r in self.requested_inputs.items() if r.type.name == "secret"}
        return c.scoped_config(self.manifest, service, self.values, extra_secret_keys=extra, keys=keys)

    def _store_report(self, service: str, report: c.Report) -> c.ReportAccepted:
        ids: list[str] = []
        for key, value in report.values.items():
            input_id = c.report_key_to_input_id(service, key)
            if input_id is None:
                raise _Refused(403, "forbidden", f"{service} may not report {key!r}")
            if input_id in self.requested_inputs:
                spec = self.requested_inputs[input_id].type
            else:
                try:
                    spec = self.manifest.input(input_id).type
                except KeyError:
                    raise _Refused(422, "invalid",
                                   f"{service} has no input {input_id.split('.', 1)[1]!r}") from None
            try:  # checked like a wizard answer, as the manager does
                parse_value(spec, to_text(value))
            except InvalidValue:  # not its message: that may quote the value (an API key…)
                raise _Refused(422, "invalid",
                               f"the value reported for {input_id} is not a valid {spec}") from None
            ids.append(input_id)
        changed = []
        for input_id, value in zip(ids, report.values.values(), strict=True):
            if self.values.get(f"input:{input_id}") != value:
                self.values[f"input:{input_id}"] = value
                changed.append(input_id)
        self.stored_reports.append((service, report))
        return c.ReportAccepted(inputs=ids, changed=changed)

    def report(self, service: str, report: c.Report) -> c.ReportAccepted:
        """Store a report once per idempotency key; the same key with another body is a 409."""
        digest = hashlib.sha256(
            json.dumps(report.values, sort_keys=True, default=str).encode()
        ).hexdigest()
        seen = self._idempotency.get((service, report.idempotency_key))
        if seen is not None:
            if seen[0] != digest:
                raise _Refused(409, "idempotency_conflict",
                               "this idempotency key was used for other values")
            return seen[1].model_copy(update={"replayed": True})
        accepted = self._store_report(service, report)
        self._idempotency[(service, report.idempotency_key)] = (digest, accepted)
        return accepted

    # ------------------------------------------------------------------ HTTP

    def app(self) -> FastAPI:
        app = FastAPI(title="mora manager stand-in (micromanager contract)")
        app.state.stand_in = self

        @app.exception_handler(_Refused)
        async def _refused(request: Request, exc: _Refused) -> JSONResponse:
            return JSONResponse(status_code=exc.status, content=exc.body.model_dump(mode="json"))

        @app.exception_handler(RequestValidationError)
        async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
            body = c.ErrorBody(detail="the request body does not match the contract", code="invalid")
            return JSONResponse(status_code=422, content=body.model_dump(mode="json"))

        def versioned(body: Any) -> None:
            if body.contract_version != c.CONTRACT_VERSION:
                raise _Refused(409, "contract_version",
                               f"the manager speaks contract version {c.CONTRACT_VERSION}")

        @app.post(c.PATH_REGISTER, response_model=c.RegistrationAccepted)
        async def register(service: _ServiceDep, body: c.Registration) -> c.RegistrationAccepted:
            versioned(body)
            expected = self.manifest.service(service).micromanager
            if body.service != service or body.micromanager != expected:
                raise _Refused(422, "invalid",
                               f"{service} is managed by {expected!r}, not {body.micromanager!r}")
            self.registrations[service] = body
            return c.RegistrationAccepted(service=service, micromanager=body.micromanager)

        @app.get(c.PATH_CONFIG, response_model=c.ConfigResponse)
        async def config(
            service: _ServiceDep, key: Annotated[list[str] | None, Query()] = None
        ) -> c.ConfigResponse:
            for k in key or []:
                if not c.ref_in_scope(self.manifest, service, k):
                    raise _Refused(403, "forbidden", f"{k} is not referenced by {service}")
            return self.config_for(service, key)

        @app.post(c.PATH_REPORT, response_model=c.ReportAccepted)
        async def report(service: _ServiceDep, body: c.Report) -> Any:
            versioned(body)
            accepted = self.report(service, body)
            if self.fail_after_store > 0:
                self.fail_after_store -= 1
                raise _Refused(503, "unavailable", "stored, then crashed before answering")
            return accepted

        @app.post(c.PATH_INPUT_REQUESTS, response_model=c.InputRequestsAccepted)
        async def input_requests(service: _ServiceDep, body: c.InputRequests) -> c.InputRequestsAccepted:
            versioned(body)
            statuses = []
            for request in body.inputs:
                input_id = f"{service}.{request.name}"
                self.requested_inputs[input_id] = request
                statuses.append(c.InputStatus(id=input_id, answered=f"input:{input_id}" in self.values))
            return c.InputRequestsAccepted(inputs=statuses)

        return app


def hook_context(micromanager: str, config: c.ConfigResponse, *, hook: str = "after_start") -> HookContext:
    """The :class:`HookContext` the sidecar would build over ``config``, to call a hook directly."""
    return HookContext(micromanager=micromanager, hook=hook,
                       call=c.HookCall(service=config.service), config=ServiceConfig(config))


class HookFailed(Exception):
    """A hook answered with an error; ``body`` is the structured error the wizard would show."""

    def __init__(self, status: int, body: c.ErrorBody) -> None:
        super().__init__(f"{status} {body.code}: {body.detail}")
        self.status = status
        self.body = body


async def call_hook(
    http: httpx.AsyncClient,
    path: str,
    call: c.HookCall,
    *,
    hook_token: str | None,
) -> httpx.Response:
    """``POST`` one hook the way the manager does (the hook token as bearer)."""
    headers = {"Authorization": f"{c.BEARER} {hook_token}"} if hook_token else {}
    return await http.post(path, json=call.model_dump(mode="json"), headers=headers)


class Harness:
    """A micromanager and a :class:`StandInManager`, wired together in process."""

    def __init__(
        self,
        mm: Micromanager,
        manifest: Manifest,
        service: str,
        values: Mapping[str, JsonValue] | None = None,
        *,
        service_host: str | None = None,
        service_ports: dict[str, int] | None = None,
    ) -> None:
        self.mm = mm
        self.service = service
        self.manager = StandInManager(manifest, values)
        self.hook_token = secrets.token_urlsafe(16)
        self.client = ManagerClient(
            "http://manager", self.manager.issue_token(service), service,
            transport=httpx.ASGITransport(app=self.manager.app()), base_delay=0.0, attempts=3,
        )
        self.app = mm.app(service=service, client=self.client, hook_token=self.hook_token,
                          service_host=service_host, service_ports=service_ports)
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://sidecar", timeout=60
        )

    async def __aenter__(self) -> Harness:
        await self.client.register(
            self.mm.registration(service=self.service, url="http://sidecar", hook_token=self.hook_token)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        await self.client.aclose()

    async def post(self, path: str, call: c.HookCall) -> httpx.Response:
        return await call_hook(self.http, path, call, hook_token=self.hook_token)

    def _call(self, model: type[c.HookCall], **fields: Any) -> Any:
        return model(service=self.service, call_id=str(uuid.uuid4()), **fields)

    async def hook(self, hook: c.HookName, **fields: Any) -> c.HookResult:
        """Call a lifecycle hook; :class:`HookFailed` when it answers with an error."""
        response = await self.post(c.HOOK_PATHS[hook], self._call(c.HookCall, **fields))
        return _result(response, c.HookResult)

    async def action(self, name: str, values: Mapping[str, JsonValue]) -> c.HookResult:
        path = c.PATH_HOOK_ACTION.format(name=name)
        response = await self.post(path, self._call(c.ActionCall, values=dict(values)))
        return _result(response, c.HookResult)

    async def health(self) -> c.HealthResult:
        response = await self.post(c.PATH_HOOK_HEALTH, self._call(c.HookCall))
        return c.HealthResult.model_validate(response.json())


def _result(response: httpx.Response, model: type[Any]) -> Any:
    if response.status_code >= 400:
        raise HookFailed(response.status_code, c.ErrorBody.model_validate(response.json()))
    return model.model_validate(response.json())
