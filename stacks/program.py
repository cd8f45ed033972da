"""The Pulumi program: a manifest and a stack config in, Kubernetes resources out.

:func:`build` is the whole program. It runs unchanged under a real engine (from
`pulumi up` through ``stacks/__main__.py``, or inline from :mod:`stacks.automation`)
and under Pulumi's unit-test mocks (:mod:`stacks.render`), so what `mora render`
shows is what `mora up` creates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_tls as tls

from mora_dsl.manifest import Manifest, Service

from .components import ServiceComponent
from .config import (
    NAMESPACE,
    StackConfig,
    config_keys,
    deploy_set,
    from_pulumi_config,
    missing_params,
)
from .context import Context
from .errors import ConfigError
from .naming import labels
from .resolve import Resolver
from .secrets import GeneratedSecret, SecretsComponent, issue_certificate
from .volumes import claim

INGRESS_CA = "mora-ingress-ca"
INGRESS_TLS = "mora-ingress-tls"
#: The key of the CA certificate in the ``mora-ingress-ca`` ConfigMap and the TLS Secret.
CA_KEY = "ca.crt"


def service_order(manifest: Manifest) -> list[str]:
    """Services in dependency order (the graph's waves), then any the graph omits."""
    ordered = [name for wave in manifest.graph.waves for name in wave]
    seen = set(ordered)
    return ordered + [s.name for s in manifest.services if s.name not in seen]


class Shared(pulumi.ComponentResource):
    """The stack's namespace, its shared claims and mora's ingress CA."""

    def __init__(self, ctx: Context, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mora:index:Shared", "shared", None, opts)
        keep = not ctx.config.release_volumes
        # Deleting a namespace deletes the claims in it, so it is kept like them.
        self.namespace = k8s.core.v1.Namespace(
            ctx.namespace,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ctx.namespace, labels=labels(ctx.manifest)),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=keep),
        )
        ctx.namespace_resource = self.namespace
        for volume in ctx.manifest.volumes:
            if volume.owner is None and volume.kind == "claim":
                claim(ctx, volume, None, self)
        self._ctx = ctx
        self._ca: GeneratedSecret | None = None
        #: The ingress CA's certificate (public), once the CA exists: a stack output.
        self.ca_cert_pem: pulumi.Output[str] | None = None
        self.register_outputs({})

    def ingress_ca(self) -> GeneratedSecret:
        """mora's own CA for ingress certificates, created the first time one is needed."""
        if self._ca is None:
            opts = pulumi.ResourceOptions(parent=self)
            key = tls.PrivateKey(f"{INGRESS_CA}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
            cert = tls.SelfSignedCert(
                INGRESS_CA,
                private_key_pem=key.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(
                    common_name=f"{self._ctx.manifest.project.name} ingress CA (mora)"
                ),
                validity_period_hours=10 * 365 * 24,
                is_ca_certificate=True,
                allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
                opts=opts,
            )
            self._ca = GeneratedSecret(
                INGRESS_CA,
                "ca",
                {
                    "private_key_pem": pulumi.Output.secret(key.private_key_pem),
                    "cert_pem": cert.cert_pem,
                },
            )
            # Published so browsers, pods and `mora ca` can trust the CA. Only the
            # certificate: it is public by nature, so it is explicitly not a secret
            # (its key never leaves the state and the TLS Secret's signing step).
            self.ca_cert_pem = pulumi.Output.unsecret(cert.cert_pem)
            k8s.core.v1.ConfigMap(
                INGRESS_CA,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=INGRESS_CA, namespace=self._ctx.namespace,
                    labels=labels(self._ctx.manifest),
                ),
                data={CA_KEY: self.ca_cert_pem},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
            )
        return self._ca


