"""The slice of Jellyfin's HTTP API that the ``jellyfin`` micromanager speaks.

Every request shape mora sends to Jellyfin, and every response shape it reads,
lives here, so a Jellyfin release that changes one is a change to one file.
The micromanager (:mod:`micromanager_kit.builtins.jellyfin`) only calls the
methods of :class:`JellyfinClient`.

Endpoints used (Jellyfin OpenAPI, 10.9/10.10; JSON is PascalCase):

* ``GET /System/Info/Public`` (anonymous) → ``PublicSystemInfo``; its
  ``StartupWizardCompleted`` tells whether the startup wizard still has to run.
* ``GET /Startup/Configuration`` / ``POST /Startup/Configuration``
  (``StartupConfigurationDto``: ``UICulture``, ``MetadataCountryCode``,
  ``PreferredMetadataLanguage``).
* ``GET /Startup/User`` then ``POST /Startup/User`` (``StartupUserDto``:
  ``Name``, ``Password``). The GET is not decoration: Jellyfin creates its first
  user lazily when it is read, and the POST renames that user, so the web
  wizard (and mora) read it first.
* ``POST /Startup/Complete`` (204).
* ``POST /Users/AuthenticateByName`` (``{"Username", "Pw"}``) →
  ``AuthenticationResult`` with ``AccessToken``.
* ``POST /Auth/Keys?app=NAME`` (204, no body: the new key is not returned) and
  ``GET /Auth/Keys`` → ``{"Items": [AuthenticationInfo]}`` with ``AppName`` and
  ``AccessToken``; so a key is created, then found by its app name.

Every call carries the ``Authorization: MediaBrowser Client=…, Device=…,
DeviceId=…, Version=…`` header Jellyfin expects from a client, plus
``Token=…`` once signed in.

Uncertain, from reading the API rather than running it here: the ``/Startup/*``
endpoints answer only while the wizard is not completed (afterwards they need
an administrator), which is why the flag is read first; ``/Startup/RemoteAccess``
is left at Jellyfin's default (remote access on), and no library is created.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter

from ._service_http import ServiceClient, ServiceError, WireSecret

SERVICE = "Jellyfin"


class JellyfinError(ServiceError):
    """Jellyfin refused or failed a request; the message names the call, never a secret."""


class _Body(BaseModel):
    """Jellyfin's JSON: PascalCase on the wire, unknown fields ignored (they grow per release).

    Bodies are built with the wire names (``StartupUser(Name=…)``), which is
    also what a type checker sees as the constructor's parameters.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class PublicSystemInfo(_Body):
    server_name: str | None = Field(default=None, alias="ServerName")
    version: str | None = Field(default=None, alias="Version")
    id: str | None = Field(default=None, alias="Id")
    startup_wizard_completed: bool = Field(default=False, alias="StartupWizardCompleted")


class StartupConfiguration(_Body):
    ui_culture: str | None = Field(default="en-US", alias="UICulture")
    metadata_country_code: str | None = Field(default="US", alias="MetadataCountryCode")
    preferred_metadata_language: str | None = Field(default="en", alias="PreferredMetadataLanguage")


class StartupUser(_Body):
    name: str | None = Field(default=None, alias="Name")
    password: WireSecret | None = Field(default=None, alias="Password")


class AuthenticateByName(_Body):
    username: str = Field(alias="Username")
    pw: WireSecret = Field(alias="Pw")


class UserDto(_Body):
    id: str | None = Field(default=None, alias="Id")
    name: str | None = Field(default=None, alias="Name")


class AuthenticationResult(_Body):
    access_token: SecretStr = Field(alias="AccessToken")
    server_id: str | None = Field(default=None, alias="ServerId")
    user: UserDto | None = Field(default=None, alias="User")


class AuthenticationInfo(_Body):
    """One API key as ``GET /Auth/Keys`` lists it."""

    id: int | None = Field(default=None, alias="Id")
    app_name: str | None = Field(default=None, alias="AppName")
    access_token: SecretStr = Field(alias="AccessToken")
    date_created: str | None = Field(default=None, alias="DateCreated")
    is_active: bool | None = Field(default=None, alias="IsActive")


