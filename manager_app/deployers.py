"""Deployers: what actually carries out a stack update for the runner.

The runner needs two operations, behind :class:`Deployer`: ``up`` (deploy this
manifest with this stack config) and ``refresh`` (re-read the real state, after
a manager stopped mid-update). Both are blocking; the runner calls them in a
worker thread.

* :class:`DryRunDeployer` needs no cluster: it renders the stack offline
  (:func:`stacks.render.render`, the real program under Pulumi mocks), keeps the
  objects in the data folder and reports success, so services reach
  ``running``. Generated secrets get real random values, kept in a 0600 file in
  the data folder, so micromanagers and the wizard can be exercised end to end.
* :class:`AutomationDeployer` runs the real Pulumi stack through
  :class:`stacks.automation.Workspace`; it is only built when not in dry-run, so
  a machine without the Pulumi CLI can run the dry-run manager.

Beside updates, both offer the operations behind the API's stack routes
(:class:`StackOperations`): ``preview`` (what the next update would change, as
counts and one step per object or resource, never a value), ``destroy`` (the
services' stack, volumes kept unless asked) and ``outputs`` (the stack's
non-secret outputs, e.g. the ingress CA certificate).

Both give the services' stack what the micromanager sidecars need
(:class:`Sidecars`): the manager's URL and the tokens it issued, read from the
data folder at each update (the dry run renders them as placeholders).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from mora_dsl.manifest import Manifest, Secret
from stacks.config import FORWARDED_SETTINGS

from .crypto import write_private
from .settings import Settings, applied_stack_settings

if TYPE_CHECKING:
    from stacks.config import StackConfig



class DeployError(Exception):
    """The update failed; the message (the engine's error) is shown to the admin."""


class TransientDeployError(DeployError):
    """A failure worth retrying by itself (the API server was briefly unreachable, …)."""


@dataclass(frozen=True)
class DeployResult:
    deployed: list[str]
    changes: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)


class Deployer(Protocol):
    """Carries out stack updates. Implementations must never log a secret or an answer."""

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult: ...

    def refresh(self, manifest: Manifest, config: StackConfig) -> None: ...


@dataclass(frozen=True)
class PreviewStep:
    """One object or resource a preview would change: ``create``, ``update``, ``delete``…"""

    operation: str
    type: str
    name: str


@dataclass(frozen=True)
class PreviewOutcome:
    changes: dict[str, int]
    steps: list[PreviewStep] = field(default_factory=list)


@runtime_checkable
class StackOperations(Protocol):
    """What a deployer offers beyond updates (both built-in deployers do; test doubles may not)."""

    def preview(self, manifest: Manifest, config: StackConfig) -> PreviewOutcome: ...

    def destroy(self, manifest: Manifest, *, delete_volumes: bool = False) -> dict[str, int]: ...

    def outputs(self, manifest: Manifest) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Sidecars:
    """What the services' stack needs for the micromanager sidecars.

    The manager's URL (where the sidecars register) and the data folder, whose
    ``micromanagers/<service>.token`` files hold the tokens the manager issued
    (:func:`manager_app.micromanagers.read_tokens`). They are read at each update,
    so a token issued after the manager started reaches its sidecar.
    """

    data_dir: Path
    manager_url: str

    def apply(self, manifest: Manifest, config: StackConfig) -> StackConfig:
        """``config`` with the manager's URL and the micromanaged services' tokens."""
        from stacks.config import StackConfig as Model
        from stacks.config import micromanaged

        from .micromanagers import read_tokens

        tokens = read_tokens(self.data_dir, [s.name for s in micromanaged(manifest)])
        return Model.model_validate({
            **dict(config),
            "manager_url": config.manager_url or self.manager_url,
            "micromanager_tokens": {**tokens, **config.micromanager_tokens},
        })


def make_deployer(settings: Settings) -> Deployer:
    """The deployer the settings ask for: dry-run, or the real Automation API."""
    from .settings import sidecar_manager_url

    sidecars = Sidecars(settings.data_dir, sidecar_manager_url(settings))
    if settings.dry_run:
        return DryRunDeployer(settings.data_dir / "dry-run", delay=settings.test_deploy_delay,
                              sidecars=sidecars)
    return AutomationDeployer(
        settings.stack, home=settings.data_dir / "pulumi", stack_settings=settings.stack_settings,
        sidecars=sidecars,
    )


