"""The program under Pulumi's mocks, through the offline renderer: one test per construct."""

from __future__ import annotations

from typing import Any

import pytest
from stacks_helpers import (
    ANSWERS,
    NO_LEAK,
    PARAMS,
    SPAN,
    by_kind,
    ints_are_ints,
    minimal,
    ref,
    validate,
)

from mora_dsl.manifest import Concat, File, Health, Manifest
from stacks.config import StackConfig
from stacks.errors import ConfigError, StackError
from stacks.render import render, run_program, to_yaml


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in _container(deployment).get("env", [])}


def _with_service(manifest: Manifest, **changes: Any) -> Manifest:
    """``manifest`` with its single service changed."""
    (service,) = manifest.services
    return manifest.model_copy(update={"services": [service.model_copy(update=changes)]})


@pytest.fixture(scope="module")
def media_objects() -> list[dict[str, Any]]:
    from stacks_helpers import media_server

    return render(media_server(), StackConfig(params=PARAMS, answers=ANSWERS))


def test_every_object_validates_strictly_against_kubernetes_1_30(media_objects):
    assert len(media_objects) > 30
    for obj in media_objects:
        validate(obj)
        ints_are_ints(obj)


def test_every_object_has_an_explicit_name_and_the_project_namespace(media_objects):
    for obj in media_objects:
        assert obj["metadata"]["name"]
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "media"
    assert by_kind(media_objects, "Namespace")["media"]


def test_no_answer_and_no_generated_value_reaches_the_output(media_objects):
    text = to_yaml(media_objects)
    assert NO_LEAK not in text
    assert "<input:jellyfin.api_key>" in text
    assert "<generated:secret:ldap_admin_password>" in text
    assert "-----BEGIN" not in text


def test_recommended_labels(media_objects):
    deployment = by_kind(media_objects, "Deployment")["lldap"]
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "lldap"
    assert labels["app.kubernetes.io/part-of"] == "media-server"
    assert labels["app.kubernetes.io/managed-by"] == "mora"
    assert labels["app.kubernetes.io/version"] == "v0.6.1"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert "app.kubernetes.io/version" not in selector


def test_deployment_with_claims_uses_recreate(media_objects):
    deployments = by_kind(media_objects, "Deployment")
    assert deployments["lldap"]["spec"]["strategy"] == {"type": "Recreate"}
    assert "strategy" not in deployments["janitorr"]["spec"]  # only a host folder


def test_claims_are_created_with_size_and_mounted(media_objects):
    claims = by_kind(media_objects, "PersistentVolumeClaim")
    assert claims["downloads"]["spec"]["resources"]["requests"]["storage"] == "200Gi"
    assert claims["lldap-data"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claims["lldap-data"]["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    sonarr = by_kind(media_objects, "Deployment")["sonarr"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in sonarr["volumes"]}
    assert volumes["downloads"]["persistentVolumeClaim"]["claimName"] == "downloads"
    assert volumes["sonarr-config"]["persistentVolumeClaim"]["claimName"] == "sonarr-config"


def test_host_volume_is_a_host_path(media_objects):
    jellyfin = by_kind(media_objects, "Deployment")["jellyfin"]
    volumes = {v["name"]: v for v in jellyfin["spec"]["template"]["spec"]["volumes"]}
    assert volumes["media"]["hostPath"]["path"] == "/srv/media"
    mounts = {m["mountPath"]: m for m in _container(jellyfin)["volumeMounts"]}
    assert mounts["/media"]["readOnly"] is True


def test_service_has_every_port_ingress_only_the_first_public_one(media_objects):
    service = by_kind(media_objects, "Service")["lldap"]
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("http", 17170), ("ldap", 3890)]
    ingress = by_kind(media_objects, "Ingress")["lldap"]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "ldap.home.example.com"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "lldap", "port": {"name": "http"}}
    assert ingress["spec"]["tls"] == [{"hosts": ["ldap.home.example.com"],
                                       "secretName": "mora-ingress-tls"}]


def test_internal_ca_signs_one_wildcard_certificate_for_all_ingresses(media_objects, media):
    tls = by_kind(media_objects, "Secret")["mora-ingress-tls"]
    assert tls["type"] == "kubernetes.io/tls"
    assert tls["stringData"] == {
        "tls.crt": "<generated:secret:mora-ingress-tls:cert_pem>",
        "tls.key": "<generated:secret:mora-ingress-tls:private_key_pem>",
        "ca.crt": "<generated:secret:mora-ingress-ca:cert_pem>",
    }
    names = {i["spec"]["tls"][0]["secretName"] for i in by_kind(media_objects, "Ingress").values()}
    assert names == {"mora-ingress-tls"}


