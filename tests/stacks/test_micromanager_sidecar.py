"""The micromanager sidecar in a service's pod (``stacks.sidecar``), and its stack config.

A service with ``micromanager = "..."`` gets a second container when the stack
knows the manager's URL and holds the service's token; the token reaches the
container only through a Secret, never in the pod spec nor in rendered text.
"""

from __future__ import annotations

from typing import Any

import pytest
from stacks_helpers import (
    ANSWERS,
    NO_LEAK,
    PARAMS,
    by_kind,
    ints_are_ints,
    media_server,
    minimal,
    port,
    validate,
)

from mora_dsl.manifest import Manifest
from stacks.config import (
    StackConfig,
    config_keys,
    default_micromanager_image,
    from_pulumi_config,
    micromanager_note,
    to_pulumi_config,
)
from stacks.errors import StackError
from stacks.render import render, run_program, to_yaml

MANAGER = "http://mora-manager.mora-system.svc.cluster.local:8080"
TOKEN = "mm-token-that-must-never-be-printed"


def _config(**changes: Any) -> StackConfig:
    fields: dict[str, Any] = {
        "params": PARAMS, "answers": ANSWERS, "manager_url": MANAGER,
        "micromanager_tokens": {"lldap": TOKEN, "jellyfin": TOKEN + "-2"},
    }
    return StackConfig.model_validate({**fields, **changes})


def _containers(objects: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    deployment = by_kind(objects, "Deployment")[name]
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(media_server(), _config())


def test_every_micromanaged_service_gets_a_sidecar_and_no_other(objects):
    media = media_server()
    for service in media.services:
        containers = _containers(objects, service.name)
        template = by_kind(objects, "Deployment")[service.name]["spec"]["template"]
        annotations = template["metadata"].get("annotations", {})
        if service.micromanager:
            assert set(containers) == {service.name, "micromanager"}, service.name
            # `kubectl logs` shows the service, not the sidecar.
            assert annotations == {"kubectl.kubernetes.io/default-container": service.name}
        else:
            assert set(containers) == {service.name}, service.name
            assert annotations == {}, service.name


def test_the_sidecar_runs_the_builtin_against_the_manager(objects):
    sidecar = _containers(objects, "lldap")["micromanager"]
    assert sidecar["image"] == default_micromanager_image()
    assert sidecar["command"] == ["mora", "micromanager", "run"]
    assert sidecar["args"] == ["ldap", "--service", "lldap", "--manager", MANAGER,
                               "--host", "0.0.0.0", "--port", "9000"]
    env = {e["name"]: e for e in sidecar["env"]}
    # The URL it registers: the service's Service, where the manager calls /hooks/*.
    assert env["MORA_SIDECAR_URL"]["value"] == "http://lldap.media.svc.cluster.local:9000"
    # Same pod, same network: the service's own ports answer on localhost.
    assert env["MORA_SERVICE_HOST"]["value"] == "127.0.0.1"
    assert sidecar["ports"] == [{"name": "micromanager", "containerPort": 9000, "protocol": "TCP"}]
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "micromanager"}
    assert sidecar["resources"]["requests"] == {"cpu": "10m", "memory": "64Mi"}
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_the_token_comes_from_a_secret_key_ref(objects):
    sidecar = _containers(objects, "lldap")["micromanager"]
    token_env = next(e for e in sidecar["env"] if e["name"] == "MORA_MICROMANAGER_TOKEN")
    assert "value" not in token_env
    assert token_env["valueFrom"] == {"secretKeyRef": {"name": "lldap-micromanager",
                                                       "key": "token"}}
    secret = by_kind(objects, "Secret")["lldap-micromanager"]
    assert secret["stringData"] == {"token": "<micromanager-token:lldap>"}
    assert secret["metadata"]["namespace"] == "media"


def test_the_token_is_never_in_the_output(objects):
    text = to_yaml(objects)
    assert TOKEN not in text and NO_LEAK not in text
    assert "<micromanager-token:jellyfin>" in text


def test_the_token_reaches_the_engine_as_a_secret():
    recording = run_program(media_server(), _config())
    secret = next(r for r in recording.kubernetes() if r.name == "lldap-micromanager")
    assert secret.inputs["stringData"]["4dabf18193072939515e22adb298388d"] == (
        "1b47061264138c4ac30d75fd1eb44270")


def test_the_service_gets_the_micromanager_port(objects):
    ports = by_kind(objects, "Service")["lldap"]["spec"]["ports"]
    assert ports[-1] == {"name": "micromanager", "port": 9000, "targetPort": "micromanager",
                         "protocol": "TCP"}
    assert [p["name"] for p in ports[:-1]] == ["http", "ldap"]
    plain = by_kind(objects, "Service")["sonarr"]["spec"]["ports"]
    assert "micromanager" not in {p["name"] for p in plain}


def test_every_object_validates_strictly_and_ints_stay_ints(objects):
    for obj in objects:
        validate(obj)
        ints_are_ints(obj)


