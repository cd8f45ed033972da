"""The slice of the Servarr APIs (Sonarr, Radarr: v3; Prowlarr: v1) that the ``arr`` micromanager speaks.

Every request shape mora sends to an *arr app lives here, so a Servarr release
that changes one is a change to one file. The micromanager
(:mod:`micromanager_kit.builtins.arr`) only calls :class:`ArrClient` and the
two body builders below.

Endpoints used (Servarr API docs; JSON is camelCase; every call carries
``X-Api-Key``, never a query-string key, so a key cannot end up in a URL):

* ``GET /api/v3/system/status`` (Sonarr, Radarr), ``GET /api/v1/system/status``
  (Prowlarr) → ``{"appName", "version", …}``: proves that the key works.
* Prowlarr ``GET /api/v1/applications``, ``GET /api/v1/applications/schema``,
  ``POST /api/v1/applications``: an application is a *provider* resource
  (``name``, ``implementation`` ``Sonarr``/``Radarr``, ``configContract``
  ``SonarrSettings``/``RadarrSettings``, ``syncLevel``, ``tags`` and
  ``fields`` = ``[{"name", "value"}]`` with ``prowlarrUrl``, ``baseUrl``,
  ``apiKey``, ``syncCategories``, …).
* Sonarr/Radarr ``GET /api/v3/downloadclient``,
  ``GET /api/v3/downloadclient/schema``, ``POST /api/v3/downloadclient``: a
  provider with ``implementation`` ``QBittorrent``, ``configContract``
  ``QBittorrentSettings``, ``protocol`` ``torrent`` and fields ``host``,
  ``port``, ``useSsl``, ``username``, ``password`` and the category field
  (``tvCategory`` in Sonarr, ``movieCategory`` in Radarr).

Why the schema endpoints: a provider's ``fields`` list differs between
releases (Sonarr v3/v4, Radarr v4/v5), and Servarr rebuilds the settings from
exactly the fields it is sent. Starting from the app's own template (its
``/schema`` entry, defaults included) and setting only the fields mora cares
about keeps every other field at the app's default, whatever the version.

Uncertain, from the docs rather than a running app: the category field names
(``tvCategory``/``movieCategory``, so the builder accepts either) and the
default sync categories, which are left as the template gives them. Both
``POST``s make the app test the connection first, so they fail with HTTP 400
and a validation message when the other app is unreachable; that message is
passed on (with any secret removed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter

from ._service_http import ServiceClient, ServiceError

ArrKind = Literal["sonarr", "radarr", "prowlarr"]

#: How each app writes its own name, for messages.
DISPLAY_NAMES: dict[str, str] = {"sonarr": "Sonarr", "radarr": "Radarr", "prowlarr": "Prowlarr"}

#: The API version each app serves.
API_VERSIONS: dict[str, str] = {"sonarr": "v3", "radarr": "v3", "prowlarr": "v1"}

#: The download-client category field, per app, in the order tried.
CATEGORY_FIELDS: dict[str, tuple[str, ...]] = {
    "sonarr": ("tvCategory", "category"),
    "radarr": ("movieCategory", "category"),
}

class ArrError(ServiceError):
    """An *arr app refused or failed a request; the message names the app and call, no secret."""


class _Body(BaseModel):
    """Servarr JSON: camelCase; unknown fields kept, because bodies go back as they came."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")


class SystemStatus(_Body):
    app_name: str | None = Field(default=None, alias="appName")
    version: str | None = None


class ProviderField(_Body):
    """One entry of a provider's ``fields``; ``value`` may be a key or a password."""

    name: str
    value: Any = Field(default=None, repr=False)


class Provider(_Body):
    """A Servarr provider resource: a download client, or a Prowlarr application."""

    id: int | None = None
    name: str | None = None
    implementation: str
    implementation_name: str | None = Field(default=None, alias="implementationName")
    config_contract: str | None = Field(default=None, alias="configContract")
    fields: list[ProviderField] = Field(default_factory=list)
    tags: list[int] = Field(default_factory=list)

    def field(self, name: str) -> Any:
        for f in self.fields:
            if f.name == name:
                return f.value
        return None

    def has_field(self, name: str) -> bool:
        return any(f.name == name for f in self.fields)

    def set_field(self, name: str, value: Any) -> None:
        for f in self.fields:
            if f.name == name:
                f.value = value
                return
        raise ArrError(
            f"the {self.implementation} template has no field {name!r}; "
            "this app version's API differs from what mora knows"
        )


_PROVIDERS = TypeAdapter(list[Provider])


