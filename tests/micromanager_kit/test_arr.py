"""The ``arr`` micromanager against HTTP doubles of Sonarr, Radarr and Prowlarr.

Each :class:`ArrDouble` answers the documented Servarr endpoints the flow uses
with a little state (its download clients, or Prowlarr's applications): a
wrong ``X-Api-Key`` gets 401, ``/schema`` gives the provider templates, and
``POST`` validates the body like the app would (implementation, config
contract, every field of the template present) — Prowlarr also "tests the
connection" by comparing the key it is given with the app's real key.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from micromanager_kit.builtins import arr
from micromanager_kit.builtins.arr_api import ArrError, Provider, qbittorrent_download_client
from micromanager_kit.context import HookContext
from micromanager_kit.contract import ConfigResponse, HookResult
from micromanager_kit.errors import HookError, NotReady
from micromanager_kit.testing import Harness, HookFailed, hook_context
from mora_dsl import compile_project
from mora_dsl.manifest import Manifest

URLS = {
    "sonarr": "http://sonarr.media.svc:8989",
    "radarr": "http://radarr.media.svc:7878",
    "prowlarr": "http://prowlarr.media.svc:9696",
    "qbittorrent": "http://qbittorrent.media.svc:8080",
}
KEYS = {
    "sonarr": "5a0c0ffee5a0c0ffee5a0c0ffee5a0c0",
    "radarr": "7ad7ad7ad7ad7ad7ad7ad7ad7ad7ad7a",
    "prowlarr": "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0",
}
QBT_PASSWORD = "qbittorrent-webui-password-42"


def _fields(**values: Any) -> list[dict[str, Any]]:
    return [{"name": k, "value": v, "label": k, "type": "textbox"} for k, v in values.items()]


def download_client_schema(kind: str) -> list[dict[str, Any]]:
    """Sonarr v4 / Radarr v5's ``GET /api/v3/downloadclient/schema``, trimmed to two entries."""
    media = "tv" if kind == "sonarr" else "movie"
    media_title = "Tv" if kind == "sonarr" else "Movie"
    category = "tv-sonarr" if kind == "sonarr" else "radarr"
    return [
        {
            "id": 0,
            "enable": True,
            "protocol": "torrent",
            "priority": 1,
            "removeCompletedDownloads": True,
            "removeFailedDownloads": True,
            "name": "",
            "fields": _fields(host="localhost", port=9091, useSsl=False, urlBase="/transmission/"),
            "implementationName": "Transmission",
            "implementation": "Transmission",
            "configContract": "TransmissionSettings",
            "tags": [],
        },
        {
            "id": 0,
            "enable": True,
            "protocol": "torrent",
            "priority": 1,
            "removeCompletedDownloads": True,
            "removeFailedDownloads": True,
            "name": "",
            "fields": _fields(
                host="localhost",
                port=8080,
                useSsl=False,
                urlBase=None,
                username=None,
                password=None,
                **{
                    f"{media}Category": category,
                    f"{media}ImportedCategory": None,
                    f"recent{media_title}Priority": 0,
                    f"older{media_title}Priority": 0,
                },
                initialState=0,
                sequentialOrder=False,
                firstAndLast=False,
                contentLayout=0,
            ),
            "implementationName": "qBittorrent",
            "implementation": "QBittorrent",
            "configContract": "QBittorrentSettings",
            "infoLink": "https://wiki.servarr.com/sonarr/supported#qbittorrent",
            "tags": [],
        },
    ]


APPLICATION_SCHEMA: list[dict[str, Any]] = [
    {
        "id": 0,
        "syncLevel": "addOnly",
        "name": "",
        "fields": _fields(
            prowlarrUrl="http://localhost:9696",
            baseUrl="http://localhost:8686",
            apiKey=None,
            syncCategories=[3000, 3010, 3030, 3040, 3050, 3060],
        ),
        "implementationName": "Lidarr",
        "implementation": "Lidarr",
        "configContract": "LidarrSettings",
        "tags": [],
    },
    {
        "id": 0,
        "syncLevel": "addOnly",
        "name": "",
        "fields": _fields(
            prowlarrUrl="http://localhost:9696",
            baseUrl="http://localhost:8989",
            apiKey=None,
            syncCategories=[5000, 5010, 5020, 5030, 5040, 5045, 5050, 5090],
            animeSyncCategories=[5070],
            syncAnimeStandardFormatSearch=False,
        ),
        "implementationName": "Sonarr",
        "implementation": "Sonarr",
        "configContract": "SonarrSettings",
        "tags": [],
    },
    {
        "id": 0,
        "syncLevel": "addOnly",
        "name": "",
        "fields": _fields(
            prowlarrUrl="http://localhost:9696",
            baseUrl="http://localhost:7878",
            apiKey=None,
            syncCategories=[2000, 2010, 2020, 2030, 2040, 2045, 2050, 2060, 2070, 2080],
        ),
        "implementationName": "Radarr",
        "implementation": "Radarr",
        "configContract": "RadarrSettings",
        "tags": [],
    },
]


