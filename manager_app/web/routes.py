"""The wizard's pages: login, overview, the setup wizard, services; plus two live fragments.

Every page is rendered on the server and works without JavaScript; a small
static script (``static/mora.js``) refreshes the regions marked ``data-live``
from the fragment endpoints every two seconds, so the status of an update
moves without a reload. The routes are thin: they call the same
:class:`~manager_app.core.Manager` methods as the REST API, so a form and an
API call cannot behave differently.

Security rules the routes keep:

* every page but ``/login`` needs the admin session (a browser is sent to
  ``/login?next=…``; a fragment answers 401, which stops the script);
* every POST checks the CSRF token (:func:`manager_app.auth.verify_csrf`)
  before it reads or changes anything;
* a secret answer is never written back into a page, not even after a
  validation error; a generated secret appears only in the response to an
  explicit reveal, after the admin password was entered again, marked
  ``no-store``;
* pages send a Content-Security-Policy that allows only this origin's
  script and style, so an injected ``<script>`` would not run even if
  escaping failed somewhere.
"""

from __future__ import annotations

import functools
import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..api import reveal_checked
from ..auth import csrf_token, get_auth, verify_csrf
from ..cluster import (
    DEFAULT_TAIL,
    MAX_TAIL,
    ClusterError,
    NotDeployed,
    NotGenerated,
    NotStarted,
    SecretValue,
    ServiceLogs,
    ServiceStatus,
)
from ..core import (
    InvalidAnswer,
    Manager,
    NoManifest,
    SecretInfo,
    UnknownInput,
    UnknownSecret,
    UnknownService,
)
from ..planner import Plan
from ..store import UpdateRecord
from . import views

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    # Templates ship with the package: compile each once, never stat it per request.
    auto_reload=False,
)
templates.globals["STATE_LABELS"] = views.STATE_LABELS

#: Only this origin's scripts, styles and forms; no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter(include_in_schema=False)


# --------------------------------------------------------------------------- helpers


def _manager(request: Request) -> Manager:
    manager: Manager = request.app.state.manager
    return manager


def _logged_in(request: Request) -> bool:
    return get_auth(request).session_csrf(request) is not None


def _require_page(request: Request) -> None:
    """A page needs the admin session: otherwise send the browser to the login page."""
    if not _logged_in(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "log in first",
            headers={"Location": "/login?" + urlencode({"next": target})},
        )


def _require_fragment(request: Request) -> None:
    if not _logged_in(request):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "log in first")


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://…``) may follow a login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _headers(response: Response, *, no_store: bool = False) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store" if no_store else "no-cache"
    return response


def _base(request: Request, nav: str) -> dict[str, Any]:
    manager = _manager(request)
    record = manager.store.latest_manifest()
    return {
        "request": request,
        "csrf": csrf_token(request),
        "logged_in": _logged_in(request),
        "nav": nav,
        "project": record.manifest.project.name if record else None,
        "dry_run": manager.settings.dry_run,
    }


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    nav: str = "",
    status_code: int = 200,
    no_store: bool = False,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    html = templates.get_template(template).render({**_base(request, nav), **context})
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    _headers(response, no_store=no_store)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


async def _csrf_failure(request: Request) -> HTMLResponse | None:
    """``None`` when the form's CSRF token is right, else the page that says why not."""
    try:
        await verify_csrf(request)
    except HTTPException as err:
        return render(
            request, "error.html",
            {"title": "Form expired", "message": str(err.detail), "back": request.url.path},
            status_code=err.status_code,
        )
    return None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _plan_or_none(manager: Manager) -> Plan | None:
    try:
        return manager.plan()
    except NoManifest:
        return None


def status_context(
    manager: Manager, plan: Plan | None, *, update_id: int | None, showing: list[str] | None
) -> dict[str, Any]:
    """What the live status panel shows: one update (the given one, else the latest) and progress.

    ``showing`` is the list of input ids on the wizard page the panel sits in:
    when the next step differs, the panel offers to continue (``None``: not
    on the wizard, offer it whenever something is asked).
    """
    recent = manager.updates(5)
    latest = recent[0] if recent else None
    focus: UpdateRecord | None = manager.store.update(update_id) if update_id else None
    focus = focus or latest
    newer = latest if latest is not None and focus is not None and latest.id != focus.id else None
    counts = views.counts(plan.services) if plan else {}
    step_list = views.steps(plan) if plan else []
    first = step_list[0] if step_list else None
    if showing is None:
        next_ready = first is not None
    else:
        # Offer to continue only when the next step asks something this page does not.
        next_ready = first is not None and not set(first.ids) <= set(showing)
    return {
        "focus": focus,
        "newer": newer,
        "counts": counts,
        "total": len(plan.services) if plan else 0,
        "next_step": first,
        "next_ready": next_ready,
        "complete": plan.complete if plan else False,
        "UPDATE_LABELS": views.UPDATE_LABELS,
    }


