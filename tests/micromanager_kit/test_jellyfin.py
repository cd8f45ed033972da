"""The ``jellyfin`` micromanager against an HTTP double of Jellyfin's documented API.

The double (:class:`JellyfinDouble`) keeps the little state the flow touches —
the startup-wizard flag, the users, the sessions, the API keys — and answers
like Jellyfin does: ``/Startup/*`` only before the wizard completed, the first
user created when ``GET /Startup/User`` reads it, ``POST /Auth/Keys`` with 204
and no body, ``/Auth/Keys`` only with an admin session token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from micromanager_kit.builtins import jellyfin
from micromanager_kit.context import HookContext
from micromanager_kit.contract import ConfigResponse, HookResult
from micromanager_kit.errors import HookError, NotReady
from micromanager_kit.testing import Harness, HookFailed, StandInManager, hook_context
from mora_dsl import compile_project
from mora_dsl.manifest import Manifest

URL = "http://jellyfin.media.svc:8096"
PASSWORD = "generated-admin-password-9f3c1a"
VERSION_HEADER = re.compile(r'(\w+)="([^"]*)"')


class JellyfinDouble:
    """Jellyfin 10.10 as its OpenAPI describes the endpoints mora uses."""

    def __init__(self, *, completed: bool = False) -> None:
        self.completed = completed
        self.users: dict[str, str] = {}  # name → password
        self.sessions: dict[str, str] = {}  # token → user name
        self.keys: list[dict[str, Any]] = []
        self.configuration: dict[str, Any] | None = None
        self.calls: list[str] = []
        self.refuse_sessions = False  # sessions revoked right after sign-in
        self.down = False  # answers 503 everywhere, as while starting

    # -------------------------------------------------------------- helpers

    def add_key(self, app: str) -> str:
        token = uuid.uuid4().hex
        self.keys.append(
            {
                "Id": len(self.keys) + 1,
                "AccessToken": token,
                "DeviceId": "",
                "AppName": app,
                "AppVersion": "",
                "DeviceName": "",
                "IsActive": True,
                "DateCreated": f"2025-01-01T00:00:{len(self.keys):02d}Z",
            }
        )
        return token

    def _client_fields(self, request: httpx.Request) -> dict[str, str]:
        header = request.headers.get("Authorization", "")
        assert header.startswith("MediaBrowser "), "every call carries the MediaBrowser header"
        fields = dict(VERSION_HEADER.findall(header))
        for name in ("Client", "Device", "DeviceId", "Version"):
            assert fields.get(name), f"MediaBrowser header lacks {name}"
        return fields

    def _admin(self, request: httpx.Request) -> bool:
        token = self._client_fields(request).get("Token")
        return token is not None and token in self.sessions and not self.refuse_sessions

    # -------------------------------------------------------------- routes

    def install(self, router: respx.MockRouter) -> None:
        route = router.route
        route(method="GET", url=f"{URL}/System/Info/Public").mock(side_effect=self.public_info)
        route(method="GET", url=f"{URL}/Startup/Configuration").mock(side_effect=self.get_config)
        route(method="POST", url=f"{URL}/Startup/Configuration").mock(side_effect=self.set_config)
        route(method="GET", url=f"{URL}/Startup/User").mock(side_effect=self.get_user)
        route(method="POST", url=f"{URL}/Startup/User").mock(side_effect=self.set_user)
        route(method="POST", url=f"{URL}/Startup/Complete").mock(side_effect=self.complete)
        route(method="POST", url=f"{URL}/Users/AuthenticateByName").mock(side_effect=self.login)
        route(method="GET", url=f"{URL}/Auth/Keys").mock(side_effect=self.list_keys)
        route(method="POST", url__startswith=f"{URL}/Auth/Keys").mock(side_effect=self.create_key)

    def public_info(self, request: httpx.Request) -> httpx.Response:
        self.calls.append("GET /System/Info/Public")
        if self.down:
            return httpx.Response(503)
        return httpx.Response(
            200,
            json={
                "LocalAddress": URL,
                "ServerName": "jellyfin",
                "Version": "10.10.7",
                "ProductName": "Jellyfin Server",
                "Id": "f00d",
                "StartupWizardCompleted": self.completed,
            },
        )

    def _startup(self, request: httpx.Request) -> httpx.Response | None:
        self._client_fields(request)
        self.calls.append(f"{request.method} {request.url.path}")
        if self.completed and not self._admin(request):
            return httpx.Response(401)  # FirstTimeSetupOrElevated
        return None

    def get_config(self, request: httpx.Request) -> httpx.Response:
        refused = self._startup(request)
        return refused or httpx.Response(
            200,
            json={
                "UICulture": "en-US",
                "MetadataCountryCode": "US",
                "PreferredMetadataLanguage": "en",
            },
        )

    def set_config(self, request: httpx.Request) -> httpx.Response:
        refused = self._startup(request)
        if refused:
            return refused
        body = json.loads(request.content)
        assert set(body) <= {"UICulture", "MetadataCountryCode", "PreferredMetadataLanguage"}
        self.configuration = body
        return httpx.Response(204)

    def get_user(self, request: httpx.Request) -> httpx.Response:
        refused = self._startup(request)
        if refused:
            return refused
        if not self.users:
            self.users["jellyfin"] = ""  # created lazily, as Jellyfin's user manager does
        name = next(iter(self.users))
        return httpx.Response(200, json={"Name": name, "Password": self.users[name]})

    def set_user(self, request: httpx.Request) -> httpx.Response:
        refused = self._startup(request)
        if refused:
            return refused
        if not self.users:
            return httpx.Response(500)  # Users.First() on an empty set
        body = json.loads(request.content)
        if not body.get("Password"):
            return httpx.Response(400, json="Password must not be empty")
        first = next(iter(self.users))
        del self.users[first]
        self.users[body["Name"]] = body["Password"]
        return httpx.Response(204)

    def complete(self, request: httpx.Request) -> httpx.Response:
        refused = self._startup(request)
        if refused:
            return refused
        self.completed = True
        return httpx.Response(204)

    def login(self, request: httpx.Request) -> httpx.Response:
        self._client_fields(request)
        self.calls.append("POST /Users/AuthenticateByName")
        body = json.loads(request.content)
        if self.users.get(body.get("Username")) != body.get("Pw") or not body.get("Pw"):
            return httpx.Response(401, text="Error processing request.")
        token = uuid.uuid4().hex
        self.sessions[token] = body["Username"]
        return httpx.Response(
            200,
            json={
                "User": {"Name": body["Username"], "Id": "u1", "ServerId": "f00d"},
                "SessionInfo": {"Id": "s1"},
                "AccessToken": token,
                "ServerId": "f00d",
            },
        )

    def list_keys(self, request: httpx.Request) -> httpx.Response:
        self.calls.append("GET /Auth/Keys")
        if not self._admin(request):
            return httpx.Response(401)
        return httpx.Response(
            200, json={"Items": self.keys, "TotalRecordCount": len(self.keys), "StartIndex": 0}
        )

    def create_key(self, request: httpx.Request) -> httpx.Response:
        self.calls.append("POST /Auth/Keys")
        if not self._admin(request):
            return httpx.Response(401)
        app = request.url.params.get("app")
        if not app:
            return httpx.Response(400)
        self.add_key(app)
        return httpx.Response(204)


# ---------------------------------------------------------------------- fixtures


def make_ctx(
    values: dict[str, Any] | None = None,
    *,
    secret_keys: list[str] | None = None,
    missing: list[str] | None = None,
    service: str = "jellyfin",
) -> HookContext:
    """A hook context as the kit builds it from the manager's scoped config."""
    if values is None:
        values = {
            f"service:{service}.internal_url": URL,
            f"secret:{service}.admin_password": PASSWORD,
        }
    # the service's own address, as the manager resolves it for the jellyfin service
    values = {f"service:{service}.host": "jellyfin.media.svc", **values}
    if secret_keys is None:
        secret_keys = [k for k in values if k.startswith("secret:")]
    response = ConfigResponse(
        service=service,
        micromanager="jellyfin",
        values=values,
        secret_keys=secret_keys,
        missing=missing or [],
        ports={"http": 8096},
    )
    return hook_context("jellyfin", response)


