"""The update runner: coalescing, failures and retries, resuming, the dry-run deployer."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from manager_helpers import (
    BEARER,
    MEDIA_PARAMS,
    build_manifest,
    inp,
    make_settings,
    media_server,
    post_manifest,
    running,
)

from manager_app.deployers import (
    DeployError,
    DeployResult,
    DryRunDeployer,
    TransientDeployError,
    generate_secret,
)
from manager_app.store import Store
from mora_dsl.manifest import Manifest
from stacks.config import StackConfig

pytestmark = pytest.mark.anyio


class Recording:
    """A deployer that records every call (answers included, for the test only)."""

    def __init__(self, fail: list[Exception] | None = None) -> None:
        self.calls: list[tuple[str, frozenset[str], dict[str, str]]] = []
        self.fail = list(fail or [])

    def _record(self, op: str, config: StackConfig) -> None:
        answers = {k: v.get_secret_value() for k, v in config.answers.items()}
        self.calls.append((op, frozenset(config.deploy or ()), answers))

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        self._record("up", config)
        if self.fail:
            raise self.fail.pop(0)
        return DeployResult(deployed=sorted(config.deploy or ()))

    def refresh(self, manifest: Manifest, config: StackConfig) -> None:
        self._record("refresh", config)


def many_inputs(n: int = 100) -> Manifest:
    return build_manifest({"app": []}, [inp(f"app.v{i:03d}", used_by=["app"]) for i in range(n)])


async def test_a_burst_of_answers_makes_at_most_two_updates_with_every_value(tmp_path: Path) -> None:
    deployer = Recording()
    settings = make_settings(tmp_path, debounce_seconds=0.3)
    async with running(settings, deployer) as (app, client):
        await post_manifest(client, many_inputs())
        await app.state.runner.wait_idle(30)
        before = len(app.state.store.updates())

        # Sent at once; how long the burst takes depends on the machine, so it is not
        # asserted (speed is measured in benchmarks/manager.py, not in tests).
        responses = await asyncio.gather(*(
            client.put(f"/api/v1/answers/app.v{i:03d}", json={"value": f"value-{i}"}, headers=BEARER)
            for i in range(100)
        ))
        assert all(r.status_code == 200 for r in responses)
        await app.state.runner.wait_idle(30)
        updates = app.state.store.updates()
        plan = app.state.manager.plan()
    assert 1 <= len(updates) - before <= 2
    assert all(u.status == "succeeded" for u in updates)
    op, deploy, answers = deployer.calls[-1]
    assert op == "up" and deploy == {"app"}
    assert answers == {f"app.v{i:03d}": f"value-{i}" for i in range(100)}
    assert plan.service("app").state == "running"


async def test_a_failure_is_recorded_and_a_retry_succeeds(tmp_path: Path) -> None:
    deployer = Recording(fail=[DeployError("kubernetes:apps/v1:Deployment app: ImagePullBackOff")])
    async with running(make_settings(tmp_path), deployer) as (app, client):
        await post_manifest(client, build_manifest({"app": []}))
        await app.state.runner.wait_idle(30)
        [failed] = app.state.store.updates()
        record = app.state.store.service_records()["app"]
        plan = (await client.get("/api/v1/plan", headers=BEARER)).json()
        assert failed.status == "failed" and "ImagePullBackOff" in (failed.error or "")
        assert record.state == "failed" and "ImagePullBackOff" in (record.error or "")
        assert plan["services"][0]["state"] == "failed"

        retry = await client.post("/api/v1/updates", json={"reason": "retry"}, headers=BEARER)
        assert retry.status_code == 202
        await app.state.runner.wait_idle(30)
        latest = app.state.store.updates()[0]
        assert latest.status == "succeeded" and latest.triggers == ["retry"]
        assert app.state.store.states() == {"app": "running"}


async def test_transient_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    deployer = Recording(fail=[TransientDeployError("connection refused"),
                               TransientDeployError("i/o timeout")])
    async with running(make_settings(tmp_path, transient_attempts=3), deployer) as (app, client):
        await post_manifest(client, build_manifest({"app": []}))
        await app.state.runner.wait_idle(30)
        [update] = app.state.store.updates()
    assert update.status == "succeeded" and update.attempts == 3
    assert [c[0] for c in deployer.calls] == ["up", "up", "up"]


async def test_transient_failures_give_up_after_the_last_attempt(tmp_path: Path) -> None:
    deployer = Recording(fail=[TransientDeployError("connection refused")] * 2)
    async with running(make_settings(tmp_path, transient_attempts=2), deployer) as (app, client):
        await post_manifest(client, build_manifest({"app": []}))
        await app.state.runner.wait_idle(30)
        [update] = app.state.store.updates()
    assert update.status == "failed" and update.error == "connection refused"


async def test_a_deployer_bug_fails_one_update_not_the_runner(tmp_path: Path) -> None:
    deployer = Recording(fail=[ZeroDivisionError("oops")])
    async with running(make_settings(tmp_path), deployer) as (app, client):
        await post_manifest(client, build_manifest({"app": []}))
        await app.state.runner.wait_idle(30)
        await client.post("/api/v1/updates", headers=BEARER)
        await app.state.runner.wait_idle(30)
        second, first = app.state.store.updates()
    assert first.status == "failed" and "internal error" in (first.error or "")
    assert second.status == "succeeded"


async def test_an_interrupted_update_is_resumed_with_a_refresh_first(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    manifest = build_manifest({"db": [], "app": ["db"]}, [inp("app.key", used_by=["app"])])
    # What a manager killed mid-update leaves behind.
    store = Store.open(settings.data_dir)
    store.add_manifest(manifest, {}, [])
    store.set_answer("app.key", "kept-answer")
    update_id = store.enqueue_update("manifest received", ["added services: app, db"])
    store.start_update(update_id, ["db"])
    store.set_states({"db": "deploying"}, update_id=update_id)
    store.close()

    deployer = Recording()
    async with running(settings, deployer) as (app, _):
        await app.state.runner.wait_idle(30)
        updates = {u.id: u for u in app.state.store.updates()}
        states = app.state.store.states()
    assert updates[update_id].status == "interrupted"
    resumed = next(u for u in updates.values() if u.resume)
    assert resumed.status == "succeeded" and resumed.changes == ["added services: app, db"]
    assert [c[0] for c in deployer.calls[:2]] == ["refresh", "up"]
    assert deployer.calls[1][1] == {"db"}
    # The next wave followed, with the answer given before the crash.
    assert states == {"db": "running", "app": "running"}
    assert deployer.calls[-1][2] == {"app.key": "kept-answer"}


# --------------------------------------------------------------------------- the dry-run deployer


async def test_dry_run_generates_real_private_secrets_and_never_logs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(tmp_path)
    async with running(settings) as (app, client):
        await client.post(
            "/api/v1/manifests",
            json={"manifest": media_server().model_dump(mode="json"), "params": MEDIA_PARAMS},
            headers=BEARER,
        )
        await app.state.runner.wait_idle(60)
    folder = settings.data_dir / "dry-run"
    secrets_file = folder / DryRunDeployer.SECRETS_FILE
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    values: dict[str, Any] = json.loads(secrets_file.read_text())
    assert set(values) == {s.id for s in media_server().secrets}
    password = values["ldap_admin_password"]
    assert len(password) == 32 and password.isalnum()
    assert len(values["sonarr.api_key"]) == 32 and values["sonarr.api_key"] != values["radarr.api_key"]
    assert values["internal_ca"]["cert_pem"].startswith("-----BEGIN CERTIFICATE-----")
    rendered = (folder / DryRunDeployer.OBJECTS_FILE).read_text()
    logged = caplog.text
    for value in _leaves(values):
        assert value not in rendered and value not in logged
    # Generated once: a second update keeps them.
    deployer = DryRunDeployer(folder)
    deployer._ensure_secrets(media_server())
    assert deployer.secret_values() == values


def _leaves(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [value] if isinstance(value, str) else []


def test_generated_secrets_follow_their_arguments() -> None:
    m = media_server()
    assert len(generate_secret(m.secret("lldap.jwt_secret"))) == 64  # 32 bytes, hex
    special = m.secret("ldap_admin_password").model_copy(update={"args": {"length": 12, "special": True}})
    assert len(generate_secret(special)) == 12
    tls = generate_secret(m.secret("lldap.tls"))
    assert tls["private_key_pem"].startswith("-----BEGIN PRIVATE KEY-----")


async def test_an_inconsistent_stored_manifest_is_refused_with_a_visible_failure(
    tmp_path: Path,
) -> None:
    """One stored before manifests were checked on arrival: the update fails, said why."""
    from manager_app.core import manifest_problems

    good = build_manifest({"db": [], "app": ["db"]})
    app_svc = good.service("app").model_copy(update={
        "depends_on": ["ghost"], "inputs": ["app.missing"], "volumes": ["app.nowhere"]})
    bad = good.model_copy(update={
        "services": [good.service("db"), app_svc]})
    assert manifest_problems(bad)
    settings = make_settings(tmp_path)
    store = Store.open(settings.data_dir)
    store.add_manifest(bad, dict(MEDIA_PARAMS), [])
    store.close()

    deployer = Recording()
    async with running(settings, deployer) as (app, client):
        queued = await client.post("/api/v1/updates", json={"reason": "try"}, headers=BEARER)
        assert queued.status_code == 202
        await app.state.runner.wait_idle(30)
        update = app.state.store.update(queued.json()["update_id"])
        history = (await client.get("/api/v1/updates", headers=BEARER)).json()["updates"]
        states = app.state.store.states()
        plan = await client.get("/api/v1/plan", headers=BEARER)
        page = await client.get("/", headers=BEARER)
    assert plan.status_code < 500 and page.status_code < 500
    assert deployer.calls == []  # nothing reached the deployer
    assert update.status == "failed" and "inconsistent" in (update.error or "")
    assert "unknown service 'ghost'" in update.error and "send a corrected manifest" in update.error
    assert history[0]["status"] == "failed" and history[0]["error"] == update.error
    assert states == {}  # no service left "deploying"


async def test_a_deployer_bug_leaves_no_service_deploying(tmp_path: Path) -> None:
    deployer = Recording(fail=[KeyError("lldap.data")])
    async with running(make_settings(tmp_path), deployer) as (app, client):
        await post_manifest(client, build_manifest({"app": []}))
        await app.state.runner.wait_idle(30)
        update = app.state.store.updates()[0]
        states = app.state.store.states()
    assert update.status == "failed" and update.error == "internal error: KeyError"
    assert states == {"app": "failed"}
