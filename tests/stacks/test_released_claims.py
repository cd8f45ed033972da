"""Claims of a removed service leave the stack but stay in the cluster (``released``).

Pulumi's mocks do not show resource options, so the options are read where the
program hands them to pulumi-kubernetes: the ``PersistentVolumeClaim`` constructor
is wrapped for the test and records its ``opts``.
"""

from __future__ import annotations

import pulumi
import pytest
from stacks_helpers import ANSWERS, PARAMS, media_server, record_claim_options

from stacks.config import StackConfig, from_pulumi_config, to_pulumi_config
from stacks.render import run_program
from stacks.volumes import claim_protection


@pytest.fixture
def claim_options(monkeypatch: pytest.MonkeyPatch) -> dict[str, pulumi.ResourceOptions]:
    """Claim name → the ResourceOptions the program created it with."""
    return record_claim_options(monkeypatch)


def test_the_decision():
    plain = StackConfig()
    assert claim_protection(plain, "sonarr") == (True, True)
    assert claim_protection(plain, None) == (True, True)
    released = StackConfig(released=frozenset({"sonarr"}))
    assert claim_protection(released, "sonarr") == (False, True)
    assert claim_protection(released, "radarr") == (True, True)
    assert claim_protection(released, None) == (True, True)  # shared claims stay protected
    everything = StackConfig(release_volumes=True, released=frozenset({"sonarr"}))
    assert claim_protection(everything, "sonarr") == (False, False)


def test_a_released_service_keeps_only_its_claims_unprotected_and_retained(claim_options):
    config = StackConfig(params=PARAMS, answers=ANSWERS, released=frozenset({"sonarr"}))
    recording = run_program(media_server(), config)

    opts = claim_options["sonarr-config"]
    assert opts.protect is False and opts.retain_on_delete is True
    # Its parent is a component of the same type and name as before: the URN is unchanged.
    assert isinstance(opts.parent, pulumi.ComponentResource)
    components = {(r.type, r.name) for r in recording.resources}
    assert ("mora:index:Service", "sonarr") in components
    # Everything else of the service is gone from the program.
    names = {(r.type.rsplit(":", 1)[-1], r.name) for r in recording.kubernetes()}
    assert ("Deployment", "sonarr") not in names and ("Service", "sonarr") not in names
    assert ("PersistentVolumeClaim", "sonarr-config") in names
    assert "sonarr" not in recording.outputs["deployed"]
    # The other claims, shared ones included, stay protected.
    for name in ("radarr-config", "downloads", "lldap-data"):
        assert claim_options[name].protect is True
        assert claim_options[name].retain_on_delete is True


def test_released_round_trips_through_pulumi_config(media):
    config = StackConfig(params=PARAMS, released=frozenset({"sonarr", "radarr"}))
    texts = {k: v for k, (v, _) in to_pulumi_config(config).items()}
    assert texts["stack.released"] == '["radarr", "sonarr"]'
    assert from_pulumi_config(media, texts) == config
    assert "stack.released" not in to_pulumi_config(StackConfig(params=PARAMS))


def test_a_released_service_that_left_the_manifest_is_ignored(claim_options):
    config = StackConfig(params=PARAMS, answers=ANSWERS, released=frozenset({"gone"}))
    run_program(media_server(), config)
    assert all(o.protect is True for o in claim_options.values())