@pytest.fixture
def double() -> Iterator[JellyfinDouble]:
    server = JellyfinDouble()
    with respx.mock(assert_all_called=False) as router:
        server.install(router)
        yield server


def run(ctx: HookContext) -> None:
    asyncio.run(jellyfin.bootstrap(ctx))


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# ---------------------------------------------------------------------- tests


def test_the_micromanager_is_named_and_declares_its_hooks() -> None:
    assert jellyfin.mm.name == "jellyfin"
    assert set(jellyfin.mm.hooks) == {"after_start", "health"}


def test_a_fresh_jellyfin_is_set_up_and_its_key_reported(double: JellyfinDouble) -> None:
    ctx = make_ctx()
    run(ctx)

    assert double.completed
    assert double.users == {"admin": PASSWORD}
    assert double.configuration == {
        "UICulture": "en-US",
        "MetadataCountryCode": "US",
        "PreferredMetadataLanguage": "en",
    }
    assert [k["AppName"] for k in double.keys] == ["mora"]
    assert ctx.reports == {"api_key": double.keys[0]["AccessToken"]}
    assert ctx.changes == [
        "completed Jellyfin's startup wizard with admin user 'admin'",
        "created Jellyfin API key 'mora'",
    ]
    # The first user is read before it is renamed: Jellyfin creates it on that read.
    assert double.calls.index("GET /Startup/User") < double.calls.index("POST /Startup/User")


