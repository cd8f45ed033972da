"""The ``jellyseerr`` micromanager against an HTTP double of Jellyseerr's documented API.

:class:`JellyseerrDouble` keeps the state the setup touches (the media server
type and Jellyfin host, the admin user, the session, the Sonarr/Radarr
servers, the initialised flag, the API key) and behaves like Jellyseerr 2.x:
the first Jellyfin sign-in must carry the server fields and later ones must
not, admin endpoints need the session cookie, ``/settings/*/test`` "connects"
to the app and lists its profiles and root folders, ``POST /settings/sonarr``
appends without de-duplicating.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from micromanager_kit.builtins import jellyseerr
from micromanager_kit.context import HookContext
from micromanager_kit.contract import ConfigResponse, HookResult
from micromanager_kit.errors import HookError, NotReady
from micromanager_kit.testing import Harness, StandInManager, hook_context
from mora_dsl import compile_project
from mora_dsl.manifest import Manifest

API = "http://jellyseerr.media.svc:5055/api/v1"
JELLYFIN_URL = "http://jellyfin.media.svc:8096"
JELLYFIN_PASSWORD = "jellyfin-admin-password-7c1e"
SONARR_URL, SONARR_KEY = "http://sonarr.media.svc:8989", "5a0c0ffee5a0c0ffee5a0c0ffee5a0c0"
RADARR_URL, RADARR_KEY = "http://radarr.media.svc:7878", "7ad7ad7ad7ad7ad7ad7ad7ad7ad7ad7a"
JELLYSEERR_KEY = "MTczNjAwMDAwMDAwMGQ0ZjM2YjYtYmQ5Ni00ZGE1LWI5YjAtMmM0YjM2"


@dataclass
class FakeArr:
    """What Jellyseerr sees of Sonarr or Radarr when it tests the connection."""

    api_key: str
    profiles: list[dict[str, Any]]
    root_folders: list[dict[str, Any]] = field(default_factory=list)


class JellyseerrDouble:
    def __init__(self) -> None:
        self.initialized = False
        self.media_server_type = 4  # not configured
        self.jellyfin_host: dict[str, Any] | None = None
        self.jellyfin_accounts = {"admin": JELLYFIN_PASSWORD}  # what Jellyfin accepts
        self.admin_email: str | None = None
        self.sessions: set[str] = set()
        self.servers: dict[str, list[dict[str, Any]]] = {"sonarr": [], "radarr": []}
        self.apps: dict[str, FakeArr] = {
            "sonarr.media.svc:8989": FakeArr(
                SONARR_KEY,
                [{"id": 4, "name": "HD-1080p"}, {"id": 1, "name": "Any"}],
                [{"id": 1, "path": "/media/series", "freeSpace": 1}],
            ),
            "radarr.media.svc:7878": FakeArr(
                RADARR_KEY,
                [{"id": 1, "name": "Any"}],
                [{"id": 2, "path": "/media/films"}],
            ),
        }
        self.calls: list[str] = []

    def install(self, router: respx.MockRouter) -> None:
        router.get(f"{API}/settings/public").mock(side_effect=self.public)
        router.post(f"{API}/auth/jellyfin").mock(side_effect=self.sign_in)
        router.get(f"{API}/settings/main").mock(side_effect=self.main)
        router.post(f"{API}/settings/initialize").mock(side_effect=self.initialize)
        for kind in ("sonarr", "radarr"):
            router.post(f"{API}/settings/{kind}/test").mock(side_effect=self.test_arr)
            router.get(f"{API}/settings/{kind}").mock(side_effect=self.list_servers)
            router.post(f"{API}/settings/{kind}").mock(side_effect=self.add_server)

    # -------------------------------------------------------------- helpers

    def _log(self, request: httpx.Request) -> None:
        self.calls.append(f"{request.method} {request.url.path}")

    def _admin(self, request: httpx.Request) -> httpx.Response | None:
        self._log(request)
        cookie = request.headers.get("cookie", "")
        if not any(f"connect.sid={sid}" in cookie for sid in self.sessions):
            return httpx.Response(
                403, json={"status": 403, "error": "You do not have permission to access this"}
            )
        return None

    def _public(self) -> dict[str, Any]:
        return {
            "initialized": self.initialized,
            "mediaServerType": self.media_server_type,
            "applicationTitle": "Jellyseerr",
            "localLogin": True,
        }

    # -------------------------------------------------------------- routes

    def public(self, request: httpx.Request) -> httpx.Response:
        self._log(request)
        return httpx.Response(200, json=self._public())

    def sign_in(self, request: httpx.Request) -> httpx.Response:
        self._log(request)
        body = json.loads(request.content)
        configured = self.media_server_type != 4
        if configured and body.get("hostname"):
            return httpx.Response(500, json={"message": "Jellyfin hostname already configured"})
        if not configured and not body.get("hostname"):
            return httpx.Response(500, json={"message": "No hostname provided."})
        if self.jellyfin_accounts.get(body.get("username")) != body.get("password"):
            return httpx.Response(401, json={"message": "Unauthorized"})
        if not configured:
            assert body["serverType"] == 2
            assert isinstance(body["port"], int) and isinstance(body["useSsl"], bool)
            assert body.get("email"), "the first admin needs an e-mail"
            self.media_server_type = 2
            self.jellyfin_host = {k: body[k] for k in ("hostname", "port", "useSsl", "urlBase")}
            self.admin_email = body["email"]
        sid = uuid.uuid4().hex
        self.sessions.add(sid)
        return httpx.Response(
            200,
            json={
                "id": 1,
                "email": self.admin_email,
                "jellyfinUsername": body["username"],
                "permissions": 2,
            },
            headers={"Set-Cookie": f"connect.sid={sid}; Path=/; HttpOnly"},
        )

    def main(self, request: httpx.Request) -> httpx.Response:
        refused = self._admin(request)
        return refused or httpx.Response(
            200, json={"apiKey": JELLYSEERR_KEY, "applicationTitle": "Jellyseerr", "locale": "en"}
        )

    def initialize(self, request: httpx.Request) -> httpx.Response:
        refused = self._admin(request)
        if refused:
            return refused
        self.initialized = True
        return httpx.Response(200, json=self._public())

    def test_arr(self, request: httpx.Request) -> httpx.Response:
        refused = self._admin(request)
        if refused:
            return refused
        kind = request.url.path.split("/")[-2]
        body = json.loads(request.content)
        assert set(body) == {"hostname", "port", "apiKey", "useSsl", "baseUrl"}
        app = self.apps.get(f"{body['hostname']}:{body['port']}")
        if app is None or app.api_key != body["apiKey"]:
            return httpx.Response(
                500, json={"message": f"Failed to connect to {kind.capitalize()}"}
            )
        return httpx.Response(
            200,
            json={
                "profiles": app.profiles,
                "rootFolders": app.root_folders,
                "languageProfiles": None,
                "tags": [],
                "urlBase": "",
            },
        )

    def list_servers(self, request: httpx.Request) -> httpx.Response:
        refused = self._admin(request)
        return refused or httpx.Response(200, json=self.servers[request.url.path.split("/")[-1]])

    def add_server(self, request: httpx.Request) -> httpx.Response:
        refused = self._admin(request)
        if refused:
            return refused
        kind = request.url.path.split("/")[-1]
        body = json.loads(request.content)
        required = {
            "name",
            "hostname",
            "port",
            "apiKey",
            "useSsl",
            "activeProfileId",
            "activeProfileName",
            "activeDirectory",
            "is4k",
            "isDefault",
            "syncEnabled",
            "preventSearch",
            "tags",
        }
        assert required <= set(body), required - set(body)
        if kind == "radarr":
            assert body["minimumAvailability"] == "released"
        else:
            assert body["seriesType"] == "standard" and body["enableSeasonFolders"] is True
        servers = self.servers[kind]
        body["id"] = servers[-1]["id"] + 1 if servers else 0
        servers.append(body)
        return httpx.Response(201, json=body)


# ---------------------------------------------------------------------- fixtures


def config(*, sonarr: bool = True, radarr: bool = True) -> dict[str, Any]:
    values: dict[str, Any] = {
        "service:jellyseerr.host": "jellyseerr.media.svc",
        "service:jellyfin.internal_url": JELLYFIN_URL,
        "secret:jellyfin.admin_password": JELLYFIN_PASSWORD,
    }
    if sonarr:
        values |= {"service:sonarr.internal_url": SONARR_URL, "secret:sonarr.api_key": SONARR_KEY}
    if radarr:
        values |= {"service:radarr.internal_url": RADARR_URL, "secret:radarr.api_key": RADARR_KEY}
    return values


def make_ctx(
    values: dict[str, Any] | None = None, *, missing: list[str] | None = None
) -> HookContext:
    values = config() if values is None else values
    response = ConfigResponse(
        service="jellyseerr",
        micromanager="jellyseerr",
        values=values,
        secret_keys=[k for k in values if k.startswith("secret:")],
        missing=missing or [],
        ports={"http": 5055},
    )
    return hook_context("jellyseerr", response)


@pytest.fixture
def double() -> Iterator[JellyseerrDouble]:
    server = JellyseerrDouble()
    with respx.mock(assert_all_called=False) as router:
        server.install(router)
        yield server


def run(ctx: HookContext) -> str | None:
    return asyncio.run(jellyseerr.bootstrap(ctx))


# ---------------------------------------------------------------------- tests


def test_the_micromanager_is_named_and_declares_its_hooks() -> None:
    assert jellyseerr.mm.name == "jellyseerr"
    assert set(jellyseerr.mm.hooks) == {"after_start", "health"}


def test_a_fresh_jellyseerr_is_set_up_and_its_key_reported(double: JellyseerrDouble) -> None:
    ctx = make_ctx()
    assert run(ctx) is None

    assert double.media_server_type == 2
    assert double.jellyfin_host == {
        "hostname": "jellyfin.media.svc",
        "port": 8096,
        "useSsl": False,
        "urlBase": "",
    }
    assert double.admin_email == "admin"
    [sonarr] = double.servers["sonarr"]
    assert (sonarr["hostname"], sonarr["port"], sonarr["apiKey"]) == (
        "sonarr.media.svc",
        8989,
        SONARR_KEY,
    )
    assert (sonarr["activeProfileId"], sonarr["activeProfileName"]) == (4, "HD-1080p")
    assert sonarr["activeDirectory"] == "/media/series"
    assert sonarr["isDefault"] is True and sonarr["is4k"] is False and sonarr["useSsl"] is False
    [radarr] = double.servers["radarr"]
    assert (radarr["activeDirectory"], radarr["apiKey"]) == ("/media/films", RADARR_KEY)
    assert double.initialized
    assert ctx.reports == {"api_key": JELLYSEERR_KEY}
    assert ctx.changes == [
        "connected Jellyseerr to Jellyfin at jellyfin.media.svc:8096",
        "added Sonarr to Jellyseerr (profile 'HD-1080p', folder '/media/series')",
        "added Radarr to Jellyseerr (profile 'Any', folder '/media/films')",
        "completed Jellyseerr's setup",
    ]
    # marked complete only after the servers are in, as the web wizard does
    assert double.calls.index("POST /api/v1/settings/initialize") > double.calls.index(
        "POST /api/v1/settings/radarr"
    )


def test_a_second_run_changes_nothing_and_reports_the_same_key(double: JellyseerrDouble) -> None:
    run(make_ctx())
    double.calls.clear()

    ctx = make_ctx()
    run(ctx)  # the double answers 500 if the sign-in carried the Jellyfin host again

    assert len(double.servers["sonarr"]) == 1 and len(double.servers["radarr"]) == 1
    assert ctx.changes == []
    assert ctx.reports == {"api_key": JELLYSEERR_KEY}
    assert "POST /api/v1/settings/initialize" not in double.calls
    assert not any(c.endswith("/test") for c in double.calls)


def test_a_wrong_jellyfin_password_is_a_clear_error_without_it(
    double: JellyseerrDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    double.jellyfin_accounts = {"admin": "changed-by-a-person"}
    with pytest.raises(HookError) as raised:
        run(make_ctx())
    error = raised.value
    assert "Jellyseerr did not accept Jellyfin's admin user 'admin' (HTTP 401)" in error.message
    text = f"{error.message} {error.hint} {error!r} {caplog.text}"
    for secret in (JELLYFIN_PASSWORD, SONARR_KEY, RADARR_KEY):
        assert secret not in text
    assert double.media_server_type == 4


def test_a_wrong_sonarr_key_names_sonarr_and_hides_the_key(double: JellyseerrDouble) -> None:
    wrong = "0" * 32
    with pytest.raises(HookError) as raised:
        run(make_ctx(config() | {"secret:sonarr.api_key": wrong}))
    message = raised.value.message
    assert "Jellyseerr failed POST /api/v1/settings/sonarr/test (HTTP 500)" in message
    assert "Failed to connect to Sonarr" in message
    assert wrong not in message and SONARR_KEY not in message
    assert double.servers["sonarr"] == [] and not double.initialized


def test_an_app_without_root_folder_says_where_to_add_one(double: JellyseerrDouble) -> None:
    double.apps["radarr.media.svc:7878"].root_folders = []
    with pytest.raises(HookError) as raised:
        run(make_ctx())
    assert raised.value.message.startswith("Radarr has no root folder")
    assert "Root Folders" in (raised.value.hint or "")
    assert raised.value.retryable is True
    assert double.servers["radarr"] == []


def test_another_media_server_is_left_to_the_person(double: JellyseerrDouble) -> None:
    double.media_server_type = 1  # Plex
    with pytest.raises(HookError) as raised:
        run(make_ctx())
    assert "another media server" in raised.value.message
    assert raised.value.retryable is False


def test_an_app_not_referenced_is_skipped_and_said_so(double: JellyseerrDouble) -> None:
    ctx = make_ctx(config(radarr=False))
    assert run(ctx) == "skipped radarr (not referenced)"
    assert double.servers["radarr"] == [] and len(double.servers["sonarr"]) == 1
    assert ctx.reports == {"api_key": JELLYSEERR_KEY}


def test_jellyfin_must_be_referenced() -> None:
    values = config()
    del values["service:jellyfin.internal_url"]
    with pytest.raises(HookError) as raised:
        run(make_ctx(values))
    assert "jellyfin.internal_url" in raised.value.message
    assert raised.value.retryable is False


def test_an_app_key_not_known_yet_means_not_ready() -> None:
    values = config()
    del values["secret:radarr.api_key"]
    with pytest.raises(NotReady):
        run(make_ctx(values, missing=["secret:radarr.api_key"]))


def test_an_unreachable_jellyseerr_names_it() -> None:
    with respx.mock() as router:
        router.route(url__startswith=API).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(HookError) as raised:
            run(make_ctx())
    assert raised.value.message.startswith(
        "Jellyseerr at http://jellyseerr.media.svc:5055 could not be reached"
    )


def test_health_follows_the_public_settings(double: JellyseerrDouble) -> None:
    assert asyncio.run(jellyseerr.healthy(make_ctx())) is True


def test_arr_server_reprs_hide_the_key() -> None:
    from micromanager_kit.builtins.jellyseerr_api import ArrServer

    server = ArrServer(hostname="sonarr", port=8989, api_key=SONARR_KEY)  # type: ignore[arg-type]
    assert SONARR_KEY not in repr(server)
    assert json.loads(server.model_dump_json(by_alias=True))["apiKey"] == SONARR_KEY


# ---------------------------------------------------------------------- through the kit

PROJECT = """\
project "media" { namespace = "media" }