class ArrDouble:
    """One *arr app: its key, and its providers (download clients, or applications)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.url = URLS[kind]
        self.key = KEYS[kind]
        self.prefix = f"{self.url}/api/{'v1' if kind == 'prowlarr' else 'v3'}"
        self.providers: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.known_apps: dict[str, str] = {}  # Prowlarr: baseUrl → the app's real key

    def install(self, router: respx.MockRouter) -> None:
        collection = "applications" if self.kind == "prowlarr" else "downloadclient"
        router.get(f"{self.prefix}/system/status").mock(side_effect=self.status)
        router.get(f"{self.prefix}/{collection}").mock(side_effect=self.list)
        router.get(f"{self.prefix}/{collection}/schema").mock(side_effect=self.schema)
        router.post(f"{self.prefix}/{collection}").mock(side_effect=self.create)

    def _authorised(self, request: httpx.Request) -> bool:
        self.calls.append(f"{request.method} {request.url.path}")
        assert "apikey" not in str(request.url).lower(), "the key goes in a header, not the URL"
        return request.headers.get("X-Api-Key") == self.key

    def status(self, request: httpx.Request) -> httpx.Response:
        if not self._authorised(request):
            return httpx.Response(401)
        return httpx.Response(
            200, json={"appName": self.kind.capitalize(), "version": "4.0.14", "urlBase": ""}
        )

    def list(self, request: httpx.Request) -> httpx.Response:
        if not self._authorised(request):
            return httpx.Response(401)
        return httpx.Response(200, json=self.providers)

    def _schema(self) -> list[dict[str, Any]]:
        if self.kind == "prowlarr":
            return copy.deepcopy(APPLICATION_SCHEMA)
        return download_client_schema(self.kind)

    def schema(self, request: httpx.Request) -> httpx.Response:
        if not self._authorised(request):
            return httpx.Response(401)
        return httpx.Response(200, json=self._schema())

    def create(self, request: httpx.Request) -> httpx.Response:
        if not self._authorised(request):
            return httpx.Response(401)
        body = json.loads(request.content)
        template = next(
            (t for t in self._schema() if t["implementation"] == body.get("implementation")), None
        )
        if template is None or body.get("configContract") != template["configContract"]:
            return httpx.Response(
                400, json=[{"propertyName": "Implementation", "errorMessage": "Unknown"}]
            )
        assert "id" not in body or body["id"] in (0, None)
        sent = {f["name"] for f in body["fields"]}
        assert sent == {f["name"] for f in template["fields"]}, "every template field goes back"
        values = {f["name"]: f["value"] for f in body["fields"]}
        if self.kind == "prowlarr":
            if self.known_apps.get(values["baseUrl"]) != values["apiKey"]:
                return httpx.Response(
                    400,
                    json=[
                        {
                            "propertyName": "ApiKey",
                            "errorMessage": "Unable to complete application test, "
                            f"cannot connect to {body['implementation']}",
                            "attemptedValue": values["apiKey"],
                            "severity": "error",
                        }
                    ],
                )
        body["id"] = len(self.providers) + 1
        self.providers.append(body)
        return httpx.Response(201, json=body)


# ---------------------------------------------------------------------- fixtures


@pytest.fixture
def apps() -> Iterator[dict[str, ArrDouble]]:
    doubles = {kind: ArrDouble(kind) for kind in ("sonarr", "radarr", "prowlarr")}
    doubles["prowlarr"].known_apps = {
        URLS["sonarr"]: KEYS["sonarr"],
        URLS["radarr"]: KEYS["radarr"],
    }
    with respx.mock(assert_all_called=False) as router:
        for double in doubles.values():
            double.install(router)
        yield doubles


def config_for(service: str, *, peers: bool = True) -> dict[str, Any]:
    """The scoped config the manager gives the service's sidecar."""
    values: dict[str, Any] = {
        f"service:{service}.host": f"{service}.media.svc",
        f"service:{service}.internal_url": URLS[service],
        f"secret:{service}.api_key": KEYS[service],
    }
    if peers and service != "prowlarr":
        values |= {
            "service:prowlarr.internal_url": URLS["prowlarr"],
            "secret:prowlarr.api_key": KEYS["prowlarr"],
            "service:qbittorrent.internal_url": URLS["qbittorrent"],
            "secret:qbittorrent.webui_password": QBT_PASSWORD,
        }
    return values