def test_a_second_run_changes_nothing_and_reports_the_same_key(double: JellyfinDouble) -> None:
    run(make_ctx())
    first_key = double.keys[0]["AccessToken"]
    double.calls.clear()

    ctx = make_ctx()
    run(ctx)

    assert len(double.keys) == 1
    assert ctx.reports == {"api_key": first_key}
    assert ctx.changes == []
    assert not any(c.startswith(("GET /Startup", "POST /Startup")) for c in double.calls)
    assert "POST /Auth/Keys" not in double.calls


def test_an_existing_key_for_mora_is_reused(double: JellyfinDouble) -> None:
    double.completed = True
    double.users = {"admin": PASSWORD}
    double.add_key("some-other-app")
    existing = double.add_key("mora")

    ctx = make_ctx()
    run(ctx)

    assert ctx.reports == {"api_key": existing}
    assert len(double.keys) == 2


def test_a_wizard_completed_by_a_person_with_another_password_is_a_clear_error(
    double: JellyfinDouble, caplog: pytest.LogCaptureFixture
) -> None:
    double.completed = True
    double.users = {"admin": "the-password-a-person-chose"}
    caplog.set_level(logging.DEBUG)

    with pytest.raises(HookError) as raised:
        run(make_ctx())

    error = raised.value
    assert "Jellyfin" in error.message
    assert "completed before mora" in error.message
    assert error.retryable is False
    assert "jellyfin.api_key" in (error.hint or "")
    assert_no_secret(f"{error.message} {error.hint} {error!r} {caplog.text}", PASSWORD)
    assert double.keys == []


def test_the_admin_user_and_password_may_come_from_inputs(double: JellyfinDouble) -> None:
    ctx = make_ctx(
        {
            "service:jellyfin.internal_url": URL,
            "input:jellyfin.admin_user": "owner",
            "input:jellyfin.admin_password": "chosen-by-a-person",
        },
        secret_keys=["input:jellyfin.admin_password"],
    )
    run(ctx)
    assert double.users == {"owner": "chosen-by-a-person"}
    assert "api_key" in ctx.reports


