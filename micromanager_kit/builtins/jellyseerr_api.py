"""The slice of Jellyseerr's HTTP API that the ``jellyseerr`` micromanager speaks.

Every request shape mora sends to Jellyseerr, and every response shape it
reads, lives here; the micromanager (:mod:`micromanager_kit.builtins.jellyseerr`)
only calls :class:`JellyseerrClient`.

Endpoints used (Jellyseerr 2.x, the Overseerr API under ``/api/v1``; JSON is
camelCase):

* ``GET /settings/public`` (anonymous) → ``initialized`` and
  ``mediaServerType`` (1 Plex, 2 Jellyfin, 3 Emby, 4 not configured): whether
  the setup already ran and whether Jellyfin is already its media server.
* ``POST /auth/jellyfin``: ``{username, password, email}`` signs in with a
  Jellyfin account; on the very first sign-in it also carries ``hostname``,
  ``port``, ``useSsl``, ``urlBase`` and ``serverType`` (2), which configures
  Jellyfin as the media server and makes that account Jellyseerr's admin.
  Jellyseerr refuses a ``hostname`` once one is configured, so it is sent only
  while ``mediaServerType`` says "not configured". The answer sets the session
  cookie every later call uses.
* ``POST /settings/sonarr/test`` / ``/settings/radarr/test`` with
  ``{hostname, port, apiKey, useSsl, baseUrl}`` → ``{profiles: [{id, name}],
  rootFolders: [{id, path}], languageProfiles, tags, urlBase}``: what the app
  offers, from which mora picks the quality profile and root folder.
* ``GET /settings/sonarr`` / ``/settings/radarr`` → the configured servers;
  ``POST`` the same path adds one (Jellyseerr does not de-duplicate, so mora
  looks first).
* ``POST /settings/initialize``: marks the setup complete.
* ``GET /settings/main`` → ``apiKey`` (and more).

Uncertain, from reading the API rather than running it here: the split
``hostname``/``port``/``useSsl``/``urlBase`` sign-in fields are those of
Jellyseerr 2.x (1.x took one URL in ``hostname``); the first admin's ``email``
is required by some versions, so mora always sends one. Jellyfin libraries are
not selected here (Jellyseerr syncs them later), and 4K servers are not set up.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter
from pydantic.alias_generators import to_camel

from ._service_http import ServiceClient, ServiceError, WireSecret

SERVICE = "Jellyseerr"

#: Jellyseerr's ``MediaServerType`` enum.
MEDIA_SERVER_JELLYFIN = 2
MEDIA_SERVER_NOT_CONFIGURED = 4

_T = TypeVar("_T")


class JellyseerrError(ServiceError):
    """Jellyseerr refused or failed a request; the message names the call, never a secret."""


class _Body(BaseModel):
    """Jellyseerr JSON: camelCase on the wire; unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class PublicSettings(_Body):
    initialized: bool = False
    media_server_type: int = MEDIA_SERVER_NOT_CONFIGURED


class JellyfinLogin(_Body):
    """The sign-in body; the server fields only for the first sign-in (see module doc)."""

    username: str
    password: WireSecret
    email: str | None = None
    hostname: str | None = None
    port: int | None = None
    use_ssl: bool | None = None
    url_base: str | None = None
    server_type: int | None = None


class JellyseerrUser(_Body):
    id: int | None = None
    email: str | None = None
    jellyfin_username: str | None = None
    permissions: int | None = None


class MainSettings(_Body):
    api_key: SecretStr
    application_title: str | None = None
    application_url: str | None = None


class ArrServer(_Body):
    """Where an *arr app is: the body of ``/settings/{sonarr,radarr}/test``."""

    hostname: str
    port: int
    api_key: WireSecret = Field(repr=False)
    use_ssl: bool = False
    base_url: str = ""


class QualityProfile(_Body):
    id: int
    name: str


class RootFolder(_Body):
    id: int
    path: str


class ArrTestResult(_Body):
    profiles: list[QualityProfile] = Field(default_factory=list)
    root_folders: list[RootFolder] = Field(default_factory=list)
    language_profiles: list[QualityProfile] | None = None
    url_base: str | None = None


