"""Removing a service: two updates (claims released, then dropped), resumed after a restart.

Claims are created with ``protect=True`` and Pulumi reads ``protect`` from its
saved state, so a confirmed removal is carried out as a first update with the
service still in the manifest and listed in ``StackConfig.released`` (claims
unprotected but retained, everything else dropped), then an update without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from manager_helpers import BEARER, SPAN, build_manifest, make_settings, post_manifest, running

from manager_app.deployers import DeployResult, DryRunDeployer
from manager_app.store import Store
from mora_dsl.manifest import Manifest, Mount, Volume
from stacks.config import StackConfig

pytestmark = pytest.mark.anyio


class Recording:
    """Records every call: the operation, the services in the manifest, deploy and released."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def _record(self, op: str, manifest: Manifest, config: StackConfig) -> None:
        self.calls.append({
            "op": op,
            "services": {s.name for s in manifest.services},
            "deploy": set(config.deploy or ()),
            "released": set(config.released),
        })

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        self._record("up", manifest, config)
        return DeployResult(deployed=sorted(config.deploy or ()))

    def refresh(self, manifest: Manifest, config: StackConfig) -> None:
        self._record("refresh", manifest, config)


def with_data(manifest: Manifest) -> Manifest:
    """``extra`` gets a claim (``extra.data``) mounted at /data."""
    volume = Volume(id="extra.data", name="data", owner="extra", kind="claim", size="1Gi",
                    span=SPAN)
    services = [
        s.model_copy(update={"volumes": ["extra.data"],
                             "mounts": [Mount(volume="extra.data", path="/data", span=SPAN)]})
        if s.name == "extra" else s
        for s in manifest.services
    ]
    return manifest.model_copy(update={"services": services, "volumes": [volume]})


THREE = with_data(build_manifest({"db": [], "app": ["db"], "extra": []}))
TWO = build_manifest({"db": [], "app": ["db"]})


async def deployed_then_removed(app: Any, client: Any) -> None:
    """THREE deployed, then TWO received: ``extra`` awaits the admin's confirmation."""
    await post_manifest(client, THREE)
    await app.state.runner.wait_idle(30)
    await post_manifest(client, TWO)
    await app.state.runner.wait_idle(30)
    assert app.state.store.removals() == ["extra"]


async def test_a_confirmed_removal_releases_the_claims_then_drops_the_service(
    tmp_path: Path,
) -> None:
    deployer = Recording()
    async with running(make_settings(tmp_path), deployer) as (app, client):
        await deployed_then_removed(app, client)
        # Awaiting confirmation: still deployed as it was, nothing released.
        waiting = deployer.calls[-1]
        assert "extra" in waiting["services"] and "extra" in waiting["deploy"]
        assert waiting["released"] == set()
        count = len(deployer.calls)

        confirmed = await client.post("/api/v1/removals/extra/confirm", headers=BEARER)
        assert confirmed.status_code == 200
        await app.state.runner.wait_idle(30)
        store: Store = app.state.store
        updates = store.updates()
        removals = (store.removals(), store.removals(confirmed=True), store.released())
        states = store.states()
        last = store.last_effective()

    first, second = deployer.calls[count:]
    # 1: still in the manifest, released (claims unprotected + retained), not deployed.
    assert first["op"] == "up" and "extra" in first["services"]
    assert first["released"] == {"extra"} and first["deploy"] == {"db", "app"}
    # 2: gone from the manifest (Pulumi drops the released claims from its state only).
    assert second["op"] == "up" and "extra" not in second["services"]
    assert second["released"] == set() and second["deploy"] == {"db", "app"}
    assert updates[0].status == updates[1].status == "succeeded"
    assert any("second step" in t for t in updates[0].triggers)
    assert removals == ([], [], [])
    assert "extra" not in states
    assert last is not None and "extra" not in {s.name for s in last.services}


