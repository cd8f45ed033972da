"""The "Tools" of a service's page: its micromanager's state, retry, and one form per action.

Kept out of ``manager_app.web`` (another part of the UI, edited by others) except
for one include in ``service.html``: the panel template ``_micromanager.html``
gets its data from the Jinja global ``micromanager_panel(request, name)``
registered here. Forms post to the routes below, which check the CSRF token
first (:func:`manager_app.auth.verify_csrf`) and need the admin session, like
every page. An action's secret fields (a new password) are never written back
into a page, not even after an error.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response

from micromanager_kit import contract as c
from mora_dsl.manifest import Input, Manifest

from .core import NoManifest
from .micromanagers import MicromanagerHub, MicromanagerStatus, Refused
from .web import routes as web
from .web import views

pages = APIRouter(include_in_schema=False)


def _hub(request: Request) -> MicromanagerHub:
    hub: MicromanagerHub = request.app.state.micromanagers
    return hub


def action_fields(
    service: str,
    action: c.ActionSpec,
    manifest: Manifest,
    params: dict[str, Any],
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> list[views.Field]:
    """The wizard's typed widgets for an action's fields (named ``ACTION.FIELD`` in the form)."""
    out = []
    for f in action.fields:
        spec = Input(
            id=f"{action.name}.{f.name}", name=f.name, service=service, type=f.type,
            title=f.title, help=f.help, when="after_start", when_inferred=False,
            optional=not f.required, default=f.default, span=manifest.project.span,
        )
        kept = (values or {}).get(f.name)
        if kept is None and f.default is not None:
            kept = str(f.default)
        out.append(views.make_field(spec, manifest, params, value="" if f.secret else kept or "",
                                    error=(errors or {}).get(f.name)))
    return out


def micromanager_panel(request: Request, service: str) -> dict[str, Any] | None:
    """What ``_micromanager.html`` shows for ``service`` (``None``: it has no micromanager)."""
    hub = _hub(request)
    try:
        state: MicromanagerStatus = hub.status(service)
        manager = hub.manager
        manifest = manager.manifest()
    except (Refused, NoManifest):
        return None
    params = manager.params()
    forms = [{"spec": a, "fields": action_fields(service, a, manifest, params)}
             for a in state.actions]
    lifecycle = [h for h in state.hook_status if not h.hook.startswith("action:")]
    return {"state": state, "hooks": lifecycle, "failures": state.failures, "forms": forms}


@pages.post("/services/{name}/micromanager/retry")
async def retry(request: Request, name: str) -> Response:
    """The retry button next to a failed hook: call it again, back to the service's page."""
    web._require_page(request)
    if (denied := await web._csrf_failure(request)) is not None:
        return denied
    try:
        _hub(request).retry(name)
    except Refused as err:
        return web.render(request, "error.html", {
            "title": "Cannot retry", "message": err.body.detail,
            "back": f"/services/{quote(name, safe='')}"}, status_code=err.status)
    return RedirectResponse(f"/services/{quote(name, safe='')}", status_code=status.HTTP_303_SEE_OTHER)


@pages.post("/services/{name}/tools/{action}")
async def run_action(request: Request, name: str, action: str) -> Response:
    """Run one action from its form; the result (or the errors, inline) on a page of its own."""
    web._require_page(request)
    if (denied := await web._csrf_failure(request)) is not None:
        return denied
    hub = _hub(request)
    try:
        spec = next((a for a in hub.actions(name) if a.name == action), None)
        manifest = hub.manager.manifest()
    except (Refused, NoManifest):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tools for {name!r}") from None
    if spec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tool {action!r} for {name!r}")
    form = await request.form()
    values: dict[str, str] = {}
    for f in spec.fields:
        raw = form.get(f"{action}.{f.name}")
        if isinstance(raw, str) and raw != "":
            values[f.name] = raw
    try:
        code, result = await hub.action(name, action, values)
    except Refused as err:
        code, result = err.status, err.body
    error = result if isinstance(result, c.ErrorBody) else None
    secret = {f.name for f in spec.fields if f.secret}
    kept = {k: v for k, v in values.items() if k not in secret}
    fields = action_fields(name, spec, manifest, hub.manager.params(),
                           values=kept if error else None,
                           errors=dict(error.fields) if error else {})
    return web.render(
        request, "micromanager_action.html",
        {"title": f"{spec.title} · {name}", "service": name, "spec": spec, "fields": fields,
         "result": None if error else result, "error": error},
        nav="services", status_code=200 if code < 400 else code, no_store=True,
    )


def include(app: FastAPI) -> None:
    web.templates.globals["micromanager_panel"] = micromanager_panel
    app.include_router(pages)