service jellyfin {
  image        = "jellyfin/jellyfin:10.10.7"
  port http    = 8096
  micromanager = "jellyfin"
  secret admin_password = password(length = 32)
  input api_key: secret { title = "Jellyfin API key" }
}

service sonarr {
  image     = "lscr.io/linuxserver/sonarr:latest"
  port http = 8989
  secret api_key = token(bytes = 16, encoding = "hex")
  environment = { SONARR__AUTH__APIKEY = api_key }
}

service radarr {
  image     = "lscr.io/linuxserver/radarr:latest"
  port http = 7878
  secret api_key = token(bytes = 16, encoding = "hex")
  environment = { RADARR__AUTH__APIKEY = api_key }
}

service jellyseerr {
  image        = "fallenbagel/jellyseerr:2.5.2"
  port http    = 5055
  micromanager = "jellyseerr"
  environment = {
    MORA_JELLYFIN_URL            = jellyfin.internal_url
    MORA_JELLYFIN_ADMIN_PASSWORD = jellyfin.admin_password
    MORA_SONARR_URL              = sonarr.internal_url
    MORA_SONARR_API_KEY          = sonarr.api_key
    MORA_RADARR_URL              = radarr.internal_url
    MORA_RADARR_API_KEY          = radarr.api_key
  }
  input api_key: secret { title = "Jellyseerr API key" }
}
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    (tmp_path / "main.mora").write_text(PROJECT)
    return compile_project(tmp_path).validated()


def test_through_the_sidecar_the_key_becomes_the_inputs_answer(
    double: JellyseerrDouble, manifest: Manifest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    known = config()  # what the manager knows; the stand-in scopes it to jellyseerr's entry

    async def scenario() -> tuple[HookResult, StandInManager]:
        async with Harness(jellyseerr.mm, manifest, "jellyseerr", known) as h:
            return await h.hook("after_start"), h.manager

    result, manager = asyncio.run(scenario())
    assert result.reported == ["api_key"]
    assert manager.values["input:jellyseerr.api_key"] == JELLYSEERR_KEY
    assert double.initialized and len(double.servers["radarr"]) == 1
    for secret in (JELLYFIN_PASSWORD, SONARR_KEY, RADARR_KEY, JELLYSEERR_KEY):
        assert secret not in caplog.text
