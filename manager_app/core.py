"""The manager's operations, shared by the REST API and the wizard pages.

Routes stay thin: each one calls a method here. The wizard (``manager_app.web``)
uses the same methods, so a form and an API call can never behave differently:

* :meth:`Manager.plan` – the overview (services, states, waves, inputs to ask);
* :meth:`Manager.submit_answer` – validate, store encrypted, trigger an update;
* :meth:`Manager.receive_manifest` – store, diff, re-plan, trigger an update;
* :meth:`Manager.trigger_update` / :meth:`Manager.updates` – the update queue;
* everyday tools (:mod:`.cluster`): :meth:`Manager.restart_service`,
  :meth:`Manager.service_logs`, :meth:`Manager.service_status`,
  :meth:`Manager.generated_secrets`, :meth:`Manager.reveal_secret` (needs the admin
  password again) and :meth:`Manager.rotate_secret`;
* the stack as a whole (the routes call the runner, which owns the deployer and the
  one-update-at-a-time lock): :func:`ingress_ca_certificate` picks the CA out of the
  stack outputs, :meth:`Manager.check_destroy` and :meth:`Manager.stack_destroyed`
  bracket a destroy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mora_dsl.manifest import Input, Manifest, Secret
from mora_dsl.validate import InvalidValue, parse_value
from mora_dsl.values import to_text

from . import planner
from .cluster import (
    DEFAULT_TAIL,
    ClusterActions,
    GeneratedSecrets,
    RestartResult,
    SecretValue,
    ServiceLogs,
    ServiceStatus,
    Target,
    make_cluster_actions,
    make_generated_secrets,
    secret_users,
)
from .credentials import admin_password_ok
from .planner import Changes, Plan
from .settings import Settings, applied_stack_settings
from .store import ManifestRecord, Store, UpdateRecord

if TYPE_CHECKING:
    from stacks.config import StackConfig

log = logging.getLogger("mora.manager")


def stack_settings(settings: Settings) -> dict[str, Any]:
    """The settings' stack settings (``MORA_STACK_SETTINGS``, from `mora up`) that a
    :class:`~stacks.config.StackConfig` takes: those the Automation deployer applies."""
    return applied_stack_settings(settings.stack_settings)


def base_config(settings: Settings) -> StackConfig:
    """A stack config with only the manager's stack settings (namespace, cluster domain, …).

    The runner builds every update's config on it, in dry-run too, so the dry-run
    state, the cluster actions and the addresses given to sidecars all agree with
    what a real update deploys.
    """
    from stacks.config import StackConfig

    return StackConfig.model_validate(stack_settings(settings))


def stack_namespace(settings: Settings, manifest: Manifest) -> str:
    """The namespace of this stack's objects: its setting, else the project's.

    The one answer to "where does this stack live" in the manager: the runner's
    config, restart/logs/status (:class:`~.cluster.Target`) and the service
    addresses given to micromanagers all use it.
    """
    from stacks.config import stack_namespace as namespace_of

    return namespace_of(manifest, base_config(settings))


class NoManifest(LookupError):
    """No manifest has been received yet (`mora up` or `mora manager serve PATH` sends one)."""

    def __init__(self) -> None:
        super().__init__(
            "the manager has no manifest yet; run `mora up`, or start it with "
            "`mora manager serve PATH`"
        )


class UnknownInput(LookupError):
    def __init__(self, input_id: str) -> None:
        super().__init__(f"the manifest has no input {input_id!r}")
        self.input_id = input_id


class UnknownService(LookupError):
    def __init__(self, service: str) -> None:
        super().__init__(f"the manifest has no service {service!r}")
        self.service = service


class UnknownSecret(LookupError):
    def __init__(self, secret_id: str) -> None:
        super().__init__(f"the manifest has no generated secret {secret_id!r}")
        self.secret_id = secret_id


class WrongPassword(PermissionError):
    """The admin password re-entered to reveal a secret does not match."""

    def __init__(self) -> None:
        super().__init__("wrong password")


class NoIngressCa(LookupError):
    """The stack has no internal CA certificate to give out; the message says why."""


class WrongConfirmation(ValueError):
    """A destroy whose ``confirm`` field does not name this manager's stack."""

    def __init__(self, stack: str) -> None:
        super().__init__(f"`confirm` must be this manager's stack name ({stack!r}); "
                         "nothing was destroyed")


