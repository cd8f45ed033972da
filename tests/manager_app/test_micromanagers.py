"""The manager's side of the micromanager contract, in process.

The manager app runs with its update runner (dry run) under ``httpx.ASGITransport``;
sidecars are real kit micromanagers (``micromanager_kit.Micromanager``) served
in process too, their client pointed at the manager app, and the manager's
hook calls routed to them by host name (:class:`Sidecars`). So both directions
of the contract are the real code, with no socket.
"""

from __future__ import annotations

import asyncio
import json
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from manager_helpers import BEARER, SPAN, build_manifest, inp, make_settings, running
from test_web import csrf_of, login

from manager_app.micromanagers import MicromanagerHub
from micromanager_kit import HookContext, HookError, Micromanager
from micromanager_kit import contract as c
from micromanager_kit.client import ManagerClient
from micromanager_kit.micromanager import Field
from mora_dsl.manifest import Manifest, Param, Ref, Secret, TypeSpec

pytestmark = pytest.mark.anyio

EMAIL = "admin@home.example.com"


def lab() -> Manifest:
    """dir (ldap micromanager) ← app (appmm micromanager) ← web; web uses app's API key."""
    base = build_manifest(
        {"dir": [], "app": ["dir"], "web": ["app"]},
        [inp("dir.admin_email", type="email", title="Administrator e-mail"),
         inp("app.api_key", when="after_start", used_by=["web"], title="App API key")],
    )
    secret = Secret(id="dir.admin_password", name="admin_password", owner="dir", kind="password",
                    args={"length": 24}, span=SPAN)
    services = []
    for s in base.services:
        if s.name == "dir":
            env = {**s.environment, "ADMIN_PASSWORD": Ref(ref="secret:dir.admin_password"),
                   "DOMAIN": Ref(ref="param:domain")}
            s = s.model_copy(update={"micromanager": "ldap", "secrets": ["dir.admin_password"],
                                     "environment": env})
        elif s.name == "app":
            s = s.model_copy(update={"micromanager": "appmm"})
        services.append(s)
    domain = Param(name="domain", type=TypeSpec(name="domain"), span=SPAN)
    return base.model_copy(update={"services": services, "secrets": [secret], "params": [domain]})


def token_of(settings: Any, service: str) -> str:
    return (settings.data_dir / "micromanagers" / f"{service}.token").read_text()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