def make_ctx(
    service: str,
    values: dict[str, Any] | None = None,
    *,
    missing: list[str] | None = None,
    environment: dict[str, str] | None = None,
) -> HookContext:
    values = config_for(service) if values is None else values
    kind = next((k for k in KEYS if k in service), "sonarr")
    response = ConfigResponse(
        service=service,
        micromanager="arr",
        values=values,
        secret_keys=[k for k in values if k.startswith("secret:")],
        missing=missing or [],
        ports={"http": int(URLS[kind].rsplit(":", 1)[1])},
        environment=environment
        if environment is not None
        else {f"{kind.upper()}__AUTH__APIKEY": KEYS.get(kind, ""), "TZ": "Etc/UTC"},
    )
    return hook_context("arr", response)


def run(ctx: HookContext) -> str:
    return asyncio.run(arr.bootstrap(ctx))


def field(provider: dict[str, Any], name: str) -> Any:
    return next(f["value"] for f in provider["fields"] if f["name"] == name)


# ---------------------------------------------------------------------- tests


def test_the_micromanager_is_named_and_declares_its_hooks() -> None:
    assert arr.mm.name == "arr"
    assert set(arr.mm.hooks) == {"after_start", "health"}


def test_prowlarr_only_checks_its_own_key(apps: dict[str, ArrDouble]) -> None:
    ctx = make_ctx("prowlarr")
    assert run(ctx) == "Prowlarr accepts its key"
    assert apps["prowlarr"].calls == ["GET /api/v1/system/status"]
    assert ctx.changes == []


def test_sonarr_is_registered_in_prowlarr_and_gets_qbittorrent(
    apps: dict[str, ArrDouble],
) -> None:
    ctx = make_ctx("sonarr")
    assert run(ctx) == "Sonarr is set up"

    [application] = apps["prowlarr"].providers
    assert application["implementation"] == "Sonarr"
    assert application["configContract"] == "SonarrSettings"
    assert application["name"] == "Sonarr"
    assert application["syncLevel"] == "fullSync"
    assert field(application, "prowlarrUrl") == URLS["prowlarr"]
    assert field(application, "baseUrl") == URLS["sonarr"]
    assert field(application, "apiKey") == KEYS["sonarr"]
    assert field(application, "syncCategories") == [5000, 5010, 5020, 5030, 5040, 5045, 5050, 5090]

    [client] = apps["sonarr"].providers
    assert client["implementation"] == "QBittorrent"
    assert client["enable"] is True and client["protocol"] == "torrent"
    assert field(client, "host") == "qbittorrent.media.svc"
    assert field(client, "port") == 8080
    assert field(client, "useSsl") is False
    assert field(client, "username") == "admin"
    assert field(client, "password") == QBT_PASSWORD
    assert field(client, "tvCategory") == "tv"  # the category the qbittorrent micromanager makes

    assert ctx.changes == [
        "registered Sonarr in Prowlarr",
        "added qBittorrent as Sonarr's download client",
    ]
    assert ctx.reports == {}


def test_radarr_uses_its_own_contract_and_category(apps: dict[str, ArrDouble]) -> None:
    run(make_ctx("radarr"))
    [application] = apps["prowlarr"].providers
    assert (application["implementation"], application["configContract"]) == (
        "Radarr",
        "RadarrSettings",
    )
    assert field(application, "baseUrl") == URLS["radarr"]
    [client] = apps["radarr"].providers
    assert field(client, "movieCategory") == "movies"