class AuthenticationInfoQueryResult(_Body):
    items: list[AuthenticationInfo] = Field(default_factory=list, alias="Items")
    total_record_count: int | None = Field(default=None, alias="TotalRecordCount")


class JellyfinClient(ServiceClient):
    """A small typed client for the calls above; use it as ``async with``.

    ``device_id`` identifies mora's session on the server (Jellyfin keeps one
    session per device id), so it is stable across runs rather than random.
    """

    error = JellyfinError

    def __init__(
        self,
        base_url: str,
        *,
        client: str = "mora",
        device: str = "mora",
        device_id: str = "mora-micromanager",
        version: str = "0.1.0",
        timeout: float = 30.0,
    ) -> None:
        super().__init__(SERVICE, base_url, timeout=timeout)
        self._identity = (
            f'MediaBrowser Client="{client}", Device="{device}", '
            f'DeviceId="{device_id}", Version="{version}"'
        )
        self._token: SecretStr | None = None

    # ------------------------------------------------------------------ plumbing

    def _authorization(self) -> str:
        if self._token is None:
            return self._identity
        return f'{self._identity}, Token="{self._token.get_secret_value()}"'

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = None
        headers = {"Authorization": self._authorization(), "Accept": "application/json"}
        if body is not None:
            content = body.model_dump_json(by_alias=True, exclude_none=True)
            headers["Content-Type"] = "application/json"
        return await self._send(
            method, path, what=f"{method} {path}", headers=headers, content=content, params=params
        )

    def _refused(self, what: str, status: int) -> str:
        return (
            f"{SERVICE} refused {what} (HTTP {status}): the admin user name/password or the "
            "session token is wrong, or the user is not an administrator"
        )

    # ------------------------------------------------------------------ calls

    async def public_info(self) -> PublicSystemInfo:
        response = await self._request("GET", "/System/Info/Public")
        return self._parse(TypeAdapter(PublicSystemInfo), response, "GET /System/Info/Public")

    async def startup_configuration(self) -> StartupConfiguration:
        response = await self._request("GET", "/Startup/Configuration")
        return self._parse(TypeAdapter(StartupConfiguration), response, "GET /Startup/Configuration")

    async def set_startup_configuration(self, configuration: StartupConfiguration) -> None:
        await self._request("POST", "/Startup/Configuration", body=configuration)

    async def startup_user(self) -> StartupUser:
        """Read (and so make Jellyfin create) the first user."""
        response = await self._request("GET", "/Startup/User")
        return self._parse(TypeAdapter(StartupUser), response, "GET /Startup/User")

    async def set_startup_user(self, name: str, password: SecretStr) -> None:
        await self._request("POST", "/Startup/User", body=StartupUser(Name=name, Password=password))

    async def complete_startup(self) -> None:
        await self._request("POST", "/Startup/Complete")

    async def authenticate(self, username: str, password: SecretStr) -> AuthenticationResult:
        """Sign in; later calls carry the session token."""
        response = await self._request(
            "POST",
            "/Users/AuthenticateByName",
            body=AuthenticateByName(Username=username, Pw=password),
        )
        result = self._parse(TypeAdapter(AuthenticationResult), response, "POST /Users/AuthenticateByName")
        self._token = result.access_token
        return result

    async def api_keys(self) -> list[AuthenticationInfo]:
        response = await self._request("GET", "/Auth/Keys")
        return self._parse(TypeAdapter(AuthenticationInfoQueryResult), response, "GET /Auth/Keys").items

    async def create_api_key(self, app: str) -> None:
        """Create a key for ``app``; Jellyfin answers 204 without the key (see :meth:`api_keys`)."""
        await self._request("POST", "/Auth/Keys", params={"app": app})


def find_key(keys: list[AuthenticationInfo], app: str) -> AuthenticationInfo | None:
    """The oldest active key named ``app``, so every rerun settles on the same one."""
    named = [k for k in keys if k.app_name == app and k.is_active is not False]
    named.sort(key=lambda k: k.date_created or "")
    return named[0] if named else None
