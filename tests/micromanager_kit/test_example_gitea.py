"""The example micromanager (``examples/gitea-micromanager``) against a double of Gitea's API.

The double (:class:`GiteaDouble`, respx) answers the endpoints the example uses
as Gitea 1.22's API documentation describes them: basic auth for the token
routes, ``Authorization: token …`` elsewhere, token names unique per user, the
token's ``sha1`` only in the creation's answer. The micromanager runs in the
kit's harness against the stand-in manager, with the example's real manifest.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import secrets
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
import respx
from kit_peers import ROOT

from micromanager_kit.testing import Harness, HookFailed
from mora_dsl import compile_project
from mora_dsl.manifest import Manifest

EXAMPLE = ROOT / "examples" / "gitea-micromanager"
HOST, PORT = "gitea.test", 3000
BASE = f"http://{HOST}:{PORT}"
ADMIN_PASSWORD = "generated-admin-password-" + secrets.token_hex(4)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gitea_micromanager",
                                                  EXAMPLE / "gitea_micromanager.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gitea_micromanager"] = module
    spec.loader.exec_module(module)
    return module


gitea = load_example()


class GiteaDouble:
    """The state the example touches: users, tokens, organisations, repositories."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {
            "admin": {"password": ADMIN_PASSWORD, "email": "admin@home.example.com"}}
        self.tokens: dict[str, tuple[str, str]] = {}  # sha1 → (user, name)
        self.orgs: set[str] = set()
        self.repos: list[str] = []
        self.down = False
        self.calls: list[str] = []

    def _basic_user(self, request: httpx.Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        found = self.users.get(user)
        return user if found and found["password"] == password else None

    def _token_user(self, request: httpx.Request) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme != "token" or value not in self.tokens:
            return None
        return self.tokens[value][0]

    def install(self, router: respx.MockRouter) -> None:
        router.route(host=HOST).mock(side_effect=self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        if self.down:
            return httpx.Response(502)
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else {}
        if path == "/api/v1/version":
            return httpx.Response(200, json={"version": "1.22.6"})
        if path == "/api/v1/user":
            user = self._token_user(request)
            return httpx.Response(200, json={"login": user}) if user else httpx.Response(401)
        if path.startswith("/api/v1/users/") and "/tokens" in path:
            owner = path.split("/")[4]
            if self._basic_user(request) != owner:
                return httpx.Response(401, json={"message": "unauthorized"})
            if method == "DELETE":
                name = path.rsplit("/", 1)[1]
                found = [t for t, (u, n) in self.tokens.items() if (u, n) == (owner, name)]
                for t in found:
                    del self.tokens[t]
                return httpx.Response(204 if found else 404)
            if method == "POST":
                if (owner, body["name"]) in self.tokens.values():
                    return httpx.Response(422, json={"message": "access token name has been used"})
                assert body["scopes"], "Gitea 1.19+ needs scopes"
                sha1 = secrets.token_hex(20)
                self.tokens[sha1] = (owner, body["name"])
                return httpx.Response(201, json={"id": len(self.tokens), "name": body["name"],
                                                 "sha1": sha1, "token_last_eight": sha1[-8:]})
        caller = self._token_user(request)
        if caller != "admin":
            return httpx.Response(401, json={"message": "token is required"})
        if path.startswith("/api/v1/orgs/") and path.count("/") == 4 and method == "GET":
            name = path.rsplit("/", 1)[1]
            return httpx.Response(200, json={"username": name}) if name in self.orgs \
                else httpx.Response(404)
        if path == "/api/v1/orgs" and method == "POST":
            self.orgs.add(body["username"])
            return httpx.Response(201, json={"username": body["username"]})
        if path == "/api/v1/admin/users" and method == "POST":
            if body["username"] in self.users:
                return httpx.Response(422, json={"message": "user already exists"})
            self.users[body["username"]] = {"password": body["password"], "email": body["email"]}
            return httpx.Response(201, json={"login": body["username"], "email": body["email"]})
        if path.endswith("/repos") and method == "POST":
            owner = path.split("/")[-2]
            if path.startswith("/api/v1/admin/users/") and owner not in self.users:
                return httpx.Response(404, json={"message": "user does not exist"})
            full = f"{owner}/{body['name']}"
            if full in self.repos:
                return httpx.Response(409, json={"message": "repository already exists"})
            self.repos.append(full)
            return httpx.Response(201, json={"full_name": full,
                                             "clone_url": f"https://git.example/{full}.git"})
        return httpx.Response(404, json={"message": f"no route {method} {path}"})


@pytest.fixture(scope="module")
def manifest() -> Manifest:
    return compile_project(EXAMPLE).validated()


@pytest.fixture
def double() -> Iterator[GiteaDouble]:
    fake = GiteaDouble()
    with respx.mock(assert_all_called=False) as router:
        fake.install(router)
        yield fake


def values() -> dict[str, Any]:
    return {"param:domain": "home.example.com", "secret:gitea.admin_password": ADMIN_PASSWORD,
            "secret:gitea.secret_key": "k" * 64, "input:gitea.admin_email": "admin@home.example.com"}


def harness(manifest: Manifest) -> Harness:
    return Harness(gitea.mm, manifest, "gitea", values(), service_host=HOST,
                   service_ports={"http": PORT})


@pytest.mark.anyio
async def test_bootstrap_reports_a_token_asks_for_the_organisation_then_creates_it(
    manifest: Manifest, double: GiteaDouble
) -> None:
    async with harness(manifest) as h:
        first = await h.hook("after_start")
        assert first.reported == ["api_token"] and first.requested_inputs == ["organisation"]
        assert first.message == "Gitea 1.22.6 is ready; waiting for the organisation's name"
        token = h.manager.values["input:gitea.api_token"]
        assert double.tokens[str(token)] == ("admin", "mora")
        assert h.manager.requested_inputs["gitea.organisation"].default == "home"

        h.manager.values["input:gitea.organisation"] = "home"  # the person answers the wizard
        second = await h.hook("inputs_answered", answered=["gitea.organisation"])
        assert second.changes == ["created the organisation home"] and second.reported == []
        assert double.orgs == {"home"}

        third = await h.hook("reconfigure")  # idempotent: nothing left to do
        assert third.changes == [] and third.message == "Gitea 1.22.6 is set up"
        assert len(double.tokens) == 1


@pytest.mark.anyio
async def test_a_revoked_token_is_replaced_and_reported_again(
    manifest: Manifest, double: GiteaDouble
) -> None:
    async with harness(manifest) as h:
        await h.hook("after_start")
        old = h.manager.values["input:gitea.api_token"]
        double.tokens.clear()  # someone revoked it in Gitea's settings
        result = await h.hook("after_start")
        assert result.reported == ["api_token"]
        assert h.manager.values["input:gitea.api_token"] != old
        assert len(double.tokens) == 1


@pytest.mark.anyio
async def test_gitea_down_or_a_wrong_password_fail_with_a_message_for_a_person(
    manifest: Manifest, double: GiteaDouble
) -> None:
    async with harness(manifest) as h:
        double.down = True
        with pytest.raises(HookFailed) as down:
            await h.hook("after_start")
        assert down.value.body.code == "hook_failed" and down.value.body.retryable
        double.down = False
        double.users["admin"]["password"] = "changed-by-someone"
        with pytest.raises(HookFailed) as refused:
            await h.hook("after_start")
        body = refused.value.body
        assert body.retryable is False and "refused the password" in body.detail
        assert ADMIN_PASSWORD not in body.model_dump_json()


@pytest.mark.anyio
async def test_the_actions_add_a_person_and_create_repositories(
    manifest: Manifest, double: GiteaDouble
) -> None:
    async with harness(manifest) as h:
        early = h.action("add_person", {"username": "ada", "email": "ada@home.example.com",
                                        "password": "first-password-1"})
        with pytest.raises(HookFailed) as not_ready:
            await early
        assert not_ready.value.body.code == "not_ready"

        await h.hook("after_start")
        person = await h.action("add_person", {"username": "ada", "email": "ada@home.example.com",
                                               "password": "first-password-1"})
        assert person.data == {"login": "ada"} and double.users["ada"]["password"] == "first-password-1"
        with pytest.raises(HookFailed) as twice:
            await h.action("add_person", {"username": "ada", "email": "ada@home.example.com",
                                          "password": "first-password-1"})
        assert "user already exists" in twice.value.body.detail
        assert "first-password-1" not in twice.value.body.model_dump_json()

        repo = await h.action("create_repository", {"owner": "ada", "name": "notes"})
        assert repo.data["repository"] == "ada/notes"
        double.orgs.add("home")
        await h.action("create_repository", {"owner": "home", "name": "infra", "private": "no"})
        assert double.repos == ["ada/notes", "home/infra"]
        assert "POST /api/v1/orgs/home/repos" in double.calls


@pytest.mark.anyio
async def test_health_reads_the_version(manifest: Manifest, double: GiteaDouble) -> None:
    async with harness(manifest) as h:
        assert (await h.health()).message == "Gitea 1.22.6"
        double.down = True
        assert (await h.health()).healthy is False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_the_example_project_is_formatted(manifest: Manifest) -> None:
    from mora_cli.main import run as mora

    assert manifest.service("gitea").micromanager == "gitea"
    assert {i.id for i in manifest.inputs} == {"gitea.admin_email", "gitea.api_token"}
    assert mora(["fmt", "--check", str(EXAMPLE)]) == 0
