"""The manager's own Kubernetes resources, as one ``ComponentResource``.

What runs the wizard and the services' stack from inside the cluster:

* its **namespace** (``mora-system``), retained on delete like a project's;
* the **project's namespaces**, created here (retained), so the manager never
  needs the cluster-wide right to create namespaces. The services' program
  declares the same Namespace; pulumi-kubernetes (v4, server-side apply)
  upserts it, which only needs ``get``/``patch`` on that one name;
* a **ServiceAccount** and least-privilege **RBAC**: in each project namespace a
  Role for exactly what the services' program creates (Deployments, Services,
  Ingresses, ConfigMaps, Secrets, PersistentVolumeClaims) and what
  pulumi-kubernetes reads to await readiness (Pods, ReplicaSets, Endpoints,
  EndpointSlices, Events) or the manager's service actions use (pod logs; a
  restart patches the Deployment); one ClusterRole with ``get``/``patch``/``update`` on
  the project namespaces *by name* (``resourceNames``). Nothing in its own
  namespace and nothing else cluster-wide: the manager cannot touch other apps,
  nor its own Deployment or credentials;
* its **credentials** (admin password and API token) from pulumi-random, in a
  Secret the Deployment reads as ``MORA_ADMIN_PASSWORD`` / ``MORA_API_TOKEN``;
* a **state volume** (the manager's SQLite store and the services' Pulumi
  backend), protected and retained: losing it loses the stack's state (only
  `mora destroy --manager --delete-volumes` releases it first, see ``release_volumes``);
* the **Deployment** (one replica, ``Recreate``: two managers must never share the
  state volume), non-root, probes on ``/healthz``;
* a **Service** and an **Ingress** at ``mora.<domain>`` with TLS: a cert-manager
  issuer when the stack names one, else a small CA of the manager's own (the
  same approach as the services' ingresses; its certificate is a stack output
  so `mora up` can verify the connection).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls

from .components import ingress_spec
from .manager_program import ManagerConfig
from .naming import MANAGED_BY, MANAGER_PORT, MANAGER_SERVICE, manager_url
from .pod import secret_env
from .secrets import GeneratedSecret, issue_certificate

NAME = MANAGER_SERVICE
CREDENTIALS = f"{NAME}-credentials"
DATA = f"{NAME}-data"
TLS_SECRET = f"{NAME}-tls"
CA = f"{NAME}-ca"
PORT = MANAGER_PORT
#: The image's user (see the Dockerfile); the pod enforces it.
UID = 10001
DATA_PATH = "/data"

#: What the manager may do in each project namespace, and why.
PROJECT_RULES: list[dict[str, Any]] = [
    # Everything the services' program creates, updates and deletes.
    {"api_groups": [""],
     "resources": ["configmaps", "secrets", "services", "persistentvolumeclaims"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"api_groups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"api_groups": ["networking.k8s.io"], "resources": ["ingresses"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    # What pulumi-kubernetes reads to await readiness, and the services page's logs.
    {"api_groups": [""], "resources": ["pods", "pods/log", "endpoints", "events"],
     "verbs": ["get", "list", "watch"]},
    {"api_groups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
    {"api_groups": ["discovery.k8s.io"], "resources": ["endpointslices"],
     "verbs": ["get", "list", "watch"]},
    {"api_groups": ["events.k8s.io"], "resources": ["events"], "verbs": ["get", "list", "watch"]},
]
#: On the project namespaces themselves (cluster-scoped), limited by name.
NAMESPACE_VERBS = ["get", "patch", "update"]


def manager_labels(component: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": NAME,
        "app.kubernetes.io/part-of": "mora",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def selector_labels() -> dict[str, str]:
    return {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": NAME}


def manager_args(config: ManagerConfig) -> list[str]:
    """The container's arguments (the image's entrypoint is ``mora``)."""
    return ["manager", "serve", "--stack", config.stack, "--host", "0.0.0.0",
            "--port", str(PORT), "--data", DATA_PATH]


class ManagerComponent(pulumi.ComponentResource):
    """Every Kubernetes object of the in-cluster manager (see the module docstring)."""

    admin_password: pulumi.Output[str]
    api_token: pulumi.Output[str]
    #: The manager's own CA certificate (PEM), or ``None`` with a cert-manager issuer.
    ca_cert_pem: pulumi.Output[str] | None

    def __init__(
        self, name: str, config: ManagerConfig, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mora:index:Manager", name, None, opts)
        self._config = config
        ns = config.namespace
        keep = not config.release_volumes  # `mora destroy --manager --delete-volumes`
        self.namespace = k8s.core.v1.Namespace(
            ns,
            metadata=self._meta(ns, namespaced=False),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep),
        )
        inside = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])

        self.service_account = k8s.core.v1.ServiceAccount(
            NAME, metadata=self._meta(NAME), opts=inside,
        )
        self._rbac()
        self._credentials(inside)
        self.claim = k8s.core.v1.PersistentVolumeClaim(
            DATA,
            metadata=self._meta(DATA, annotations={"pulumi.com/skipAwait": "true"}),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                    requests={"storage": config.storage_size}
                ),
                storage_class_name=config.storage_class,
            ),
            # The manager's store and the services' Pulumi state: never deleted by an update.
            opts=pulumi.ResourceOptions.merge(
                inside, pulumi.ResourceOptions(protect=keep, retain_on_delete=keep)
            ),
        )
        self.deployment = self._deployment(inside)
        self.service = k8s.core.v1.Service(
            NAME,
            metadata=self._meta(NAME),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector_labels(),
                ports=[k8s.core.v1.ServicePortArgs(
                    name="http", port=PORT, target_port="http", protocol="TCP")],
            ),
            opts=inside,
        )
        self.ca_cert_pem = None
        self._ingress(inside)
        self.register_outputs({"url": config.url})

    # ------------------------------------------------------------------ helpers

    def _meta(
        self,
        name: str,
        *,
        namespaced: bool = True,
        namespace: str | None = None,
        annotations: dict[str, str] | None = None,
        component: str | None = None,
    ) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=name,
            namespace=(namespace or self._config.namespace) if namespaced else None,
            labels=manager_labels(component),
            annotations=annotations,
        )

    def _rbac(self) -> None:
        config = self._config
        subject = k8s.rbac.v1.SubjectArgs(
            kind="ServiceAccount", name=NAME, namespace=config.namespace
        )
        for project_ns in config.project_namespaces:
            namespace = k8s.core.v1.Namespace(
                project_ns,
                metadata=self._meta(project_ns, namespaced=False, component="project"),
                # Deleting a namespace deletes the claims in it: kept like them.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            in_project = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
            role = k8s.rbac.v1.Role(
                f"{NAME}-{project_ns}",
                metadata=self._meta(NAME, namespace=project_ns, component="rbac"),
                rules=[k8s.rbac.v1.PolicyRuleArgs(**rule) for rule in PROJECT_RULES],
                opts=in_project,
            )
            k8s.rbac.v1.RoleBinding(
                f"{NAME}-{project_ns}",
                metadata=self._meta(NAME, namespace=project_ns, component="rbac"),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=NAME
                ),
                subjects=[subject],
                opts=pulumi.ResourceOptions.merge(
                    in_project, pulumi.ResourceOptions(depends_on=[role])
                ),
            )
        # Cluster-scoped names must not collide between two managers (two namespaces).
        cluster_name = f"{NAME}-{config.namespace}-namespaces"
        cluster_role = k8s.rbac.v1.ClusterRole(
            cluster_name,
            metadata=self._meta(cluster_name, namespaced=False, component="rbac"),
            rules=[k8s.rbac.v1.PolicyRuleArgs(
                api_groups=[""], resources=["namespaces"],
                resource_names=list(config.project_namespaces), verbs=NAMESPACE_VERBS,
            )],
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.rbac.v1.ClusterRoleBinding(
            cluster_name,
            metadata=self._meta(cluster_name, namespaced=False, component="rbac"),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=cluster_name
            ),
            subjects=[subject],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cluster_role]),
        )

    def _credentials(self, opts: pulumi.ResourceOptions) -> None:
        # Created once and kept: changing the generator's arguments must not rotate them.
        keep = pulumi.ResourceOptions(parent=self, ignore_changes=["length", "special"])
        password = random.RandomPassword(f"{NAME}-admin-password", length=24, special=False,
                                         opts=keep)
        token = random.RandomPassword(f"{NAME}-api-token", length=48, special=False, opts=keep)
        self.admin_password = pulumi.Output.secret(password.result)
        self.api_token = pulumi.Output.secret(token.result)
        self.credentials = k8s.core.v1.Secret(
            CREDENTIALS,
            metadata=self._meta(CREDENTIALS),
            type="Opaque",
            string_data={"admin-password": self.admin_password, "api-token": self.api_token},
            opts=opts,
        )

    def _deployment(self, opts: pulumi.ResourceOptions) -> k8s.apps.v1.Deployment:
        config = self._config

        env = [
            secret_env("MORA_ADMIN_PASSWORD", CREDENTIALS, "admin-password"),
            secret_env("MORA_API_TOKEN", CREDENTIALS, "api-token"),
            # Served behind the Ingress's TLS: the session cookie is Secure.
            k8s.core.v1.EnvVarArgs(name="MORA_SECURE_COOKIES", value="true"),
            # Where micromanager sidecars reach it (their stack's `manager_url`).
            k8s.core.v1.EnvVarArgs(name="MORA_MANAGER_URL", value=manager_url(
                config.namespace, config.stack_settings.get("cluster_domain") or "cluster.local"
            )),
        ]
        if config.stack_settings:
            env.append(k8s.core.v1.EnvVarArgs(
                name="MORA_STACK_SETTINGS",
                value=json.dumps(config.stack_settings, sort_keys=True),
            ))

        def probe(**kw: Any) -> k8s.core.v1.ProbeArgs:
            return k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path="/healthz", port="http"),
                timeout_seconds=3, **kw,
            )

        container = k8s.core.v1.ContainerArgs(
            name="manager",
            image=config.image,
            image_pull_policy=config.image_pull_policy,
            args=manager_args(config),
            env=env,
            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT,
                                                 protocol="TCP")],
            startup_probe=probe(period_seconds=2, failure_threshold=60),
            readiness_probe=probe(period_seconds=10, failure_threshold=3),
            liveness_probe=probe(period_seconds=20, failure_threshold=3),
            resources=k8s.core.v1.ResourceRequirementsArgs(
                # The Pulumi engine and its plugins run inside during an update.
                requests={"cpu": "100m", "memory": "256Mi"},
                limits={"memory": "1Gi"},
            ),
            security_context=k8s.core.v1.SecurityContextArgs(
                allow_privilege_escalation=False,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                run_as_non_root=True,
                run_as_user=UID,
                run_as_group=UID,
                # Not read-only: the Pulumi CLI writes plugin locks and workspace files
                # under PULUMI_HOME, where the image keeps the provider plugins.
                read_only_root_filesystem=False,
            ),
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_PATH),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            ],
        )
        return k8s.apps.v1.Deployment(
            NAME,
            metadata=self._meta(NAME),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                # Two managers must never share the state volume, not even during a rollout.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector_labels()),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels={**manager_labels(), **selector_labels()}
                    ),
                    spec=k8s.core.v1.PodSpecArgs(
                        service_account_name=NAME,
                        automount_service_account_token=True,
                        enable_service_links=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=True,
                            run_as_user=UID,
                            run_as_group=UID,
                            fs_group=UID,
                            fs_group_change_policy="OnRootMismatch",
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
                        ),
                        containers=[container],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="data",
                                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                                    claim_name=DATA
                                ),
                            ),
                            k8s.core.v1.VolumeArgs(
                                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs()
                            ),
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[self.credentials, self.claim])
            ),
        )

    def _ingress(self, opts: pulumi.ResourceOptions) -> None:
        config = self._config
        host = config.public_host
        annotations = None
        if config.cert_manager_issuer:
            annotations = {"cert-manager.io/cluster-issuer": config.cert_manager_issuer}
        else:
            self._own_certificate(host, opts)
        k8s.networking.v1.Ingress(
            NAME,
            metadata=self._meta(NAME, annotations=annotations),
            spec=ingress_spec(host, NAME, "http", TLS_SECRET, config.ingress_class),
            opts=opts,
        )

    def _own_certificate(self, host: str, opts: pulumi.ResourceOptions) -> None:
        """A CA of the manager's own and a certificate for ``host``, like the services' one."""
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey(f"{CA}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca_cert = tls.SelfSignedCert(
            CA,
            private_key_pem=ca_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name="mora manager CA"),
            validity_period_hours=10 * 365 * 24,
            is_ca_certificate=True,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        ca = GeneratedSecret(CA, "ca", {
            "private_key_pem": pulumi.Output.secret(ca_key.private_key_pem),
            "cert_pem": ca_cert.cert_pem,
        })
        key = tls.PrivateKey(f"{TLS_SECRET}-key", algorithm="ECDSA", ecdsa_curve="P256",
                             opts=child)
        cert = issue_certificate(
            TLS_SECRET, key=key, ca=ca, hosts=pulumi.Output.from_input([host]),
            common_name=host, valid_days=825, opts=child,
        )
        k8s.core.v1.Secret(
            TLS_SECRET,
            metadata=self._meta(TLS_SECRET),
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": cert.cert_pem,
                "tls.key": pulumi.Output.secret(key.private_key_pem),
            },
            opts=opts,
        )
        self.ca_cert_pem = ca_cert.cert_pem
