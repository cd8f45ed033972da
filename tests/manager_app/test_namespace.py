"""The stack's namespace in the manager: one helper, used by the runner, the cluster
actions, the addresses given to micromanagers and the real-mode reveal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from manager_helpers import BEARER, build_manifest, make_settings, running

from manager_app.cluster import StackSecrets, Target, make_generated_secrets
from manager_app.core import Manager, base_config, stack_namespace
from manager_app.deployers import DeployResult
from manager_app.micromanagers import service_addresses
from manager_app.settings import STACK_SETTINGS_ENV, Settings
from mora_dsl.manifest import Manifest, Secret
from stacks.config import StackConfig

pytestmark = pytest.mark.anyio

OWN = {"namespace": "home-b", "cluster_domain": "k8s.example"}


def lab() -> Manifest:
    manifest = build_manifest({"db": [], "app": ["db"]})
    return manifest.model_copy(update={"project": manifest.project.model_copy(
        update={"namespace": "Lab_Project"})})


def test_the_namespace_of_a_stack_is_its_setting_else_the_projects(tmp_path: Path) -> None:
    manifest = lab()
    assert stack_namespace(make_settings(tmp_path), manifest) == "lab-project"
    own = make_settings(tmp_path, stack_settings=OWN)
    assert stack_namespace(own, manifest) == "home-b"
    assert base_config(own).cluster_domain == "k8s.example"
    # The helper agrees with what the stack renders with.
    from stacks.config import stack_namespace as rendered

    assert rendered(manifest, StackConfig(namespace="home-b")) == "home-b"


def test_a_bad_namespace_in_the_stack_settings_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STACK_SETTINGS_ENV, json.dumps({"namespace": "Not_A_Namespace"}))
    with pytest.raises(ValueError, match="invalid stack settings"):
        Settings.from_env(data_dir=tmp_path)
    monkeypatch.setenv(STACK_SETTINGS_ENV, json.dumps({"namespace": "home-b", "other": 1}))
    assert Settings.from_env(data_dir=tmp_path).stack_settings["namespace"] == "home-b"


def test_service_addresses_use_the_stacks_namespace_and_cluster_domain() -> None:
    manifest = lab()
    default = service_addresses(manifest, {})
    assert default["service:app.host"] == "app.lab-project.svc.cluster.local"
    own = service_addresses(manifest, {}, namespace="home-b", cluster_domain="k8s.example")
    assert own["service:app.host"] == "app.home-b.svc.k8s.example"
    assert own["service:app.internal_url"] == "http://app.home-b.svc.k8s.example:8080"


class Recording:
    def __init__(self) -> None:
        self.configs: list[StackConfig] = []

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        self.configs.append(config)
        return DeployResult(deployed=sorted(config.deploy or ()))

    def refresh(self, manifest: Manifest, config: StackConfig) -> None:
        pass


async def test_updates_targets_and_sidecar_config_use_the_stacks_namespace(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, stack_settings=OWN)
    deployer = Recording()
    manifest = lab()
    async with running(settings, deployer) as (app, client):
        response = await client.post("/api/v1/manifests", headers=BEARER,
                                     json={"manifest": manifest.model_dump(mode="json")})
        assert response.status_code == 201
        await app.state.runner.wait_idle(30)
        manager: Manager = app.state.manager
        assert manager.namespace() == "home-b"
        target = manager._target("app")
        hub = app.state.micromanagers
        known = hub.known_values(manager.manifest(), "app")
    assert deployer.configs and all(
        c.namespace == "home-b" and c.cluster_domain == "k8s.example" for c in deployer.configs)
    assert (target.namespace, target.deployment) == ("home-b", "app")
    assert known["service:db.internal_url"] == "http://db.home-b.svc.k8s.example:8080"


async def test_dry_run_tools_act_in_the_stacks_namespace(tmp_path: Path) -> None:
    """The dry run renders with the stack settings too, so status and restart find it."""
    settings = make_settings(tmp_path, stack_settings={"namespace": "home-b"})
    async with running(settings) as (app, client):
        await client.post("/api/v1/manifests", headers=BEARER,
                          json={"manifest": lab().model_dump(mode="json")})
        await app.state.runner.wait_idle(30)
        status = await client.get("/api/v1/services/app/status", headers=BEARER)
        restart = await client.post("/api/v1/services/app/restart", headers=BEARER)
    assert status.status_code == 200, status.text
    assert status.json()["namespace"] == "home-b"
    assert restart.status_code == 200, restart.text


def test_target_of_without_a_namespace_is_the_projects() -> None:
    assert Target.of(lab(), "app").namespace == "lab-project"
    assert Target.of(lab(), "app", "home-b").namespace == "home-b"


def test_the_real_reveal_reads_the_stack_the_deployer_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, dry_run=False, stack="home", stack_settings=OWN)
    secrets = make_generated_secrets(settings)
    assert isinstance(secrets, StackSecrets)
    assert secrets.deployer.stack == "home"
    assert secrets.deployer.stack_settings == OWN
    assert secrets.deployer.home == settings.data_dir / "pulumi"

    seen: list[Any] = []

    class Workspace:
        def reveal_secret(self, stack: str, secret_id: str) -> str:
            seen.append((stack, secret_id))
            return "s3cret"

    built: list[Any] = []

    def workspace(self: Any, manifest: Manifest) -> Workspace:
        built.append(self)
        return Workspace()

    monkeypatch.setattr(type(secrets.deployer), "_workspace", workspace)
    secret = Secret(id="app.key", name="key", owner="app", kind="token", span=lab().services[0].span)
    assert secrets.reveal(lab(), secret) == "s3cret"
    assert seen == [("home", "app.key")] and built == [secrets.deployer]
