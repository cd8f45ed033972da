"""What every part of the program shares while it builds one stack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pulumi

from mora_dsl.manifest import Manifest

from .config import StackConfig
from .resolve import Resolver


@dataclass
class Context:
    manifest: Manifest
    config: StackConfig
    resolver: Resolver
    namespace: str
    #: Volume id → the PersistentVolumeClaim name, for every claim created so far.
    claims: dict[str, str] = field(default_factory=dict)
    #: Creates (once) the TLS Secret for a public host and returns its name; None with cert-manager.
    ingress_tls: Callable[[str, str, pulumi.Resource], str] | None = None
    #: Namespace resource, so every namespaced object waits for it.
    namespace_resource: pulumi.Resource | None = None
