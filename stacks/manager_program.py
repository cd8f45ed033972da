"""The manager's own stack: a small Pulumi program apart from the services' stack.

`mora up` (without ``--local``) deploys the manager into the cluster once, as a
stack of its own (``<stack>-manager`` of the Pulumi project ``mora-manager``), and
from then on the manager runs the services' stack from inside the cluster. The
two stacks are separate on purpose: the manager's state volume, credentials and
RBAC must survive anything the manager does to the services' stack, and the
workstation needs cluster-admin rights only for this small one.

* :class:`ManagerConfig` – what the manager stack is made of (no Pulumi import, so
  the CLI can build one cheaply); written into the stack as one JSON config key;
* :func:`build_manager` – the program (:class:`stacks.manager.ManagerComponent`
  plus the stack outputs);
* :func:`render_manager` – its Kubernetes objects offline, under the same mocks as
  `mora render` (tests validate them against the Kubernetes schema);
* :class:`ManagerWorkspace` – the Automation API for it, on the same backend and
  passphrase as the services' stacks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .automation import Workspace
from .config import FORWARDED_SETTINGS, mora_image_tag
from .errors import ConfigError, DeploymentFailed, StackError
from .naming import k8s_name

if TYPE_CHECKING:
    from pulumi import automation as auto

#: The Pulumi project of every manager stack.
PROJECT = "mora-manager"
#: The Pulumi config key (``mora:manager``) that holds the :class:`ManagerConfig` as JSON.
CONFIG_KEY = "manager"
#: The default manager image: built from the repository's Dockerfile and loaded into the
#: cluster (or pushed to a registry and named with ``mora up --manager-image``).
DEFAULT_IMAGE_REPOSITORY = "mora-manager"
#: Stack settings the manager applies to every update of the services' stack.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def default_image() -> str:
    """``mora-manager:<installed mora version>``: the image `docker build -t` makes by default."""
    return f"{DEFAULT_IMAGE_REPOSITORY}:{mora_image_tag()}"


def manager_stack_name(stack: str) -> str:
    """The manager stack of the services' stack ``stack``."""
    return f"{stack}-manager"


class ManagerConfig(BaseModel):
    """Everything the manager stack needs; nothing in it is a secret."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The services' stack the manager runs (``mora manager serve --stack``).
    stack: str
    #: The homelab's domain; the wizard is served at ``mora.<domain>`` (see ``host``).
    domain: str
    #: The namespaces of the project's services: the only ones the manager may write to.
    project_namespaces: list[str] = Field(min_length=1)
    #: The manager's own namespace (its Deployment, state volume, credentials).
    namespace: str = "mora-system"
    image: str = Field(default_factory=default_image)
    image_pull_policy: str = "IfNotPresent"
    #: The wizard's host name; default ``mora.<domain>``.
    host: str | None = None
    #: Size of the state volume (the manager's SQLite store and the Pulumi backend).
    storage_size: str = "2Gi"
    storage_class: str | None = None
    ingress_class: str | None = None
    #: A cert-manager ClusterIssuer for the wizard's certificate; ``None``: a CA of its own.
    cert_manager_issuer: str | None = None
    #: Settings of the services' stack the manager applies to each update (storage class, …).
    stack_settings: dict[str, Any] = Field(default_factory=dict)
    #: ``True`` only for the update before ``destroy --delete-volumes``: the state volume
    #: and the manager's namespace are then neither protected nor retained.
    release_volumes: bool | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid namespace name")
        return value

    @field_validator("project_namespaces")
    @classmethod
    def _project_namespaces(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _DNS_LABEL.match(name):
                raise ValueError(f"{name!r} is not a valid namespace name")
        return sorted(set(value))

    @field_validator("stack_settings")
    @classmethod
    def _stack_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(FORWARDED_SETTINGS))
        if unknown:
            raise ValueError(f"unknown stack settings: {', '.join(unknown)}")
        return {k: v for k, v in value.items() if v is not None}

    @property
    def public_host(self) -> str:
        return self.host or f"mora.{self.domain}"

    @property
    def url(self) -> str:
        return f"https://{self.public_host}"

    def to_text(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_text(cls, text: str) -> ManagerConfig:
        try:
            return cls.model_validate_json(text)
        except ValueError as err:
            raise ConfigError(f"the manager stack's config is not valid: {err}") from None


# --------------------------------------------------------------------------- the program


def build_manager(config: ManagerConfig) -> dict[str, Any]:
    """Declare the manager's resources; returns (and exports) the stack outputs.

    The credentials and the CA certificate are outputs so `mora up` can talk to the
    manager it just deployed; the credentials are secret outputs (encrypted in state,
    hidden by ``pulumi stack output``).
    """
    import pulumi

    from .manager import ManagerComponent

    manager = ManagerComponent("mora-manager", config)
    outputs: dict[str, Any] = {
        "url": config.url,
        "namespace": config.namespace,
        "stack": config.stack,
        "project_namespaces": list(config.project_namespaces),
        "admin_password": pulumi.Output.secret(manager.admin_password),
        "api_token": pulumi.Output.secret(manager.api_token),
    }
    if manager.ca_cert_pem is not None:
        outputs["ca_cert_pem"] = manager.ca_cert_pem
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def render_manager(config: ManagerConfig) -> list[dict[str, Any]]:
    """The manager's Kubernetes objects, offline, generated values as placeholders."""
    from .render import kubernetes_objects, run_mocked

    return kubernetes_objects(run_mocked(PROJECT, lambda: build_manager(config)))