def test_a_password_not_generated_yet_means_not_ready() -> None:
    ctx = make_ctx(
        {"service:jellyfin.internal_url": URL}, missing=["secret:jellyfin.admin_password"]
    )
    with pytest.raises(NotReady):
        run(ctx)


def test_no_admin_password_declared_says_what_to_declare() -> None:
    with pytest.raises(HookError) as raised:
        run(make_ctx({"service:jellyfin.internal_url": URL}))
    assert raised.value.retryable is False
    assert "secret admin_password = password" in (raised.value.hint or "")


def test_an_unreachable_jellyfin_names_the_service_and_address() -> None:
    with respx.mock() as router:
        router.route(url__startswith=URL).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(HookError) as raised:
            run(make_ctx())
    assert "Jellyfin" in raised.value.message
    assert URL in raised.value.message
    assert raised.value.retryable is True


def test_a_refused_session_token_is_an_error_without_secrets(double: JellyfinDouble) -> None:
    """A 401 on the key listing (the session was revoked) names Jellyfin and the call."""
    run(make_ctx())
    double.refuse_sessions = True
    with pytest.raises(HookError) as raised:
        run(make_ctx())
    assert "Jellyfin refused GET /Auth/Keys (HTTP 401)" in raised.value.message
    assert_no_secret(raised.value.message, PASSWORD, double.keys[0]["AccessToken"])


def test_health_follows_the_public_info_endpoint(double: JellyfinDouble) -> None:
    assert asyncio.run(jellyfin.healthy(make_ctx())) is True
    double.down = True
    assert asyncio.run(jellyfin.healthy(make_ctx())) is False


def test_request_bodies_and_reprs_keep_the_password_out_of_sight() -> None:
    from micromanager_kit.builtins.jellyfin_api import AuthenticateByName, StartupUser

    body = AuthenticateByName(Username="admin", Pw=PASSWORD)  # type: ignore[arg-type]
    assert PASSWORD not in repr(body)
    assert json.loads(body.model_dump_json(by_alias=True)) == {"Username": "admin", "Pw": PASSWORD}
    user = StartupUser(Name="admin", Password=PASSWORD)  # type: ignore[arg-type]
    assert PASSWORD not in repr(user)


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
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    (tmp_path / "main.mora").write_text(PROJECT)
    return compile_project(tmp_path).validated()


def test_through_the_sidecar_the_key_becomes_the_inputs_answer(
    double: JellyfinDouble, manifest: Manifest
) -> None:
    """The real sidecar app and the manager stand-in: the report answers ``jellyfin.api_key``."""
    known = {
        "secret:jellyfin.admin_password": PASSWORD,
        "service:jellyfin.host": "jellyfin.media.svc",
        "service:jellyfin.internal_url": URL,
    }

    async def scenario() -> tuple[HookResult, HookResult, StandInManager]:
        async with Harness(jellyfin.mm, manifest, "jellyfin", known) as h:
            return await h.hook("after_start"), await h.hook("after_start"), h.manager

    first, second, manager = asyncio.run(scenario())
    assert first.reported == ["api_key"]
    assert manager.values["input:jellyfin.api_key"] == double.keys[0]["AccessToken"]
    assert len(first.changes) == 2
    assert second.changes == [] and len(double.keys) == 1


def test_through_the_sidecar_a_failure_is_an_error_body_without_secrets(
    double: JellyfinDouble, manifest: Manifest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    double.completed = True
    double.users = {"admin": "someone-else-chose-this"}
    known = {
        "secret:jellyfin.admin_password": PASSWORD,
        "service:jellyfin.host": "jellyfin.media.svc",
    }

    async def scenario() -> None:
        async with Harness(jellyfin.mm, manifest, "jellyfin", known) as h:
            await h.hook("after_start")

    with pytest.raises(HookFailed) as raised:
        asyncio.run(scenario())
    body = raised.value.body
    assert "Jellyfin" in body.detail and body.retryable is False
    assert PASSWORD not in body.model_dump_json()
    assert PASSWORD not in caplog.text