def test_wildcard_certificate_covers_the_domain():
    recording = run_program(minimal(), StackConfig(params={"domain": "example.org"}))
    request = next(r for r in recording.resources if r.name == "mora-ingress-tls-csr")
    assert request.inputs["dnsNames"] == ["*.example.org", "example.org"]
    ca = next(r for r in recording.resources if r.name == "mora-ingress-ca")
    assert ca.inputs["isCaCertificate"] is True


def test_service_without_subdomain_has_no_ingress(media_objects):
    assert "janitorr" not in by_kind(media_objects, "Ingress")
    assert "janitorr" not in by_kind(media_objects, "Service")  # no ports either


def test_secret_environment_comes_from_a_secret_key_ref(media_objects):
    lldap = by_kind(media_objects, "Deployment")["lldap"]
    env = _env(lldap)
    assert env["LLDAP_JWT_SECRET"] == {
        "name": "LLDAP_JWT_SECRET",
        "valueFrom": {"secretKeyRef": {"key": "LLDAP_JWT_SECRET", "name": "lldap-env"}},
    }
    assert "value" not in env["LLDAP_LDAP_USER_PASS"]
    assert env["LLDAP_LDAP_BASE_DN"]["value"] == "dc=home,dc=example,dc=com"
    assert env["TZ"]["value"] == "Etc/UTC"  # param default
    secret = by_kind(media_objects, "Secret")["lldap-env"]
    assert secret["stringData"]["LLDAP_JWT_SECRET"] == "<generated:secret:lldap.jwt_secret>"