# --------------------------------------------------------------------------- Automation API


class ManagerWorkspace(Workspace):
    """The manager stacks, through the same Automation API plumbing as the services' stacks.

    Same mora home, backend and passphrase as :class:`~stacks.automation.Workspace`;
    only the Pulumi project (``mora-manager``) and the program differ.
    """

    def __init__(
        self,
        config: ManagerConfig,
        *,
        home: Path | None = None,
        backend_url: str | None = None,
        pulumi_command: auto.PulumiCommand | None = None,
        kubeconfig: Path | None = None,
    ) -> None:
        self.config = config
        self._setup(PROJECT, k8s_name(PROJECT), home=home, backend_url=backend_url,
                    pulumi_command=pulumi_command, kubeconfig=kubeconfig)

    def _program(self) -> Callable[[], None]:
        config = self.config

        def program() -> None:
            build_manager(config)

        return program

    def _description(self) -> str | None:
        return "The mora manager: setup wizard and deployment of a project's stack"

    def deploy(self, stack: str, on_progress: Any = None) -> dict[str, Any]:
        """Create or select ``stack``, write the config, run ``up``; returns every output.

        The returned outputs include the secret ones (the API token): the caller keeps
        them private and never prints them.
        """
        self._write_manager_config(self._stack(stack, create=True))
        self._run(stack, "up", on_progress)
        return self.all_outputs(stack)

    def destroy(
        self, stack: str, on_progress: Any = None, *, delete_volumes: bool = False
    ) -> Any:
        """Remove the manager. Its state volume and namespace stay unless ``delete_volumes``.

        With it, the stack's own config (as the last ``deploy`` wrote it) is first
        updated with ``release_volumes`` so the volume's protection is lifted.
        """
        if not delete_volumes:
            return self._run(stack, "destroy", on_progress, exclude_protected=True)
        s = self._stack(stack, create=False)
        written = s.get_all_config().get(f"mora:{CONFIG_KEY}")
        current = ManagerConfig.from_text(written.value) if written is not None else self.config
        self.config = current.model_copy(update={"release_volumes": True})
        self._write_manager_config(s)
        self._run(stack, "up", on_progress)
        return self._run(stack, "destroy", on_progress)

    def _write_manager_config(self, s: auto.Stack) -> None:
        """Write :attr:`config` as the stack's one ``mora:manager`` key (nothing in it is secret)."""
        from pulumi import automation as auto

        s.set_all_config(
            {f"mora:{CONFIG_KEY}": auto.ConfigValue(value=self.config.to_text(), secret=False)}
        )

    def all_outputs(self, stack: str) -> dict[str, Any]:
        """Every output of the manager stack, secret ones in clear (keep them private)."""
        from pulumi import automation as auto

        try:
            values = self._stack(stack, create=False).outputs()
        except auto.CommandError as err:  # pragma: no cover - the CLI failed
            raise DeploymentFailed(str(err)) from None
        if not values:
            raise StackError(f"the manager stack {stack!r} has no outputs; run `mora up` again")
        return {k: v.value for k, v in values.items()}

