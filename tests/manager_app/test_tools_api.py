"""The everyday tools over REST: restart, logs, status, reveal and rotate a generated secret.

In dry-run against the dry-run state (the real runner renders and "deploys"),
and with the Kubernetes actions pointed at the HTTP double of the API server.
Secret values must appear in the reveal response and nowhere else: not in other
responses, not in the server's log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from k8s_double import STRATEGIC, KubeDouble
from manager_helpers import (
    BEARER,
    PASSWORD,
    build_manifest,
    make_settings,
    manifest_with_secret,
    running,
)

from manager_app.cluster import RESTARTED_AT, KubernetesActions
from manager_app.deployers import DeployResult, DryRunDeployer
from mora_dsl.manifest import Manifest
from stacks.config import StackConfig

pytestmark = pytest.mark.anyio

SECRET = "app.db_password"


async def deployed(app: FastAPI, client: httpx.AsyncClient, manifest: Manifest) -> None:
    body = {"manifest": manifest.model_dump(mode="json"), "params": {}}
    response = await client.post("/api/v1/manifests", json=body, headers=BEARER)
    assert response.status_code == 201, response.text
    await app.state.runner.wait_idle(60)


def dry_secrets(app: FastAPI) -> dict[str, Any]:
    return DryRunDeployer(app.state.settings.data_dir / "dry-run").secret_values()


class RecordingDryRun(DryRunDeployer):
    """The dry-run deployer, remembering each update's rotation stamps."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.rotations: list[dict[str, str]] = []

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        self.rotations.append(dict(config.rotate))
        return super().up(manifest, config)


# --------------------------------------------------------------------------- dry run


async def test_restart_logs_and_status_in_dry_run(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, manifest_with_secret())
        status = await client.get("/api/v1/services/app/status", headers=BEARER)
        assert status.status_code == 200, status.text
        assert status.json() | {"restarted_at": None} == {
            "service": "app", "namespace": "lab", "deployment": "app", "replicas": 1,
            "ready_replicas": 1, "restarted_at": None}
        restart = await client.post("/api/v1/services/app/restart", headers=BEARER)
        assert restart.status_code == 200, restart.text
        stamp = restart.json()["restarted_at"]
        status = await client.get("/api/v1/services/app/status", headers=BEARER)
        assert status.json()["restarted_at"] == stamp
        logs = await client.get("/api/v1/services/app/logs", headers=BEARER)
        assert logs.status_code == 200
        lines = logs.json()["lines"]
        assert "update applied (dry run): image example/app:1" in lines[0]
        assert "restarted by the admin" in lines[-1]
        tail = await client.get("/api/v1/services/app/logs?tail_lines=1", headers=BEARER)
        assert tail.json()["lines"] == lines[-1:]