def test_without_a_manager_url_there_is_no_sidecar():
    objects = render(media_server(), _config(manager_url=None))
    assert set(_containers(objects, "lldap")) == {"lldap"}
    assert "lldap-micromanager" not in by_kind(objects, "Secret")
    assert "micromanager" not in {p["name"] for p in
                                  by_kind(objects, "Service")["lldap"]["spec"]["ports"]}
    assert TOKEN not in to_yaml(objects)


def test_without_a_token_the_service_runs_without_its_sidecar(caplog):
    objects = render(media_server(), _config(micromanager_tokens={"jellyfin": TOKEN}))
    assert set(_containers(objects, "lldap")) == {"lldap"}
    assert set(_containers(objects, "jellyfin")) == {"jellyfin", "micromanager"}
    assert "lldap: no micromanager token" in caplog.text


def test_the_image_is_a_setting():
    objects = render(media_server(), _config(micromanager_image="registry.lan/mm:1.2"))
    assert _containers(objects, "lldap")["micromanager"]["image"] == "registry.lan/mm:1.2"


def _micromanaged_whoami(**changes: Any) -> Manifest:
    manifest = minimal()
    (service,) = manifest.services
    service = service.model_copy(update={"micromanager": "whoami", **changes})
    return manifest.model_copy(update={"services": [service]})


def test_a_service_on_port_9000_pushes_the_sidecar_to_the_next_port():
    manifest = _micromanaged_whoami(ports=[port("http", 9000), port("admin", 9001)])
    config = StackConfig(params={"domain": "example.org"}, manager_url=MANAGER,
                         micromanager_tokens={"whoami": TOKEN})
    objects = render(manifest, config)
    sidecar = _containers(objects, "whoami")["micromanager"]
    assert sidecar["ports"][0]["containerPort"] == 9002
    assert sidecar["args"][-1] == "9002"
    assert by_kind(objects, "Service")["whoami"]["spec"]["ports"][-1]["port"] == 9002
    for obj in objects:
        validate(obj)


def test_a_service_without_ports_gets_a_service_for_its_sidecar():
    manifest = _micromanaged_whoami(ports=[], subdomain=None)
    config = StackConfig(params={"domain": "example.org"}, manager_url=MANAGER,
                         micromanager_tokens={"whoami": TOKEN})
    objects = render(manifest, config)
    (service,) = by_kind(objects, "Service").values()
    assert [p["name"] for p in service["spec"]["ports"]] == ["micromanager"]
    for obj in objects:
        validate(obj)


def test_a_port_named_micromanager_is_an_error():
    manifest = _micromanaged_whoami(ports=[port("micromanager", 80)])
    config = StackConfig(params={"domain": "example.org"}, manager_url=MANAGER,
                         micromanager_tokens={"whoami": TOKEN})
    with pytest.raises(StackError, match="port named 'micromanager'") as err:
        render(manifest, config)
    assert TOKEN not in str(err.value)


def test_a_manager_url_must_be_http():
    with pytest.raises(ValueError, match="http"):
        StackConfig(manager_url="mora-manager:8080")
    assert StackConfig(manager_url=MANAGER + "/").manager_url == MANAGER


# --------------------------------------------------------------------------- config round trip


def test_tokens_are_secret_pulumi_config_and_come_back():
    media = media_server()
    config = _config(micromanager_image="registry.lan/mm:1.2")
    written = to_pulumi_config(config)
    assert written["micromanager_token.lldap"] == (TOKEN, True)
    assert written["stack.manager_url"] == (MANAGER, False)
    assert written["stack.micromanager_image"] == ("registry.lan/mm:1.2", False)
    # The program reads only keys it knows: every written key is one of them.
    assert set(written) <= set(config_keys(media))
    back = from_pulumi_config(media, {k: v for k, (v, _) in written.items()})
    assert back == config
    assert back.micromanager_token("lldap") == TOKEN
    assert TOKEN not in repr(back) and TOKEN not in str(back)


def test_defaults_write_nothing():
    written = to_pulumi_config(StackConfig(params=PARAMS))
    assert not {k for k in written if "micromanager" in k or k == "stack.manager_url"}
    back = from_pulumi_config(media_server(), {k: v for k, (v, _) in written.items()})
    assert back.manager_url is None and back.micromanager_tokens == {}


def test_a_note_when_micromanagers_cannot_run():
    note = micromanager_note(media_server(), StackConfig(params=PARAMS))
    assert note is not None and "lldap (ldap)" in note and "jellyfin (jellyfin)" in note
    assert micromanager_note(media_server(), _config()) is None
    assert micromanager_note(minimal(), StackConfig(params=PARAMS)) is None


def test_the_manager_deployment_tells_the_manager_its_own_url():
    """What the manager puts into the services' stack as ``manager_url`` (MORA_MANAGER_URL)."""
    from stacks.manager import NAME
    from stacks.manager_program import ManagerConfig, render_manager

    config = ManagerConfig(stack="home", domain="home.example.com", project_namespaces=["media"],
                           namespace="mora-home", stack_settings={"cluster_domain": "k8s.lan"})
    objects = render_manager(config)
    deployment = by_kind(objects, "Deployment")[NAME]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MORA_MANAGER_URL"] == "http://mora-manager.mora-home.svc.k8s.lan:8080"
    service = by_kind(objects, "Service")[NAME]
    assert service["spec"]["ports"][0]["port"] == 8080