def _overview_context(request: Request) -> dict[str, Any]:
    manager = _manager(request)
    plan = _plan_or_none(manager)
    if plan is None:
        return {"plan": None, "status": status_context(manager, None, update_id=None, showing=None)}
    manifest = manager.manifest()
    params = manager.params()
    records = manager.store.service_records()
    updates = {u.id: u for u in manager.updates(200)}
    rows = views.service_rows(plan, manifest, params, records, updates)
    return {
        "plan": plan,
        "manifest": manifest,
        "waves": views.waves_view(plan, rows),
        "status": status_context(manager, plan, update_id=None, showing=None),
        "upcoming": plan.upcoming_inputs,
    }


# --------------------------------------------------------------------------- static files


@functools.cache
def _static_files() -> dict[str, tuple[bytes, str]]:
    """``static/``'s files (name → body, media type), read once: they ship with the package."""
    return {
        p.name: (p.read_bytes(), mimetypes.guess_type(p.name)[0] or "application/octet-stream")
        for p in STATIC.iterdir() if p.is_file()
    }


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    """The stylesheet and the script (no CDN): only files that exist in ``static/``.

    Served from memory on the event loop (no directory listing, read or thread per request).
    """
    found = _static_files().get(name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
    body, media = found
    return Response(
        body,
        media_type=media,
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


# --------------------------------------------------------------------------- login


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str | None = None) -> Response:
    if _logged_in(request):
        return _redirect(_safe_next(next))
    return render(request, "login.html", {"title": "Log in", "next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login_submit(request: Request) -> Response:
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    form = await request.form()
    password = form.get("password")
    requested = form.get("next")
    target = _safe_next(requested if isinstance(requested, str) else None)
    auth = get_auth(request)
    try:
        await run_in_threadpool(
            auth.check_password, request, password if isinstance(password, str) else ""
        )
    except HTTPException as err:
        if err.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
            wait = (err.headers or {}).get("Retry-After", "60")
            message = f"Too many failed attempts. Wait {wait} seconds, then try again."
        else:
            message = "That password is not right. Try again."
        return render(
            request, "login.html",
            {"title": "Log in", "next": target, "error": message},
            status_code=err.status_code, headers=dict(err.headers or {}),
        )
    response = _redirect(target)
    auth.start_session(response)
    return _headers(response)


@router.post("/logout")
async def logout(request: Request) -> Response:
    if get_auth(request).principal(request) is None:
        return _redirect("/login")  # no session to end
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    response = _redirect("/login")
    get_auth(request).end_session(request, response)
    return response


# --------------------------------------------------------------------------- overview


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    _require_page(request)
    context = _overview_context(request)
    return render(request, "overview.html", {"title": "Overview", **context}, nav="overview")


@router.get("/overview/live", response_class=HTMLResponse)
def overview_live(request: Request) -> Response:
    """The overview's live region (waves, states, update status) for the refresh script."""
    _require_fragment(request)
    return render(request, "_overview_live.html", _overview_context(request))


@router.post("/removals/{service}/confirm")
async def confirm_removal(request: Request, service: str) -> Response:
    _require_page(request)
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    manager = _manager(request)
    if not await run_in_threadpool(manager.confirm_removal, service):
        return render(
            request, "error.html",
            {"title": "Nothing to remove", "message": f"No removal of {service} is pending.",
             "back": "/"},
            status_code=status.HTTP_404_NOT_FOUND,
        )
    return _redirect("/")


@router.post("/updates/retry")
async def retry_update(request: Request) -> Response:
    """Queue a new update (after a failure); goes back to the page the form was on."""
    _require_page(request)
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    manager = _manager(request)
    update_id = await run_in_threadpool(manager.trigger_update, "retry requested in the wizard")
    form = await request.form()
    back = form.get("back")
    target = _safe_next(back if isinstance(back, str) else None)
    if target.startswith("/wizard"):
        target = f"/wizard?update={update_id}"
    return _redirect(target)


# --------------------------------------------------------------------------- wizard


def _step_fields(
    manager: Manager,
    ids: list[str],
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> list[views.Field]:
    manifest = manager.manifest()
    params = manager.params()
    answered = manager.store.answered()
    fields = []
    for input_id in ids:
        try:
            spec = manifest.input(input_id)
        except KeyError:
            continue
        fields.append(
            views.make_field(
                spec, manifest, params,
                value=(values or {}).get(input_id, ""),
                error=(errors or {}).get(input_id),
                answered=input_id in answered,
            )
        )
    return fields


def _wizard_page(
    request: Request,
    *,
    fields: list[views.Field] | None,
    update_id: int | None,
    saved: int | None,
    status_code: int = 200,
) -> Response:
    manager = _manager(request)
    plan = _plan_or_none(manager)
    if plan is None:
        return render(request, "wizard.html", {"title": "Setup wizard", "plan": None}, nav="wizard")
    step_list = views.steps(plan)
    if fields is None:
        fields = _step_fields(manager, step_list[0].ids) if step_list else []
    showing = [f.id for f in fields]
    later = [s for s in step_list if s.ids != showing and not set(s.ids) <= set(showing)]
    query = {"showing": ",".join(showing)}
    if update_id:
        query["update"] = str(update_id)
    waiting = [s for s in plan.services if s.state != "running"]
    return render(
        request,
        "wizard.html",
        {
            "title": "Setup wizard",
            "plan": plan,
            "fields": fields,
            "services_of_step": sorted({f.service for f in fields}),
            "later": later,
            "upcoming": plan.upcoming_inputs,
            "waiting": waiting,
            "saved": saved,
            "status": status_context(manager, plan, update_id=update_id, showing=showing),
            "status_url": "/wizard/status?" + urlencode(query),
        },
        nav="wizard",
        status_code=status_code,
        no_store=True,
    )


@router.get("/wizard", response_class=HTMLResponse)
async def wizard(request: Request) -> Response:
    """The current step. Rendered once per state of the store, session and query.

    Everything on the page derives from the store (plan, answers, updates), the
    settings, the session's CSRF token and the query, so the rendered response is
    kept until the next write to the store (:meth:`~manager_app.store.Store.memo`)
    and the page's refresh or a second tab costs a lookup. On the event loop: a
    cached answer is far cheaper than the hop to a worker thread. The query (``update``,
    ``saved``: ints, anything else ignored) is read here rather than declared as
    parameters, which FastAPI would parse on every request.
    """
    _require_page(request)
    query = request.query_params
    update_id, saved_count = _int(query.get("update")), _int(query.get("saved"))

    def page() -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        response = _wizard_page(request, fields=None, update_id=update_id, saved=saved_count)
        return response.status_code, bytes(response.body), list(response.raw_headers)

    key = ("wizard page", csrf_token(request), update_id, saved_count)
    status_code, body, raw_headers = _manager(request).store.memo(key, page)
    response = Response(body, status_code=status_code)
    response.raw_headers = list(raw_headers)
    return response


def _strip_title(message: str, title: str) -> str:
    """The core prefixes messages with the input's title; next to the field it is redundant."""
    prefix = f"{title}: "
    text = message[len(prefix):] if message.startswith(prefix) else message
    return text[:1].upper() + text[1:] if text else text


@router.post("/wizard", response_class=HTMLResponse)
async def wizard_submit(request: Request) -> Response:
    """Save the step's answers; re-show the step with inline errors if any is invalid.

    Valid answers are saved even when another field of the step is wrong: a
    secret cannot be written back into the form, so saving it is the only way
    to keep what was typed. Non-secret values are written back as typed.
    """
    _require_page(request)
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    manager = _manager(request)
    form = await request.form()
    ids: list[str] = []
    for item in form.getlist("inputs"):
        if isinstance(item, str) and item not in ids:
            ids.append(item)
    try:
        answered = manager.store.answered()
        manager.manifest()
    except NoManifest:
        return _redirect("/wizard")

    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    changed = False
    for input_id in ids:
        raw = form.get(input_id)
        text = raw if isinstance(raw, str) else ""
        try:
            spec = manager.input(input_id)
        except UnknownInput:
            continue  # gone from the manifest since the page was shown
        secret = spec.type.name == "secret"
        if not secret:
            values[input_id] = text
        blank = text == "" if secret else text.strip() == ""
        if blank:
            if input_id in answered or spec.optional:
                continue  # keep the saved answer; an optional one may stay empty
            errors[input_id] = "Enter a value."
            continue
        try:
            changed = await run_in_threadpool(manager.submit_answer, input_id, text) or changed
        except InvalidAnswer as err:
            errors[input_id] = _strip_title(err.message, spec.title)
        except UnknownInput:
            continue

    update_id: int | None = None
    if changed:
        queued = manager.store.next_queued()
        latest = manager.updates(1)
        update_id = queued.id if queued else (latest[0].id if latest else None)
    if errors:
        fields = _step_fields(manager, ids, values=values, errors=errors)
        return _wizard_page(
            request, fields=fields, update_id=update_id, saved=None,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    query = {"saved": str(len(ids))}
    if update_id:
        query["update"] = str(update_id)
    return _redirect("/wizard?" + urlencode(query))


@router.get("/wizard/status", response_class=HTMLResponse)
def wizard_status(request: Request, update: str | None = None, showing: str | None = None) -> Response:
    """The live status panel of the wizard page (HTML fragment)."""
    _require_fragment(request)
    manager = _manager(request)
    plan = _plan_or_none(manager)
    shown = [s for s in (showing or "").split(",") if s]
    context = {
        "status": status_context(manager, plan, update_id=_int(update), showing=shown),
        "back": "/wizard",
    }
    return render(request, "_status.html", context)


# --------------------------------------------------------------------------- services
#
# The everyday tools are the core's (:meth:`Manager.restart_service`, ``service_logs``,
# ``service_status``, ``generated_secrets``, ``reveal_secret``, ``rotate_secret``); in a
# dry run they act on the dry-run state. Their blocking calls run in a worker thread.


def _service_or_404(manager: Manager, name: str) -> None:
    try:
        manager.manifest().service(name)
    except (KeyError, NoManifest):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service {name!r}") from None


def _secrets_of(manager: Manager, name: str) -> list[SecretInfo]:
    """The generated secrets a service owns or uses (never their values)."""
    return [s for s in manager.generated_secrets() if s.owner == name or name in s.used_by]


def _tool_message(err: Exception) -> tuple[int, str]:
    """A tool's failure as an HTTP status and a sentence for the page."""
    if isinstance(err, NotDeployed):
        return status.HTTP_409_CONFLICT, f"Not deployed yet: {err}"
    if isinstance(err, (NotStarted, NotGenerated)):
        return status.HTTP_409_CONFLICT, f"Not there yet: {err}"
    if isinstance(err, ClusterError):
        return status.HTTP_502_BAD_GATEWAY, f"The cluster could not be asked: {err}"
    return status.HTTP_404_NOT_FOUND, str(err)


TOOL_ERRORS = (NotDeployed, NotStarted, NotGenerated, ClusterError, UnknownService, UnknownSecret)


@router.get("/services", response_class=HTMLResponse)
def services(request: Request) -> Response:
    _require_page(request)
    context = _overview_context(request)
    rows = [r for wave in context.get("waves", []) for r in wave]
    return render(request, "services.html", {"title": "Services", **context, "rows": rows},
                  nav="services")


def _service_page(
    request: Request,
    name: str,
    *,
    revealed: tuple[str, SecretValue] | None = None,
    confirm_rotate: SecretInfo | None = None,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """The service's page: facts, live status, restart, logs link, secrets, history."""
    manager = _manager(request)
    if _plan_or_none(manager) is None:
        return _redirect("/services")
    _service_or_404(manager, name)
    context = _overview_context(request)
    row = next(r for wave in context["waves"] for r in wave if r.name == name)
    deployment: ServiceStatus | None = None
    deployment_note: str | None = None
    try:
        deployment = manager.service_status(name)
    except TOOL_ERRORS as err:
        deployment_note = _tool_message(err)[1]
    query = request.query_params
    flash = None
    if query.get("restarted"):
        flash = f"{name} was restarted."
    elif query.get("rotated"):
        flash = (f"{query['rotated']} has a new value; update #{query.get('update', '?')} "
                 "applies it to the services that use it.")
    history = [u for u in manager.updates(50) if name in u.deploy][:10]
    return render(
        request, "service.html",
        {"title": name, "row": row, "secrets": _secrets_of(manager, name),
         "revealed": revealed, "confirm_rotate": confirm_rotate, "error": error, "history": history, "flash": flash,
         "deployment": deployment, "deployment_note": deployment_note},
        nav="services", status_code=status_code, no_store=True, headers=headers,
    )


async def _service_page_in_thread(request: Request, name: str, **kwargs: Any) -> Response:
    """:func:`_service_page` from an async route: it asks the cluster (``service_status``),
    which blocks, so it runs in a worker thread as the sync routes do."""
    return await run_in_threadpool(_service_page, request, name, **kwargs)


@router.get("/services/{name}", response_class=HTMLResponse)
def service_detail(request: Request, name: str) -> Response:
    _require_page(request)
    return _service_page(request, name)


@router.get("/services/{name}/logs", response_class=HTMLResponse)
def service_logs(request: Request, name: str, tail: str | None = None) -> Response:
    """The last lines of the service's newest pod (dry run: its recorded events)."""
    _require_page(request)
    manager = _manager(request)
    _service_or_404(manager, name)
    lines = max(1, min(_int(tail) or DEFAULT_TAIL, MAX_TAIL))
    try:
        logs: ServiceLogs | None = manager.service_logs(name, lines)
        note = None
        code = 200
    except TOOL_ERRORS as err:
        logs = None
        code, note = _tool_message(err)
    return render(
        request, "logs.html",
        {"title": f"{name}: recent logs", "name": name, "logs": logs, "note": note,
         "tail": lines},
        nav="services", status_code=code, no_store=True,
    )


@router.post("/services/{name}/restart")
async def restart_service(request: Request, name: str) -> Response:
    _require_page(request)
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    manager = _manager(request)
    _service_or_404(manager, name)
    try:
        await run_in_threadpool(manager.restart_service, name)
    except TOOL_ERRORS as err:
        code, message = _tool_message(err)
        return await _service_page_in_thread(request, name, error=message, status_code=code)
    return _redirect(f"/services/{quote(name, safe='')}?restarted=1")


@router.post("/services/{name}/secrets/{secret_id}/rotate")
async def rotate_secret(request: Request, name: str, secret_id: str) -> Response:
    """Give one of the service's generated secrets a new value; an update applies it."""
    _require_page(request)
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    manager = _manager(request)
    _service_or_404(manager, name)
    mine = {s.id: s for s in _secrets_of(manager, name)}
    if secret_id not in mine:
        return await _service_page_in_thread(
            request, name, error="Choose one of this service's secrets.",
            status_code=status.HTTP_404_NOT_FOUND,
        )
    form = await request.form()
    if form.get("confirm") != "yes":
        # A new value breaks whatever still holds the old one: ask once more (no script needed).
        return await _service_page_in_thread(request, name, confirm_rotate=mine[secret_id])
    try:
        rotated = await run_in_threadpool(manager.rotate_secret, secret_id)
    except TOOL_ERRORS as err:
        code, message = _tool_message(err)
        return await _service_page_in_thread(request, name, error=message, status_code=code)
    query = urlencode({"rotated": secret_id, "update": rotated.update_id})
    return _redirect(f"/services/{quote(name, safe='')}?{query}")


@router.post("/services/{name}/reveal", response_class=HTMLResponse)
async def reveal_secret(request: Request, name: str) -> Response:
    """Show one generated secret after the admin password was entered again.

    Goes through :func:`manager_app.api.reveal_checked`, so wrong passwords count
    against the login rate limit exactly as on the API.
    """
    _require_page(request)
    if (denied := await _csrf_failure(request)) is not None:
        return denied
    manager = _manager(request)
    _service_or_404(manager, name)
    form = await request.form()
    secret_id = form.get("secret")
    password = form.get("password")
    if not isinstance(secret_id, str) or secret_id not in {s.id for s in _secrets_of(manager, name)}:
        return await _service_page_in_thread(
            request, name, error="Choose one of this service's secrets.",
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    try:
        value = await run_in_threadpool(
            reveal_checked, request, manager, secret_id, password if isinstance(password, str) else ""
        )
    except HTTPException as err:
        if err.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
            wait = (err.headers or {}).get("Retry-After", "60")
            message = f"Too many wrong passwords. Wait {wait} seconds, then try again."
        elif err.status_code == status.HTTP_403_FORBIDDEN:
            message = "That password is not right."
        else:
            message = str(err.detail)
        return await _service_page_in_thread(
            request, name, error=message, status_code=err.status_code,
            headers=dict(err.headers or {}),
        )
    return await _service_page_in_thread(request, name, revealed=(secret_id, value))


def _quote(value: str) -> str:
    return quote(value, safe="")


templates.filters["urlpart"] = _quote


#: The page asked most often, the wizard: :func:`manager_app.app.create_app` includes
#: :data:`hot` ahead of the API's routes. FastAPI tries routes in order (twice within an
#: included router), about 2 µs each, and would try the API's fourteen first; each page
#: put here costs every API call one such try. It stays in :data:`router` too (not
#: reached there when both are included). No API path is one of these, and POST /wizard
#: came after GET /wizard already, so which route answers a request (or the 405) is the same.
HOT_PAGES = ("/wizard",)
hot = APIRouter(include_in_schema=False)
for _path in HOT_PAGES:
    _route = next(r for r in router.routes
                  if isinstance(r, APIRoute) and r.path == _path and r.methods == {"GET"})
    hot.add_api_route(_path, _route.endpoint, methods=["GET"], response_class=HTMLResponse)
