"""The stack config: everything that makes one deployment of a project different.

A manifest says *what* runs; a stack says *for whom*: its params (domain, …),
the wizard's answers (always secret), the services to deploy now (so the
manager can deploy in waves) and a few cluster facts. The same model is written
into Pulumi stack config by :mod:`stacks.automation` and read back by the program,
so `mora render` (no Pulumi config at all) and `pulumi up` run identical code.

No Pulumi import here: the CLI builds a config before it knows whether it needs
the engine.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from mora_dsl.manifest import Manifest, Service
from mora_dsl.values import refs

from .errors import ConfigError
from .naming import k8s_name, valid_namespace

#: Prefix of the Pulumi config keys that hold wizard answers (``mora:input.jellyfin.api_key``).
INPUT_PREFIX = "input."
#: Prefix of the Pulumi config keys that hold mora's own settings (``mora:stack.deploy``).
SETTING_PREFIX = "stack."
#: Prefix of the (secret) Pulumi config keys that hold the micromanagers' tokens
#: (``mora:micromanager_token.lldap``).
TOKEN_PREFIX = "micromanager_token."
#: The micromanagers' image (``Dockerfile.micromanagers``, every built-in in one image);
#: tagged with the installed mora version, like the manager's ``mora-manager:<version>``.
DEFAULT_MICROMANAGER_IMAGE_REPOSITORY = "mora-micromanagers"
#: The Pulumi config namespace of everything mora writes.
NAMESPACE = "mora"


class StackConfig(BaseModel):
    """One stack's settings. ``answers`` are :class:`SecretStr` so a repr never shows them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    answers: dict[str, SecretStr] = Field(default_factory=dict)
    #: The services to deploy now; ``None`` means every service whose inputs are answered.
    deploy: frozenset[str] | None = None
    #: The namespace of every object of this stack; ``None``: the one the project names.
    #: Two stacks of one project on one cluster need different namespaces, or they
    #: would create the same objects (``mora init --namespace``).
    namespace: str | None = None
    cluster_domain: str = "cluster.local"
    #: A cert-manager ClusterIssuer for ingress certificates; ``None``: mora's internal CA.
    cert_manager_issuer: str | None = None
    ingress_class: str | None = None
    #: GID of the node's ``render`` group (``getent group render``), given to Intel GPU pods.
    render_group: int = 109
    #: Storage class for claims that do not name one; ``None``: the cluster's default.
    storage_class: str | None = None
    #: Secret id → rotation stamp; changing a stamp regenerates that secret (and nothing else).
    rotate: dict[str, str] = Field(default_factory=dict)
    #: When true, claims and the namespace are no longer protected: `destroy` deletes them.
    release_volumes: bool = False
    #: Services being removed whose claims must leave the stack but stay in the cluster.
    #: Pulumi checks a resource's ``protect`` flag *from state* when the program drops
    #: it, so a protected claim cannot simply disappear from the program: an update
    #: with the service released first writes ``protect=False, retain_on_delete=True``
    #: (its Deployment, Service… are dropped at the same time), and the next update
    #: without the service removes the claims from the stack, not from the cluster.
    released: frozenset[str] = frozenset()
    #: The in-cluster manager's URL, which micromanager sidecars register with
    #: (``http://mora-manager.mora-system.svc.<cluster_domain>:8080``). ``None``: no
    #: manager (``mora up --local``), so services get no micromanager sidecar.
    manager_url: str | None = None
    #: The image of the micromanager sidecars; ``None``: :func:`default_micromanager_image`.
    micromanager_image: str | None = None
    #: Service → its micromanager's token (issued by the manager). Secret like the
    #: answers: only ever written to a Kubernetes Secret, never rendered in clear.
    micromanager_tokens: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        if value is not None and not valid_namespace(value):
            raise ValueError(
                f"{value!r} is not a valid namespace name (lower-case letters, digits and "
                "`-`, starting with a letter, at most 63 characters)"
            )
        return value

    @field_validator("manager_url")
    @classmethod
    def _manager_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"the manager's URL must start with http:// or https://, not {value!r}")
        return value.rstrip("/") if value is not None else None

    def answer(self, input_id: str) -> str | None:
        value = self.answers.get(input_id)
        return None if value is None else value.get_secret_value()

    def micromanager_token(self, service: str) -> str | None:
        value = self.micromanager_tokens.get(service)
        return None if value is None else value.get_secret_value()


