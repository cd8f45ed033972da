"""The micromanager sidecar: a second container in a micromanaged service's pod.

A service with ``micromanager = "ldap"`` gets, when the stack knows the
in-cluster manager (``StackConfig.manager_url``) and the manager issued the
service a token (``StackConfig.micromanager_tokens``):

* a container running ``mora micromanager run ldap --service <service> --manager
  <url> --host 0.0.0.0 --port 9000`` from the micromanagers' image (every
  built-in in one image), non-root, read-only root file system, small resources,
  a readiness probe on ``/healthz``;
* its token in a Secret ``<service>-micromanager`` (key ``token``), read as
  ``MORA_MICROMANAGER_TOKEN`` through a ``secretKeyRef``: never in the pod spec;
* ``MORA_SERVICE_HOST=127.0.0.1``: the sidecar shares the pod's network, so it
  reaches the service's own ports on localhost;
* a container port ``micromanager`` (9000, or the next free number when the
  service itself listens on 9000), added to the service's Service, and
  ``MORA_SIDECAR_URL=http://<service>.<namespace>.svc.<cluster domain>:9000``,
  the URL it registers, where the manager calls its ``/hooks/*``.

Without a manager URL there is no sidecar (``mora up --local``: the wizard's
steps stay the fallback); without a token, neither, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from mora_dsl.manifest import Service

from .config import micromanager_image
from .context import Context
from .errors import StackError
from .naming import k8s_name

#: The sidecar's port, unless the service itself uses that number.
PORT = 9000
PORT_NAME = "micromanager"
CONTAINER_NAME = "micromanager"
#: The key of the token in the ``<service>-micromanager`` Secret.
TOKEN_KEY = "token"
TOKEN_ENV = "MORA_MICROMANAGER_TOKEN"
ADVERTISE_ENV = "MORA_SIDECAR_URL"
SERVICE_HOST_ENV = "MORA_SERVICE_HOST"
#: The user of the micromanagers' image (``Dockerfile.micromanagers``).
UID = 10001
HEALTHZ = "/healthz"


def token_secret_name(service: Service) -> str:
    return k8s_name(service.name, "micromanager")


def sidecar_port(service: Service) -> int:
    """:data:`PORT`, or the next number the service does not listen on (same pod, same network)."""
    taken = {p.port for p in service.ports}
    port = PORT
    while port in taken:
        port += 1
    return port


@dataclass(frozen=True)
class Sidecar:
    """What the service's objects need for its sidecar."""

    container: k8s.core.v1.ContainerArgs
    port: int
    #: The token, as a secret Output, for the ``<service>-micromanager`` Secret.
    token: Any


def sidecar(ctx: Context, service: Service) -> Sidecar | None:
    """The sidecar of ``service``, or ``None`` when it gets none (see the module docstring)."""
    config = ctx.config
    if not service.micromanager or config.manager_url is None:
        return None
    token = config.micromanager_token(service.name)
    if token is None:
        pulumi.log.warn(
            f"{service.name}: no micromanager token for it in this stack, so its "
            f"{service.micromanager!r} micromanager does not run (the manager issues tokens)"
        )
        return None
    if any(k8s_name(p.name)[:15].rstrip("-") == PORT_NAME for p in service.ports):
        raise StackError(
            f"service {service.name!r} has a port named {PORT_NAME!r}, which its micromanager "
            "sidecar needs; rename the port"
        )
    port = sidecar_port(service)
    host = ctx.resolver.host(service.name)
    name = CONTAINER_NAME if k8s_name(service.name) != CONTAINER_NAME else f"mora-{CONTAINER_NAME}"
    container = k8s.core.v1.ContainerArgs(
        name=name,
        image=micromanager_image(config),
        image_pull_policy="IfNotPresent",
        command=["mora", "micromanager", "run"],
        args=[service.micromanager, "--service", service.name, "--manager", config.manager_url,
              "--host", "0.0.0.0", "--port", str(port)],
        env=[
            k8s.core.v1.EnvVarArgs(
                name=TOKEN_ENV,
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                        name=token_secret_name(service), key=TOKEN_KEY
                    )
                ),
            ),
            k8s.core.v1.EnvVarArgs(name=ADVERTISE_ENV, value=f"http://{host}:{port}"),
            k8s.core.v1.EnvVarArgs(name=SERVICE_HOST_ENV, value="127.0.0.1"),
        ],
        ports=[k8s.core.v1.ContainerPortArgs(name=PORT_NAME, container_port=port, protocol="TCP")],
        readiness_probe=k8s.core.v1.ProbeArgs(
            http_get=k8s.core.v1.HTTPGetActionArgs(path=HEALTHZ, port=PORT_NAME),
            period_seconds=10, timeout_seconds=3, failure_threshold=3,
        ),
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": "10m", "memory": "64Mi"},
            limits={"memory": "256Mi"},
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            run_as_non_root=True,
            run_as_user=UID,
            run_as_group=UID,
            read_only_root_filesystem=True,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
    )
    return Sidecar(container=container, port=port, token=pulumi.Output.secret(token))
