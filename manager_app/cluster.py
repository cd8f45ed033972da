"""Everyday tools: restart a service, read its recent logs and status, reveal or rotate a secret.

Two families of tools, each a :class:`typing.Protocol` with a real and a dry-run
implementation, picked from the settings by :func:`make_cluster_actions` and
:func:`make_generated_secrets`:

* :class:`ClusterActions` – through the Kubernetes API with `lightkube`_ (small,
  typed, plain HTTP through ``httpx2``, lightkube 1.0's fork of httpx, so respx
  cannot intercept it; tests run it against an HTTP double of the API server's
  documented endpoints served on 127.0.0.1): restart as ``kubectl rollout restart`` does
  (a strategic-merge patch of the pod template's ``kubectl.kubernetes.io/restartedAt``
  annotation), logs of the newest pod selected by the Deployment's labels, and
  the Deployment's ready replicas. :class:`DryRunActions` acts on the dry-run
  deployer's state instead (restart times and an event log in its folder).
* :class:`GeneratedSecrets` – a generated secret's value: from the dry-run
  secrets file, or from the stack's outputs via :class:`stacks.automation.Workspace`.
  Rotation itself is a stamp in the stack config (:attr:`stacks.config.StackConfig.rotate`)
  kept by the store; the dry-run implementation also replaces the value at once,
  since no engine will.

No function here logs a value: secrets pass through as return values only.

.. _lightkube: https://lightkube.readthedocs.io/
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from mora_dsl.manifest import Manifest, Secret
from stacks.naming import k8s_name, selector_labels

from .crypto import write_private
from .deployers import DryRunDeployer
from .settings import Settings

if TYPE_CHECKING:
    from lightkube import Client
    from lightkube.config.kubeconfig import KubeConfig

#: The pod-template annotation ``kubectl rollout restart`` sets; changing it rolls the pods.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: Log lines returned when the caller does not say.
DEFAULT_TAIL = 100
#: The most log lines one call returns (the API server would send a whole log otherwise).
MAX_TAIL = 5000


# --------------------------------------------------------------------------- results and errors


class RestartResult(BaseModel):
    service: str
    restarted_at: str


class ServiceLogs(BaseModel):
    """The last lines of a service's newest pod (in dry-run: its recorded events)."""

    service: str
    pod: str | None = None
    lines: list[str]


class ServiceStatus(BaseModel):
    service: str
    namespace: str
    deployment: str
    replicas: int
    ready_replicas: int
    restarted_at: str | None = None


class ClusterError(Exception):
    """The cluster could not be asked (unreachable, refused, no kubeconfig); shown as is."""


class NotDeployed(LookupError):
    """The service has no Deployment (or no pod) in the cluster yet."""


class NotStarted(RuntimeError):
    """The service's pod exists but has nothing to show yet (a container still waiting)."""


@dataclass(frozen=True)
class Target:
    """Where a manifest service lives in the cluster: its Deployment and pod selector."""

    service: str
    namespace: str
    deployment: str
    selector: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, manifest: Manifest, service: str, namespace: str | None = None) -> Target:
        """Names exactly as :mod:`stacks.naming` gives them to the deployed objects.

        ``namespace`` is the stack's (:meth:`manager_app.core.Manager.namespace`,
        which the manager always passes); without it, the project's, as
        :func:`stacks.config.stack_namespace` gives for a stack that sets none.
        """
        from stacks.config import StackConfig, stack_namespace

        svc = manifest.service(service)  # KeyError for an unknown service
        return cls(
            service=service,
            namespace=namespace or stack_namespace(manifest, StackConfig()),
            deployment=k8s_name(service),
            selector=selector_labels(manifest, svc),
        )