async def test_unknown_or_undeployed_services_are_404(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        before = await client.post("/api/v1/services/app/restart", headers=BEARER)
        assert before.status_code == 404 and "mora up" in before.json()["detail"]
        # Posted but not deployed yet: the runner is not given time to run.
        manifest = build_manifest({"db": [], "app": ["db"]})
        app.state.manager.receive_manifest(manifest)
        for method, path in [("POST", "restart"), ("GET", "status")]:
            response = await client.request(method, f"/api/v1/services/app/{path}", headers=BEARER)
            assert response.status_code == 404, (path, response.text)
            assert "not deployed" in response.json()["detail"]
        for path in ["restart", "status", "logs"]:
            method = "POST" if path == "restart" else "GET"
            response = await client.request(method, f"/api/v1/services/nope/{path}", headers=BEARER)
            assert response.status_code == 404
            assert "no service 'nope'" in response.json()["detail"]
        bad = await client.get("/api/v1/services/app/logs?tail_lines=0", headers=BEARER)
        assert bad.status_code == 422


async def test_reveal_needs_the_password_and_rotate_changes_the_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path)
    deployer = RecordingDryRun(settings.data_dir / "dry-run")
    async with running(settings, deployer) as (app, client):
        await deployed(app, client, manifest_with_secret())
        value = dry_secrets(app)[SECRET]
        listed = await client.get("/api/v1/secrets", headers=BEARER)
        assert listed.json() == {"secrets": [{
            "id": SECRET, "name": "db_password", "kind": "password", "owner": "app",
            "used_by": ["app"], "rotated_at": None}]}

        url = f"/api/v1/secrets/{SECRET}/reveal"
        wrong = await client.post(url, json={"password": "not it"}, headers=BEARER)
        missing = await client.post(url, json={}, headers=BEARER)
        right = await client.post(url, json={"password": PASSWORD}, headers=BEARER)
        assert (wrong.status_code, missing.status_code, right.status_code) == (403, 422, 200)
        assert right.json() == {"id": SECRET, "value": value}
        assert right.headers["cache-control"] == "no-store"
        unknown = await client.post("/api/v1/secrets/nope/reveal", json={"password": PASSWORD},
                                    headers=BEARER)
        assert unknown.status_code == 404

        rotated = await client.post(f"/api/v1/secrets/{SECRET}/rotate", headers=BEARER)
        assert rotated.status_code == 202, rotated.text
        assert rotated.json()["update_id"] > 0 and rotated.json()["rotated_at"]
        new_value = dry_secrets(app)[SECRET]
        assert new_value != value
        await app.state.runner.wait_idle(60)
        again = await client.post(url, json={"password": PASSWORD}, headers=BEARER)
        assert again.json()["value"] == new_value
        # The update after the rotation ran with the secret's stamp in the stack config.
        assert SECRET in deployer.rotations[-1]
        updates = (await client.get("/api/v1/updates", headers=BEARER)).json()["updates"]
        assert updates[0]["triggers"] == [f"rotation of {SECRET}"]
        assert updates[0]["status"] == "succeeded"
        logs = (await client.get("/api/v1/services/app/logs", headers=BEARER)).json()["lines"]
        assert any(f"secret {SECRET} rotated" in line for line in logs)
        listed = (await client.get("/api/v1/secrets", headers=BEARER)).json()
        texts = [listed, rotated.json(), logs, updates]
    for shown in (value, new_value):
        assert shown not in caplog.text
        assert all(shown not in json.dumps(t) for t in texts)
    assert f"generated secret {SECRET} revealed" in caplog.text


async def test_reveal_before_generation_is_409_and_wrong_passwords_are_limited(
    tmp_path: Path,
) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        app.state.manager.receive_manifest(manifest_with_secret())  # no update has run
        url = f"/api/v1/secrets/{SECRET}/reveal"
        early = await client.post(url, json={"password": PASSWORD}, headers=BEARER)
        assert early.status_code == 409 and "first update" in early.json()["detail"]
        codes = [
            (await client.post(url, json={"password": f"guess {i}"}, headers=BEARER)).status_code
            for i in range(6)
        ]
        assert codes == [403] * 5 + [429]
        # The limit is the login's: the login is refused too, even with the right password.
        login = await client.post("/api/v1/login", json={"password": PASSWORD})
        assert login.status_code == 429


