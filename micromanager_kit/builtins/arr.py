"""The ``arr`` micromanager: Sonarr, Radarr and Prowlarr wired together once they run.

It is meant for a template shared by the three apps (``template arr`` in
``examples/media-server``), so each app's sidecar runs the same hook, which
does that app's part:

* every app: check that the key mora generated for it (its secret
  ``api_key``, which the template hands the app as ``<KIND>__AUTH__APIKEY``)
  is the one the app accepts — a mismatch is reported as such, never as a
  vague failure later;
* Sonarr and Radarr, additionally: register the app in Prowlarr (as an
  application with full sync, so Prowlarr pushes its indexers to it) and add
  qBittorrent as its download client, each only when not already there.

Doing it per app, rather than all at once from one sidecar, follows the
deploy order: Sonarr and Radarr depend on Prowlarr and qBittorrent, so when
their hook runs both are up, and nothing waits on an app of a later wave.

Which app a service is comes from its ``<KIND>__AUTH__APIKEY`` environment
entry (else its name). The peers are the services named :data:`PROWLARR` and
:data:`QBITTORRENT`; a sidecar reads only what its service's manifest entry
references, so Sonarr's and Radarr's entries must reference
``prowlarr.internal_url``, ``prowlarr.api_key``, ``qbittorrent.internal_url``
and ``qbittorrent.webui_password`` (environment entries will do). A peer
that is not referenced at all is skipped (the hook says so in its message), so
a project without Prowlarr still gets its download client. The HTTP shapes live
in :mod:`.arr_api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import httpx
from pydantic import SecretStr

from micromanager_kit.context import HookContext
from micromanager_kit.errors import HookError
from micromanager_kit.micromanager import Micromanager

from .arr_api import (
    DISPLAY_NAMES,
    ArrClient,
    ArrError,
    ArrKind,
    find_application,
    find_download_client,
    prowlarr_application,
    qbittorrent_download_client,
)
from .jellyfin import own_url
from .qbittorrent import ARR_CATEGORIES, DEFAULT_USERNAME

mm = Micromanager("arr")

#: The peer services, by the names the media-server example gives them.
PROWLARR = "prowlarr"
QBITTORRENT = "qbittorrent"
#: qBittorrent's Web UI credentials, as the ``qbittorrent`` micromanager sets them.
QBITTORRENT_PASSWORD = "webui_password"
DEFAULT_QBITTORRENT_USER = DEFAULT_USERNAME
#: The qBittorrent category each app files its downloads under: the ones the
#: ``qbittorrent`` micromanager creates.
CATEGORIES: dict[str, str] = ARR_CATEGORIES

_KINDS: tuple[ArrKind, ...] = ("sonarr", "radarr", "prowlarr")


@dataclass(frozen=True)
class App:
    """One *arr app: where this sidecar reaches it (``url``), where its peers do
    (``address``, its in-cluster URL), and its key."""

    kind: ArrKind
    url: str
    address: str
    api_key: SecretStr


@dataclass(frozen=True)
class QBittorrent:
    host: str
    port: int
    username: str
    password: SecretStr


# ---------------------------------------------------------------------- reading the config


def app_kind(ctx: HookContext) -> ArrKind:
    """Which app this service is: its ``<KIND>__AUTH__APIKEY`` variable, else its name."""
    declared = [k for k in _KINDS if f"{k.upper()}__AUTH__APIKEY" in ctx.config.environment]
    if len(declared) == 1:
        return declared[0]
    for kind in _KINDS:
        if ctx.service == kind:
            return kind
    raise HookError(
        f"{ctx.service} is not recognisably Sonarr, Radarr or Prowlarr",
        hint="name the service sonarr, radarr or prowlarr, or set its "
        "<KIND>__AUTH__APIKEY environment variable from its api_key secret",
        retryable=False,
    )


def own_app(ctx: HookContext) -> App:
    """This service's app; reached via ``ctx.host``/``ctx.port`` (see :func:`.jellyfin.own_url`)."""
    kind = app_kind(ctx)
    address = str(ctx.value(f"service:{ctx.service}.internal_url"))
    return App(kind, own_url(ctx), address, SecretStr(ctx.secret("api_key")))


def prowlarr_app(ctx: HookContext) -> App | None:
    """Prowlarr as Sonarr's/Radarr's config references it; None when it does not."""
    url_key, key_key = f"service:{PROWLARR}.internal_url", f"secret:{PROWLARR}.api_key"
    if not ctx.referenced(url_key, key_key):
        return None
    url = str(ctx.config[url_key])
    return App("prowlarr", url, url, SecretStr(str(ctx.config[key_key])))


