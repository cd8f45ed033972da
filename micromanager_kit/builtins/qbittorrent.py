"""The ``qbittorrent`` micromanager: Web UI credentials and the arr apps' categories.

What it needs from the ``.mora`` file: the service declares
``micromanager = "qbittorrent"`` and a generated secret
``secret webui_password = password(length = 24)``; the user name is the
optional input ``webui_username`` (default ``admin``).

After start it signs in to the Web API (``/api/v2``, with a ``Referer``
header: qBittorrent refuses logins without one that matches its host) and

* sets the Web UI user name and password to the generated secret
  (``POST /api/v2/app/setPreferences`` with ``web_ui_username`` /
  ``web_ui_password``), unless they already work;
* creates the categories the arr apps put their downloads in, each in a
  folder of that name under qBittorrent's default save path. Decision: one
  plain word per kind of media, :data:`ARR_CATEGORIES` (sonarr → ``tv``,
  radarr → ``movies``); the ``arr`` micromanager configures sonarr and radarr
  with the same names (import them from here).

Signing in the first time: qBittorrent 4.5 and older accept
``admin``/``adminadmin``. 4.6 and later have no default password; they print a
temporary one in their log at first start. Then this micromanager asks the
wizard for it (input ``temporary_password``), and sets the generated password
once it is answered. It never tries more than two wrong logins per call and
remembers a refused default, because qBittorrent bans an address after five
failed logins (for an hour, by default).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from ..context import HookContext
from ..errors import HookError, NotReady
from ..micromanager import Micromanager

mm = Micromanager("qbittorrent", version="0.1.0")

#: arr app → the qBittorrent category it downloads into.
ARR_CATEGORIES: dict[str, str] = {"sonarr": "tv", "radarr": "movies"}
DEFAULT_LOGIN = ("admin", "adminadmin")  # qBittorrent ≤ 4.5 only
DEFAULT_USERNAME = "admin"
_TIMEOUT = 15.0
# Web UI base URLs whose default login failed: never try it again (bans).
_default_refused: set[str] = set()


@dataclass(frozen=True)
class WebUI:
    url: str
    username: str
    password: str = field(repr=False)  # never in a log line or a failed assert


def web_ui(ctx: HookContext) -> WebUI:
    try:
        password = ctx.secret("webui_password")
    except NotReady:
        raise NotReady(
            f"{ctx.service} has no generated secret webui_password",
            hint='declare `secret webui_password = password(length = 24)` in the service',
        ) from None
    return WebUI(
        url=f"http://{ctx.host}:{ctx.port('http', 8080)}",
        username=str(ctx.input("webui_username", DEFAULT_USERNAME) or DEFAULT_USERNAME),
        password=password,
    )


def _client(ui: WebUI) -> httpx.Client:
    # The Referer must name the Web UI itself (CSRF protection); qBittorrent
    # answers 401 to a login without a matching one.
    return httpx.Client(base_url=ui.url, headers={"Referer": ui.url}, timeout=_TIMEOUT)


def _login(http: httpx.Client, username: str, password: str) -> bool:
    """Sign in; ``True`` on success. qBittorrent says ``Fails.`` with status 200 on a wrong password."""
    http.cookies.clear()
    try:
        response = http.post("/api/v2/auth/login", data={"username": username, "password": password})
    except httpx.TransportError as err:
        raise HookError(f"cannot reach qBittorrent's Web UI at {http.base_url} ({type(err).__name__})",
                        hint="it may still be starting; retry in a moment") from None
    if "banned" in response.text.lower():
        raise HookError(
            "qBittorrent banned this address after too many failed logins",
            retryable=False,
            hint="restart qBittorrent (or wait an hour), then retry",
        )
    return response.status_code == 200 and response.text.strip() == "Ok."


def sign_in(http: httpx.Client, ui: WebUI, ctx: HookContext) -> bool:
    """Sign in; ``True`` when the generated credentials already work.

    Otherwise signs in with a first-start password (qBittorrent 4.5's default,
    or the temporary one the person pasted) so the caller can set them.
    """
    if _login(http, ui.username, ui.password):
        return True
    temporary = ctx.input("temporary_password", None)
    if temporary:
        if _login(http, DEFAULT_USERNAME, str(temporary)):
            return False
        raise HookError("qBittorrent refused the temporary password", retryable=False,
                        hint="paste the latest temporary password from qBittorrent's log")
    if ui.url not in _default_refused:
        if _login(http, *DEFAULT_LOGIN):
            return False
        _default_refused.add(ui.url)
    ctx.request_input(
        "temporary_password",
        "qBittorrent's temporary Web UI password",
        type="secret",
        help="qBittorrent 4.6 and later print a temporary password for the user admin in their "
        "log when they first start (kubectl logs on the qbittorrent pod). Paste it here once; "
        "mora then sets the generated password.",
    )
    raise NotReady("qBittorrent refused the generated and the default password",
                   hint="answer qBittorrent's temporary password in the wizard")


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code != 200:
        raise HookError(f"{what}: qBittorrent answered {response.status_code}", retryable=True)
    return response


def ensure_credentials(http: httpx.Client, ui: WebUI, ctx: HookContext) -> None:
    if sign_in(http, ui, ctx):
        return
    prefs = json.dumps({"web_ui_username": ui.username, "web_ui_password": ui.password})
    _check(http.post("/api/v2/app/setPreferences", data={"json": prefs}), "setting the Web UI password")
    if not _login(http, ui.username, ui.password):
        raise HookError("qBittorrent did not accept the new Web UI password", retryable=True)
    ctx.note_change(f"set the Web UI login of user {ui.username}")


def ensure_categories(http: httpx.Client, ctx: HookContext) -> None:
    prefs = _check(http.get("/api/v2/app/preferences"), "reading preferences").json()
    root = str(prefs.get("save_path") or "/downloads").rstrip("/")
    existing = _check(http.get("/api/v2/torrents/categories"), "reading categories").json()
    for category in ARR_CATEGORIES.values():
        path = f"{root}/{category}"
        current = existing.get(category)
        if current is None:
            _check(http.post("/api/v2/torrents/createCategory",
                             data={"category": category, "savePath": path}),
                   f"creating category {category}")
            ctx.note_change(f"created category {category} ({path})")
        elif str(current.get("savePath", "")).rstrip("/") != path:
            _check(http.post("/api/v2/torrents/editCategory",
                             data={"category": category, "savePath": path}),
                   f"changing category {category}")
            ctx.note_change(f"moved category {category} to {path}")


def bootstrap(ctx: HookContext) -> str:
    """Credentials, then categories; idempotent."""
    ui = web_ui(ctx)
    ctx.add_secret(ui.password)
    with _client(ui) as http:
        ensure_credentials(http, ui, ctx)
        ensure_categories(http, ctx)
    return "qBittorrent is set up" if ctx.changes else "qBittorrent was already set up"


mm.after_start(bootstrap)
mm.inputs_answered(bootstrap)
mm.reconfigure(bootstrap)


@mm.health
def health(ctx: HookContext) -> bool:
    """The Web UI answers. Deliberately no login: failed logins count towards a ban."""
    ui = web_ui(ctx)
    with _client(ui) as http:
        try:
            return http.get("/").status_code < 500
        except httpx.TransportError:
            return False
