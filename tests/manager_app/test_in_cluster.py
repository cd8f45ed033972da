"""What the in-cluster manager needs from its settings and deployers.

Its Deployment (``stacks.manager``) configures it through the environment:
``MORA_SECURE_COOKIES`` behind the Ingress's TLS, ``MORA_STACK_SETTINGS`` for the
stack record's settings (storage class, cert-manager issuer…) that the runner,
knowing only params and answers, does not put in the stack config. The dry-run
deployer renders from the runner's worker thread without help (no extra event
loop wrapper any more).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from manager_helpers import build_manifest, media_server

from manager_app.deployers import AutomationDeployer, DryRunDeployer, make_deployer
from manager_app.settings import SECURE_COOKIES_ENV, STACK_SETTINGS_ENV, Settings
from stacks.config import StackConfig


def test_environment_sets_secure_cookies_and_stack_settings(tmp_path, monkeypatch):
    monkeypatch.setenv(SECURE_COOKIES_ENV, "true")
    monkeypatch.setenv(STACK_SETTINGS_ENV, json.dumps({"storage_class": "local-path"}))
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.secure_cookies is True
    assert settings.stack_settings == {"storage_class": "local-path"}
    monkeypatch.setenv(STACK_SETTINGS_ENV, "{not json")
    with pytest.raises(ValueError, match=STACK_SETTINGS_ENV):
        Settings.from_env(data_dir=tmp_path)


def test_without_environment_nothing_changes(tmp_path, monkeypatch):
    monkeypatch.delenv(SECURE_COOKIES_ENV, raising=False)
    monkeypatch.delenv(STACK_SETTINGS_ENV, raising=False)
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.secure_cookies is False and settings.stack_settings == {}


class _RecordingWorkspace:
    def __init__(self) -> None:
        self.configs: list[StackConfig] = []

    def write_config(self, stack: str, config: StackConfig, *, create: bool = False) -> None:
        self.configs.append(config)

    def up(self, stack: str) -> Any:
        from stacks.automation import Result

        return Result({"create": 1}, {"deployed": ["whoami"]})

    def refresh(self, stack: str) -> None:
        pass


def test_automation_deployer_applies_the_stack_settings(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path, stack="home", stack_settings={
        "storage_class": "local-path", "cert_manager_issuer": "letsencrypt", "answers": "x"})
    deployer = make_deployer(settings)
    assert isinstance(deployer, AutomationDeployer)
    workspace = _RecordingWorkspace()
    monkeypatch.setattr(deployer, "_workspace", lambda manifest: workspace)
    config = StackConfig(params={"domain": "example.org"}, answers={"a.b": "secret"},
                         deploy=frozenset({"whoami"}))
    manifest = build_manifest({"whoami": []})
    result = deployer.up(manifest, config)
    deployer.refresh(manifest, config)
    assert result.deployed == ["whoami"]
    for written in workspace.configs:
        assert written.storage_class == "local-path"
        assert written.cert_manager_issuer == "letsencrypt"
        assert written.answer("a.b") == "secret" and written.deploy == frozenset({"whoami"})


def test_dry_run_renders_from_a_plain_thread_and_from_to_thread(tmp_path: Path):
    manifest = media_server()
    config = StackConfig(params={"domain": "home.example.com", "media_path": "/srv/media"},
                         deploy=frozenset({"qbittorrent"}))
    deployer = DryRunDeployer(tmp_path / "dry-run")
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.update(r=deployer.up(manifest, config)))
    thread.start()
    thread.join(timeout=60)
    assert out["r"].deployed == ["qbittorrent"]

    async def main() -> Any:
        return await asyncio.to_thread(deployer.up, manifest, config)

    assert asyncio.run(main()).deployed == ["qbittorrent"]
