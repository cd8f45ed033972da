"""The whole-stack routes: ``POST /api/v1/preview``, ``POST /api/v1/destroy``, ``GET /api/v1/ca``.

In-process (httpx over ASGI) with the dry-run deployer: the preview compares the
rendered objects with the last update's, the destroy drops them (volumes counted
as kept unless asked) and waits for the update lock, and a dry run has no CA.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from manager_helpers import (
    BEARER,
    body_of,
    build_manifest,
    make_settings,
    manifest_with_secret,
    running,
)

from manager_app.app import create_app
from manager_app.core import NoIngressCa, ingress_ca_certificate
from manager_app.deployers import DeployResult, DryRunDeployer
from manager_app.settings import Settings
from mora_dsl.manifest import Manifest
from stacks.config import StackConfig

pytestmark = pytest.mark.anyio

ROUTES = [("POST", "/api/v1/preview"), ("POST", "/api/v1/destroy"), ("GET", "/api/v1/ca")]
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


async def deployed(app: FastAPI, client: httpx.AsyncClient, manifest: Manifest) -> None:
    response = await client.post("/api/v1/manifests", json=body_of(manifest), headers=BEARER)
    assert response.status_code == 201, response.text
    await app.state.runner.wait_idle(60)


async def states(client: httpx.AsyncClient) -> dict[str, str]:
    plan = (await client.get("/api/v1/plan", headers=BEARER)).json()
    return {s["name"]: s["state"] for s in plan["services"]}


@asynccontextmanager
async def without_runner(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its runner not started: a posted manifest stays queued."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://manager.test") as client:
        yield app, client
    app.state.store.close()


# --------------------------------------------------------------------------- auth


async def test_the_stack_routes_need_the_token(settings: Settings) -> None:
    async with running(settings) as (_, client):
        for method, path in ROUTES:
            assert (await client.request(method, path)).status_code == 401, path
            wrong = {"Authorization": "Bearer nope"}
            body = {"confirm": "default"} if path.endswith("destroy") else None
            response = await client.request(method, path, headers=wrong, json=body)
            assert response.status_code == 401, path


async def test_openapi_documents_the_stack_routes(settings: Settings) -> None:
    async with running(settings) as (_, client):
        spec = (await client.get("/openapi.json")).json()
    assert {"/api/v1/preview", "/api/v1/destroy", "/api/v1/ca"} <= set(spec["paths"])
    destroy = spec["paths"]["/api/v1/destroy"]["post"]
    assert "requestBody" in destroy and "422" in destroy["responses"]


# --------------------------------------------------------------------------- preview


async def test_preview_without_a_manifest_is_404(settings: Settings) -> None:
    async with running(settings) as (_, client):
        response = await client.post("/api/v1/preview", headers=BEARER)
    assert response.status_code == 404
    assert "no manifest yet" in response.json()["detail"]


async def test_preview_of_the_first_update_lists_what_it_creates(tmp_path: Path) -> None:
    async with without_runner(make_settings(tmp_path)) as (app, client):
        posted = await client.post("/api/v1/manifests", json=body_of(manifest_with_secret()),
                                   headers=BEARER)
        assert posted.status_code == 201
        response = await client.post("/api/v1/preview", headers=BEARER)
        assert response.status_code == 200, response.text
        preview = response.json()
        # Previewing changes nothing: the update is still queued, no object was written.
        assert app.state.store.next_queued() is not None
        assert not (app.state.settings.data_dir / "dry-run" / "objects.json").exists()
    assert preview["stack"] == "default" and preview["dry_run"] is True
    assert preview["deploy"] == ["db"]  # app waits for db to run
    assert preview["changes"]["create"] == len(preview["steps"]) > 0
    assert preview["changes"]["update"] == preview["changes"]["delete"] == 0
    assert ("create", "Deployment", "db") in {
        (s["operation"], s["type"], s["name"]) for s in preview["steps"]}


async def test_preview_of_a_deployed_stack_shows_no_change_and_no_secret(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, manifest_with_secret())
        response = await client.post("/api/v1/preview", headers=BEARER)
        secrets = DryRunDeployer(app.state.settings.data_dir / "dry-run").secret_values()
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["steps"] == []
    assert preview["changes"]["same"] > 0
    assert preview["changes"]["create"] == preview["changes"]["update"] == 0
    assert secrets and all(str(v) not in response.text for v in secrets.values())


async def test_preview_names_an_object_that_would_go(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, build_manifest({"db": [], "web": []}))
        folder = app.state.settings.data_dir / "dry-run"
        objects = json.loads((folder / "objects.json").read_text())
        stray = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "left-over", "namespace": "lab"}, "data": {}}
        (folder / "objects.json").write_text(json.dumps([*objects, stray]))
        preview = (await client.post("/api/v1/preview", headers=BEARER)).json()
    assert preview["steps"] == [{"operation": "delete", "type": "ConfigMap", "name": "left-over"}]
    assert preview["changes"]["delete"] == 1


# --------------------------------------------------------------------------- destroy


async def test_destroy_needs_the_stack_name_as_confirmation(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, manifest_with_secret())
        missing = await client.post("/api/v1/destroy", json={}, headers=BEARER)
        wrong = await client.post("/api/v1/destroy", json={"confirm": "other"}, headers=BEARER)
        still = await states(client)
        objects = app.state.settings.data_dir / "dry-run" / "objects.json"
        assert objects.exists()
    assert missing.status_code == 422
    assert wrong.status_code == 422
    assert "must be this manager's stack name ('default')" in wrong.json()["detail"]
    assert set(still.values()) == {"running"}


async def test_destroy_keeps_volumes_and_the_next_manifest_deploys_again(tmp_path: Path) -> None:
    manifest = manifest_with_secret()
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, manifest)
        folder = app.state.settings.data_dir / "dry-run"
        response = await client.post("/api/v1/destroy", json={"confirm": "default"},
                                     headers=BEARER)
        assert response.status_code == 200, response.text
        result = response.json()
        after = await states(client)
        assert not (folder / "objects.json").exists()
        assert not (folder / "secrets.json").exists()
        # Nothing redeploys by itself...
        await app.state.runner.wait_idle(30)
        assert "running" not in (await states(client)).values()
        # ...until the manifest comes again (`mora up`), unchanged.
        await deployed(app, client, manifest)
        again = await states(client)
        logs = (await client.get("/api/v1/services/app/logs", headers=BEARER)).json()
    assert result["stack"] == "default" and result["volumes_kept"] is True
    assert result["changes"]["delete"] > 0 and result["cancelled_updates"] == []
    assert "running" not in after.values()
    assert set(again.values()) == {"running"}
    assert "stack destroyed (dry run)" in json.dumps(logs)


async def test_destroy_with_volumes_and_queued_updates_cancelled(tmp_path: Path) -> None:
    async with without_runner(make_settings(tmp_path)) as (app, client):
        await client.post("/api/v1/manifests", json=body_of(manifest_with_secret()),
                          headers=BEARER)
        queued = app.state.store.next_queued()
        response = await client.post(
            "/api/v1/destroy", json={"confirm": "default", "delete_volumes": True}, headers=BEARER)
        update = app.state.store.update(queued.id)
        assert app.state.store.next_queued() is None
    assert response.status_code == 200, response.text
    assert response.json()["volumes_kept"] is False
    assert response.json()["cancelled_updates"] == [queued.id]
    assert update.status == "failed" and "destroyed" in (update.error or "")


async def test_destroy_waits_for_the_running_update(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, manifest_with_secret())
        runner = app.state.runner
        await runner.lock.acquire()  # as an update in progress holds it
        try:
            task = asyncio.create_task(client.post(
                "/api/v1/destroy", json={"confirm": "default"}, headers=BEARER))
            await asyncio.sleep(0.3)
            assert not task.done()
        finally:
            runner.lock.release()
        response = await task
    assert response.status_code == 200


async def test_a_deployer_without_stack_operations_answers_501(tmp_path: Path) -> None:
    class UpOnly:
        def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
            return DeployResult(deployed=sorted(config.deploy or []))

        def refresh(self, manifest: Manifest, config: StackConfig) -> None:
            pass

    async with running(make_settings(tmp_path), UpOnly()) as (app, client):
        await deployed(app, client, manifest_with_secret())
        response = await client.post("/api/v1/preview", headers=BEARER)
    assert response.status_code == 501


# --------------------------------------------------------------------------- ca


async def test_ca_in_dry_run_is_404_with_the_reason(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, manifest_with_secret())
        response = await client.get("/api/v1/ca", headers=BEARER)
    assert response.status_code == 404
    assert "dry run" in response.json()["detail"]


async def test_ca_from_the_stack_outputs(tmp_path: Path) -> None:
    class WithCa(DryRunDeployer):
        def outputs(self, manifest: Manifest) -> dict[str, Any]:
            return {"ingress_ca_cert": CA_PEM.rstrip("\n"), "urls": {}}

    settings = make_settings(tmp_path)
    deployer = WithCa(settings.data_dir / "dry-run")
    async with running(settings, deployer) as (app, client):
        await deployed(app, client, manifest_with_secret())
        response = await client.get("/api/v1/ca", headers=BEARER)
    assert response.status_code == 200, response.text
    assert response.json() == {"stack": "default", "cert_pem": CA_PEM}


def test_why_there_is_no_ca(tmp_path: Path) -> None:
    real = make_settings(tmp_path, dry_run=False, stack="home")
    with pytest.raises(NoIngressCa, match="no internal CA yet"):
        ingress_ca_certificate(real, {})
    issuer = make_settings(tmp_path, dry_run=False, stack="home",
                           stack_settings={"cert_manager_issuer": "letsencrypt"})
    with pytest.raises(NoIngressCa, match=r"cert-manager \(issuer letsencrypt\)"):
        ingress_ca_certificate(issuer, {"ingress_ca_cert": ""})