def test_secret_file_becomes_a_secret_volume_mounted_by_sub_path(media_objects):
    janitorr = by_kind(media_objects, "Deployment")["janitorr"]
    spec = janitorr["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == "janitorr-secret-files"
    mount = next(m for m in _container(janitorr)["volumeMounts"]
                 if m["mountPath"] == "/config/application.yml")
    assert mount["subPath"] == "config-application.yml"
    content = by_kind(media_objects, "Secret")["janitorr-secret-files"]["stringData"][
        "config-application.yml"]
    assert 'url: "http://sonarr.media.svc.cluster.local:8989"' in content
    assert '"<generated:secret:sonarr.api_key>"' in content
    assert '"<input:jellyseerr.api_key>"' in content
    assert set(by_kind(media_objects, "ConfigMap")) == {"mora-ingress-ca"}  # no files map


def test_intel_gpu_gets_the_device_limit_and_the_render_group(media_objects):
    jellyfin = by_kind(media_objects, "Deployment")["jellyfin"]
    assert _container(jellyfin)["resources"]["limits"]["gpu.intel.com/i915"] == "1"
    spec = jellyfin["spec"]["template"]["spec"]
    assert spec["securityContext"]["supplementalGroups"] == [109]
    assert "runtimeClassName" not in spec


def test_probes_use_the_named_port(media_objects):
    container = _container(by_kind(media_objects, "Deployment")["jellyfin"])
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["initialDelaySeconds"] == 5
    assert container["livenessProbe"]["failureThreshold"] == 6


def test_service_links_are_off(media_objects):
    for deployment in by_kind(media_objects, "Deployment").values():
        assert deployment["spec"]["template"]["spec"]["enableServiceLinks"] is False


# --------------------------------------------------------------------------- smaller programs


def test_minimal_program_renders_and_validates():
    objects = render(minimal(), StackConfig(params={"domain": "example.org"}))
    for obj in objects:
        validate(obj)
    deployment = by_kind(objects, "Deployment")["whoami"]
    env = _env(deployment)
    assert env["WHOAMI_NAME"]["value"] == "hello from example.org"
    assert env["ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "whoami-env"
    resources = _container(deployment)["resources"]
    assert resources == {"limits": {"memory": "128Mi"},
                         "requests": {"cpu": "100m", "memory": "64Mi"}}
    assert "strategy" not in deployment["spec"]
    assert by_kind(objects, "Namespace")["hello"]


def test_nvidia_gpu_user_group_and_secret_command_line():
    manifest = _with_service(
        minimal(), gpu="nvidia", user=1000, group=1000,
        command=["/app/run"],
        args=["--listen=$(HOST)", Concat(concat=["--password=", ref("secret:admin_password")])],
        health=Health(tcp=True),
    )
    objects = render(manifest, StackConfig(params={"domain": "example.org"}))
    for obj in objects:
        validate(obj)
    deployment = by_kind(objects, "Deployment")["whoami"]
    spec = deployment["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["securityContext"] == {"fsGroup": 1000, "runAsGroup": 1000, "runAsUser": 1000}
    container = _container(deployment)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # Literal `$(` is escaped; the secret argument comes through an env var.
    assert container["args"] == ["--listen=$$(HOST)", "$(MORA_ARG_1)"]
    assert _env(deployment)["MORA_ARG_1"]["valueFrom"]["secretKeyRef"] == {
        "name": "whoami-env", "key": "MORA_ARG_1"}
    assert by_kind(objects, "Secret")["whoami-env"]["stringData"]["MORA_ARG_1"] == (
        "--password=<generated:secret:admin_password>")
    assert container["readinessProbe"]["tcpSocket"] == {"port": "http"}


def test_plain_file_becomes_a_config_map_with_its_mode():
    manifest = _with_service(minimal(), files=[
        File(path="/etc/app/app.conf", content=Concat(concat=["domain=", ref("param:domain")]),
             mode=0o600, span=SPAN)])
    objects = render(manifest, StackConfig(params={"domain": "example.org"}))
    config_map = by_kind(objects, "ConfigMap")["whoami-files"]
    assert config_map["data"] == {"etc-app-app.conf": "domain=example.org"}
    volume = next(v for v in by_kind(objects, "Deployment")["whoami"]["spec"]["template"]["spec"]
                  ["volumes"] if "configMap" in v)
    assert volume["configMap"]["items"] == [
        {"key": "etc-app-app.conf", "mode": 0o600, "path": "etc-app-app.conf"}]
    for obj in objects:
        validate(obj)


def test_cert_manager_issuer_replaces_the_internal_ca():
    config = StackConfig(params={"domain": "example.org"}, cert_manager_issuer="letsencrypt",
                         ingress_class="traefik")
    objects = render(minimal(), config)
    ingress = by_kind(objects, "Ingress")["whoami"]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert "mora-ingress-tls" not in by_kind(objects, "Secret")
    assert ingress["spec"]["tls"][0]["secretName"] == "whoami-tls"


def test_storage_class_and_cluster_domain_come_from_the_stack(media):
    config = StackConfig(params=PARAMS, storage_class="local-path", cluster_domain="k8s.internal")
    objects = render(media, config)
    assert by_kind(objects, "PersistentVolumeClaim")["downloads"]["spec"][
        "storageClassName"] == "local-path"


# --------------------------------------------------------------------------- deploy set and config


def test_default_deploy_waits_for_answers_the_service_uses(media):
    objects = render(media, StackConfig(params=PARAMS))
    deployed = set(by_kind(objects, "Deployment"))
    # janitorr's file uses two wizard answers; jellyfin's own after_start input does not block it.
    assert "janitorr" not in deployed
    assert {"jellyfin", "jellyseerr", "lldap", "sonarr"} <= deployed


def test_explicit_deploy_set_is_a_wave(media):
    objects = render(media, StackConfig(params=PARAMS, deploy=frozenset({"lldap"})))
    assert set(by_kind(objects, "Deployment")) == {"lldap"}
    assert "downloads" in by_kind(objects, "PersistentVolumeClaim")  # shared claims stay


def test_deploying_a_service_with_unanswered_inputs_is_refused(media):
    with pytest.raises(ConfigError, match="janitorr needs the answer to"):
        render(media, StackConfig(params=PARAMS, deploy=frozenset({"janitorr"})))


def test_missing_param_is_named(media):
    with pytest.raises(ConfigError, match="media_path"):
        render(media, StackConfig(params={"domain": "x.org"}))


def test_url_without_domain_param_is_an_error():
    manifest = _with_service(minimal().model_copy(update={"params": []}), environment={})
    with pytest.raises(StackError, match="`domain` param"):
        render(manifest, StackConfig())


def test_render_can_run_repeatedly_and_is_deterministic():
    config = StackConfig(params={"domain": "example.org"})
    assert to_yaml(render(minimal(), config)) == to_yaml(render(minimal(), config))


# --------------------------------------------------------------------------- secrecy under mocks


def test_secret_values_are_secret_outputs_for_the_engine(all_answers, media):
    """Env Secret data reaches the engine wrapped as a secret, never as plain text."""
    recording = run_program(media, all_answers)
    env_secret = next(r for r in recording.kubernetes() if r.name == "lldap-env")
    assert env_secret.inputs["stringData"]["4dabf18193072939515e22adb298388d"] == (
        "1b47061264138c4ac30d75fd1eb44270")


def test_generated_secrets_have_the_requested_shape(all_answers, media):
    recording = run_program(media, all_answers)
    by_name = {(r.type.split(":")[-1], r.name): r.inputs for r in recording.resources}
    assert by_name[("RandomPassword", "ldap_admin_password")]["length"] == 32
    assert by_name[("RandomPassword", "ldap_admin_password")]["special"] is False
    assert by_name[("RandomBytes", "lldap.jwt_secret")]["length"] == 32
    assert by_name[("RandomId", "sonarr.api_key")]["byteLength"] == 16
    assert by_name[("SelfSignedCert", "internal_ca")]["isCaCertificate"] is True
    assert by_name[("CertRequest", "lldap.tls-csr")]["dnsNames"] == [
        "lldap.media.svc.cluster.local"]
    assert ("LocallySignedCert", "lldap.tls") in by_name


def test_rotation_adds_a_keeper(media):
    config = StackConfig(params=PARAMS, rotate={"ldap_admin_password": "2024-01-01T00:00"})
    recording = run_program(media, config)
    password = next(r for r in recording.resources if r.name == "ldap_admin_password")
    assert password.inputs["keepers"] == {"rotation": "2024-01-01T00:00"}


def test_stack_outputs_are_the_urls(all_answers, media):
    recording = run_program(media, all_answers)
    assert recording.outputs["urls"]["jellyfin"] == "https://watch.home.example.com"
    assert "janitorr" not in recording.outputs["urls"]
    assert recording.outputs["internal_urls"]["lldap"] == (
        "http://lldap.media.svc.cluster.local:17170")


def test_errors_never_show_answers(media):
    config = StackConfig(params=PARAMS, answers={"jellyfin.api_key": NO_LEAK},
                         deploy=frozenset({"nope"}))
    with pytest.raises(ConfigError) as err:
        render(media, config)
    assert NO_LEAK not in str(err.value)
    assert NO_LEAK not in repr(config)


def test_replicas_and_service_without_ports():
    manifest = _with_service(minimal(), replicas=2, ports=[], subdomain=None)
    objects = render(manifest, StackConfig(params={"domain": "example.org"}))
    assert by_kind(objects, "Deployment")["whoami"]["spec"]["replicas"] == 2
    assert not by_kind(objects, "Service") and not by_kind(objects, "Ingress")


def test_program_reads_its_config_from_pulumi_stack_config():
    """The path `pulumi up` and `mora up` take: `mora:*` config → StackConfig → build."""
    import contextvars

    import pulumi
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    from stacks.config import to_pulumi_config
    from stacks.program import run
    from stacks.render import Recording, _make_mocks, _with_own_loop

    config = StackConfig(params={"domain": "example.org"}, ingress_class="nginx")
    recording = Recording()

    def go() -> None:
        pulumi.runtime.set_all_config(
            {f"mora:{k}": v for k, (v, _) in to_pulumi_config(config).items()})
        pulumi.runtime.set_mocks(_make_mocks(recording), project="hello", stack="t", preview=False)
        _sync_await(run_pulumi_func(lambda: run(minimal())))

    _with_own_loop(lambda: contextvars.Context().run(go))  # type: ignore[arg-type,return-value]
    ingress = next(r for r in recording.kubernetes() if r.type.endswith("Ingress"))
    assert ingress.inputs["spec"]["ingressClassName"] == "nginx"
    assert ingress.inputs["spec"]["rules"][0]["host"] == "hello.example.org"


def test_render_works_from_inside_an_event_loop():
    """The manager calls it from async code; Pulumi needs its own loop, so a worker thread."""
    import asyncio

    async def inside() -> list[dict[str, Any]]:
        return render(minimal(), StackConfig(params={"domain": "example.org"}))

    assert by_kind(asyncio.run(inside()), "Deployment")
