"""A stack's own namespace: two stacks of one project side by side on one cluster.

Everything namespaced follows the stack's ``namespace`` setting (default: the
project's): the Namespace object, every object's ``metadata.namespace``, the
in-cluster addresses behind ``service:X.host`` / ``internal_url`` (env values,
files, certificate hosts) and the stack outputs. Two stacks with different
namespaces must not share a single object, and both must still validate strictly
against Kubernetes 1.30.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from stacks_helpers import ANSWERS, PARAMS, by_kind, media_server, validate

from stacks.config import (
    StackConfig,
    from_pulumi_config,
    stack_namespace,
    to_pulumi_config,
)
from stacks.errors import ConfigError
from stacks.render import render, run_program, safe_config, unwrap

FRIEND_NS = "media-server-friend"


def _config(namespace: str | None, domain: str) -> StackConfig:
    return StackConfig(params={**PARAMS, "domain": domain}, answers=ANSWERS, namespace=namespace)


@pytest.fixture(scope="module")
def home() -> StackConfig:
    return _config(None, "home.example.com")


@pytest.fixture(scope="module")
def friend() -> StackConfig:
    return _config(FRIEND_NS, "friend.example.org")


@pytest.fixture(scope="module")
def rendered(home: StackConfig, friend: StackConfig) -> dict[str, list[dict[str, Any]]]:
    manifest = media_server()
    return {"home": render(manifest, home), "friend": render(manifest, friend)}


def _identity(obj: dict[str, Any]) -> tuple[str, str | None, str]:
    """What Kubernetes identifies an object by: kind, namespace (None: cluster-scoped), name."""
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace"), meta["name"]


def test_default_namespace_is_the_projects(home):
    assert home.namespace is None
    assert stack_namespace(media_server(), home) == "media"


def test_every_object_lives_in_the_stacks_namespace(rendered):
    for stack, namespace in (("home", "media"), ("friend", FRIEND_NS)):
        objects = rendered[stack]
        (ns,) = by_kind(objects, "Namespace").values()
        assert ns["metadata"]["name"] == namespace
        assert "namespace" not in ns["metadata"]
        others = [o for o in objects if o["kind"] != "Namespace"]
        assert others and {o["metadata"]["namespace"] for o in others} == {namespace}


def test_two_stacks_share_no_object(rendered):
    home = {_identity(o) for o in rendered["home"]}
    friend = {_identity(o) for o in rendered["friend"]}
    assert len(home) == len(rendered["home"]) and len(friend) == len(rendered["friend"])
    assert home.isdisjoint(friend)
    # The same objects otherwise: only the namespace tells them apart.
    assert {(k, n) for k, _, n in home if k != "Namespace"} == {
        (k, n) for k, _, n in friend if k != "Namespace"}


def test_every_object_validates_strictly(rendered):
    for objects in rendered.values():
        for obj in objects:
            validate(obj)


def test_ingresses_follow_the_namespace_and_the_domain(rendered):
    ingress = by_kind(rendered["friend"], "Ingress")["lldap"]
    assert ingress["metadata"]["namespace"] == FRIEND_NS
    assert ingress["spec"]["rules"][0]["host"] == "ldap.friend.example.org"
    tls = by_kind(rendered["friend"], "Secret")["mora-ingress-tls"]
    assert tls["metadata"]["namespace"] == FRIEND_NS


def test_internal_urls_point_into_the_stacks_namespace(home, friend):
    manifest = media_server()
    outputs = {name: unwrap(_outputs(manifest, config))
               for name, config in (("home", home), ("friend", friend))}
    assert outputs["home"]["namespace"] == "media"
    assert outputs["friend"]["namespace"] == FRIEND_NS
    assert outputs["home"]["internal_urls"]["sonarr"] == (
        "http://sonarr.media.svc.cluster.local:8989")
    assert outputs["friend"]["internal_urls"]["sonarr"] == (
        f"http://sonarr.{FRIEND_NS}.svc.cluster.local:8989")
    assert set(outputs["home"]["internal_urls"].values()).isdisjoint(
        outputs["friend"]["internal_urls"].values())


def _outputs(manifest: Any, config: StackConfig) -> dict[str, Any]:
    """The stack outputs' plain values (the program resolves them while it runs)."""
    import pulumi

    from stacks.program import build
    from stacks.render import run_mocked

    seen: dict[str, Any] = {}

    def program() -> dict[str, Any]:
        outputs = build(manifest, safe_config(manifest, config))
        for key in ("namespace", "internal_urls"):
            pulumi.Output.from_input(outputs[key]).apply(lambda v, k=key: seen.__setitem__(k, v))
        return outputs

    run_mocked(manifest.project.name, program)
    return seen


def test_service_references_resolve_into_the_stacks_namespace(rendered, friend):
    # janitorr's config file: `service:sonarr.internal_url`.
    content = by_kind(rendered["friend"], "Secret")["janitorr-secret-files"]["stringData"][
        "config-application.yml"]
    assert f'url: "http://sonarr.{FRIEND_NS}.svc.cluster.local:8989"' in content
    assert ".media.svc." not in content
    # lldap's certificate: `hosts = [service:lldap.host]`.
    recording = run_program(media_server(), safe_config(media_server(), friend))
    request = next(r for r in recording.resources if r.name == "lldap.tls-csr")
    assert unwrap(request.inputs["dnsNames"]) == [f"lldap.{FRIEND_NS}.svc.cluster.local"]


def test_namespace_round_trips_through_pulumi_config(friend):
    texts = {k: v for k, (v, _) in to_pulumi_config(friend).items()}
    assert texts["stack.namespace"] == FRIEND_NS
    assert from_pulumi_config(media_server(), texts) == friend
    default = {k: v for k, (v, _) in to_pulumi_config(StackConfig(params=PARAMS)).items()}
    assert "stack.namespace" not in default


@pytest.mark.parametrize("bad", ["Media", "media_friend", "1media", "-media", "m" * 64, ""])
def test_invalid_namespace_is_refused(bad):
    with pytest.raises(ValidationError, match="not a valid namespace name"):
        StackConfig(namespace=bad)
    with pytest.raises(ConfigError, match="not valid"):
        from_pulumi_config(media_server(), {"stack.namespace": bad, **PARAMS})
