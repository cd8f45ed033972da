"""When the manager calls a sidecar: inputs-answered after the update that applied the
answer, reconfigure after an update that changed a service, health polled on its own.

Sidecars are real kit micromanagers served in process (see test_micromanagers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from manager_helpers import BEARER, make_settings, running
from test_micromanagers import (
    EMAIL,
    Sidecars,
    answer,
    eventually,
    lab,
    plug,
    statuses,
    wait_hook,
)
from test_web import login

from manager_app.deployers import DeployError, DeployResult, DryRunDeployer
from manager_app.micromanagers import MicromanagerHub
from micromanager_kit import HookContext, Micromanager
from micromanager_kit import contract as c
from mora_dsl.manifest import Manifest
from stacks.config import StackConfig

pytestmark = pytest.mark.anyio

Calls = list[tuple[str, c.HookCall, list[str]]]


class FlakyDryRun(DryRunDeployer):
    """The dry run, failing the next ``fail`` updates."""

    fail = 0

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        if self.fail:
            self.fail -= 1
            raise DeployError("kubernetes:apps/v1:Deployment web: ImagePullBackOff")
        return super().up(manifest, config)


@asynccontextmanager
async def lab_with(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, Sidecars,
                                                          FlakyDryRun]]:
    settings = make_settings(tmp_path)
    deployer = FlakyDryRun(settings.data_dir / "dry-run")
    async with running(settings, deployer) as (app, client):
        hub: MicromanagerHub = app.state.micromanagers
        sidecars = Sidecars()
        hub.transport, hub.base_delay, hub.timeout = sidecars, 0.01, 5
        response = await client.post("/api/v1/manifests", headers=BEARER,
                                     json={"manifest": lab().model_dump(mode="json")})
        assert response.status_code == 201, response.text
        await app.state.runner.wait_idle()
        yield app, client, sidecars, deployer
        await hub.wait_idle()


def statuses_of_updates(app: FastAPI) -> list[str]:
    return [u.status for u in app.state.store.updates()]


def watching_mm(name: str, app: FastAPI, calls: Calls) -> Micromanager:
    """Records each hook with the status of the latest update at that moment."""
    mm = Micromanager(name)

    def record(hook: str, ctx: HookContext) -> None:
        calls.append((hook, ctx.call, [u.status for u in app.state.store.updates(1)]))

    @mm.after_start
    def after_start(ctx: HookContext) -> None:
        record("after_start", ctx)

    @mm.inputs_answered
    def inputs_answered(ctx: HookContext) -> None:
        record("inputs_answered", ctx)

    @mm.reconfigure
    def reconfigure(ctx: HookContext) -> None:
        record("reconfigure", ctx)

    return mm


async def running_lab(app: FastAPI, client: httpx.AsyncClient, sidecars: Sidecars,
                      calls: Calls) -> None:
    """dir and app run, both with a sidecar that has had its after-start."""
    await answer(client, "dir.admin_email", EMAIL)
    await eventually(lambda: app.state.store.states().get("app") == "running")
    await app.state.runner.wait_idle()
    await plug(app, sidecars, watching_mm("ldap", app, calls), "dir")
    await plug(app, sidecars, watching_mm("appmm", app, calls), "app")
    await wait_hook(client, "dir", "after_start", "ok")
    await wait_hook(client, "app", "after_start", "ok")
    calls.clear()


async def settle(app: FastAPI) -> None:
    await app.state.runner.wait_idle()
    await app.state.micromanagers.wait_idle()


# --------------------------------------------------------------------------- inputs-answered


async def test_inputs_answered_waits_for_the_update_that_applies_the_answer(
    tmp_path: Path,
) -> None:
    calls: Calls = []
    async with lab_with(tmp_path) as (app, client, sidecars, deployer):
        await running_lab(app, client, sidecars, calls)
        deployer.fail = 1  # the update carrying the answer fails
        await answer(client, "app.api_key", "typed-by-a-person")
        await settle(app)
        assert statuses_of_updates(app)[0] == "failed"
        assert calls == []  # the service does not have the value: nobody is told

        retry = await client.post("/api/v1/updates", headers=BEARER, json={"reason": "retry"})
        assert retry.status_code == 202
        await settle(app)
        await wait_hook(client, "app", "inputs_answered", "ok")
        assert [(hook, call.answered, seen) for hook, call, seen in calls] == [
            ("inputs_answered", ["app.api_key"], ["succeeded"])]

        # Another update without a new answer tells nobody again.
        await client.post("/api/v1/updates", headers=BEARER, json={"reason": "again"})
        await settle(app)
        assert len(calls) == 1


async def test_a_reporting_sidecar_is_not_told_of_its_own_report(tmp_path: Path) -> None:
    calls: Calls = []
    async with lab_with(tmp_path) as (app, client, sidecars, _):
        await running_lab(app, client, sidecars, calls)
        token = (app.state.settings.data_dir / "micromanagers" / "app.token").read_text()
        response = await client.post(
            c.PATH_REPORT.format(service="app"), headers={"Authorization": f"Bearer {token}"},
            json=c.Report(idempotency_key="k", values={"api_key": "made-by-app"})
            .model_dump(mode="json"))
        assert response.status_code == 200 and response.json()["changed"] == ["app.api_key"]
        await settle(app)
        assert app.state.store.states()["web"] == "running"
        assert [hook for hook, _, _ in calls] == []


# --------------------------------------------------------------------------- reconfigure


async def test_reconfigure_follows_a_changed_param_definition_or_rotated_secret(
    tmp_path: Path,
) -> None:
    calls: Calls = []
    async with lab_with(tmp_path) as (app, client, sidecars, _):
        await running_lab(app, client, sidecars, calls)

        # A param dir uses (DOMAIN) changes: dir is reconfigured, app is not.
        response = await client.post("/api/v1/manifests", headers=BEARER, json={
            "manifest": lab().model_dump(mode="json"), "params": {"domain": "new.example.com"}})
        assert response.status_code == 201, response.text
        await settle(app)
        await wait_hook(client, "dir", "reconfigure", "ok")
        assert [(h, call.service, call.changed, seen) for h, call, seen in calls] == [
            ("reconfigure", "dir", ["param:domain"], ["succeeded"])]
        assert calls[0][1].config is not None
        assert calls[0][1].config.values["param:domain"] == "new.example.com"
        calls.clear()

        # app's definition changes (a new image): app is reconfigured.
        changed = lab()
        changed = changed.model_copy(update={"services": [
            s.model_copy(update={"image": "example/app:2"}) if s.name == "app" else s
            for s in changed.services]})
        await client.post("/api/v1/manifests", headers=BEARER, json={
            "manifest": changed.model_dump(mode="json")})
        await settle(app)
        assert [(h, call.service, call.changed) for h, call, _ in calls] == [
            ("reconfigure", "app", [])]
        calls.clear()

        # dir's generated password is rotated: dir is reconfigured once the update ran.
        rotated = await client.post("/api/v1/secrets/dir.admin_password/rotate", headers=BEARER)
        assert rotated.status_code in (200, 202), rotated.text
        await settle(app)
        assert [(h, call.service, call.changed) for h, call, _ in calls] == [
            ("reconfigure", "dir", ["secret:dir.admin_password"])]


# --------------------------------------------------------------------------- health


async def test_health_is_polled_for_running_services_and_shown(tmp_path: Path) -> None:
    healthy = {"dir": True}
    async with lab_with(tmp_path) as (app, client, sidecars, _):
        hub: MicromanagerHub = app.state.micromanagers
        mm = Micromanager("ldap")

        @mm.health
        def health(ctx: HookContext) -> Any:
            return "directory answers" if healthy["dir"] else False

        await plug(app, sidecars, mm, "dir")
        assert await hub.check_health() == {}  # dir does not run yet: not asked
        await answer(client, "dir.admin_email", EMAIL)
        await eventually(lambda: app.state.store.states().get("dir") == "running")

        hub.health_interval = 0.05  # the poller picks the new interval up
        found = await eventually_status(client, lambda h: h and h["healthy"] is True)
        assert found["message"] == "directory answers" and found["checked_at"]

        healthy["dir"] = False
        found = await eventually_status(client, lambda h: h and h["healthy"] is False)

        sidecars.apps.pop("dir-sidecar")  # the sidecar went away
        found = await eventually_status(client, lambda h: h and h["healthy"] is None)
        assert "cannot be reached" in found["message"]
        hub.health_interval = 3600

        await login(client)
        service_page = await client.get("/services/dir")
        assert service_page.status_code == 200
        assert "Health:" in service_page.text and "unknown" in service_page.text


async def eventually_status(client: httpx.AsyncClient, check: Any) -> dict[str, Any]:
    for _ in range(250):
        health = (await statuses(client))["dir"]["health"]
        if check(health):
            return dict(health)
        await asyncio.sleep(0.02)
    raise AssertionError(f"health not as expected: {health}")


async def test_health_checks_never_hold_up_an_update(tmp_path: Path) -> None:
    async with lab_with(tmp_path) as (app, client, sidecars, _):
        hub: MicromanagerHub = app.state.micromanagers
        mm = Micromanager("ldap")
        release = asyncio.Event()

        @mm.health
        async def health(ctx: HookContext) -> bool:
            await release.wait()  # a health check that hangs
            return True

        await plug(app, sidecars, mm, "dir")
        await answer(client, "dir.admin_email", EMAIL)
        await eventually(lambda: app.state.store.states().get("dir") == "running")
        hanging = asyncio.create_task(hub.check_health())
        await asyncio.sleep(0.05)
        queued = await client.post("/api/v1/updates", headers=BEARER, json={"reason": "x"})
        await app.state.runner.wait_idle(10)
        assert app.state.store.update(queued.json()["update_id"]).status == "succeeded"
        assert not hanging.done()
        release.set()
        assert (await hanging)["dir"].healthy is True