class Sidecars(httpx.AsyncBaseTransport):
    """Routes the manager's hook calls to in-process sidecar apps by host name."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}

    def add(self, host: str, app: FastAPI) -> None:
        self.apps[host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.apps.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError("connection refused", request=request)
        return await transport.handle_async_request(request)


@asynccontextmanager
async def lab_manager(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Sidecars]]:
    """The manager with the lab manifest received; hooks go to :class:`Sidecars`."""
    settings = make_settings(tmp_path)
    async with running(settings) as (app, client):
        hub: MicromanagerHub = app.state.micromanagers
        sidecars = Sidecars()
        hub.transport = sidecars
        hub.base_delay = 0.01
        hub.timeout = 5
        response = await client.post("/api/v1/manifests", headers=BEARER,
                                     json={"manifest": lab().model_dump(mode="json")})
        assert response.status_code == 201, response.text
        await app.state.runner.wait_idle()
        yield app, client, sidecars
        await hub.wait_idle()


def kit_client(app: FastAPI, token: str, service: str) -> ManagerClient:
    return ManagerClient("http://manager.test", token, service,
                         transport=httpx.ASGITransport(app=app), base_delay=0.0, attempts=2)


async def plug(app: FastAPI, sidecars: Sidecars, mm: Micromanager, service: str) -> str:
    """Serve ``mm`` for ``service`` in process and register it with the manager; its hook token."""
    settings = app.state.settings
    client = kit_client(app, token_of(settings, service), service)
    hook_token = f"hook-token-of-{service}-0123456789"
    sidecars.add(f"{service}-sidecar", mm.app(service=service, client=client, hook_token=hook_token))
    await client.register(mm.registration(service=service, url=f"http://{service}-sidecar:8765",
                                          hook_token=hook_token))
    return hook_token


async def answer(client: httpx.AsyncClient, input_id: str, value: str) -> httpx.Response:
    return await client.put(f"/api/v1/answers/{input_id}", headers=BEARER, json={"value": value})


async def plan(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/plan", headers=BEARER)
    assert response.status_code == 200, response.text
    return dict(response.json())


def states(p: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["state"] for s in p["services"]}


async def statuses(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/v1/micromanagers", headers=BEARER)
    assert response.status_code == 200, response.text
    return {s["service"]: s for s in response.json()}


async def hook_state(client: httpx.AsyncClient, service: str, hook: str) -> dict[str, Any] | None:
    found = (await statuses(client))[service]["hook_status"]
    return next((h for h in found if h["hook"] == hook), None)


async def wait_hook(client: httpx.AsyncClient, service: str, hook: str,
                    status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        found = await hook_state(client, service, hook)
        if found is not None and found["status"] == status:
            return found
        assert time.monotonic() < deadline, f"{service} {hook}: {found}"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- tokens and scoping


async def test_tokens_are_issued_per_micromanaged_service_as_0600_files_and_stored_hashed(
    tmp_path: Path,
) -> None:
    async with lab_manager(tmp_path) as (app, _client, _):
        folder = app.state.settings.data_dir / "micromanagers"
        assert sorted(p.name for p in folder.iterdir()) == ["app.token", "dir.token"]
        for path in folder.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        tokens = [token_of(app.state.settings, s) for s in ("dir", "app")]
        assert len(set(tokens)) == 2 and all(len(t) >= 40 for t in tokens)
        database = (app.state.settings.data_dir / "manager.sqlite3").read_bytes()
        assert not any(t.encode() in database for t in tokens)


async def test_a_token_reads_only_its_service_and_its_scope(tmp_path: Path) -> None:
    async with lab_manager(tmp_path) as (app, client, _):
        settings = app.state.settings
        dir_token, app_token = token_of(settings, "dir"), token_of(settings, "app")
        path = c.PATH_CONFIG.format(service="dir")

        response = await client.get(path, headers=auth(dir_token))
        assert response.status_code == 200, response.text
        config = c.ConfigResponse.model_validate(response.json())
        assert config.micromanager == "ldap"
        assert config.values["param:domain"] == "home.example.com"
        assert config.values["service:dir.host"] == "dir.lab.svc.cluster.local"
        assert len(str(config.values["secret:dir.admin_password"])) == 24  # the dry-run file's
        assert "secret:dir.admin_password" in config.secret_keys
        # no subdomain, so no public address; the e-mail is not answered yet
        assert config.missing == ["input:dir.admin_email", "service:dir.public_host",
                                  "service:dir.url"]
        assert config.environment["DOMAIN"] == "home.example.com"
        assert response.headers["cache-control"] == "no-store"

        narrowed = await client.get(path, params={"key": "param:domain"}, headers=auth(dir_token))
        assert narrowed.status_code == 200 and set(narrowed.json()["values"]) == {"param:domain"}

        out_of_scope = await client.get(path, params={"key": "input:app.api_key"},
                                        headers=auth(dir_token))
        assert out_of_scope.status_code == 403
        assert out_of_scope.json()["code"] == "forbidden"

        other = await client.get(path, headers=auth(app_token))
        assert other.status_code == 403 and "another service" in other.json()["detail"]
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=BEARER)).status_code == 401  # the admin's token
        assert (await client.get(path, headers=auth("guess"))).status_code == 401

        # a sidecar token opens nothing of the admin API
        assert (await client.get("/api/v1/plan", headers=auth(dir_token))).status_code == 401
        assert (await client.get("/api/v1/micromanagers",
                                 headers=auth(dir_token))).status_code == 401
        report = await client.post(c.PATH_REPORT.format(service="app"), headers=auth(dir_token),
                                   json=c.Report(idempotency_key="k", values={"api_key": "x"})
                                   .model_dump(mode="json"))
        assert report.status_code == 403


# --------------------------------------------------------------------------- registration


async def test_registration_is_stored_without_showing_its_hook_token(tmp_path: Path) -> None:
    mm = Micromanager("ldap", version="9.9.9")

    @mm.action("add_person", title="Add a person",
               fields=[Field("uid", "User name"), Field("password", type="secret")])
    def add_person(ctx: HookContext) -> dict[str, str]:
        return {"uid": str(ctx.values["uid"])}

    async with lab_manager(tmp_path) as (app, client, sidecars):
        hook_token = await plug(app, sidecars, mm, "dir")
        found = (await statuses(client))
        assert found["dir"]["registered"] and not found["app"]["registered"]
        assert found["dir"]["version"] == "9.9.9"
        assert found["dir"]["url"] == "http://dir-sidecar:8765"
        assert [a["name"] for a in found["dir"]["actions"]] == ["add_person"]
        listing = await client.get("/api/v1/micromanagers/dir/actions", headers=BEARER)
        assert listing.status_code == 200
        assert [f["name"] for f in listing.json()[0]["fields"]] == ["uid", "password"]
        assert listing.json()[0]["fields"][1]["type"]["name"] == "secret"
        everything = json.dumps(found) + listing.text
        assert hook_token not in everything and "hook_token" not in everything
        database = (app.state.settings.data_dir / "manager.sqlite3").read_bytes()
        assert hook_token.encode() not in database  # encrypted

        token = token_of(app.state.settings, "dir")
        wrong = mm.registration(service="dir", url="http://x", hook_token=None)
        wrong = wrong.model_copy(update={"micromanager": "jellyfin"})
        refused = await client.post(c.PATH_REGISTER.format(service="dir"), headers=auth(token),
                                    json=wrong.model_dump(mode="json"))
        assert refused.status_code == 422 and "managed by 'ldap'" in refused.json()["detail"]
        newer = {**mm.registration(service="dir", url="http://x", hook_token=None)
                 .model_dump(mode="json"), "contract_version": c.CONTRACT_VERSION + 1}
        refused = await client.post(c.PATH_REGISTER.format(service="dir"), headers=auth(token),
                                    json=newer)
        assert refused.status_code == 409 and refused.json()["code"] == "contract_version"
        no_actions = await client.get("/api/v1/micromanagers/app/actions", headers=BEARER)
        assert no_actions.status_code == 409 and "not registered" not in no_actions.text
        assert (await client.get("/api/v1/micromanagers/web/actions",
                                 headers=BEARER)).status_code == 404


# --------------------------------------------------------------------------- reports


async def test_reports_are_idempotent_replayed_or_refused(tmp_path: Path) -> None:
    async with lab_manager(tmp_path) as (app, client, _):
        token = token_of(app.state.settings, "app")
        path = c.PATH_REPORT.format(service="app")

        def body(key: str, values: dict[str, Any]) -> dict[str, Any]:
            return c.Report(idempotency_key=key, values=values).model_dump(mode="json")

        first = await client.post(path, headers=auth(token), json=body("k1", {"api_key": "abc123"}))
        assert first.status_code == 200, first.text
        assert first.json() == {"contract_version": 1, "inputs": ["app.api_key"],
                                "changed": ["app.api_key"], "replayed": False}
        again = await client.post(path, headers=auth(token), json=body("k1", {"api_key": "abc123"}))
        assert again.status_code == 200
        assert again.json()["replayed"] is True and again.json()["changed"] == ["app.api_key"]
        conflict = await client.post(path, headers=auth(token), json=body("k1", {"api_key": "zzz"}))
        assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency_conflict"
        assert app.state.store.answer("app.api_key") == "abc123"

        same = await client.post(path, headers=auth(token),
                                 json=body("k2", {"app.api_key": "abc123"}))
        assert same.json()["changed"] == []  # the same value under a new key changes nothing

        forbidden = await client.post(path, headers=auth(token),
                                      json=body("k3", {"dir.admin_email": EMAIL}))
        assert forbidden.status_code == 403
        unknown = await client.post(path, headers=auth(token), json=body("k4", {"nope": "x"}))
        assert unknown.status_code == 422 and "no input 'nope'" in unknown.json()["detail"]

        dir_token = token_of(app.state.settings, "dir")
        typed = "not-an-email-secret-ish"
        invalid = await client.post(c.PATH_REPORT.format(service="dir"), headers=auth(dir_token),
                                    json=body("k5", {"admin_email": typed}))
        assert invalid.status_code == 422 and typed not in invalid.text
        assert app.state.store.answer("dir.admin_email") is None


async def test_a_report_answers_the_wizard_input_and_triggers_one_update(tmp_path: Path) -> None:
    async with lab_manager(tmp_path) as (app, client, _):
        assert (await answer(client, "dir.admin_email", EMAIL)).status_code == 200
        await eventually(lambda: app.state.store.states().get("app") == "running")
        await app.state.runner.wait_idle()
        before = await plan(client)
        assert [i["id"] for i in before["pending_inputs"]] == ["app.api_key"]
        assert states(before)["web"] == "waiting_for_input"

        token = token_of(app.state.settings, "app")
        response = await client.post(
            c.PATH_REPORT.format(service="app"), headers=auth(token),
            json=c.Report(idempotency_key="boot", values={"api_key": "key-made-by-the-app"})
            .model_dump(mode="json"))
        assert response.status_code == 200 and response.json()["changed"] == ["app.api_key"]
        after = await plan(client)
        assert after["pending_inputs"] == []
        updates = (await client.get("/api/v1/updates", headers=BEARER)).json()["updates"]
        assert "report from the app micromanager" in updates[0]["triggers"]
        await app.state.runner.wait_idle()
        assert states(await plan(client))["web"] == "running"


# --------------------------------------------------------------------------- input requests


async def test_input_requests_add_wizard_steps_in_their_services_place(tmp_path: Path) -> None:
    async with lab_manager(tmp_path) as (app, client, _):
        dir_token, app_token = token_of(app.state.settings, "dir"), token_of(app.state.settings, "app")
        # before dir is deployed: a before-deploy input, asked with dir's own, holding dir back
        request = c.InputRequests(inputs=[c.InputRequest(name="organisation", title="Organisation")])
        response = await client.post(c.PATH_INPUT_REQUESTS.format(service="dir"),
                                     headers=auth(dir_token), json=request.model_dump(mode="json"))
        assert response.status_code == 200, response.text
        assert response.json()["inputs"] == [{"id": "dir.organisation", "answered": False}]
        again = await client.post(c.PATH_INPUT_REQUESTS.format(service="dir"),
                                  headers=auth(dir_token), json=request.model_dump(mode="json"))
        assert again.status_code == 200
        p = await plan(client)
        assert [i["id"] for i in p["pending_inputs"]] == ["dir.admin_email", "dir.organisation"]
        assert p["pending_inputs"][1]["when"] == "before_deploy"
        assert p["services"][0]["missing_inputs"] == ["dir.admin_email", "dir.organisation"]

        assert (await answer(client, "dir.admin_email", EMAIL)).status_code == 200
        await app.state.runner.wait_idle()
        assert states(await plan(client))["dir"] == "waiting_for_input"
        assert (await answer(client, "dir.organisation", "Home")).status_code == 200
        await eventually(lambda: app.state.store.states().get("app") == "running")
        await app.state.runner.wait_idle()

        # while app runs: an after-start input, asked after app's own, typed as requested
        secret_request = c.InputRequests(inputs=[c.InputRequest(
            name="admin_token", title="Admin token", type=c.type_spec("secret"))])
        response = await client.post(c.PATH_INPUT_REQUESTS.format(service="app"),
                                     headers=auth(app_token),
                                     json=secret_request.model_dump(mode="json"))
        assert response.status_code == 200
        p = await plan(client)
        assert [i["id"] for i in p["pending_inputs"]] == ["app.api_key", "app.admin_token"]
        assert p["pending_inputs"][1] | {"blocks": []} == {
            "id": "app.admin_token", "service": "app", "title": "Admin token", "type": "secret",
            "when": "after_start", "optional": False, "blocks": []}
        status = await client.get("/api/v1/answers/app.admin_token", headers=BEARER)
        assert status.status_code == 200 and status.json()["secret"] is True
        typed = "s3cret-typed-by-the-admin"
        assert (await answer(client, "app.admin_token", typed)).status_code == 200
        config = (await client.get(c.PATH_CONFIG.format(service="app"), headers=auth(app_token))).json()
        assert config["values"]["input:app.admin_token"] == typed
        assert "input:app.admin_token" in config["secret_keys"]
        # another service cannot read it
        denied = await client.get(c.PATH_CONFIG.format(service="dir"), headers=auth(dir_token),
                                  params={"key": "input:app.admin_token"})
        assert denied.status_code == 403


async def test_the_wizard_page_shows_a_requested_input(tmp_path: Path) -> None:
    async with lab_manager(tmp_path) as (app, client, _):
        token = token_of(app.state.settings, "dir")
        request = c.InputRequests(inputs=[c.InputRequest(name="organisation", title="Organisation",
                                                         help="Shown on the sign-in page.")])
        await client.post(c.PATH_INPUT_REQUESTS.format(service="dir"), headers=auth(token),
                          json=request.model_dump(mode="json"))
        await login(client)
        wizard = await client.get("/wizard")
        assert wizard.status_code == 200
        assert "Organisation" in wizard.text and "Shown on the sign-in page." in wizard.text


# --------------------------------------------------------------------------- hooks


def recording_mm(name: str, calls: list[tuple[str, c.HookCall]]) -> Micromanager:
    mm = Micromanager(name)

    @mm.after_start
    def after_start(ctx: HookContext) -> str:
        calls.append(("after_start", ctx.call))
        ctx.note_change("bootstrapped")
        return f"set up with {ctx.input('admin_email', 'nobody')}"

    @mm.inputs_answered
    def inputs_answered(ctx: HookContext) -> None:
        calls.append(("inputs_answered", ctx.call))

    return mm


async def test_after_start_is_called_once_the_service_runs_with_the_hook_token(
    tmp_path: Path,
) -> None:
    calls: list[tuple[str, c.HookCall]] = []
    async with lab_manager(tmp_path) as (app, client, sidecars):
        await plug(app, sidecars, recording_mm("ldap", calls), "dir")
        await app.state.micromanagers.wait_idle()
        assert calls == []  # dir does not run yet: nothing to bootstrap
        await answer(client, "dir.admin_email", EMAIL)
        done = await wait_hook(client, "dir", "after_start", "ok")
        assert done["message"] == f"set up with {EMAIL}" and done["changes"] == ["bootstrapped"]
        assert [name for name, _ in calls] == ["after_start"]
        call = calls[0][1]
        assert call.service == "dir" and call.config is not None  # the config was pushed along
        assert call.config.values["input:dir.admin_email"] == EMAIL

        # a later update keeps dir running: no second after-start
        await client.post("/api/v1/updates", headers=BEARER, json={"reason": "again"})
        await app.state.runner.wait_idle()
        await app.state.micromanagers.wait_idle()
        assert [name for name, _ in calls] == ["after_start"]

        # a wrong hook token is refused by the sidecar (the manager sends the registered one)
        sidecar = httpx.AsyncClient(transport=sidecars, base_url="http://dir-sidecar:8765")
        async with sidecar:
            response = await sidecar.post(c.PATH_HOOK_AFTER_START, headers=auth("guess"),
                                          json=c.HookCall(service="dir").model_dump(mode="json"))
        assert response.status_code == 401


async def test_an_answer_calls_inputs_answered_of_the_running_services_that_use_it(
    tmp_path: Path,
) -> None:
    calls: list[tuple[str, c.HookCall]] = []
    async with lab_manager(tmp_path) as (app, client, sidecars):
        await answer(client, "dir.admin_email", EMAIL)
        await eventually(lambda: app.state.store.states().get("app") == "running")
        await plug(app, sidecars, recording_mm("appmm", calls), "app")
        await wait_hook(client, "app", "after_start", "ok")  # registered while running
        await answer(client, "app.api_key", "typed-by-a-person")
        await wait_hook(client, "app", "inputs_answered", "ok")
        assert [(n, call.answered) for n, call in calls] == [
            ("after_start", []), ("inputs_answered", ["app.api_key"])]


async def test_a_failed_hook_is_recorded_with_its_hint_and_retried_on_request(
    tmp_path: Path,
) -> None:
    mm = Micromanager("ldap")
    outcomes = ["fail", "ok"]

    @mm.after_start
    def after_start(ctx: HookContext) -> str:
        if outcomes.pop(0) == "fail":
            raise HookError("the directory refused the administrator's password",
                            hint="check the admin password", retryable=False)
        return "fixed"

    async with lab_manager(tmp_path) as (app, client, sidecars):
        await plug(app, sidecars, mm, "dir")
        await answer(client, "dir.admin_email", EMAIL)
        failed = await wait_hook(client, "dir", "after_start", "failed")
        assert failed["attempts"] == 1  # not retryable: not retried by itself
        assert failed["error"]["detail"] == "the directory refused the administrator's password"
        assert failed["error"]["hint"] == "check the admin password"
        assert failed["error"]["code"] == "hook_failed"

        # the services page shows it with a retry button
        await login(client)
        service_page = await client.get("/services/dir")
        assert "the directory refused the administrator&#39;s password" in service_page.text
        assert 'action="/services/dir/micromanager/retry"' in service_page.text

        retried = await client.post("/api/v1/micromanagers/dir/retry", headers=BEARER)
        assert retried.status_code == 202 and retried.json()["hooks"] == ["after_start"]
        done = await wait_hook(client, "dir", "after_start", "ok")
        assert done["message"] == "fixed" and done["error"] is None


async def test_retryable_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    mm = Micromanager("ldap")
    tries: list[float] = []

    @mm.after_start
    def after_start(ctx: HookContext) -> None:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise HookError("the directory is still starting")  # retryable by default

    async with lab_manager(tmp_path) as (app, client, sidecars):
        app.state.micromanagers.base_delay = 0.05
        await plug(app, sidecars, mm, "dir")
        await answer(client, "dir.admin_email", EMAIL)
        done = await wait_hook(client, "dir", "after_start", "ok")
        assert done["attempts"] == 3 and len(tries) == 3
        assert tries[2] - tries[1] >= tries[1] - tries[0] >= 0.05  # 0.05 s, then 0.1 s


async def test_an_unreachable_sidecar_is_a_failure_after_the_retries(tmp_path: Path) -> None:
    mm = Micromanager("ldap")
    mm.after_start(lambda ctx: None)
    async with lab_manager(tmp_path) as (app, client, sidecars):
        await plug(app, sidecars, mm, "dir")
        sidecars.apps.clear()  # the sidecar went away
        app.state.micromanagers.attempts = 2
        await answer(client, "dir.admin_email", EMAIL)
        failed = await wait_hook(client, "dir", "after_start", "failed")
        assert failed["attempts"] == 2 and failed["error"]["retryable"] is True
        assert "cannot be reached" in failed["error"]["detail"]


# --------------------------------------------------------------------------- actions


async def test_actions_are_forwarded_and_answered_with_the_sidecars_result(tmp_path: Path) -> None:
    mm = Micromanager("ldap")
    seen: list[dict[str, Any]] = []

    @mm.action("add_person", title="Add a person",
               fields=[Field("uid", "User name"), Field("email", type="email", required=False),
                       Field("password", type="secret")])
    def add_person(ctx: HookContext) -> dict[str, str]:
        seen.append(dict(ctx.values))
        if ctx.values["uid"] == "taken":
            raise HookError("a person 'taken' exists already", retryable=False)
        ctx.note_change(f"created uid={ctx.values['uid']}")
        return {"dn": f"uid={ctx.values['uid']},ou=people"}

    async with lab_manager(tmp_path) as (app, client, sidecars):
        await plug(app, sidecars, mm, "dir")
        path = "/api/v1/micromanagers/dir/actions/add_person"
        secret = "a-new-password-123"
        ok = await client.post(path, headers=BEARER,
                               json={"values": {"uid": "ada", "password": secret}})
        assert ok.status_code == 200, ok.text
        result = c.HookResult.model_validate(ok.json())
        assert result.data == {"dn": "uid=ada,ou=people"}
        assert result.changes == ["created uid=ada"]
        assert seen[0] == {"uid": "ada", "email": None, "password": secret}
        assert secret not in ok.text

        invalid = await client.post(path, headers=BEARER,
                                    json={"values": {"uid": "bob", "email": "nope"}})
        assert invalid.status_code == 422
        assert set(invalid.json()["fields"]) == {"email", "password"}
        taken = await client.post(path, headers=BEARER,
                                  json={"values": {"uid": "taken", "password": secret}})
        assert taken.status_code == 500 and taken.json()["detail"].startswith("a person")
        assert (await client.post("/api/v1/micromanagers/dir/actions/nope", headers=BEARER,
                                  json={"values": {}})).status_code == 404
        assert (await client.post(path, json={"values": {}})).status_code == 401

        # the same action from the service's page, with its CSRF token
        await login(client)
        service_page = await client.get("/services/dir")
        assert 'action="/services/dir/tools/add_person"' in service_page.text
        assert 'name="add_person.password" type="password"' in service_page.text
        csrf = csrf_of(service_page.text)
        form = {"csrf_token": csrf, "add_person.uid": "grace", "add_person.password": secret}
        done = await client.post("/services/dir/tools/add_person", data=form)
        assert done.status_code == 200 and "uid=grace,ou=people" in done.text
        assert secret not in done.text
        refused = await client.post("/services/dir/tools/add_person",
                                    data={**form, "csrf_token": "forged"})
        assert refused.status_code == 403 and len(seen) == 3  # the forged form ran nothing


async def test_the_config_pushed_with_a_call_is_read_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside a dry run that config reads the stack's outputs (the Pulumi CLI): never on the loop."""
    calls: list[tuple[str, c.HookCall]] = []
    mm = recording_mm("ldap", calls)
    mm.action("ping", title="Ping")(lambda ctx: None)
    async with lab_manager(tmp_path) as (app, client, sidecars):
        hub: MicromanagerHub = app.state.micromanagers
        read_from: list[int] = []
        config_for = hub.config_for

        def recording(service: str, keys: list[str] | None = None) -> c.ConfigResponse:
            read_from.append(threading.get_ident())
            return config_for(service, keys)

        monkeypatch.setattr(hub, "config_for", recording)
        await plug(app, sidecars, mm, "dir")
        await answer(client, "dir.admin_email", EMAIL)
        await wait_hook(client, "dir", "after_start", "ok")
        assert calls[0][1].config is not None
        ran = await client.post("/api/v1/micromanagers/dir/actions/ping", headers=BEARER,
                                json={"values": {}})
        assert ran.status_code == 200, ran.text
        assert len(read_from) == 2
        assert threading.get_ident() not in read_from  # the test runs on the event loop's thread


async def test_service_addresses_for_a_sidecar_use_the_domain_params_default(
    tmp_path: Path,
) -> None:
    """No ``domain`` was set: its default makes the public addresses, as the stack's resolver does."""
    manifest = lab()
    domain = manifest.params[0].model_copy(update={"default": "lab.example.org",
                                                   "has_default": True})
    manifest = manifest.model_copy(update={
        "params": [domain],
        "services": [s.model_copy(update={"subdomain": "ldap"}) if s.name == "dir" else s
                     for s in manifest.services]})
    async with running(make_settings(tmp_path, params={})) as (app, _):
        app.state.manager.receive_manifest(manifest, {})
        await app.state.runner.wait_idle()
        hub: MicromanagerHub = app.state.micromanagers
        known = hub.known_values(app.state.manager.manifest(), "dir")
        assert known["param:domain"] == "lab.example.org"
        assert known["service:dir.public_host"] == "ldap.lab.example.org"
        assert known["service:dir.url"] == "https://ldap.lab.example.org"