@functools.lru_cache(maxsize=1)
def mora_image_tag() -> str:
    """The tag of mora's own images: the installed mora version, read once per process."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mora")
    except PackageNotFoundError:  # a source tree that is not installed
        return "latest"


def default_micromanager_image() -> str:
    """``mora-micromanagers:<installed mora version>`` (``docker build -f Dockerfile.micromanagers``)."""
    return f"{DEFAULT_MICROMANAGER_IMAGE_REPOSITORY}:{mora_image_tag()}"


def micromanager_image(config: StackConfig) -> str:
    """The sidecars' image: the stack's setting, else :func:`default_micromanager_image`."""
    return config.micromanager_image or default_micromanager_image()


def micromanaged(manifest: Manifest) -> list[Service]:
    """The services that name a micromanager (``micromanager = "..."``)."""
    return [s for s in manifest.services if s.micromanager]


def micromanager_note(manifest: Manifest, config: StackConfig) -> str | None:
    """One line for a person when micromanaged services deploy without their sidecars."""
    if config.manager_url is not None:
        return None
    names = [f"{s.name} ({s.micromanager})" for s in micromanaged(manifest)]
    if not names:
        return None
    return (f"note: micromanagers need the in-cluster manager (`mora up` without --local); "
            f"{', '.join(names)} deploy without their sidecars, and services that wait for "
            "inputs are not deployed in --local mode; use the manager (`mora up` without "
            "--local) for the wizard")


def stack_namespace(manifest: Manifest, config: StackConfig) -> str:
    """The namespace this stack's objects live in: its own setting, else the project's."""
    return config.namespace or k8s_name(manifest.project.namespace)


# --------------------------------------------------------------------------- what a service needs


def service_values(manifest: Manifest, service: Service) -> Iterator[Any]:
    """Every value that ends up in ``service``'s Kubernetes objects."""
    yield from service.config_values()
    for mount in service.mounts:
        yield manifest.volume(mount.volume).host


def required_inputs(manifest: Manifest, service: Service) -> set[str]:
    """The inputs that must be answered before ``service`` can be deployed.

    Those its own objects use, plus its own inputs marked ``before_deploy``. An
    ``after_start`` input of its own (an API key made in the running app) must not
    block it: the human needs the service running to answer.
    """
    needed = {
        r.path for v in service_values(manifest, service) for r in refs(v) if r.kind == "input"
    }
    needed |= {i for i in service.inputs if manifest.input(i).when == "before_deploy"}
    return {i for i in needed if not manifest.input(i).optional}


def default_deploy(manifest: Manifest, config: StackConfig) -> frozenset[str]:
    """Every service whose required inputs are answered."""
    answered = set(config.answers)
    return frozenset(
        s.name for s in manifest.services if required_inputs(manifest, s) <= answered
    )


def deploy_set(manifest: Manifest, config: StackConfig) -> frozenset[str]:
    """The services this update deploys; raises :class:`ConfigError` for unknown or unready ones."""
    if config.deploy is None:
        return default_deploy(manifest, config)
    known = {s.name for s in manifest.services}
    unknown = sorted(config.deploy - known)
    if unknown:
        raise ConfigError(f"deploy names unknown services: {', '.join(unknown)}")
    answered = set(config.answers)
    problems = []
    for name in sorted(config.deploy):
        missing = sorted(required_inputs(manifest, manifest.service(name)) - answered)
        if missing:
            problems.append(f"{name} needs the answer to {', '.join(missing)}")
    if problems:
        raise ConfigError("cannot deploy yet: " + "; ".join(problems))
    return config.deploy


def missing_params(manifest: Manifest, config: StackConfig) -> list[str]:
    """Params with neither a value in the stack nor a default, in declaration order."""
    return [p.name for p in manifest.params if p.name not in config.params and not p.has_default]


# --------------------------------------------------------------------------- Pulumi config mapping


def _param_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _param_value(manifest: Manifest, name: str, text: str) -> Any:
    """Pulumi config holds strings; the param's type says how to read one back."""
    param = next((p for p in manifest.params if p.name == name), None)
    kind = param.type.name if param else "string"
    try:
        if kind in ("int", "port"):
            return int(text)
        if kind == "bool":
            return {"true": True, "false": False}[text.strip().lower()]
        if kind in ("list", "map"):
            return json.loads(text)
    except (ValueError, KeyError):
        raise ConfigError(f"param {name!r} is not a valid {param.type if param else kind}") from None
    return text