def test_a_second_run_adds_nothing(apps: dict[str, ArrDouble]) -> None:
    run(make_ctx("sonarr"))
    run(make_ctx("radarr"))
    for double in apps.values():
        double.calls.clear()

    ctx = make_ctx("sonarr")
    run(ctx)
    run(make_ctx("radarr"))

    assert [a["implementation"] for a in apps["prowlarr"].providers] == ["Sonarr", "Radarr"]
    assert len(apps["sonarr"].providers) == 1
    assert len(apps["radarr"].providers) == 1
    assert ctx.changes == []
    assert not any(c.startswith("POST") for d in apps.values() for c in d.calls)


def test_a_wrong_key_names_the_app_and_hides_the_key(
    apps: dict[str, ArrDouble], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "0123456789abcdef0123456789abcdef"
    values = config_for("sonarr") | {"secret:sonarr.api_key": wrong}

    with pytest.raises(HookError) as raised:
        run(make_ctx("sonarr", values))

    error = raised.value
    assert error.message.startswith("Sonarr refused the API key (GET /api/v3/system/status")
    assert "SONARR__AUTH__APIKEY" in error.message
    assert error.retryable is False
    text = f"{error.message} {error.hint} {error!r} {caplog.text}"
    for secret in (wrong, *KEYS.values(), QBT_PASSWORD):
        assert secret not in text
    assert apps["prowlarr"].providers == []


def test_a_wrong_prowlarr_key_names_prowlarr(apps: dict[str, ArrDouble]) -> None:
    values = config_for("radarr") | {"secret:prowlarr.api_key": "f" * 32}
    with pytest.raises(HookError) as raised:
        run(make_ctx("radarr", values))
    assert raised.value.message.startswith("Prowlarr refused the API key")
    assert "f" * 32 not in raised.value.message


def test_prowlarr_failing_its_connection_test_is_passed_on_without_the_key(
    apps: dict[str, ArrDouble],
) -> None:
    apps["prowlarr"].known_apps = {}  # Prowlarr cannot reach Sonarr
    with pytest.raises(HookError) as raised:
        run(make_ctx("sonarr"))
    message = raised.value.message
    assert "Prowlarr failed POST /api/v1/applications (HTTP 400)" in message
    assert "cannot connect to Sonarr" in message
    assert KEYS["sonarr"] not in message and KEYS["prowlarr"] not in message
    assert raised.value.retryable is True


def test_peers_not_referenced_are_skipped_and_said_so(apps: dict[str, ArrDouble]) -> None:
    ctx = make_ctx("sonarr", config_for("sonarr", peers=False))
    assert (
        run(ctx)
        == "Sonarr is set up; skipped prowlarr (not referenced), qbittorrent (not referenced)"
    )
    assert apps["prowlarr"].calls == []
    assert apps["sonarr"].providers == []


def test_a_peer_value_not_known_yet_means_not_ready(apps: dict[str, ArrDouble]) -> None:
    values = config_for("sonarr")
    del values["secret:prowlarr.api_key"]
    with pytest.raises(NotReady):
        run(make_ctx("sonarr", values, missing=["secret:prowlarr.api_key"]))


def test_qbittorrent_needs_its_password_referenced(apps: dict[str, ArrDouble]) -> None:
    values = config_for("sonarr")
    del values["secret:qbittorrent.webui_password"]
    with pytest.raises(HookError) as raised:
        run(make_ctx("sonarr", values))
    assert "not its Web UI password" in raised.value.message
    assert "qbittorrent.webui_password" in (raised.value.hint or "")
    assert raised.value.retryable is False


def test_the_qbittorrent_user_name_follows_its_input(apps: dict[str, ArrDouble]) -> None:
    run(make_ctx("radarr", config_for("radarr") | {"input:qbittorrent.webui_username": "seed"}))
    assert field(apps["radarr"].providers[0], "username") == "seed"


def test_the_kind_comes_from_the_api_key_variable(apps: dict[str, ArrDouble]) -> None:
    values = {
        "service:series.host": "sonarr.media.svc",
        "service:series.internal_url": URLS["sonarr"],
        "secret:series.api_key": KEYS["sonarr"],
    }
    ctx = make_ctx("series", values, environment={"SONARR__AUTH__APIKEY": KEYS["sonarr"]})
    assert arr.app_kind(ctx) == "sonarr"
    assert run(ctx).startswith("Sonarr is set up")

    anonymous = make_ctx("series", values, environment={})
    with pytest.raises(HookError) as raised:
        arr.app_kind(anonymous)
    assert "not recognisably" in raised.value.message


def test_health_follows_the_status_endpoint(apps: dict[str, ArrDouble]) -> None:
    assert asyncio.run(arr.healthy(make_ctx("radarr"))) is True
    values = config_for("radarr") | {"secret:radarr.api_key": "0" * 32}
    assert asyncio.run(arr.healthy(make_ctx("radarr", values))) is False


def test_a_schema_without_qbittorrent_is_a_clear_error() -> None:
    schema = [Provider.model_validate(download_client_schema("sonarr")[0])]
    with pytest.raises(ArrError, match="no 'QBittorrent' provider"):
        qbittorrent_download_client(
            schema,
            app="sonarr",
            host="qbittorrent",
            port=8080,
            username="admin",
            password=arr.SecretStr(QBT_PASSWORD),
            category="tv-sonarr",
        )


def test_provider_reprs_hide_field_values() -> None:
    provider = Provider.model_validate(
        {"implementation": "Sonarr", "fields": [{"name": "apiKey", "value": KEYS["sonarr"]}]}
    )
    assert KEYS["sonarr"] not in repr(provider)


# ---------------------------------------------------------------------- through the kit

PROJECT = """\
project "media" { namespace = "media" }

service qbittorrent {
  image     = "lscr.io/linuxserver/qbittorrent:5.0.4"
  port http = 8080
  secret webui_password = password(length = 24)
}

template arr(kind: string, port: int) {
  image        = "lscr.io/linuxserver/${kind}:latest"
  port http    = port
  micromanager = "arr"
  secret api_key = token(bytes = 16, encoding = "hex")
  environment = { "${upper(kind)}__AUTH__APIKEY" = api_key }
}

service prowlarr = arr(kind = "prowlarr", port = 9696) {}
service sonarr = arr(kind = "sonarr", port = 8989) {
  environment = {
    SONARR__AUTH__APIKEY      = api_key
    MORA_PROWLARR_URL         = prowlarr.internal_url
    MORA_PROWLARR_API_KEY     = prowlarr.api_key
    MORA_QBITTORRENT_URL      = qbittorrent.internal_url
    MORA_QBITTORRENT_PASSWORD = qbittorrent.webui_password
  }
}
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    (tmp_path / "main.mora").write_text(PROJECT)
    return compile_project(tmp_path).validated()


def known_values() -> dict[str, Any]:
    """What the manager knows: every generated secret and every address."""
    known: dict[str, Any] = {"secret:qbittorrent.webui_password": QBT_PASSWORD}
    for service, url in URLS.items():
        known[f"service:{service}.internal_url"] = url
        known[f"service:{service}.host"] = f"{service}.media.svc"
    for service, key in KEYS.items():
        known[f"secret:{service}.api_key"] = key
    return known


def test_through_the_sidecar_sonarr_reads_only_what_it_references(
    apps: dict[str, ArrDouble], manifest: Manifest
) -> None:
    """The stand-in scopes the config like the manager: Sonarr's entry references its peers."""

    async def scenario() -> tuple[HookResult, HookResult]:
        async with Harness(arr.mm, manifest, "prowlarr", known_values()) as h:
            prowlarr = await h.hook("after_start")
        async with Harness(arr.mm, manifest, "sonarr", known_values()) as h:
            sonarr = await h.hook("after_start")
            assert "secret:radarr.api_key" not in h.manager.config_for("sonarr").values
        return prowlarr, sonarr

    prowlarr, sonarr = asyncio.run(scenario())
    assert prowlarr.message == "Prowlarr accepts its key"
    assert sonarr.message == "Sonarr is set up"
    assert sonarr.reported == []
    assert [a["implementation"] for a in apps["prowlarr"].providers] == ["Sonarr"]
    assert field(apps["sonarr"].providers[0], "password") == QBT_PASSWORD


def test_through_the_sidecar_a_wrong_key_is_an_error_body_without_it(
    apps: dict[str, ArrDouble], manifest: Manifest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "e" * 32

    async def scenario() -> None:
        async with Harness(
            arr.mm, manifest, "sonarr", known_values() | {"secret:sonarr.api_key": wrong}
        ) as h:
            await h.hook("after_start")

    with pytest.raises(HookFailed) as raised:
        asyncio.run(scenario())
    body = raised.value.body
    assert body.detail.startswith("Sonarr refused the API key")
    assert wrong not in body.model_dump_json() and wrong not in caplog.text
