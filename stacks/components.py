"""One ``ComponentResource`` per service, so `pulumi preview` reads like the homelab.

A service becomes: its own claims, an env Secret (secret environment values and
secret command-line arguments), a ConfigMap and/or a Secret for its files, a
Deployment, a Service for its ports and an Ingress (with TLS) for its subdomain;
with a micromanager, also the sidecar's token Secret and a ``micromanager`` port
on the Service (:mod:`stacks.sidecar`).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mora_dsl.manifest import Service

from .context import Context
from .naming import k8s_name, labels, selector_labels
from .pod import env_secret_name, files_name, pod_spec, port_name, secret_files_name
from .sidecar import PORT_NAME, TOKEN_KEY, Sidecar, token_secret_name
from .volumes import claim

#: The pod annotation that names the container `kubectl logs` and `kubectl exec` default to.
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


class ServiceComponent(pulumi.ComponentResource):
    """All Kubernetes objects of one mora service."""

    url: str | None
    internal_url: str | None

    def __init__(self, ctx: Context, service: Service, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mora:index:Service", service.name, None, opts)
        self._ctx = ctx
        self._service = service
        child = pulumi.ResourceOptions(
            parent=self,
            depends_on=[ctx.namespace_resource] if ctx.namespace_resource else None,
        )
        for volume_id in service.volumes:
            volume = ctx.manifest.volume(volume_id)
            if volume.kind == "claim":
                claim(ctx, volume, service, self)

        spec, parts = pod_spec(ctx, service)
        config_objects: list[pulumi.Resource] = []
        if parts.env_secret:
            config_objects.append(self._secret(env_secret_name(service), parts.env_secret, child))
        if parts.secret_files:
            config_objects.append(
                self._secret(secret_files_name(service), parts.secret_files, child)
            )
        if parts.sidecar is not None:
            config_objects.append(self._secret(
                token_secret_name(service), {TOKEN_KEY: parts.sidecar.token}, child
            ))
        if parts.config_files:
            config_objects.append(
                k8s.core.v1.ConfigMap(
                    files_name(service),
                    metadata=self._metadata(files_name(service)),
                    data=parts.config_files,
                    opts=child,
                )
            )
        self.deployment = k8s.apps.v1.Deployment(
            k8s_name(service.name),
            metadata=self._metadata(k8s_name(service.name)),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=service.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels=selector_labels(ctx.manifest, service)
                ),
                # Two pods of a stateful app must never share a claim, not even during a rollout.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate")
                if parts.has_claims
                else None,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels(ctx.manifest, service),
                        # `kubectl logs/exec` pick the service, not its sidecar.
                        annotations={DEFAULT_CONTAINER: k8s_name(service.name)}
                        if parts.sidecar is not None
                        else None,
                    ),
                    spec=spec,
                ),
            ),
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(depends_on=config_objects)
            ),
        )
        self.internal_url = None
        if service.ports or parts.sidecar is not None:
            self._service_object(child, parts.sidecar)
        if service.ports:
            self.internal_url = ctx.resolver.internal_url(service.name)
        self.url = None
        public = [p for p in service.ports if p.public]
        if service.subdomain and public:
            self._ingress(public[0].name, child)
            self.url = f"https://{ctx.resolver.public_host(service.name)}"
        self.register_outputs({"url": self.url, "internal_url": self.internal_url})

    # ------------------------------------------------------------------ helpers

    def _metadata(
        self, name: str, annotations: dict[str, str] | None = None
    ) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=name,
            namespace=self._ctx.namespace,
            labels=labels(self._ctx.manifest, self._service),
            annotations=annotations,
        )

    def _secret(
        self, name: str, data: dict[str, Any], opts: pulumi.ResourceOptions
    ) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            name, metadata=self._metadata(name), type="Opaque", string_data=data, opts=opts
        )

    def _service_object(self, opts: pulumi.ResourceOptions, sidecar: Sidecar | None) -> None:
        service = self._service
        ports = [
            k8s.core.v1.ServicePortArgs(
                name=port_name(p.name),
                port=p.port,
                target_port=port_name(p.name),
                protocol=p.protocol,
            )
            for p in service.ports
        ]
        if sidecar is not None:
            # Where the manager calls the sidecar's /hooks (the URL it registers).
            ports.append(k8s.core.v1.ServicePortArgs(
                name=PORT_NAME, port=sidecar.port, target_port=PORT_NAME, protocol="TCP"
            ))
        k8s.core.v1.Service(
            k8s_name(service.name),
            metadata=self._metadata(k8s_name(service.name)),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector_labels(self._ctx.manifest, service),
                ports=ports,
            ),
            opts=opts,
        )

    def _ingress(self, port: str, opts: pulumi.ResourceOptions) -> None:
        ctx, service = self._ctx, self._service
        host = ctx.resolver.public_host(service.name)
        name = k8s_name(service.name)
        tls_secret = k8s_name(service.name, "tls")
        annotations = None
        if ctx.config.cert_manager_issuer:
            annotations = {"cert-manager.io/cluster-issuer": ctx.config.cert_manager_issuer}
        elif ctx.ingress_tls is not None:
            tls_secret = ctx.ingress_tls(service.name, host, self)
        k8s.networking.v1.Ingress(
            name,
            metadata=self._metadata(name, annotations),
            spec=ingress_spec(host, name, port_name(port), tls_secret, ctx.config.ingress_class),
            opts=opts,
        )


def ingress_spec(
    host: str, service: str, port: str, tls_secret: str, ingress_class: str | None
) -> k8s.networking.v1.IngressSpecArgs:
    """All of ``host`` over TLS (``tls_secret``) to the port named ``port`` of Service ``service``.

    The services' ingresses and the manager's (:mod:`stacks.manager`) share it.
    """
    return k8s.networking.v1.IngressSpecArgs(
        ingress_class_name=ingress_class,
        tls=[k8s.networking.v1.IngressTLSArgs(hosts=[host], secret_name=tls_secret)],
        rules=[k8s.networking.v1.IngressRuleArgs(
            host=host,
            http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=[
                k8s.networking.v1.HTTPIngressPathArgs(
                    path="/",
                    path_type="Prefix",
                    backend=k8s.networking.v1.IngressBackendArgs(
                        service=k8s.networking.v1.IngressServiceBackendArgs(
                            name=service,
                            port=k8s.networking.v1.ServiceBackendPortArgs(name=port),
                        )
                    ),
                )
            ]),
        )],
    )