def _now_rfc3339() -> str:
    """The timestamp format ``kubectl rollout restart`` writes (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clamp_tail(tail_lines: int) -> int:
    return max(1, min(int(tail_lines), MAX_TAIL))


# --------------------------------------------------------------------------- cluster actions


class ClusterActions(Protocol):
    """What the services page can do to a running service. Blocking; call from a thread."""

    def restart(self, target: Target) -> RestartResult: ...

    def logs(self, target: Target, tail_lines: int = DEFAULT_TAIL) -> ServiceLogs: ...

    def status(self, target: Target) -> ServiceStatus: ...


class KubernetesActions:
    """:class:`ClusterActions` through the Kubernetes API (lightkube's sync client).

    The client is made on first use, so a manager whose kubeconfig is missing
    still starts (and these actions answer with :class:`ClusterError`). Without
    ``config`` lightkube looks for the in-cluster service account, then
    ``$KUBECONFIG`` / ``~/.kube/config``.
    """

    def __init__(self, config: KubeConfig | None = None, *, timeout: float = 10.0) -> None:
        self._config = config
        self._timeout = timeout
        self._client: Client | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path, *, timeout: float = 10.0) -> KubernetesActions:
        from lightkube.config.kubeconfig import KubeConfig

        return cls(KubeConfig.from_file(path), timeout=timeout)

    def client(self) -> Client:
        if self._client is None:
            import httpx2
            from lightkube import Client, ConfigError

            try:
                self._client = Client(
                    config=self._config,
                    timeout=httpx2.Timeout(self._timeout),
                    field_manager="mora-manager",
                    trust_env=False,
                )
            except ConfigError as err:
                raise ClusterError(f"no Kubernetes configuration: {err}") from None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client._client.close()  # lightkube's sync client keeps an httpx client open
            self._client = None

    def restart(self, target: Target) -> RestartResult:
        from lightkube.resources.apps_v1 import Deployment
        from lightkube.types import PatchType

        stamp = _now_rfc3339()
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        with _translated(target, "Deployment"):
            self.client().patch(
                Deployment, target.deployment, patch,
                namespace=target.namespace, patch_type=PatchType.STRATEGIC,
            )
        return RestartResult(service=target.service, restarted_at=stamp)

    def logs(self, target: Target, tail_lines: int = DEFAULT_TAIL) -> ServiceLogs:
        from lightkube.resources.core_v1 import Pod

        client = self.client()
        labels: dict[str, Any] = dict(target.selector)
        with _translated(target, "pod"):
            pods = list(client.list(Pod, namespace=target.namespace, labels=labels))
        if not pods:
            raise NotDeployed(f"{target.service} has no pod in namespace {target.namespace!r}")
        newest = max(pods, key=_created)
        name = newest.metadata.name if newest.metadata and newest.metadata.name else ""
        with _translated(target, "pod", started=False):
            # The service's own container: a micromanaged pod also runs the sidecar.
            lines = list(client.log(
                name, namespace=target.namespace, container=target.deployment,
                tail_lines=clamp_tail(tail_lines), newlines=False,
            ))
        return ServiceLogs(service=target.service, pod=name, lines=lines)

    def status(self, target: Target) -> ServiceStatus:
        from lightkube.resources.apps_v1 import Deployment

        with _translated(target, "Deployment"):
            deployment = self.client().get(
                Deployment, target.deployment, namespace=target.namespace
            )
        spec, st = deployment.spec, deployment.status
        template = spec.template.metadata if spec and spec.template else None
        annotations = (template.annotations or {}) if template else {}
        return ServiceStatus(
            service=target.service, namespace=target.namespace, deployment=target.deployment,
            replicas=(spec.replicas if spec and spec.replicas is not None else 1),
            ready_replicas=(st.readyReplicas or 0) if st else 0,
            restarted_at=annotations.get(RESTARTED_AT),
        )


def _created(pod: Any) -> str:
    """Sort key: a pod's creation time (ISO text or datetime; missing ones sort first)."""
    stamp = pod.metadata.creationTimestamp if pod.metadata else None
    return stamp.isoformat() if isinstance(stamp, datetime) else str(stamp or "")


class _translated:
    """Turn lightkube/httpx failures into :class:`NotDeployed`, :class:`NotStarted`, :class:`ClusterError`."""

    def __init__(self, target: Target, what: str, *, started: bool = True) -> None:
        self.target = target
        self.what = what
        self.started = started

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> None:
        if err is None:
            return
        import httpx2
        from lightkube import ApiError, ConfigError

        where = f"{self.target.namespace}/{self.target.deployment}"
        if isinstance(err, ApiError):
            code = err.status.code if err.status and err.status.code else err.response.status_code
            message = (err.status.message if err.status else None) or str(code)
            if code == 404:
                raise NotDeployed(f"{self.target.service} has no {self.what} in the cluster ({where})") from None
            if code == 400 and not self.started:
                raise NotStarted(f"{self.target.service}: {message}") from None
            raise ClusterError(f"the Kubernetes API refused ({code}): {message}") from None
        if isinstance(err, httpx2.HTTPStatusError):
            raise ClusterError(
                f"the Kubernetes API answered {err.response.status_code} for {where}"
            ) from None
        if isinstance(err, httpx2.HTTPError):
            raise ClusterError(f"cannot reach the Kubernetes API: {type(err).__name__}") from None
        if isinstance(err, ConfigError):
            raise ClusterError(f"no Kubernetes configuration: {err}") from None


class DryRunActions:
    """:class:`ClusterActions` on the dry-run state (the dry-run deployer's folder).

    A restart records its time (``restarts.json``) and appends an event; logs are
    the service's recorded events; the status comes from the last rendered
    Deployment, all its replicas ready (a dry run pretends every rollout works).
    """

    RESTARTS_FILE = "restarts.json"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.deployer = DryRunDeployer(folder)

    def _restarts(self) -> dict[str, str]:
        path = self.folder / self.RESTARTS_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _deployment(self, target: Target) -> dict[str, Any]:
        for obj in self.deployer.objects():
            meta = obj.get("metadata") or {}
            if (obj.get("kind") == "Deployment" and meta.get("name") == target.deployment
                    and meta.get("namespace", target.namespace) == target.namespace):
                return obj
        raise NotDeployed(f"{target.service} is not deployed (dry run)")

    def restart(self, target: Target) -> RestartResult:
        self._deployment(target)
        stamp = _now_rfc3339()
        restarts = self._restarts() | {target.service: stamp}
        write_private(self.folder / self.RESTARTS_FILE, json.dumps(restarts).encode())
        self.deployer.record_event(target.service, "restarted by the admin (dry run)")
        return RestartResult(service=target.service, restarted_at=stamp)

    def logs(self, target: Target, tail_lines: int = DEFAULT_TAIL) -> ServiceLogs:
        events = self.deployer.events(target.service, clamp_tail(tail_lines))
        lines = [f"{e.get('time', '')} {e.get('message', '')}" for e in events]
        return ServiceLogs(service=target.service, pod=None, lines=lines)

    def status(self, target: Target) -> ServiceStatus:
        spec = self._deployment(target).get("spec") or {}
        replicas = spec.get("replicas", 1)
        replicas = int(replicas) if isinstance(replicas, (int, float)) else 1
        return ServiceStatus(
            service=target.service, namespace=target.namespace, deployment=target.deployment,
            replicas=replicas, ready_replicas=replicas,
            restarted_at=self._restarts().get(target.service),
        )


def make_cluster_actions(settings: Settings) -> ClusterActions:
    """Dry-run actions on the dry-run deployer's folder, else the Kubernetes API."""
    if settings.dry_run:
        return DryRunActions(settings.data_dir / "dry-run")
    return KubernetesActions()


# --------------------------------------------------------------------------- generated secrets


#: A revealed value: text, or for keys and certificates their PEM parts by name.
SecretValue = str | dict[str, str]


class NotGenerated(LookupError):
    """The secret has no value yet: the first update that deploys its user makes it."""


class GeneratedSecrets(Protocol):
    """Read and replace generated secrets. Implementations never log a value."""

    def reveal(self, manifest: Manifest, secret: Secret) -> SecretValue: ...

    def rotate(self, manifest: Manifest, secret: Secret) -> None:
        """Called after the rotation stamp was stored, before the update is triggered."""
        ...


class DryRunSecrets:
    """The dry-run deployer's secrets file: rotating writes a new random value at once."""

    def __init__(self, folder: Path) -> None:
        self.deployer = DryRunDeployer(folder)

    def reveal(self, manifest: Manifest, secret: Secret) -> SecretValue:
        values = self.deployer.secret_values()
        if secret.id not in values:
            raise NotGenerated(f"{secret.id} is generated by the first update that deploys it")
        value = values[secret.id]
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else str(value)

    def rotate(self, manifest: Manifest, secret: Secret) -> None:
        self.deployer.rotate_secret(secret)
        for service in secret_users(manifest, secret.id):
            self.deployer.record_event(service, f"secret {secret.id} rotated (dry run)")


class StackSecrets:
    """The real stack: values from its outputs; rotation is the config stamp alone.

    The workspace is the Automation deployer's own (same stack, Pulumi home and
    stack settings), so a reveal reads exactly the stack the updates write.
    """

    def __init__(
        self, stack: str, home: Path | None = None, stack_settings: dict[str, Any] | None = None
    ) -> None:
        from .deployers import AutomationDeployer

        self.stack = stack
        self.deployer = AutomationDeployer(stack, home=home, stack_settings=stack_settings)

    def reveal(self, manifest: Manifest, secret: Secret) -> SecretValue:
        from stacks.errors import StackError

        try:
            return self.deployer._workspace(manifest).reveal_secret(self.stack, secret.id)
        except FileNotFoundError:
            raise ClusterError("the Pulumi CLI is not installed where the manager runs") from None
        except StackError as err:
            raise NotGenerated(str(err)) from None

    def rotate(self, manifest: Manifest, secret: Secret) -> None:
        """Nothing to do now: the next update sees the new stamp and regenerates the secret."""


def secret_users(manifest: Manifest, secret_id: str) -> list[str]:
    """The services that own ``secret_id`` or reference it in their objects."""
    from mora_dsl.values import refs
    from stacks.config import service_values

    users = []
    for service in manifest.services:
        used = secret_id in service.secrets or any(
            r.kind == "secret" and r.path == secret_id
            for v in service_values(manifest, service) for r in refs(v)
        )
        if used:
            users.append(service.name)
    return users


def make_generated_secrets(settings: Settings) -> GeneratedSecrets:
    """Dry-run secrets file, or the stack's outputs (same Pulumi home as the deployer)."""
    if settings.dry_run:
        return DryRunSecrets(settings.data_dir / "dry-run")
    return StackSecrets(settings.stack, home=settings.data_dir / "pulumi",
                        stack_settings=settings.stack_settings)