class NotSupported(RuntimeError):
    """The deployer in use cannot preview, destroy or read outputs (a test double)."""


def ingress_ca_certificate(settings: Settings, outputs: dict[str, Any]) -> str:
    """The ingress CA's certificate (PEM) from the stack outputs, or :class:`NoIngressCa`."""
    cert = outputs.get("ingress_ca_cert")
    if isinstance(cert, str) and cert.strip():
        return cert if cert.endswith("\n") else cert + "\n"
    if settings.dry_run:
        raise NoIngressCa("this manager runs in dry run: it makes no CA (certificates are "
                          "rendered as placeholders), so there is no certificate to trust")
    issuer = settings.stack_settings.get("cert_manager_issuer")
    if issuer:
        raise NoIngressCa(f"stack {settings.stack} gets its certificates from cert-manager "
                          f"(issuer {issuer}), not from mora's CA: trust that issuer's CA")
    raise NoIngressCa(f"stack {settings.stack} has no internal CA yet; the first update that "
                      "deploys a service with a subdomain makes it")


class SecretInfo(BaseModel):
    """A generated secret as the services page lists it (never its value)."""

    id: str
    name: str
    kind: str
    owner: str | None = None
    used_by: list[str]
    rotated_at: str | None = None


class SecretRotated(BaseModel):
    id: str
    rotated_at: str
    update_id: int


@dataclass(frozen=True)
class Applied:
    """What one successful update applied, beyond starting services (for the listener).

    ``answered``: inputs whose new answer this update put into the stack;
    ``changed``: ref keys of params and generated secrets (``param:domain``,
    ``secret:app.db_password``) whose values changed; ``changed_services``:
    services whose definition (image, environment, …) changed.
    """

    answered: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    changed_services: tuple[str, ...] = ()


class ManagerListener:
    """Who hears about manifests, answers and started services (no-ops here).

    :mod:`.micromanagers` replaces it to issue sidecar tokens, call hooks and
    add the inputs sidecars requested; every method must return at once (hook
    calls are scheduled, never awaited), so neither a request nor the update
    runner waits on a sidecar.
    """

    def extend_manifest(self, manifest: Manifest) -> Manifest:
        return manifest

    def manifest_received(self, manifest: Manifest) -> None:
        pass

    def answered(self, input_ids: list[str]) -> None:
        """Answers were stored (not applied yet: :meth:`started` says when an update did)."""

    def started(self, services: list[str], applied: Applied | None = None) -> None:
        """An update succeeded: ``services`` now run for the first time; ``applied`` says
        what else it changed."""