async def test_session_callers_need_the_csrf_token(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (app, client):
        await deployed(app, client, manifest_with_secret())
        token = (await client.post("/api/v1/login", json={"password": PASSWORD})).json()["csrf_token"]
        csrf = {"X-CSRF-Token": token}
        reveal = f"/api/v1/secrets/{SECRET}/reveal"
        for url, body in [("/api/v1/services/app/restart", None),
                          (reveal, {"password": PASSWORD}),
                          (f"/api/v1/secrets/{SECRET}/rotate", None)]:
            refused = await client.post(url, json=body)
            assert refused.status_code == 403, url
            accepted = await client.post(url, json=body, headers=csrf)
            assert accepted.status_code in (200, 202), (url, accepted.text)
        assert (await client.get("/api/v1/services/app/logs")).status_code == 200


async def test_rotation_without_dry_run_is_a_stamp_in_the_stack_config(tmp_path: Path) -> None:
    """Not in dry-run: no value is written by the manager; the stack regenerates the secret."""

    class Recording:
        def __init__(self) -> None:
            self.rotations: list[dict[str, str]] = []

        def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
            self.rotations.append(dict(config.rotate))
            return DeployResult(deployed=sorted(config.deploy or ()))

        def refresh(self, manifest: Manifest, config: StackConfig) -> None:
            pass

    deployer = Recording()
    settings = make_settings(tmp_path, dry_run=False)
    async with running(settings, deployer) as (app, client):
        await deployed(app, client, manifest_with_secret())
        assert all(r == {} for r in deployer.rotations)
        first = await client.post(f"/api/v1/secrets/{SECRET}/rotate", headers=BEARER)
        await app.state.runner.wait_idle(60)
        second = await client.post(f"/api/v1/secrets/{SECRET}/rotate", headers=BEARER)
        await app.state.runner.wait_idle(60)
    assert first.status_code == second.status_code == 202
    stamps = [r[SECRET] for r in deployer.rotations if SECRET in r]
    assert len(stamps) == 2 and stamps[0] != stamps[1]
    assert not (settings.data_dir / "dry-run").exists()


# --------------------------------------------------------------------------- Kubernetes


@pytest.fixture
def double(tmp_path: Path) -> Iterator[KubeDouble]:
    with KubeDouble(tmp_path) as running_double:
        yield running_double


async def test_tools_through_the_kubernetes_api(tmp_path: Path, double: KubeDouble) -> None:
    labels = {"app.kubernetes.io/name": "app", "app.kubernetes.io/instance": "lab"}
    double.state.add_deployment("lab", "app", labels, replicas=1, ready=0)
    double.state.add_pod("lab", "app-7d9f", labels, "2026-03-01T12:00:00Z",
                         ["starting", "listening on :8080"])
    async with running(make_settings(tmp_path)) as (app, client):
        actions = KubernetesActions.from_kubeconfig(double.kubeconfig, timeout=5)
        app.state.manager.cluster = actions
        app.state.manager.receive_manifest(build_manifest({"db": [], "app": ["db"]}))
        restart = await client.post("/api/v1/services/app/restart", headers=BEARER)
        assert restart.status_code == 200, restart.text
        patch = next(r for r in double.state.requests if r.method == "PATCH")
        assert patch.path == "/apis/apps/v1/namespaces/lab/deployments/app"
        assert patch.content_type.startswith(STRATEGIC)
        annotations = patch.body["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {RESTARTED_AT: restart.json()["restarted_at"]}
        logs = await client.get("/api/v1/services/app/logs?tail_lines=1", headers=BEARER)
        assert logs.json() == {"service": "app", "pod": "app-7d9f", "lines": ["listening on :8080"]}
        status = (await client.get("/api/v1/services/app/status", headers=BEARER)).json()
        assert (status["replicas"], status["ready_replicas"]) == (1, 0)
        assert status["restarted_at"] == restart.json()["restarted_at"]
        double.state.fail_next = [503]
        failed = await client.post("/api/v1/services/app/restart", headers=BEARER)
        assert failed.status_code == 502 and "503" in failed.json()["detail"]
        gone = await client.get("/api/v1/services/db/status", headers=BEARER)
        assert gone.status_code == 404 and "no Deployment" in gone.json()["detail"]
        actions.close()


async def test_openapi_documents_the_tools(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path)) as (_, client):
        spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert {"/api/v1/services/{name}/restart", "/api/v1/services/{name}/logs",
            "/api/v1/services/{name}/status", "/api/v1/secrets",
            "/api/v1/secrets/{secret_id}/reveal", "/api/v1/secrets/{secret_id}/rotate"} <= set(paths)
    reveal = paths["/api/v1/secrets/{secret_id}/reveal"]["post"]
    assert {"200", "403", "404", "409", "429"} <= set(reveal["responses"])
