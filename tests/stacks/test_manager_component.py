"""The manager's own stack (``stacks.manager``), rendered offline under the mocks.

Every object is validated against the Kubernetes 1.30 schema in strict mode; the
RBAC is checked to be limited to the project's namespaces; the state volume's
protection is read from the options the program hands to pulumi-kubernetes.
The Automation API side runs against the recording Pulumi stand-in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from stacks_helpers import by_kind, ints_are_ints, record_claim_options, validate
from test_automation import RecordingPulumi

from stacks.manager import NAME
from stacks.manager_program import (
    PROJECT,
    ManagerConfig,
    ManagerWorkspace,
    manager_stack_name,
    render_manager,
)
from stacks.render import run_mocked

CONFIG = ManagerConfig(stack="home", domain="home.example.com", project_namespaces=["media"])


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render_manager(CONFIG)


def test_every_object_validates_strictly_against_kubernetes_1_30(objects):
    kinds = {o["kind"] for o in objects}
    assert kinds == {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
                     "RoleBinding", "PersistentVolumeClaim", "Secret", "Deployment", "Service",
                     "Ingress"}
    for obj in objects:
        validate(obj)
        ints_are_ints(obj)
        assert obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mora"


def test_namespaces_the_manager_and_the_project(objects):
    assert set(by_kind(objects, "Namespace")) == {"mora-system", "media"}
    for obj in objects:
        if obj["kind"] in ("Role", "RoleBinding"):
            assert obj["metadata"]["namespace"] == "media"
        elif obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == "mora-system", obj["kind"]


def test_rbac_is_limited_to_the_project_namespaces(objects):
    (role,) = by_kind(objects, "Role").values()
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"]
               for r in rule["resources"]}
    # What the services' program creates, and what readiness checks read.
    for needed in [("", "secrets"), ("", "configmaps"), ("", "services"),
                   ("", "persistentvolumeclaims"), ("apps", "deployments"),
                   ("networking.k8s.io", "ingresses"), ("", "pods"), ("apps", "replicasets")]:
        assert needed in granted
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
        assert "escalate" not in rule["verbs"] and "bind" not in rule["verbs"]
    assert not any(r in granted for r in [("rbac.authorization.k8s.io", "roles"),
                                          ("", "serviceaccounts"), ("", "namespaces")])
    (binding,) = by_kind(objects, "RoleBinding").values()
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": NAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME,
                                    "namespace": "mora-system"}]
    # Cluster-wide: only the project's namespaces, by name, and no create/delete.
    (cluster_role,) = by_kind(objects, "ClusterRole").values()
    (rule,) = cluster_role["rules"]
    assert rule["resources"] == ["namespaces"] and rule["resourceNames"] == ["media"]
    assert set(rule["verbs"]) == {"get", "patch", "update"}
    (cluster_binding,) = by_kind(objects, "ClusterRoleBinding").values()
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert cluster_binding["subjects"] == binding["subjects"]
    # No permission at all in the manager's own namespace.
    assert not [o for o in objects if o["kind"] == "Role"
                and o["metadata"]["namespace"] == "mora-system"]


def test_one_role_per_project_namespace():
    config = CONFIG.model_copy(update={"project_namespaces": ["media", "tools"]})
    objects = render_manager(config)
    roles = [o for o in objects if o["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["media", "tools"]
    (cluster_role,) = by_kind(objects, "ClusterRole").values()
    assert cluster_role["rules"][0]["resourceNames"] == ["media", "tools"]


def test_deployment_is_non_root_recreate_with_probes_and_secret_credentials(objects):
    deployment = by_kind(objects, "Deployment")[NAME]
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == NAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["args"] == ["manager", "serve", "--stack", "home", "--host", "0.0.0.0",
                                 "--port", "8080", "--data", "/data"]
    env = {e["name"]: e for e in container["env"]}
    for name, key in (("MORA_ADMIN_PASSWORD", "admin-password"), ("MORA_API_TOKEN", "api-token")):
        assert "value" not in env[name]
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": f"{NAME}-credentials",
                                                          "key": key}
    assert env["MORA_SECURE_COOKIES"]["value"] == "true"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/data"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{NAME}-data"


def test_credentials_are_generated_never_literal(objects):
    secret = by_kind(objects, "Secret")[f"{NAME}-credentials"]
    assert secret["stringData"] == {
        "admin-password": "<generated:secret:mora-manager-admin-password>",
        "api-token": "<generated:secret:mora-manager-api-token>",
    }


def test_ingress_at_mora_domain_with_its_own_ca(objects):
    ingress = by_kind(objects, "Ingress")[NAME]
    assert ingress["spec"]["rules"][0]["host"] == "mora.home.example.com"
    assert ingress["spec"]["tls"] == [{"hosts": ["mora.home.example.com"],
                                       "secretName": f"{NAME}-tls"}]
    tls_secret = by_kind(objects, "Secret")[f"{NAME}-tls"]
    assert tls_secret["type"] == "kubernetes.io/tls"
    assert tls_secret["stringData"]["tls.key"].startswith("<generated:secret:")
    service = by_kind(objects, "Service")[NAME]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_cert_manager_issuer_class_storage_and_forwarded_settings():
    config = CONFIG.model_copy(update={
        "cert_manager_issuer": "letsencrypt", "ingress_class": "traefik",
        "storage_class": "local-path", "host": "wizard.example.org",
        "stack_settings": {"storage_class": "local-path", "cert_manager_issuer": "letsencrypt"},
    })
    objects = render_manager(config)
    for obj in objects:
        validate(obj)
    ingress = by_kind(objects, "Ingress")[NAME]
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["spec"]["rules"][0]["host"] == "wizard.example.org"
    assert f"{NAME}-tls" not in by_kind(objects, "Secret")
    claim = by_kind(objects, "PersistentVolumeClaim")[f"{NAME}-data"]
    assert claim["spec"]["storageClassName"] == "local-path"
    (container,) = by_kind(objects, "Deployment")[NAME]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert json.loads(env["MORA_STACK_SETTINGS"]) == config.stack_settings


def test_state_volume_is_protected_and_retained(monkeypatch):
    seen = record_claim_options(monkeypatch)
    render_manager(CONFIG)
    opts = seen[f"{NAME}-data"]
    assert opts.protect is True and opts.retain_on_delete is True


def test_outputs_url_ca_and_secret_credentials():
    from stacks.manager_program import build_manager

    recording = run_mocked(PROJECT, lambda: build_manager(CONFIG))
    outputs = recording.outputs
    assert outputs["url"] == "https://mora.home.example.com"
    assert isinstance(outputs["api_token"], pulumi.Output)
    assert "ca_cert_pem" in outputs


def test_config_is_checked():
    with pytest.raises(ValueError, match="not a valid namespace"):
        ManagerConfig(stack="s", domain="d.example", project_namespaces=["Media_1"])
    with pytest.raises(ValueError, match="unknown stack settings"):
        ManagerConfig(stack="s", domain="d.example", project_namespaces=["m"],
                      stack_settings={"answers": {}})
    with pytest.raises(ValueError):
        ManagerConfig(stack="s", domain="d.example", project_namespaces=[])
    text = CONFIG.to_text()
    assert ManagerConfig.from_text(text) == CONFIG


def test_workspace_deploys_the_manager_stack(tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    cli = RecordingPulumi(missing=("home-manager",), outputs={
        "url": "https://mora.home.example.com", "api_token": "t0ken", "ca_cert_pem": "PEM"})
    ws = ManagerWorkspace(CONFIG, home=tmp_path / "home", pulumi_command=cli,
                          kubeconfig=kubeconfig)
    outputs = ws.deploy(manager_stack_name("home"))
    (init,) = cli.named("stack", "init")
    assert init[:3] == ["stack", "init", "home-manager"]
    (set_all,) = cli.named("config", "set-all")
    (value,) = [a for a in set_all if a.startswith("mora:manager=")]
    assert ManagerConfig.from_text(value.removeprefix("mora:manager=")) == CONFIG
    (up,) = cli.named("up")
    assert "--yes" in up
    assert outputs["api_token"] == "t0ken" and outputs["ca_cert_pem"] == "PEM"
    project = (tmp_path / "home" / "projects" / "mora-manager" / "Pulumi.yaml").read_text()
    assert "name: mora-manager" in project
    assert f"file://{tmp_path / 'home' / 'state'}" in project


def test_in_the_cluster_the_service_account_replaces_the_kubeconfig(tmp_path, monkeypatch):
    """The manager runs the services' stack from its pod: no kubeconfig, in-cluster config."""
    from stacks_helpers import minimal

    from stacks import automation

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.43.0.1")
    token = tmp_path / "token"
    token.write_text("x")
    monkeypatch.setattr(automation, "SERVICE_ACCOUNT_TOKEN", token)
    assert automation.in_cluster()
    cli = RecordingPulumi()
    automation.Workspace(minimal(), home=tmp_path / "home", pulumi_command=cli).up("home")
    assert cli.named("up") and "KUBECONFIG" not in cli.envs[-1]
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert not automation.in_cluster()
