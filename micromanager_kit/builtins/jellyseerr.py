"""The ``jellyseerr`` micromanager: Jellyseerr's setup wizard, done from mora's own values.

Once Jellyseerr runs it signs in with Jellyfin's admin account — the first
sign-in also tells Jellyseerr where Jellyfin is and makes that account its
admin — adds Sonarr and Radarr as its servers, marks the setup complete and
reports Jellyseerr's API key as the answer to the service's ``api_key``
input, so nobody has to finish the setup by hand and copy the key.

What it reads (a sidecar reads only what its service's manifest entry
references, so the jellyseerr service references these, e.g. from
environment entries):

* ``jellyfin.internal_url`` and Jellyfin's admin password (the jellyfin
  service's ``admin_password`` secret or input; the user name is its
  ``admin_user`` input, else ``admin`` — as the ``jellyfin`` micromanager set
  them up);
* for each of Sonarr and Radarr that it references: ``<app>.internal_url`` and
  ``<app>.api_key``. An app not referenced is not added (the hook says so).

Choices made for the person, all changeable later in Jellyseerr: each app's
first quality profile and first root folder (an app without a root folder is
an error that says where to add one), Jellyseerr's own admin e-mail from the
service's optional input ``admin_email`` (else the Jellyfin user name, which is
what newer Jellyseerr versions use themselves). Every step looks before it
acts, so reruns change nothing. The HTTP shapes live in :mod:`.jellyseerr_api`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import SecretStr

from micromanager_kit.context import HookContext
from micromanager_kit.errors import HookError
from micromanager_kit.micromanager import Micromanager

from .jellyfin import AdminCredentials, admin_credentials, own_url
from .jellyseerr_api import (
    MEDIA_SERVER_JELLYFIN,
    MEDIA_SERVER_NOT_CONFIGURED,
    ArrServer,
    ArrSettings,
    JellyfinLogin,
    JellyseerrClient,
    JellyseerrError,
    PublicSettings,
    RadarrSettings,
    SonarrSettings,
)

mm = Micromanager("jellyseerr")

#: The peer services, by the names the media-server example gives them.
JELLYFIN = "jellyfin"
ARR_APPS: tuple[Literal["sonarr", "radarr"], ...] = ("sonarr", "radarr")
_TITLES = {"sonarr": "Sonarr", "radarr": "Radarr"}


@dataclass(frozen=True)
class Address:
    """A peer's in-cluster URL, split the way Jellyseerr's forms want it."""

    hostname: str
    port: int
    use_ssl: bool
    base_url: str

    @classmethod
    def parse(cls, url: str) -> Address:
        parsed = httpx.URL(url)
        ssl = parsed.scheme == "https"
        return cls(
            hostname=parsed.host,
            port=parsed.port or (443 if ssl else 80),
            use_ssl=ssl,
            base_url=parsed.path.rstrip("/"),
        )


def jellyfin_address(ctx: HookContext) -> Address:
    key = f"service:{JELLYFIN}.internal_url"
    if not ctx.referenced(key):
        raise HookError(
            f"{ctx.service} does not reference {JELLYFIN}.internal_url",
            hint=f"reference {JELLYFIN}.internal_url and {JELLYFIN}.admin_password from "
            f"service {ctx.service} (environment entries will do)",
            retryable=False,
        )
    return Address.parse(str(ctx.config[key]))


# ---------------------------------------------------------------------- the steps


async def ensure_signed_in(
    client: JellyseerrClient,
    public: PublicSettings,
    admin: AdminCredentials,
    jellyfin: Address,
    email: str,
    ctx: HookContext,
) -> None:
    """Sign in as Jellyfin's admin; the first time, that also configures Jellyfin."""
    login = JellyfinLogin(username=admin.user, password=admin.password, email=email)
    first = public.media_server_type == MEDIA_SERVER_NOT_CONFIGURED
    if not first and public.media_server_type != MEDIA_SERVER_JELLYFIN:
        raise HookError(
            "Jellyseerr is already set up with another media server than Jellyfin",
            hint="answer jellyseerr.api_key in the wizard yourself",
            retryable=False,
        )
    if first:
        login = login.model_copy(
            update={
                "hostname": jellyfin.hostname,
                "port": jellyfin.port,
                "use_ssl": jellyfin.use_ssl,
                "url_base": jellyfin.base_url,
                "server_type": MEDIA_SERVER_JELLYFIN,
            }
        )
    try:
        await client.sign_in_with_jellyfin(login)
    except JellyseerrError as exc:
        if exc.status in (401, 403):
            raise HookError(
                f"Jellyseerr did not accept Jellyfin's admin user {admin.user!r} "
                f"(HTTP {exc.status})",
                hint="check that the jellyfin micromanager completed Jellyfin's setup; "
                "if a person set Jellyseerr up already, answer jellyseerr.api_key yourself",
                retryable=exc.status == 401,
            ) from None
        raise
    if first:
        ctx.note_change(f"connected Jellyseerr to Jellyfin at {jellyfin.hostname}:{jellyfin.port}")