# --------------------------------------------------------------------------- dry run


class DryRunDeployer:
    """Renders offline and pretends the cluster applied it. See the module docstring.

    It also keeps a small event log per service (``events.jsonl``: what an update
    applied, restarts, rotations; never a value), which the dry-run cluster actions
    (:mod:`manager_app.cluster`) serve as the service's "recent logs".
    """

    SECRETS_FILE = "secrets.json"
    OBJECTS_FILE = "objects.json"
    EVENTS_FILE = "events.jsonl"
    #: Guards the secrets file: an update (worker thread) and a rotation (request) both write it.
    _secrets_lock = threading.Lock()

    def __init__(self, folder: Path, *, delay: float = 0.0, sidecars: Sidecars | None = None) -> None:
        self.folder = folder
        self.delay = delay
        self.sidecars = sidecars

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        from stacks.errors import StackError
        from stacks.render import render

        try:
            if self.sidecars is not None:  # shown with placeholders for the tokens
                config = self.sidecars.apply(manifest, config)
            # render() brings its own event loop in this worker thread.
            objects = render(manifest, config)
        except StackError as err:
            raise DeployError(str(err)) from None
        self._ensure_secrets(manifest)
        if self.delay:
            time.sleep(self.delay)  # test-only: leaves time to kill the manager mid-update
        write_private(self.folder / self.OBJECTS_FILE, json.dumps(objects, indent=1).encode())
        deployed = sorted(config.deploy or [])
        for name in deployed:
            service = next((s for s in manifest.services if s.name == name), None)
            image = service.image if service is not None and isinstance(service.image, str) else "?"
            self.record_event(name, f"update applied (dry run): image {image}")
        for name in sorted(config.released):  # a removal's first step (see StackConfig.released)
            self.record_event(name, "removal (dry run): objects dropped, volumes released and kept")
        return DeployResult(deployed=deployed, changes={"same": len(objects)})

    def refresh(self, manifest: Manifest, config: StackConfig) -> None:
        """Nothing to re-read without a cluster: the files are the state."""

    def preview(self, manifest: Manifest, config: StackConfig) -> PreviewOutcome:
        """The rendered objects of ``config`` against those of the last update, by identity.

        An object counts as updated when its rendered text differs (secrets are
        placeholders on both sides, so a rotation does not show); only kinds and
        names are returned.
        """
        from stacks.errors import StackError
        from stacks.render import render

        try:
            if self.sidecars is not None:
                config = self.sidecars.apply(manifest, config)
            wanted = {_identity(o): o for o in render(manifest, config)}
        except StackError as err:
            raise DeployError(str(err)) from None
        current = {_identity(o): o for o in self.objects()}
        changes = {"create": 0, "update": 0, "delete": 0, "same": 0}
        steps = []
        for key, obj in wanted.items():
            op = "create" if key not in current else "same" if current[key] == obj else "update"
            changes[op] += 1
            if op != "same":
                steps.append(PreviewStep(op, key[0], key[2]))
        for key in current.keys() - wanted.keys():
            changes["delete"] += 1
            steps.append(PreviewStep("delete", key[0], key[2]))
        return PreviewOutcome(changes, sorted(steps, key=lambda s: (s.type, s.name, s.operation)))

    def destroy(self, manifest: Manifest, *, delete_volumes: bool = False) -> dict[str, int]:
        """Forget the rendered objects and the generated secrets, as a Pulumi destroy would.

        Claims count as kept unless ``delete_volumes`` (there is no data in a dry run).
        """
        objects = self.objects()
        claims = [o for o in objects if o.get("kind") in ("PersistentVolumeClaim", "Namespace")]
        kept = 0 if delete_volumes else len(claims)
        for name in (self.OBJECTS_FILE, self.SECRETS_FILE):
            (self.folder / name).unlink(missing_ok=True)
        what = ("objects, volumes and generated secrets dropped" if delete_volumes else
                "objects and generated secrets dropped, volumes kept")
        for service in manifest.services:
            self.record_event(service.name, f"stack destroyed (dry run): {what}")
        return {"delete": len(objects) - kept, "same": kept}

    def outputs(self, manifest: Manifest) -> dict[str, Any]:
        """No outputs: the dry run renders certificates as placeholders and makes no CA."""
        return {}

    # ------------------------------------------------------------------ generated secrets

    def _ensure_secrets(self, manifest: Manifest) -> None:
        with self._secrets_lock:
            values = self.secret_values()
            missing = [s for s in manifest.secrets if s.id not in values]
            if missing:
                for secret in missing:
                    values[secret.id] = generate_secret(secret)
                write_private(self.folder / self.SECRETS_FILE, json.dumps(values).encode())

    def rotate_secret(self, secret: Secret) -> None:
        """Replace one generated secret by a new random value (the next update applies it)."""
        with self._secrets_lock:
            values = self.secret_values()
            values[secret.id] = generate_secret(secret)
            write_private(self.folder / self.SECRETS_FILE, json.dumps(values).encode())

    def secret_values(self) -> dict[str, Any]:
        """The generated secrets (id → value, or part → value for keys and certificates)."""
        path = self.folder / self.SECRETS_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def objects(self) -> list[dict[str, Any]]:
        """The objects of the last dry-run update (secrets as placeholders)."""
        path = self.folder / self.OBJECTS_FILE
        return json.loads(path.read_text()) if path.exists() else []

    # ------------------------------------------------------------------ events (dry-run "logs")

    def record_event(self, service: str, message: str) -> None:
        """Append one line to ``service``'s event log. Callers never put a value in ``message``."""
        from datetime import UTC, datetime

        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "service": service, "message": message}
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / self.EVENTS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def events(self, service: str, limit: int = 100) -> list[dict[str, str]]:
        """The last ``limit`` events of ``service``, oldest first."""
        path = self.folder / self.EVENTS_FILE
        if not path.exists():
            return []
        found = []
        for text in path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(text)
            except ValueError:
                continue  # a line cut short by a crash
            if event.get("service") == service:
                found.append(event)
        return found[-limit:] if limit > 0 else []


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    """``(kind, namespace, name)`` of a rendered object."""
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind", "?")), str(meta.get("namespace") or ""), str(meta.get("name", "?")))