class ArrSettings(ArrServer):
    """A configured Sonarr/Radarr server, as stored by Jellyseerr."""

    id: int | None = None
    name: str
    active_profile_id: int
    active_profile_name: str
    active_directory: str
    is4k: bool = Field(default=False, alias="is4k")
    is_default: bool = True
    sync_enabled: bool = False
    prevent_search: bool = False
    tag_requests: bool = False
    tags: list[int] = Field(default_factory=list)
    external_url: str | None = None


class SonarrSettings(ArrSettings):
    series_type: Literal["standard", "daily", "anime"] = "standard"
    anime_series_type: Literal["standard", "daily", "anime"] = "anime"
    active_anime_profile_id: int | None = None
    active_anime_profile_name: str | None = None
    active_anime_directory: str | None = None
    active_language_profile_id: int | None = None
    active_anime_language_profile_id: int | None = None
    anime_tags: list[int] = Field(default_factory=list)
    enable_season_folders: bool = True


class RadarrSettings(ArrSettings):
    minimum_availability: Literal["announced", "inCinemas", "released"] = "released"


_SONARR_LIST = TypeAdapter(list[SonarrSettings])
_RADARR_LIST = TypeAdapter(list[RadarrSettings])


class JellyseerrClient(ServiceClient):
    """A small typed client for the calls above; keeps the session cookie; ``async with``."""

    error = JellyseerrError

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        super().__init__(SERVICE, base_url, timeout=timeout, api_root="/api/v1")

    # ------------------------------------------------------------------ plumbing

    async def _request(
        self, method: str, path: str, *, body: BaseModel | None = None
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            content = body.model_dump_json(by_alias=True, exclude_none=True)
            headers["Content-Type"] = "application/json"
        return await self._send(
            method, path, what=f"{method} /api/v1{path}", headers=headers, content=content
        )

    def _refused(self, what: str, status: int) -> str:
        return (
            f"{SERVICE} refused {what} (HTTP {status}): the Jellyfin admin credentials were "
            "not accepted, or that account is not Jellyseerr's admin"
        )

    def _error_detail(self, response: httpx.Response) -> str:
        return _error_detail(response)

    async def _get(self, path: str, adapter: TypeAdapter[_T]) -> _T:
        return self._parse(adapter, await self._request("GET", path), f"GET /api/v1{path}")

    async def _post(self, path: str, body: BaseModel | None, adapter: TypeAdapter[_T]) -> _T:
        response = await self._request("POST", path, body=body)
        return self._parse(adapter, response, f"POST /api/v1{path}")

    # ------------------------------------------------------------------ calls

    async def public_settings(self) -> PublicSettings:
        return await self._get("/settings/public", TypeAdapter(PublicSettings))

    async def sign_in_with_jellyfin(self, login: JellyfinLogin) -> JellyseerrUser:
        """Sign in (and on the first call, configure Jellyfin); keeps the session cookie."""
        return await self._post("/auth/jellyfin", login, TypeAdapter(JellyseerrUser))

    async def main_settings(self) -> MainSettings:
        return await self._get("/settings/main", TypeAdapter(MainSettings))

    async def initialize(self) -> None:
        await self._request("POST", "/settings/initialize")

    async def test_arr(self, kind: Literal["sonarr", "radarr"], server: ArrServer) -> ArrTestResult:
        """What the app offers (profiles, root folders), as seen from Jellyseerr."""
        plain = ArrServer.model_validate(server.model_dump())
        return await self._post(f"/settings/{kind}/test", plain, TypeAdapter(ArrTestResult))

    async def sonarr_servers(self) -> list[SonarrSettings]:
        return await self._get("/settings/sonarr", _SONARR_LIST)

    async def radarr_servers(self) -> list[RadarrSettings]:
        return await self._get("/settings/radarr", _RADARR_LIST)

    async def add_sonarr(self, settings: SonarrSettings) -> SonarrSettings:
        return await self._post("/settings/sonarr", settings, TypeAdapter(SonarrSettings))

    async def add_radarr(self, settings: RadarrSettings) -> RadarrSettings:
        return await self._post("/settings/radarr", settings, TypeAdapter(RadarrSettings))


def _error_detail(response: httpx.Response) -> str:
    """Jellyseerr's ``{"message"}`` or ``{"error"}``, which never echo a request's secret."""
    try:
        payload: Any = response.json()
    except ValueError:
        return ""
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error")
        if isinstance(message, str):
            return message[:300]
    return ""
