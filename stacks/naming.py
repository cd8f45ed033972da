"""Kubernetes names and labels for mora's objects.

Under Pulumi's mocks there is no auto-naming, and auto-named objects would make
`service:NAME.host` unpredictable anyway, so every object gets an explicit,
deterministic name derived here and nowhere else.
"""

from __future__ import annotations

import re

from mora_dsl.manifest import Manifest, Service

MANAGED_BY = "mora"
_NAMESPACE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def k8s_name(*parts: str) -> str:
    """A DNS-1035 label made of ``parts``: ``("lldap", "data")`` → ``lldap-data``."""
    text = "-".join(parts).lower()
    text = re.sub(r"[^a-z0-9-]+", "-", text)
    text = re.sub(r"-{2,}", "-", text).strip("-")
    if not text or not text[0].isalpha():
        text = "x-" + text
    return text[:63].rstrip("-")


def key_name(text: str) -> str:
    """A valid ConfigMap/Secret data key for ``text`` (a file path, an env name)."""
    key = re.sub(r"[^-._A-Za-z0-9]+", "-", text).strip("-.")
    return key or "file"


def valid_namespace(name: str) -> bool:
    """Whether ``name`` can name a namespace (a DNS-1123 label; mora also wants a letter first)."""
    return bool(_NAMESPACE.match(name))


def service_host(service: str, namespace: str, cluster_domain: str) -> str:
    """In-cluster DNS name of a service's Service object in the stack's ``namespace``."""
    return f"{k8s_name(service)}.{namespace}.svc.{cluster_domain}"


#: The in-cluster manager's Service (``stacks.manager``) and its port.
MANAGER_SERVICE = "mora-manager"
MANAGER_PORT = 8080
MANAGER_NAMESPACE = "mora-system"


def manager_url(namespace: str = MANAGER_NAMESPACE, cluster_domain: str = "cluster.local") -> str:
    """The in-cluster manager's URL, which micromanager sidecars register with."""
    return f"http://{MANAGER_SERVICE}.{namespace}.svc.{cluster_domain}:{MANAGER_PORT}"


def selector_labels(manifest: Manifest, service: Service) -> dict[str, str]:
    """The immutable part of the labels: what a Deployment selects its pods by."""
    return {
        "app.kubernetes.io/name": k8s_name(service.name),
        "app.kubernetes.io/instance": k8s_name(manifest.project.name),
    }


def labels(manifest: Manifest, service: Service | None = None) -> dict[str, str]:
    """The recommended ``app.kubernetes.io/*`` labels for an object of ``service`` (or shared)."""
    out = {
        "app.kubernetes.io/part-of": k8s_name(manifest.project.name),
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    if service is not None:
        out.update(selector_labels(manifest, service))
        version = image_tag(service.image)
        if version:
            out["app.kubernetes.io/version"] = version
    return out


def image_tag(image: object) -> str | None:
    """The tag of a constant image reference, when it is a valid label value."""
    if not isinstance(image, str):
        return None
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    tag = last.rsplit(":", 1)[1]
    return tag if _LABEL_VALUE.match(tag) else None