async def test_the_dry_run_carries_out_the_same_two_steps(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    deployer = DryRunDeployer(settings.data_dir / "dry-run")

    def objects() -> set[tuple[str, str]]:
        return {(o["kind"], o["metadata"]["name"]) for o in deployer.objects()}

    async with running(settings, deployer) as (app, client):
        await post_manifest(client, THREE)
        await app.state.runner.wait_idle(30)
        assert {("Deployment", "extra"), ("PersistentVolumeClaim", "extra-data")} <= objects()
        await post_manifest(client, TWO)
        await app.state.runner.wait_idle(30)
        assert ("Deployment", "extra") in objects()  # kept until the admin confirms

        # Step 1 alone: the update runs, its follow-up is held back by stopping the runner.
        app.state.manager.confirm_removal("extra")
        await app.state.runner.stop()
        runner = app.state.runner
        queued = app.state.store.next_queued()
        await runner._run(queued)
        assert ("Deployment", "extra") not in objects()
        assert ("PersistentVolumeClaim", "extra-data") in objects()  # released, still there
        assert app.state.store.released() == ["extra"]
        events = [e["message"] for e in deployer.events("extra")]
        assert "removal (dry run): objects dropped, volumes released and kept" in events

        # Step 2: the follow-up update drops the claim from the stack.
        queued = app.state.store.next_queued()
        assert queued is not None and "second step" in queued.triggers[0]
        await runner._run(queued)
        assert not {o for o in objects() if "extra" in o[1]}
        assert app.state.store.removals(confirmed=True) == []


async def test_a_restart_mid_removal_resumes_at_the_right_step(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running(settings, Recording()) as (app, client):
        await deployed_then_removed(app, client)
        await app.state.runner.stop()
        # The admin confirms; the manager dies during the first update.
        store: Store = app.state.store
        assert store.confirm_removal("extra")
        update_id = store.enqueue_update("removal of extra confirmed", ["remove service extra"])
        store.start_update(update_id, ["db", "app"])

    deployer = Recording()
    async with running(settings, deployer) as (app, _client):
        await app.state.runner.wait_idle(30)
        store = app.state.store
        assert store.update(update_id).status == "interrupted"
    ops = [(c["op"], c["released"], "extra" in c["services"]) for c in deployer.calls]
    # refresh + up with extra released (resume of the first step), then the second step.
    assert ops == [("refresh", {"extra"}, True), ("up", {"extra"}, True), ("up", set(), False)]

    # Killed between the two steps: the second is queued on start, nothing is released again.
    settings2 = make_settings(tmp_path / "two")
    async with running(settings2, Recording()) as (app, client):
        await deployed_then_removed(app, client)
        await app.state.runner.stop()
        store = app.state.store
        assert store.confirm_removal("extra")
        store.mark_released("extra")
        assert store.next_queued() is None

    deployer = Recording()
    async with running(settings2, deployer) as (app, _client):
        await app.state.runner.wait_idle(30)
        store = app.state.store
        assert store.removals(confirmed=True) == [] and "extra" not in store.states()
    assert [(c["op"], c["released"], "extra" in c["services"]) for c in deployer.calls] == [
        ("up", set(), False)]


async def test_a_service_back_after_its_release_is_deployed_anew(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with running(settings, Recording()) as (app, client):
        await deployed_then_removed(app, client)
        await app.state.runner.stop()
        store: Store = app.state.store
        store.confirm_removal("extra")
        store.mark_released("extra")  # its objects are gone, its claim is unprotected
        started: list[list[str]] = []
        app.state.manager.listener.started = lambda services, applied=None: started.append(
            services)
        # The manifest brings it back before the second step ran.
        await post_manifest(client, THREE)
        assert store.removals(confirmed=True) == [] and "extra" not in store.states()
        await app.state.runner.start()
        await app.state.runner.wait_idle(30)
        assert store.states()["extra"] == "running"
    assert ["extra"] in started  # set up again (after-start) like a new service
