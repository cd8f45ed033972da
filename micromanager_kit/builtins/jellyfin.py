"""The ``jellyfin`` micromanager: a fresh Jellyfin set up without a person at the keyboard.

Once Jellyfin runs it completes the startup wizard (the admin user), signs in
as that admin, creates an API key for the app ``mora`` and reports it as the
answer to the service's ``api_key`` input, so the setup wizard never has to
ask a person to click through Jellyfin's dashboard for it. The wizard step
stays as the fallback when this micromanager does not run.

Where the admin's credentials come from (read with the service's token):

* user name: the service's input ``admin_user`` when it declares one, else
  ``admin``;
* password: the service's generated secret ``admin_password``
  (``secret admin_password = password(length = 32)`` in the service) — the
  recommended choice, since nobody has to invent or type it and
  ``mora secrets`` shows it when a person wants to sign in — or, failing that,
  an input ``admin_password`` for people who want to choose it themselves.

Every step checks first, so the hook runs after every start without
side effects: a completed startup wizard is left alone, and an existing key for
``mora`` is reused rather than a second one created. The HTTP shapes live in
:mod:`.jellyfin_api`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from micromanager_kit.context import HookContext
from micromanager_kit.errors import HookError, NotReady
from micromanager_kit.micromanager import Micromanager

from .jellyfin_api import JellyfinClient, JellyfinError, find_key

mm = Micromanager("jellyfin")

#: The app name of mora's API key in Jellyfin (Dashboard → API Keys).
APP_NAME = "mora"
#: The admin user's name when the service declares no ``admin_user`` input.
DEFAULT_ADMIN_USER = "admin"


@dataclass(frozen=True)
class AdminCredentials:
    user: str
    password: SecretStr


def admin_credentials(ctx: HookContext, service: str | None = None) -> AdminCredentials:
    """Jellyfin's admin credentials as ``service``'s config holds them (see module doc).

    ``service`` is the Jellyfin service's name; the ``jellyseerr`` micromanager
    reads them from its own config, where its manifest entry references them.
    """
    service = service or ctx.service
    user = ctx.value(f"input:{service}.admin_user", DEFAULT_ADMIN_USER)
    for key in (f"secret:{service}.admin_password", f"input:{service}.admin_password"):
        if key in ctx.config:
            return AdminCredentials(str(user), SecretStr(str(ctx.config[key])))
    for key in (f"secret:{service}.admin_password", f"input:{service}.admin_password"):
        if key in ctx.config.missing:
            raise NotReady(
                f"{key} is not known yet",
                hint="it is generated (or asked) before the service's next deploy; retry then",
            )
    raise HookError(
        f"{ctx.service} has no way to know Jellyfin's admin password",
        hint=(
            f"declare `secret admin_password = password(length = 32)` in service {service}"
            if service == ctx.service
            else f"reference {service}.admin_password from service {ctx.service} "
            "(an environment entry will do)"
        ),
        retryable=False,
    )


def own_url(ctx: HookContext, port: str = "http") -> str:
    """Where this sidecar reaches its own service.

    ``ctx.host``/``ctx.port`` rather than the manifest's ``internal_url``, so a
    sidecar in the service's pod (``--service-host 127.0.0.1``) and a test
    reach it where it really answers. Port ``port``, else the first one.
    """
    try:
        number = ctx.port(port)
    except NotReady:
        if not ctx.config.ports:
            raise
        number = ctx.port(next(iter(ctx.config.ports)))
    return f"http://{ctx.host}:{number}"


async def ensure_startup_completed(
    client: JellyfinClient, admin: AdminCredentials, ctx: HookContext
) -> bool:
    """Run the startup wizard unless it ran; True when this call completed it."""
    info = await client.public_info()
    if info.startup_wizard_completed:
        return False
    # Post the configuration back as Jellyfin proposes it (the web wizard's first
    # page), then read the first user, which makes Jellyfin create it.
    await client.set_startup_configuration(await client.startup_configuration())
    await client.startup_user()
    await client.set_startup_user(admin.user, admin.password)
    await client.complete_startup()
    ctx.note_change(f"completed Jellyfin's startup wizard with admin user {admin.user!r}")
    return True


async def ensure_api_key(client: JellyfinClient, ctx: HookContext) -> SecretStr:
    """mora's API key: the existing one for :data:`APP_NAME`, or a new one."""
    key = find_key(await client.api_keys(), APP_NAME)
    if key is None:
        await client.create_api_key(APP_NAME)
        key = find_key(await client.api_keys(), APP_NAME)
        if key is None:
            raise HookError(
                f"Jellyfin accepted the new API key for {APP_NAME!r} but does not list it",
                hint="retry; if it persists, create a key named mora in Jellyfin's dashboard",
            )
        ctx.note_change(f"created Jellyfin API key {APP_NAME!r}")
    return key.access_token


@mm.after_start
async def bootstrap(ctx: HookContext) -> None:
    """Complete the startup wizard, create (or find) mora's API key, report it."""
    admin = admin_credentials(ctx)
    ctx.add_secret(admin.password.get_secret_value())
    async with JellyfinClient(own_url(ctx)) as client:
        try:
            completed_now = await ensure_startup_completed(client, admin, ctx)
            try:
                await client.authenticate(admin.user, admin.password)
            except JellyfinError as exc:
                if exc.status == 401 and not completed_now:
                    raise HookError(
                        f"Jellyfin's startup wizard was completed before mora reached it, and "
                        f"Jellyfin does not accept admin user {admin.user!r} with the password "
                        "mora has for it",
                        hint="set that user's password in Jellyfin to the one `mora secrets` "
                        "shows for jellyfin.admin_password, or answer jellyfin.api_key in the "
                        "wizard yourself",
                        retryable=False,
                    ) from None
                raise
            key = await ensure_api_key(client, ctx)
        except JellyfinError as exc:
            raise HookError(str(exc), hint="check that Jellyfin runs and answers; retry") from None
    ctx.report("api_key", key.get_secret_value())


@mm.health
async def healthy(ctx: HookContext) -> bool:
    """Jellyfin answers its public system info."""
    async with JellyfinClient(own_url(ctx)) as client:
        try:
            await client.public_info()
        except JellyfinError:
            return False
    return True