def _ingress_tls(ctx: Context, shared: Shared) -> Callable[[str, str, pulumi.Resource], str]:
    """One wildcard certificate (``*.<domain>``) from mora's CA, shared by every Ingress.

    One certificate instead of one per service: all ingresses live in the stack's
    namespace, and four fewer resources per service keep large projects fast. The
    Secret also holds the CA certificate (``ca.crt``), as cert-manager's do.
    """
    made: list[str] = []

    def make(service: str, host: str, parent: pulumi.Resource) -> str:
        if made:
            return made[0]
        domain = ctx.resolver.domain("an ingress certificate")
        opts = pulumi.ResourceOptions(parent=shared)
        key = tls.PrivateKey(f"{INGRESS_TLS}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=opts)
        ca = shared.ingress_ca()
        cert = issue_certificate(
            INGRESS_TLS,
            key=key,
            ca=ca,
            hosts=pulumi.Output.from_input([f"*.{domain}", domain]),
            common_name=f"*.{domain}",
            valid_days=825,
            opts=opts,
        )
        k8s.core.v1.Secret(
            INGRESS_TLS,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=INGRESS_TLS, namespace=ctx.namespace, labels=labels(ctx.manifest)
            ),
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": cert.cert_pem,
                "tls.key": pulumi.Output.secret(key.private_key_pem),
                CA_KEY: ca.get("cert_pem"),
            },
            opts=pulumi.ResourceOptions(parent=shared, depends_on=[shared.namespace]),
        )
        made.append(INGRESS_TLS)
        return INGRESS_TLS

    return make


class ReleasedService(pulumi.ComponentResource):
    """A service being removed: only its claims, unprotected but retained (see ``released``).

    Same type and name as its :class:`ServiceComponent`, so the claims keep their
    URNs: Pulumi updates their flags instead of replacing them. Everything else of
    the service (Deployment, Service, Ingress, Secrets) leaves the stack now.
    """

    def __init__(self, ctx: Context, service: Service) -> None:
        super().__init__("mora:index:Service", service.name, None, None)
        for volume_id in service.volumes:
            volume = ctx.manifest.volume(volume_id)
            if volume.kind == "claim":
                claim(ctx, volume, service, self)
        self.register_outputs({})


def build(manifest: Manifest, config: StackConfig) -> dict[str, Any]:
    """Declare every resource of the stack; returns (and exports) the stack outputs."""
    missing = missing_params(manifest, config)
    if missing:
        raise ConfigError(f"params without a value in this stack: {', '.join(missing)}")
    deploy = deploy_set(manifest, config)
    store: dict[str, GeneratedSecret] = {}
    resolver = Resolver(manifest, config, store)
    ctx = Context(manifest, config, resolver, namespace=resolver.namespace)
    shared = Shared(ctx)
    SecretsComponent(manifest, resolver, store, dict(config.rotate))
    if not config.cert_manager_issuer:
        ctx.ingress_tls = _ingress_tls(ctx, shared)

    components: dict[str, ServiceComponent] = {}
    for name in service_order(manifest):
        if name in config.released:
            ReleasedService(ctx, manifest.service(name))
            continue
        if name not in deploy:
            continue
        # A service waits for the services it depends on (pulumi-kubernetes awaits readiness).
        needs = [components[d] for d in manifest.graph.dependencies(name) if d in components]
        components[name] = ServiceComponent(
            ctx, manifest.service(name), pulumi.ResourceOptions(depends_on=needs)
        )
    outputs: dict[str, Any] = {
        "namespace": ctx.namespace,
        "deployed": sorted(components),
        "urls": {n: c.url for n, c in components.items() if c.url},
        "internal_urls": {n: c.internal_url for n, c in components.items() if c.internal_url},
    }
    if shared.ca_cert_pem is not None:
        # Public, so `mora ca` can read it without revealing anything (not a secret output).
        outputs["ingress_ca_cert"] = shared.ca_cert_pem
    # For `mora secrets show`: encrypted in state like the secrets themselves.
    if store:
        outputs["secrets"] = pulumi.Output.secret(
            pulumi.Output.all(**{id: secret.get(None) for id, secret in store.items()})
        )
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def config_from_stack(manifest: Manifest) -> StackConfig:
    """The :class:`StackConfig` of the running Pulumi stack (its ``mora:*`` config keys).

    Read with the runtime's raw getter: ``pulumi.Config.get`` warns on secret keys,
    and the answers are secret on purpose; they are re-wrapped as secrets on use.
    """
    from pulumi.runtime.config import get_config

    values = {}
    for key in config_keys(manifest):
        text = get_config(f"{NAMESPACE}:{key}")
        if text is not None:
            values[key] = str(text)
    return from_pulumi_config(manifest, values)


def run(manifest: Manifest) -> None:
    """The program as a Pulumi engine runs it: config from the stack, then :func:`build`."""
    build(manifest, config_from_stack(manifest))