class InvalidManifest(ValueError):
    """A manifest whose parts name things it does not define (the compiler never makes one)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the manifest is inconsistent: " + "; ".join(problems[:10]))
        self.problems = problems


def manifest_problems(manifest: Manifest) -> list[str]:
    """Every name a manifest uses but does not define; empty for a consistent manifest.

    pydantic checks each part's shape and that ids are unique, not that a
    service's inputs, secrets, volumes and references exist. The planner and
    the stack look those up and would fail deep inside an update, so the
    manager refuses such a manifest when it arrives (found by schemathesis).
    """
    from mora_dsl.values import refs
    from stacks.config import service_values

    names = {s.name for s in manifest.services}
    defined = planner.defined_ids(manifest)
    problems: list[str] = []

    def need(kind: str, ident: str, where: str) -> None:
        known = names if kind == "service" else defined[kind]
        if ident not in known:
            problems.append(f"{where} names unknown {kind} {ident!r}")

    def need_refs(value: Any, where: str) -> None:
        for ref in refs(value):
            if ref.kind in defined:
                need(ref.kind, ref.path, where)
            elif ref.kind == "service":
                need("service", ref.path.split(".", 1)[0], where)

    for service in manifest.services:
        where = f"service {service.name!r}"
        for iid in service.inputs:
            need("input", iid, where)
        for sid in service.secrets:
            need("secret", sid, where)
        for vid in [*service.volumes, *(m.volume for m in service.mounts)]:
            need("volume", vid, where)
        for dep in service.depends_on:
            need("service", dep, where)
        if not problems:  # service_values looks volumes up
            for value in service_values(manifest, service):
                need_refs(value, where)
    for inp in manifest.inputs:
        need("service", inp.service, f"input {inp.id!r}")
        for user in inp.used_by:
            need("service", user, f"input {inp.id!r}")
    for secret in manifest.secrets:
        if secret.owner is not None:
            need("service", secret.owner, f"secret {secret.id!r}")
        for arg in secret.args.values():
            need_refs(arg, f"secret {secret.id!r}")
    for volume in manifest.volumes:
        if volume.owner is not None:
            need("service", volume.owner, f"volume {volume.id!r}")
        need_refs(volume.host, f"volume {volume.id!r}")
    for param in manifest.params:
        need_refs(param.default, f"param {param.name!r}")
    for edge in manifest.graph.edges:
        need("service", edge.service, "the graph")
        need("service", edge.on, "the graph")
    for wave in manifest.graph.waves:
        for name in wave:
            need("service", name, "the graph's waves")
    return list(dict.fromkeys(problems))


class InvalidAnswer(ValueError):
    """An answer does not fit its input's type; the message never repeats a secret."""

    def __init__(self, input_id: str, message: str) -> None:
        super().__init__(message)
        self.input_id = input_id
        self.message = message


def validate_answer(spec: Input, text: str) -> str:
    """The answer as it is stored (normalised text), or :class:`InvalidAnswer`.

    Uses :func:`mora_dsl.validate.parse_value`, so the wizard accepts exactly what
    `mora init` accepts, and stores the value as :func:`mora_dsl.values.to_text` writes
    any value into a service's config (``true``/``false``, digits, compact JSON).
    """
    try:
        value = parse_value(spec.type, text)
    except InvalidValue as err:
        raise InvalidAnswer(spec.id, f"{spec.title}: {err}") from None
    return to_text(value)