def qbittorrent(ctx: HookContext) -> QBittorrent | None:
    """qBittorrent as the config references it, with the credentials the
    ``qbittorrent`` micromanager set (its ``webui_password`` secret, its
    ``webui_username`` input or ``admin``); None when it is not referenced."""
    url_key = f"service:{QBITTORRENT}.internal_url"
    password_key = f"secret:{QBITTORRENT}.{QBITTORRENT_PASSWORD}"
    if not ctx.referenced(url_key):
        return None
    if not ctx.referenced(password_key):
        raise HookError(
            f"{ctx.service} references {QBITTORRENT} but not its Web UI password",
            hint=f"reference {QBITTORRENT}.{QBITTORRENT_PASSWORD} from service {ctx.service} "
            "(an environment entry will do)",
            retryable=False,
        )
    url = httpx.URL(str(ctx.config[url_key]))
    user = ctx.value(f"input:{QBITTORRENT}.webui_username", None) or DEFAULT_QBITTORRENT_USER
    return QBittorrent(
        host=url.host,
        port=url.port or (443 if url.scheme == "https" else 80),
        username=str(user),
        password=SecretStr(str(ctx.config[password_key])),
    )


# ---------------------------------------------------------------------- the steps


async def check_key(client: ArrClient) -> None:
    """Prove the key works: the app answers its status only to the right key."""
    await client.system_status()


async def ensure_registered_in_prowlarr(
    prowlarr: ArrClient, app: App, prowlarr_url: str, ctx: HookContext
) -> None:
    kind = cast(Literal["sonarr", "radarr"], app.kind)
    if find_application(await prowlarr.applications(), kind, app.address) is not None:
        return
    body = prowlarr_application(
        await prowlarr.application_schema(),
        app=kind,
        prowlarr_url=prowlarr_url,
        base_url=app.address,
        api_key=app.api_key,
    )
    await prowlarr.add_application(body)
    ctx.note_change(f"registered {DISPLAY_NAMES[kind]} in Prowlarr")


async def ensure_download_client(client: ArrClient, qbt: QBittorrent, ctx: HookContext) -> None:
    kind = cast(Literal["sonarr", "radarr"], client.kind)
    if find_download_client(await client.download_clients(), qbt.host, qbt.port) is not None:
        return
    body = qbittorrent_download_client(
        await client.download_client_schema(),
        app=kind,
        host=qbt.host,
        port=qbt.port,
        username=qbt.username,
        password=qbt.password,
        category=CATEGORIES[kind],
    )
    await client.add_download_client(body)
    ctx.note_change(f"added qBittorrent as {DISPLAY_NAMES[kind]}'s download client")


def _hook_error(exc: ArrError) -> HookError:
    if exc.status == 401:
        return HookError(
            str(exc),
            hint="redeploy the app so it starts with the key mora generated, then retry",
            retryable=False,
        )
    return HookError(str(exc), hint="check that the app runs and answers; retry")


@mm.after_start
async def bootstrap(ctx: HookContext) -> str:
    """Check this app's key; for Sonarr/Radarr, wire Prowlarr and qBittorrent to it."""
    app = own_app(ctx)
    prowlarr = prowlarr_app(ctx) if app.kind != "prowlarr" else None
    qbt = qbittorrent(ctx) if app.kind != "prowlarr" else None
    for secret in (app.api_key, prowlarr and prowlarr.api_key, qbt and qbt.password):
        if secret:
            ctx.add_secret(secret.get_secret_value())
    skipped: list[str] = []
    try:
        async with ArrClient(app.kind, app.url, app.api_key) as client:
            await check_key(client)
            if app.kind == "prowlarr":
                return "Prowlarr accepts its key"
            if prowlarr is None:
                skipped.append(f"{PROWLARR} (not referenced)")
            else:
                async with ArrClient("prowlarr", prowlarr.url, prowlarr.api_key) as pc:
                    await check_key(pc)
                    await ensure_registered_in_prowlarr(pc, app, prowlarr.address, ctx)
            if qbt is None:
                skipped.append(f"{QBITTORRENT} (not referenced)")
            else:
                await ensure_download_client(client, qbt, ctx)
    except ArrError as exc:
        raise _hook_error(exc) from None
    name = DISPLAY_NAMES[app.kind]
    return f"{name} is set up" + (f"; skipped {', '.join(skipped)}" if skipped else "")


@mm.health
async def healthy(ctx: HookContext) -> bool:
    """The app answers its status to its key."""
    app = own_app(ctx)
    async with ArrClient(app.kind, app.url, app.api_key) as client:
        try:
            await check_key(client)
        except ArrError:
            return False
    return True
