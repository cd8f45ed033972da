"""The manager's operations, shared by the REST API and the wizard pages.

Routes stay thin: each one calls a method here. The wizard (``manager_app.web``)
uses the same methods, so a form and an API call can never behave differently:

* :meth:`Manager.plan` – the overview (services, states, waves, inputs to ask);
* :meth:`Manager.submit_answer` – validate, store encrypted, trigger an update;
* :meth:`Manager.receive_manifest` – store, diff, re-plan, trigger an update;
* :meth:`Manager.trigger_update` / :meth:`Manager.updates` – the update queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mora_dsl.manifest import Input, Manifest
from mora_dsl.validate import InvalidValue, parse_value

from . import planner
from .planner import Changes, Plan
from .settings import Settings
from .store import ManifestRecord, Store, UpdateRecord


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


class InvalidAnswer(ValueError):
    """An answer does not fit its input's type; the message never repeats a secret."""

    def __init__(self, input_id: str, message: str) -> None:
        super().__init__(message)
        self.input_id = input_id
        self.message = message


def validate_answer(spec: Input, text: str) -> str:
    """The answer as it is stored (normalised text), or :class:`InvalidAnswer`.

    Uses :func:`mora_dsl.validate.parse_value`, so the wizard accepts exactly what
    `mora init` accepts. Booleans are stored as ``true``/``false``, numbers as digits,
    lists and maps as JSON.
    """
    import json

    try:
        value = parse_value(spec.type, text)
    except InvalidValue as err:
        raise InvalidAnswer(spec.id, f"{spec.title}: {err}") from None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class Manager:
    """One stack's manager state: the store plus the wake-up call of the update runner."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        #: Called after anything that should lead to an update (the runner sets it).
        self.on_trigger: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ manifests

    def manifest_record(self) -> ManifestRecord:
        record = self.store.latest_manifest()
        if record is None:
            raise NoManifest()
        return record

    def manifest(self) -> Manifest:
        return self.manifest_record().manifest

    def params(self) -> dict[str, Any]:
        """The settings' ``--set`` params overlaid by the latest manifest's params."""
        record = self.store.latest_manifest()
        return {**self.settings.params, **(record.params if record else {})}

    def receive_manifest(self, manifest: Manifest, params: dict[str, Any] | None = None) -> Changes:
        """Store a new manifest version, note removals for confirmation, trigger an update.

        Answers are never dropped: an input that disappears and comes back is
        answered already, and a service slotted in between asks only for its
        own new inputs.
        """
        previous = self.store.latest_manifest()
        changes = planner.diff(previous.manifest if previous else None, manifest)
        merged = {**(previous.params if previous else self.settings.params), **(params or {})}
        self.store.add_manifest(manifest, merged, changes.summary())
        deployed = set(self.store.states())
        removed = [s for s in changes.removed_services if s in deployed]
        if removed:
            self.store.request_removals(removed)
        # A service that comes back is no longer being removed.
        for name in changes.added_services:
            self.store.cancel_removal(name)
        params_changed = previous is not None and previous.params != merged
        if previous is None or not changes.empty or params_changed:
            lines = changes.summary() or (["params changed"] if params_changed else [])
            self.trigger_update("manifest received", lines)
        return changes

    # ------------------------------------------------------------------ plan

    def plan(self) -> Plan:
        """The current plan: recomputed from the manifest, the answers and recorded states."""
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
        return True

    # ------------------------------------------------------------------ updates

    def trigger_update(self, trigger: str, changes: list[str] | None = None) -> int:
        """Queue an update (folded into a queued one if there is) and wake the runner."""
        update_id = self.store.enqueue_update(trigger, changes)
        self.on_trigger()
        return update_id

    def updates(self, limit: int = 50) -> list[UpdateRecord]:
        return self.store.updates(limit)