class ArrClient(ServiceClient):
    """A small typed client for one *arr app; use it as ``async with``."""

    error = ArrError
    refused_statuses = (401,)

    def __init__(
        self, kind: ArrKind, base_url: str, api_key: SecretStr, *, timeout: float = 30.0
    ) -> None:
        super().__init__(DISPLAY_NAMES[kind], base_url, timeout=timeout)
        self.kind = kind
        self._prefix = f"/api/{API_VERSIONS[kind]}"
        self._api_key = api_key

    # ------------------------------------------------------------------ plumbing

    async def _request(
        self, method: str, path: str, *, body: BaseModel | None = None
    ) -> httpx.Response:
        path = self._prefix + path
        headers = {"X-Api-Key": self._api_key.get_secret_value(), "Accept": "application/json"}
        content = None
        secrets = [self._api_key.get_secret_value()]
        if body is not None:
            # A new resource has no id; Servarr's JSON reader refuses a null one.
            exclude = {"id"} if getattr(body, "id", 0) is None else None
            content = body.model_dump_json(by_alias=True, exclude=exclude)
            headers["Content-Type"] = "application/json"
            if isinstance(body, Provider):
                secrets += [str(f.value) for f in body.fields if f.value and _is_secret(f.name)]
        return await self._send(
            method, path, what=f"{method} {path}", headers=headers, content=content,
            secrets=secrets,
        )

    def _refused(self, what: str, status: int) -> str:
        return (
            f"{self.name} refused the API key ({what}, HTTP {status}): the key mora generated "
            f"is not the one {self.name} uses; check that "
            f"{self.kind.upper()}__AUTH__APIKEY is set from it and restart {self.name}"
        )

    def _error_detail(self, response: httpx.Response) -> str:
        return _validation_detail(response)

    async def _providers(self, path: str) -> list[Provider]:
        response = await self._request("GET", path)
        return self._parse(_PROVIDERS, response, f"GET {self._prefix}{path}")

    async def _create(self, path: str, provider: Provider) -> Provider:
        response = await self._request("POST", path, body=provider)
        return self._parse(TypeAdapter(Provider), response, f"POST {self._prefix}{path}")

    # ------------------------------------------------------------------ calls

    async def system_status(self) -> SystemStatus:
        """Check the key: any app answers this only to a right key."""
        response = await self._request("GET", "/system/status")
        return self._parse(TypeAdapter(SystemStatus), response, f"GET {self._prefix}/system/status")

    async def download_clients(self) -> list[Provider]:
        return await self._providers("/downloadclient")

    async def download_client_schema(self) -> list[Provider]:
        return await self._providers("/downloadclient/schema")

    async def add_download_client(self, client: Provider) -> Provider:
        return await self._create("/downloadclient", client)

    async def applications(self) -> list[Provider]:
        """Prowlarr's applications (the apps it syncs its indexers to)."""
        return await self._providers("/applications")

    async def application_schema(self) -> list[Provider]:
        return await self._providers("/applications/schema")

    async def add_application(self, application: Provider) -> Provider:
        return await self._create("/applications", application)


# ---------------------------------------------------------------------- body builders


def _template(schema: Iterable[Provider], implementation: str, app: str) -> Provider:
    for template in schema:
        if template.implementation == implementation:
            # the schema's id (0) is a placeholder; the new resource gets one when created
            return template.model_copy(deep=True, update={"id": None})
    raise ArrError(f"{app} offers no {implementation!r} provider in its schema")


def qbittorrent_download_client(
    schema: Iterable[Provider],
    *,
    app: Literal["sonarr", "radarr"],
    host: str,
    port: int,
    username: str,
    password: SecretStr,
    category: str,
    name: str = "qBittorrent",
) -> Provider:
    """The body that adds qBittorrent as a download client of Sonarr or Radarr."""
    client = _template(schema, "QBittorrent", DISPLAY_NAMES[app])
    client.name = name
    client.set_field("host", host)
    client.set_field("port", port)
    client.set_field("useSsl", False)
    client.set_field("username", username)
    client.set_field("password", password.get_secret_value())
    category_field = next((f for f in CATEGORY_FIELDS[app] if client.has_field(f)), None)
    if category_field is None:
        raise ArrError(f"{DISPLAY_NAMES[app]}'s qBittorrent template has no category field")
    client.set_field(category_field, category)
    extra = client.model_extra if client.model_extra is not None else {}
    extra.update(enable=True, protocol="torrent", priority=1)
    return client


def prowlarr_application(
    schema: Iterable[Provider],
    *,
    app: Literal["sonarr", "radarr"],
    prowlarr_url: str,
    base_url: str,
    api_key: SecretStr,
) -> Provider:
    """The body that registers Sonarr or Radarr in Prowlarr, syncing indexers fully."""
    application = _template(schema, DISPLAY_NAMES[app], "Prowlarr")
    application.name = DISPLAY_NAMES[app]
    application.set_field("prowlarrUrl", prowlarr_url)
    application.set_field("baseUrl", base_url)
    application.set_field("apiKey", api_key.get_secret_value())
    extra = application.model_extra if application.model_extra is not None else {}
    extra["syncLevel"] = "fullSync"
    return application


def find_download_client(clients: Iterable[Provider], host: str, port: int) -> Provider | None:
    """An existing qBittorrent client pointing at ``host:port`` (a rerun must not add another)."""
    for client in clients:
        if (
            client.implementation == "QBittorrent"
            and client.field("host") == host
            and _as_int(client.field("port")) == port
        ):
            return client
    return None


def find_application(
    applications: Iterable[Provider], app: Literal["sonarr", "radarr"], base_url: str
) -> Provider | None:
    """An existing Prowlarr application for this app at ``base_url``."""
    for application in applications:
        if application.implementation == DISPLAY_NAMES[app] and str(
            application.field("baseUrl") or ""
        ).rstrip("/") == base_url.rstrip("/"):
            return application
    return None


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_secret(field_name: str) -> bool:
    lowered = field_name.lower()
    return "password" in lowered or "apikey" in lowered or "token" in lowered


def _validation_detail(response: httpx.Response) -> str:
    """Servarr's validation failures (``[{propertyName, errorMessage}]``; the caller masks secrets)."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    items = payload if isinstance(payload, list) else [payload]
    messages = []
    for item in items:
        if isinstance(item, dict):
            message = item.get("errorMessage") or item.get("message")
            if isinstance(message, str) and message:
                prop = item.get("propertyName")
                messages.append(f"{prop}: {message}" if prop else message)
    return "; ".join(messages)