def _int_arg(secret: Secret, name: str, default: int) -> int:
    value = secret.args.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def generate_secret(secret: Secret) -> Any:
    """A real random value shaped like what pulumi-random / pulumi-tls would create."""
    if secret.kind == "password":
        alphabet = ""
        if secret.args.get("lower", True):
            alphabet += string.ascii_lowercase
        if secret.args.get("upper", True):
            alphabet += string.ascii_uppercase
        if secret.args.get("numeric", True):
            alphabet += string.digits
        if secret.args.get("special", False):
            alphabet += "!#$%&*()-_=+[]{}<>:?"
        length = _int_arg(secret, "length", 32)
        return "".join(secrets.choice(alphabet or string.ascii_letters) for _ in range(length))
    if secret.kind == "token":
        raw = secrets.token_bytes(_int_arg(secret, "bytes", 32))
        if secret.args.get("encoding") == "base64":
            import base64

            return base64.b64encode(raw).decode()
        return raw.hex()
    if secret.kind == "uuid":
        return str(uuid.uuid4())
    return _key_material(secret)


def _key_material(secret: Secret) -> dict[str, str]:
    """An EC key (and for ``ca``/``certificate`` a self-signed certificate), as PEM."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    parts = {
        "private_key_pem": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "public_key_pem": key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
    }
    if secret.kind in ("ca", "certificate"):
        common_name = secret.args.get("common_name")
        name = x509.Name([x509.NameAttribute(
            NameOID.COMMON_NAME, common_name if isinstance(common_name, str) else secret.id
        )])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=_int_arg(secret, "valid_days", 365)))
            .add_extension(x509.BasicConstraints(ca=secret.kind == "ca", path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        parts["cert_pem"] = cert.public_bytes(serialization.Encoding.PEM).decode()
    return parts


# --------------------------------------------------------------------------- the real stack


#: Fragments of engine errors that are worth an automatic retry.
TRANSIENT_HINTS = (
    "connection refused", "connection reset", "i/o timeout", "timeout", "tls handshake",
    "too many requests", "service unavailable", "the server is currently unable",
    "etcdserver", "conflict",
)


class AutomationDeployer:
    """Deploys through the Pulumi Automation API (:class:`stacks.automation.Workspace`).

    ``stack_settings`` (storage class, cert-manager issuer, …: the stack record's
    settings, which `mora up` gives the in-cluster manager) are laid over every
    config the runner builds, since the runner knows only params and answers.
    """

    #: The :class:`~stacks.config.StackConfig` fields a manager may be configured with.
    SETTINGS = FORWARDED_SETTINGS

    def __init__(
        self, stack: str, *, home: Path | None = None, stack_settings: dict[str, Any] | None = None,
        sidecars: Sidecars | None = None,
    ) -> None:
        self.stack = stack
        self.home = home
        self.stack_settings = applied_stack_settings(stack_settings or {})
        self.sidecars = sidecars

    def config(self, config: StackConfig, manifest: Manifest | None = None) -> StackConfig:
        """``config`` with the manager's stack settings (and, given the manifest, sidecars)."""
        if self.stack_settings:
            from stacks.config import StackConfig as Model

            config = Model.model_validate({**dict(config), **self.stack_settings})
        if self.sidecars is not None and manifest is not None:
            config = self.sidecars.apply(manifest, config)
        return config

    def _workspace(self, manifest: Manifest) -> Any:
        from stacks.automation import Workspace

        return Workspace(manifest, home=self.home)

    def _configured(self, manifest: Manifest, config: StackConfig) -> Any:
        """The workspace with ``config`` (and the manager's settings and sidecars) written."""
        ws = self._workspace(manifest)
        ws.write_config(self.stack, self.config(config, manifest), create=True)
        return ws

    def up(self, manifest: Manifest, config: StackConfig) -> DeployResult:
        with _engine_errors():
            result = self._configured(manifest, config).up(self.stack)
        deployed = result.outputs.get("deployed", sorted(config.deploy or []))
        return DeployResult(deployed=list(deployed), changes=result.changes, outputs=result.outputs)

    def refresh(self, manifest: Manifest, config: StackConfig) -> None:
        with _engine_errors():
            self._configured(manifest, config).refresh(self.stack)

    def preview(self, manifest: Manifest, config: StackConfig) -> PreviewOutcome:
        """:meth:`Workspace.preview` of the next update's config: counts and resource steps."""
        from stacks.automation import ProgressEvent

        steps: list[PreviewStep] = []

        def on_progress(event: ProgressEvent) -> None:
            if event.kind == "start" and event.operation not in ("same", "read"):
                steps.append(PreviewStep(event.operation, event.resource_type, event.name))

        with _engine_errors():
            result = self._configured(manifest, config).preview(self.stack, on_progress)
        return PreviewOutcome(dict(result.changes), steps)

    def destroy(self, manifest: Manifest, *, delete_volumes: bool = False) -> dict[str, int]:
        """:meth:`Workspace.destroy`: claims and the namespace stay unless ``delete_volumes``."""
        with _engine_errors():
            result = self._workspace(manifest).destroy(self.stack, delete_volumes=delete_volumes)
        return dict(result.changes)

    def outputs(self, manifest: Manifest) -> dict[str, Any]:
        """The stack's non-secret outputs (``{}`` before the first update)."""
        with _engine_errors():
            return self._workspace(manifest).outputs(self.stack)


@contextmanager
def _engine_errors() -> Iterator[None]:
    """The engine's :class:`~stacks.errors.StackError` as a :class:`DeployError` (see :func:`_classify`)."""
    from stacks.errors import StackError

    try:
        yield
    except StackError as err:
        raise _classify(err) from None


def _classify(err: Exception) -> DeployError:
    from stacks.errors import DeploymentFailed

    message = str(err)
    if isinstance(err, DeploymentFailed) and any(h in message.lower() for h in TRANSIENT_HINTS):
        return TransientDeployError(message)
    return DeployError(message)