async def ensure_arr(
    client: JellyseerrClient,
    kind: Literal["sonarr", "radarr"],
    address: Address,
    api_key: SecretStr,
    ctx: HookContext,
) -> None:
    """Add the app as Jellyseerr's default server for its kind, unless it is there."""
    existing = await (client.sonarr_servers() if kind == "sonarr" else client.radarr_servers())
    if any(s.hostname == address.hostname and s.port == address.port for s in existing):
        return
    server = ArrServer(
        hostname=address.hostname,
        port=address.port,
        api_key=api_key,
        use_ssl=address.use_ssl,
        base_url=address.base_url,
    )
    offered = await client.test_arr(kind, server)
    title = _TITLES[kind]
    if not offered.profiles:
        raise HookError(f"{title} offers no quality profile", hint=f"add one in {title}; retry")
    if not offered.root_folders:
        raise HookError(
            f"{title} has no root folder, so Jellyseerr would not know where requests go",
            hint=f"add one in {title} (Settings → Media Management → Root Folders, e.g. under "
            "/media), then retry",
        )
    profile, folder = offered.profiles[0], offered.root_folders[0]
    common = server.model_dump() | {
        "name": title,
        "active_profile_id": profile.id,
        "active_profile_name": profile.name,
        "active_directory": folder.path,
        "is_default": True,
    }
    settings: ArrSettings
    if kind == "sonarr":
        languages = offered.language_profiles or []  # Sonarr v3 only
        settings = SonarrSettings(
            **common,
            active_anime_profile_id=profile.id,
            active_anime_profile_name=profile.name,
            active_anime_directory=folder.path,
            active_language_profile_id=languages[0].id if languages else None,
            active_anime_language_profile_id=languages[0].id if languages else None,
        )
        await client.add_sonarr(settings)
    else:
        settings = RadarrSettings(**common)
        await client.add_radarr(settings)
    ctx.note_change(
        f"added {title} to Jellyseerr (profile {profile.name!r}, folder {folder.path!r})"
    )


@mm.after_start
async def bootstrap(ctx: HookContext) -> str | None:
    """Set Jellyseerr up against Jellyfin, Sonarr and Radarr; report its API key."""
    admin = admin_credentials(ctx, JELLYFIN)
    ctx.add_secret(admin.password.get_secret_value())
    jellyfin = jellyfin_address(ctx)
    apps: dict[Literal["sonarr", "radarr"], tuple[Address, SecretStr]] = {}
    for kind in ARR_APPS:
        url_key, key_key = f"service:{kind}.internal_url", f"secret:{kind}.api_key"
        if ctx.referenced(url_key, key_key):
            key = SecretStr(str(ctx.config[key_key]))
            ctx.add_secret(key.get_secret_value())
            apps[kind] = (Address.parse(str(ctx.config[url_key])), key)
    email = str(ctx.value(f"input:{ctx.service}.admin_email", admin.user))

    async with JellyseerrClient(own_url(ctx)) as client:
        try:
            public = await client.public_settings()
            await ensure_signed_in(client, public, admin, jellyfin, email, ctx)
            for app, (address, key) in apps.items():
                await ensure_arr(client, app, address, key, ctx)
            if not public.initialized:
                await client.initialize()
                ctx.note_change("completed Jellyseerr's setup")
            main = await client.main_settings()
        except JellyseerrError as exc:
            raise HookError(
                str(exc), hint="check that Jellyseerr runs and answers; retry"
            ) from None
    ctx.report("api_key", main.api_key.get_secret_value())
    skipped = [kind for kind in ARR_APPS if kind not in apps]
    return f"skipped {', '.join(skipped)} (not referenced)" if skipped else None


@mm.health
async def healthy(ctx: HookContext) -> bool:
    """Jellyseerr answers its public settings."""
    async with JellyseerrClient(own_url(ctx)) as client:
        try:
            await client.public_settings()
        except JellyseerrError:
            return False
    return True