def to_pulumi_config(config: StackConfig) -> dict[str, tuple[str, bool]]:
    """The config as Pulumi config keys (without the ``mora:`` namespace) → (text, secret)."""
    out: dict[str, tuple[str, bool]] = {}
    for name, value in config.params.items():
        out[name] = (_param_text(value), False)
    for input_id, answer in config.answers.items():
        out[INPUT_PREFIX + input_id] = (answer.get_secret_value(), True)
    for service, token in config.micromanager_tokens.items():
        out[TOKEN_PREFIX + service] = (token.get_secret_value(), True)
    settings: dict[str, Any] = {
        "deploy": None if config.deploy is None else json.dumps(sorted(config.deploy)),
        "namespace": config.namespace,
        "cluster_domain": config.cluster_domain,
        "cert_manager_issuer": config.cert_manager_issuer,
        "ingress_class": config.ingress_class,
        "render_group": str(config.render_group),
        "storage_class": config.storage_class,
        "rotate": json.dumps(config.rotate, sort_keys=True) if config.rotate else None,
        "release_volumes": "true" if config.release_volumes else None,
        "released": json.dumps(sorted(config.released)) if config.released else None,
        "manager_url": config.manager_url,
        "micromanager_image": config.micromanager_image,
    }
    for key, text in settings.items():
        if text is not None:
            out[SETTING_PREFIX + key] = (text, False)
    return out


#: How each stack setting reads back from its Pulumi config text (``mora:stack.<key>``).
_SETTING_LOADERS: dict[str, Callable[[str], Any]] = {
    "deploy": lambda t: frozenset(json.loads(t)),
    "namespace": str,
    "cluster_domain": str,
    "cert_manager_issuer": str,
    "ingress_class": str,
    "render_group": int,
    "storage_class": str,
    "rotate": json.loads,
    "release_volumes": lambda t: t.strip().lower() == "true",
    "released": lambda t: frozenset(json.loads(t)),
    "manager_url": str,
    "micromanager_image": str,
}
SETTINGS = tuple(_SETTING_LOADERS)
#: The settings `mora up` hands to the in-cluster manager (MORA_STACK_SETTINGS), which
#: applies them to every update of the services' stack.
FORWARDED_SETTINGS = (
    "cert_manager_issuer", "storage_class", "cluster_domain", "ingress_class", "render_group",
    "namespace", "micromanager_image",
)


def config_keys(manifest: Manifest) -> list[str]:
    """Every Pulumi config key (without ``mora:``) the program may read for ``manifest``."""
    return (
        [p.name for p in manifest.params]
        + [INPUT_PREFIX + i.id for i in manifest.inputs]
        + [SETTING_PREFIX + s for s in SETTINGS]
        + [TOKEN_PREFIX + s.name for s in micromanaged(manifest)]
    )


def from_pulumi_config(manifest: Manifest, values: dict[str, str]) -> StackConfig:
    """Read a config back from Pulumi config keys (``mora:`` namespace stripped) → text.

    Keys that are neither params, inputs, tokens nor settings (``project``) are ignored.
    """
    params: dict[str, Any] = {}
    answers: dict[str, str] = {}
    tokens: dict[str, str] = {}
    settings: dict[str, str] = {}
    param_names = {p.name for p in manifest.params}
    for key, text in values.items():
        if key.startswith(INPUT_PREFIX):
            answers[key[len(INPUT_PREFIX):]] = text
        elif key.startswith(TOKEN_PREFIX):
            tokens[key[len(TOKEN_PREFIX):]] = text
        elif key.startswith(SETTING_PREFIX):
            settings[key[len(SETTING_PREFIX):]] = text
        elif key in param_names:
            params[key] = _param_value(manifest, key, text)
    fields: dict[str, Any] = {"params": params, "answers": answers,
                              "micromanager_tokens": tokens}
    for key, text in settings.items():
        if key in _SETTING_LOADERS:
            try:
                fields[key] = _SETTING_LOADERS[key](text)
            except ValueError:
                raise ConfigError(f"stack setting {key!r} is not valid") from None
    try:
        return StackConfig.model_validate(fields)
    except ValueError as err:  # pydantic's ValidationError, e.g. a bad namespace
        raise ConfigError(f"the stack config is not valid: {err}") from None