class Manager:
    """One stack's manager state: the store plus the wake-up call of the update runner."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        #: Called after anything that should lead to an update (the runner sets it).
        self.on_trigger: Callable[[], None] = lambda: None
        #: Micromanagers (:mod:`.micromanagers` installs one): requested inputs and hooks.
        self.listener: ManagerListener = ManagerListener()
        #: Restart, logs, status: the Kubernetes API, or the dry-run state (tests replace it).
        self.cluster: ClusterActions = make_cluster_actions(settings)
        #: Generated secrets' values: the stack's outputs, or the dry-run secrets file.
        self.secret_values: GeneratedSecrets = make_generated_secrets(settings)

    # ------------------------------------------------------------------ manifests

    def manifest_record(self) -> ManifestRecord:
        record = self.store.latest_manifest()
        if record is None:
            raise NoManifest()
        return record

    def manifest(self) -> Manifest:
        """The latest manifest, plus the inputs micromanagers requested at run time.

        Cached until the next write to the store (both come from it): every page and
        API call reads it.
        """
        listener = self.listener
        return self.store.memo(
            ("manifest", id(listener)),
            lambda: listener.extend_manifest(self.manifest_record().manifest),
        )

    def params(self) -> dict[str, Any]:
        """The settings' ``--set`` params overlaid by the latest manifest's params."""
        record = self.store.latest_manifest()
        return {**self.settings.params, **(record.params if record else {})}

    def receive_manifest(self, manifest: Manifest, params: dict[str, Any] | None = None) -> Changes:
        """Store a new manifest version, note removals for confirmation, trigger an update.

        Answers are never dropped: an input that disappears and comes back is
        answered already, and a service slotted in between asks only for its
        own new inputs. Raises :class:`InvalidManifest` (nothing stored) when the
        manifest names things it does not define.
        """
        problems = manifest_problems(manifest)
        if problems:
            raise InvalidManifest(problems)
        previous = self.store.latest_manifest()
        changes = planner.diff(previous.manifest if previous else None, manifest)
        merged = {**(previous.params if previous else self.settings.params), **(params or {})}
        self.store.add_manifest(manifest, merged, changes.summary())
        self.listener.manifest_received(manifest)
        deployed = set(self.store.states())
        removed = [s for s in changes.removed_services if s in deployed]
        if removed:
            self.store.request_removals(removed)
        # A service that comes back is no longer being removed; if its objects were
        # dropped already (the removal's first step), it is deployed (and set up) anew.
        for name in changes.added_services:
            if self.store.cancel_removal(name):
                self.store.forget_service(name)
        params_changed = previous is not None and previous.params != merged
        # After a destroy nothing is deployed: the same manifest sent again deploys it anew.
        redeploy = not self.store.states() and bool(self.plan().deploy_set())
        if previous is None or not changes.empty or params_changed or redeploy:
            lines = changes.summary() or (["params changed"] if params_changed else [])
            self.trigger_update("manifest received", lines)
        return changes

    # ------------------------------------------------------------------ plan

    def plan(self) -> Plan:
        """The current plan, from the manifest, the answers and recorded states.

        Computed again only after a write to the store (the plan derives from it alone);
        callers must not modify it.
        """
        return self.store.memo(("plan", id(self.listener)), self._plan)

    def _plan(self) -> Plan:
        manifest = self.manifest()
        return planner.plan(
            manifest,
            self.store.answered(),
            self.store.states(),
            pending_removals=self.store.removals(),
        )

    def confirm_removal(self, service: str) -> bool:
        """The admin agreed to remove ``service`` (its volumes stay); triggers an update."""
        if not self.store.confirm_removal(service):
            return False
        self.trigger_update(f"removal of {service} confirmed", [f"remove service {service}"])
        return True

    # ------------------------------------------------------------------ answers

    def input(self, input_id: str) -> Input:
        try:
            return self.manifest().input(input_id)
        except KeyError:
            raise UnknownInput(input_id) from None

    def answered(self, input_id: str) -> bool:
        return input_id in self.store.answered()

    def submit_answer(self, input_id: str, text: str) -> bool:
        """Validate and store one answer; triggers an update when the value changed.

        Raises :class:`UnknownInput` or :class:`InvalidAnswer` (whose message is safe
        to show next to the field). Returns whether the stored value changed.
        """
        spec = self.input(input_id)
        value = validate_answer(spec, text)
        if self.store.answer(input_id) == value:
            return False
        self.store.set_answer(input_id, value)
        self.trigger_update(f"answer to {input_id}", [f"answered {input_id}"])
        self.listener.answered([input_id])
        return True

    # ------------------------------------------------------------------ updates

    def trigger_update(self, trigger: str, changes: list[str] | None = None) -> int:
        """Queue an update (folded into a queued one if there is) and wake the runner."""
        update_id = self.store.enqueue_update(trigger, changes)
        self.on_trigger()
        return update_id

    def updates(self, limit: int = 50) -> list[UpdateRecord]:
        return self.store.updates(limit)

    # ------------------------------------------------------------------ the whole stack

    def check_destroy(self, confirm: str) -> None:
        """A destroy must name this manager's stack (:class:`WrongConfirmation` otherwise)."""
        if confirm != self.settings.stack:
            raise WrongConfirmation(self.settings.stack)

    def stack_destroyed(self, delete_volumes: bool) -> list[int]:
        """After a destroy: queued updates are cancelled, every service counts as not deployed.

        Answers, manifests and rotation stamps stay, so the next manifest (`mora up`)
        deploys the stack again without asking anything twice. Returns the ids of
        the cancelled updates.
        """
        cancelled = self.store.cancel_queued("cancelled: the stack was destroyed")
        self.store.forget_services()
        log.info("stack %s destroyed (volumes %s)", self.settings.stack,
                 "deleted" if delete_volumes else "kept")
        return cancelled

    # ------------------------------------------------------------------ everyday tools

    def namespace(self, manifest: Manifest | None = None) -> str:
        """The namespace of this stack (see :func:`stack_namespace`)."""
        return stack_namespace(self.settings, manifest or self.manifest_record().manifest)

    def _target(self, service: str) -> Target:
        manifest = self.manifest()
        try:
            return Target.of(manifest, service, self.namespace(manifest))
        except KeyError:
            raise UnknownService(service) from None

    def restart_service(self, service: str) -> RestartResult:
        """Roll the service's pods, as ``kubectl rollout restart`` does (blocking: a thread).

        Raises :class:`UnknownService`, :class:`~.cluster.NotDeployed` or
        :class:`~.cluster.ClusterError`.
        """
        result = self.cluster.restart(self._target(service))
        log.info("service %s restarted", service)
        return result

    def service_logs(self, service: str, tail_lines: int = DEFAULT_TAIL) -> ServiceLogs:
        """The last lines of the service's newest pod (dry-run: its recorded events)."""
        return self.cluster.logs(self._target(service), tail_lines)

    def service_status(self, service: str) -> ServiceStatus:
        """The service's Deployment: desired and ready replicas, last restart."""
        return self.cluster.status(self._target(service))

    def _secret(self, secret_id: str) -> Secret:
        try:
            return self.manifest().secret(secret_id)
        except KeyError:
            raise UnknownSecret(secret_id) from None

    def generated_secrets(self) -> list[SecretInfo]:
        """Every generated secret of the manifest, with its users and last rotation."""
        manifest = self.manifest()
        rotated = self.store.rotated_at()
        return [
            SecretInfo(
                id=s.id, name=s.name, kind=s.kind, owner=s.owner,
                used_by=secret_users(manifest, s.id), rotated_at=rotated.get(s.id),
            )
            for s in manifest.secrets
        ]

    def check_admin_password(self, password: str) -> bool:
        return admin_password_ok(self.store, password)

    def reveal_secret(self, secret_id: str, password: str) -> SecretValue:
        """A generated secret's value, only with the admin password entered again.

        The password is checked here, not by the callers, so no page or route can
        forget it; callers add the login rate limit (:func:`manager_app.api.reveal_checked`).
        Raises :class:`UnknownSecret`, :class:`WrongPassword`,
        :class:`~.cluster.NotGenerated` or :class:`~.cluster.ClusterError`. Only the
        id is logged, as an audit line.
        """
        secret = self._secret(secret_id)
        if not self.check_admin_password(password):
            raise WrongPassword()
        value = self.secret_values.reveal(self.manifest(), secret)
        log.info("generated secret %s revealed to the admin", secret_id)
        return value

    def rotate_secret(self, secret_id: str) -> SecretRotated:
        """Give the secret a new value: a new rotation stamp, then an update applies it.

        The stamp is stored first (so a crash cannot lose the rotation); the dry
        run also writes the new random value at once.
        """
        secret = self._secret(secret_id)
        self.store.rotate_secret(secret_id)
        self.secret_values.rotate(self.manifest(), secret)
        update_id = self.trigger_update(f"rotation of {secret_id}", [f"rotate secret {secret_id}"])
        log.info("generated secret %s rotated", secret_id)
        return SecretRotated(
            id=secret_id, rotated_at=self.store.rotated_at()[secret_id], update_id=update_id
        )
