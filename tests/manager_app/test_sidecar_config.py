"""The manager gives the services' stack what the micromanager sidecars need.

The manager's URL (``MORA_MANAGER_URL``, else derived for the cluster) and the
tokens it issued, read from ``<data>/micromanagers/<service>.token``, reach the
:class:`~stacks.config.StackConfig` that the deployers hand to the stack: the
real one (:class:`AutomationDeployer`, against a recording workspace) and the
dry run, whose rendered objects show the sidecars with token placeholders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from manager_helpers import BEARER, build_manifest, make_settings, running

from manager_app.crypto import write_private
from manager_app.deployers import AutomationDeployer, DryRunDeployer, Sidecars, make_deployer
from manager_app.micromanagers import read_tokens, token_path
from manager_app.settings import MANAGER_URL_ENV, Settings, sidecar_manager_url
from mora_dsl.manifest import Manifest
from stacks.config import StackConfig

IN_CLUSTER = "http://mora-manager.mora-system.svc.cluster.local:8080"
DIR_TOKEN = "dir-token-never-shown-0123456789"
APP_TOKEN = "app-token-never-shown-9876543210"


def lab() -> Manifest:
    """dir (ldap) ← app (appmm) ← web (no micromanager)."""
    base = build_manifest({"dir": [], "app": ["dir"], "web": ["app"]})
    kinds = {"dir": "ldap", "app": "appmm"}
    services = [s.model_copy(update={"micromanager": kinds.get(s.name)}) for s in base.services]
    return base.model_copy(update={"services": services})


def _issue(data_dir: Path, service: str, token: str) -> None:
    write_private(token_path(data_dir, service), token.encode())


class _RecordingWorkspace:
    def __init__(self) -> None:
        self.configs: list[StackConfig] = []

    def write_config(self, stack: str, config: StackConfig, *, create: bool = False) -> None:
        self.configs.append(config)

    def up(self, stack: str) -> Any:
        from stacks.automation import Result

        return Result({"create": 1}, {"deployed": ["dir", "app", "web"]})

    def refresh(self, stack: str) -> None:
        pass


@pytest.fixture
def not_in_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import manager_app.settings as settings_module

    monkeypatch.setattr(settings_module, "POD_NAMESPACE_FILE", tmp_path / "no-namespace-file")
    monkeypatch.delenv(MANAGER_URL_ENV, raising=False)


# --------------------------------------------------------------------------- tokens and URL


def test_read_tokens_reads_the_issued_files_only(tmp_path: Path) -> None:
    _issue(tmp_path, "dir", DIR_TOKEN + "\n")
    token_path(tmp_path, "empty").write_text("", encoding="utf-8")
    assert read_tokens(tmp_path, ["dir", "app", "empty"]) == {"dir": DIR_TOKEN}
    assert read_tokens(tmp_path / "nowhere", ["dir"]) == {}


def test_the_manager_url_comes_from_the_environment(tmp_path, monkeypatch, not_in_a_pod) -> None:
    monkeypatch.setenv(MANAGER_URL_ENV, "http://mora.example:8080")
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.manager_url == "http://mora.example:8080"
    assert sidecar_manager_url(settings) == "http://mora.example:8080"


def test_without_one_it_is_derived_for_the_cluster(tmp_path, monkeypatch, not_in_a_pod) -> None:
    import manager_app.settings as settings_module

    plain = Settings(data_dir=tmp_path)
    assert plain.manager_url is None
    assert sidecar_manager_url(plain) == IN_CLUSTER
    namespace = tmp_path / "namespace"
    namespace.write_text("mora-home\n", encoding="utf-8")
    monkeypatch.setattr(settings_module, "POD_NAMESPACE_FILE", namespace)
    other_domain = Settings(data_dir=tmp_path, stack_settings={"cluster_domain": "k8s.lan"})
    assert sidecar_manager_url(other_domain) == "http://mora-manager.mora-home.svc.k8s.lan:8080"


# --------------------------------------------------------------------------- the real deployer


def test_automation_deployer_puts_url_and_tokens_into_the_stack_config(
    tmp_path, monkeypatch, not_in_a_pod
) -> None:
    settings = Settings(data_dir=tmp_path / "data", stack="home",
                        stack_settings={"storage_class": "local-path",
                                        "micromanager_image": "registry.lan/mm:1"})
    _issue(settings.data_dir, "dir", DIR_TOKEN)
    _issue(settings.data_dir, "app", APP_TOKEN)
    _issue(settings.data_dir, "gone", "a token of a service no longer in the manifest")
    deployer = make_deployer(settings)
    assert isinstance(deployer, AutomationDeployer)
    workspace = _RecordingWorkspace()
    monkeypatch.setattr(deployer, "_workspace", lambda manifest: workspace)
    config = StackConfig(params={"domain": "example.org"}, deploy=frozenset({"dir", "app", "web"}))
    deployer.up(lab(), config)
    deployer.refresh(lab(), config)
    assert len(workspace.configs) == 2
    for written in workspace.configs:
        assert written.manager_url == IN_CLUSTER
        assert written.micromanager_token("dir") == DIR_TOKEN
        assert written.micromanager_token("app") == APP_TOKEN
        assert set(written.micromanager_tokens) == {"dir", "app"}
        assert written.storage_class == "local-path"
        assert written.micromanager_image == "registry.lan/mm:1"
        assert DIR_TOKEN not in repr(written) and APP_TOKEN not in str(written)


def test_a_token_issued_later_reaches_the_next_update(tmp_path, monkeypatch) -> None:
    """Tokens are read at each update, not when the manager starts."""
    deployer = AutomationDeployer("home", sidecars=Sidecars(tmp_path, IN_CLUSTER))
    workspace = _RecordingWorkspace()
    monkeypatch.setattr(deployer, "_workspace", lambda manifest: workspace)
    config = StackConfig(params={"domain": "example.org"})
    deployer.up(lab(), config)
    _issue(tmp_path, "dir", DIR_TOKEN)
    deployer.up(lab(), config)
    assert [set(c.micromanager_tokens) for c in workspace.configs] == [set(), {"dir"}]


# --------------------------------------------------------------------------- the dry run


def _containers(objects: list[dict[str, Any]], name: str) -> list[str]:
    deployment = next(o for o in objects if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == name)
    return [c["name"] for c in deployment["spec"]["template"]["spec"]["containers"]]


def test_dry_run_renders_the_sidecars_with_placeholders(tmp_path, not_in_a_pod) -> None:
    settings = Settings(data_dir=tmp_path / "data", dry_run=True)
    _issue(settings.data_dir, "dir", DIR_TOKEN)
    deployer = make_deployer(settings)
    assert isinstance(deployer, DryRunDeployer)
    config = StackConfig(params={"domain": "example.org"}, deploy=frozenset({"dir", "app", "web"}))
    deployer.up(lab(), config)
    objects = deployer.objects()
    assert _containers(objects, "dir") == ["dir", "micromanager"]
    assert _containers(objects, "app") == ["app"]  # no token issued for it (yet)
    assert _containers(objects, "web") == ["web"]
    secret = next(o for o in objects if o["metadata"]["name"] == "dir-micromanager")
    assert secret["stringData"] == {"token": "<micromanager-token:dir>"}
    text = (settings.data_dir / "dry-run" / DryRunDeployer.OBJECTS_FILE).read_text()
    assert DIR_TOKEN not in text


@pytest.mark.anyio
async def test_the_manager_issues_tokens_and_its_update_deploys_the_sidecars(
    tmp_path, not_in_a_pod
) -> None:
    """A manifest received → tokens issued → the dry-run update has a sidecar per token."""
    settings = make_settings(tmp_path, params={"domain": "example.org"},
                             manager_url="http://manager.lab:8080")
    async with running(settings) as (app, client):
        response = await client.post("/api/v1/manifests", headers=BEARER,
                                     json={"manifest": lab().model_dump(mode="json")})
        assert response.status_code == 201, response.text
        await app.state.runner.wait_idle()
        objects = json.loads(
            (settings.data_dir / "dry-run" / DryRunDeployer.OBJECTS_FILE).read_text())
        tokens = read_tokens(settings.data_dir, ["dir", "app"])
    assert set(tokens) == {"dir", "app"}
    assert _containers(objects, "dir") == ["dir", "micromanager"]
    assert _containers(objects, "app") == ["app", "micromanager"]
    sidecar = next(
        c for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "dir"
        for c in o["spec"]["template"]["spec"]["containers"] if c["name"] == "micromanager")
    assert sidecar["args"][:5] == ["ldap", "--service", "dir", "--manager",
                                   "http://manager.lab:8080"]
    text = json.dumps(objects)
    assert not any(token in text for token in tokens.values())
