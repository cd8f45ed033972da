"""Deployment planning: what to deploy now, what to ask now, what changed.

Pure functions over the manifest and what the manager has recorded (answered
input ids, each service's last known runtime state), so the plan can be
recomputed on every request and tested without a store, a runner or a cluster.

A service's state is exactly one of :data:`SERVICE_STATES`. The recorded
states (``deploying``, ``running``, ``failed``) come from the update runner;
the others are derived: a service waits for its dependencies to run, then for
the inputs it needs, and is ``ready`` when both are satisfied. The services an
update deploys are the ``ready`` ones plus everything already deployed (a stack
update that left a running service out would delete it).

Inputs are asked at the time the manifest says: ``before_deploy`` inputs any
time before their service deploys, ``after_start`` ones once their service runs
(the human needs the running app to create, e.g., an API key).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mora_dsl.manifest import Input, Manifest, Service
from mora_dsl.values import refs

ServiceState = Literal[
    "waiting_for_dependencies", "waiting_for_input", "ready", "deploying", "running", "failed"
]
#: Every state, in the order a service normally goes through them.
SERVICE_STATES: tuple[ServiceState, ...] = (
    "waiting_for_dependencies", "waiting_for_input", "ready", "deploying", "running", "failed",
)
#: The states only the runner records (the others are derived by :func:`plan`).
RecordedState = Literal["deploying", "running", "failed"]
RECORDED_STATES: frozenset[str] = frozenset({"deploying", "running", "failed"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PendingInput(_Model):
    """An input the wizard should ask (or will ask once its service runs)."""

    id: str
    service: str
    title: str
    type: str
    when: Literal["before_deploy", "after_start"]
    optional: bool
    #: Services that cannot be deployed (or updated) until this is answered.
    blocks: list[str] = Field(default_factory=list)


class ServicePlan(_Model):
    name: str
    state: ServiceState
    wave: int
    dependencies: list[str]
    #: Required inputs not answered yet (those its config uses and its own before_deploy ones).
    missing_inputs: list[str] = Field(default_factory=list)
    #: For a running service: dependencies it now references that do not run yet; its new
    #: definition is applied once they run (until then the previous one is kept).
    update_after: list[str] = Field(default_factory=list)


class Plan(_Model):
    """The whole picture for one stack: services with their state, waves, what to ask."""

    services: list[ServicePlan]
    waves: list[list[str]]
    #: Unanswered inputs that can be asked now, in wizard order.
    pending_inputs: list[PendingInput]
    #: Unanswered ``after_start`` inputs whose service does not run yet, in wizard order.
    upcoming_inputs: list[PendingInput]
    #: Services gone from the manifest but still deployed, waiting for the admin's confirmation.
    pending_removals: list[str] = Field(default_factory=list)

    def service(self, name: str) -> ServicePlan:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def states(self) -> dict[str, ServiceState]:
        return {s.name: s.state for s in self.services}

    def deploy_set(self) -> frozenset[str]:
        """The services the next stack update includes: ready ones and everything deployed."""
        return frozenset(s.name for s in self.services if s.state in ("ready", *RECORDED_STATES))

    def held(self) -> frozenset[str]:
        """Deployed services whose new definition cannot be applied yet (kept as they were)."""
        return frozenset(
            s.name
            for s in self.services
            if s.state in RECORDED_STATES and (s.missing_inputs or s.update_after)
        )

    @property
    def complete(self) -> bool:
        """Every service runs and nothing is left to ask."""
        return all(s.state == "running" for s in self.services) and not (
            self.pending_inputs or self.upcoming_inputs or self.pending_removals
        )


# --------------------------------------------------------------------------- graph


def dependencies(manifest: Manifest, service: str) -> list[str]:
    """What ``service`` needs running first: graph edges and ``depends_on``, sorted."""
    deps = set(manifest.graph.dependencies(service))
    deps |= set(manifest.service(service).depends_on)
    return sorted(deps)


def waves(manifest: Manifest) -> list[list[str]]:
    """Services grouped by depth in the dependency graph, manifest order inside a wave.

    Recomputed rather than read from ``graph.waves`` so that a manifest the
    manager edits (see :func:`effective_manifest`) and a hand-built one plan the
    same way. A cycle (which the compiler rejects) lands in one last wave.
    """
    names = [s.name for s in manifest.services]
    known = set(names)
    deps = {n: {d for d in dependencies(manifest, n) if d in known} for n in names}
    placed: set[str] = set()
    out: list[list[str]] = []
    while len(placed) < len(names):
        wave = [n for n in names if n not in placed and deps[n] <= placed]
        if not wave:
            wave = [n for n in names if n not in placed]
        out.append(wave)
        placed.update(wave)
    return out


def required_inputs(manifest: Manifest, service: Service) -> list[str]:
    """The inputs that must be answered before ``service`` can be deployed, manifest order.

    Exactly :func:`stacks.config.required_inputs` (which the stack checks the deploy
    set against, so a service the plan calls ``ready`` always deploys): inputs its
    objects use plus its own ``before_deploy`` inputs; optional ones never block.
    """
    from stacks.config import required_inputs as stack_required

    try:
        needed = stack_required(manifest, service)
    except KeyError:  # it names an input the manifest lacks (stored before manifests were
        return []  # checked on arrival): the plan still shows, the runner refuses to deploy
    return [i.id for i in manifest.inputs if i.id in needed]


# --------------------------------------------------------------------------- plan


def plan(
    manifest: Manifest,
    answers: Collection[str],
    states: Mapping[str, str],
    *,
    pending_removals: Iterable[str] = (),
) -> Plan:
    """The plan for ``manifest`` given the answered input ids and the recorded states.

    ``states`` maps a service name to its recorded state (``deploying``,
    ``running``, ``failed``); services absent from it were never deployed. Other
    values are ignored, so a caller may pass a previous plan's states.
    """
    answered = set(answers)
    recorded = {k: v for k, v in states.items() if v in RECORDED_STATES}
    wave_list = waves(manifest)
    wave_of = {name: n for n, wave in enumerate(wave_list) for name in wave}

    services: list[ServicePlan] = []
    for name in (n for wave in wave_list for n in wave):
        svc = manifest.service(name)
        deps = dependencies(manifest, name)
        not_running = [d for d in deps if recorded.get(d) != "running"]
        missing = [i for i in required_inputs(manifest, svc) if i not in answered]
        state: ServiceState
        if name in recorded:
            state = recorded[name]  # type: ignore[assignment]
        elif not_running:
            state = "waiting_for_dependencies"
        elif missing:
            state = "waiting_for_input"
        else:
            state = "ready"
        services.append(
            ServicePlan(
                name=name,
                state=state,
                wave=wave_of[name],
                dependencies=deps,
                missing_inputs=missing,
                update_after=not_running if name in recorded else [],
            )
        )

    by_name = {s.name: s for s in services}
    pending: list[PendingInput] = []
    upcoming: list[PendingInput] = []
    for inp in _wizard_order(manifest, wave_of):
        if inp.id in answered:
            continue
        owner_runs = recorded.get(inp.service) == "running"
        blocks = sorted(
            s.name for s in services if inp.id in s.missing_inputs and s.name in by_name
        )
        item = _pending(inp, blocks)
        if inp.when == "before_deploy" or owner_runs:
            pending.append(item)
        else:
            upcoming.append(item)

    known = {s.name for s in manifest.services}
    return Plan(
        services=services,
        waves=wave_list,
        pending_inputs=pending,
        upcoming_inputs=upcoming,
        pending_removals=sorted(set(pending_removals) - known),
    )


def _wizard_order(manifest: Manifest, wave_of: Mapping[str, int]) -> list[Input]:
    """Inputs ordered as the wizard asks them: by their service's wave, then as declared.

    ``before_deploy`` inputs of a wave come before its ``after_start`` ones: the
    former are needed to deploy the wave, the latter only once it runs.
    """
    position = {i.id: n for n, i in enumerate(manifest.inputs)}
    return sorted(
        manifest.inputs,
        key=lambda i: (
            wave_of.get(i.service, len(wave_of)),
            0 if i.when == "before_deploy" else 1,
            position[i.id],
        ),
    )


def _pending(inp: Input, blocks: list[str]) -> PendingInput:
    return PendingInput(
        id=inp.id,
        service=inp.service,
        title=inp.title,
        type=str(inp.type),
        when=inp.when,
        optional=inp.optional,
        blocks=blocks,
    )


# --------------------------------------------------------------------------- change detection


class Changes(_Model):
    """What differs between two manifest versions (names and input ids, sorted)."""

    added_services: list[str] = Field(default_factory=list)
    removed_services: list[str] = Field(default_factory=list)
    changed_services: list[str] = Field(default_factory=list)
    added_inputs: list[str] = Field(default_factory=list)
    removed_inputs: list[str] = Field(default_factory=list)
    changed_inputs: list[str] = Field(default_factory=list)
    #: Services present in both versions that now depend on an added service → those services.
    now_reference: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not any(
            (self.added_services, self.removed_services, self.changed_services,
             self.added_inputs, self.removed_inputs, self.changed_inputs)
        )

    def summary(self) -> list[str]:
        """One short line per kind of change, for update history."""
        lines = []
        for label, items in (
            ("added services", self.added_services),
            ("removed services", self.removed_services),
            ("changed services", self.changed_services),
            ("added inputs", self.added_inputs),
            ("removed inputs", self.removed_inputs),
            ("changed inputs", self.changed_inputs),
        ):
            if items:
                lines.append(f"{label}: {', '.join(items)}")
        return lines


def _strip_spans(value: Any) -> Any:
    """A JSON dump without positions: moving a block in a file is not a change."""
    if isinstance(value, dict):
        return {k: _strip_spans(v) for k, v in value.items() if k != "span"}
    if isinstance(value, list):
        return [_strip_spans(v) for v in value]
    return value


def _fingerprint(model: BaseModel) -> Any:
    return _strip_spans(model.model_dump(mode="json"))


def _service_fingerprint(manifest: Manifest, service: Service) -> Any:
    """A service as deployed: its definition, its owned secrets and volumes, its edges."""
    return (
        _fingerprint(service),
        [_fingerprint(manifest.secret(s)) for s in service.secrets],
        [_fingerprint(manifest.volume(v)) for v in service.volumes],
        [_fingerprint(manifest.volume(m.volume)) for m in service.mounts],
        dependencies(manifest, service.name),
    )


def diff(old: Manifest | None, new: Manifest) -> Changes:
    """Added, removed and changed services and inputs from ``old`` to ``new``.

    Positions (spans) are ignored. With no ``old``, everything is added.
    """
    old_services = {s.name: s for s in old.services} if old else {}
    new_services = {s.name: s for s in new.services}
    old_inputs = {i.id: i for i in old.inputs} if old else {}
    new_inputs = {i.id: i for i in new.inputs}

    added = sorted(set(new_services) - set(old_services))
    changed = sorted(
        n
        for n in set(new_services) & set(old_services)
        if old is not None
        and _service_fingerprint(old, old_services[n]) != _service_fingerprint(new, new_services[n])
    )
    now_reference: dict[str, list[str]] = {}
    for name in sorted(set(new_services) & set(old_services)):
        new_deps = [d for d in dependencies(new, name) if d in added]
        if new_deps:
            now_reference[name] = new_deps
    return Changes(
        added_services=added,
        removed_services=sorted(set(old_services) - set(new_services)),
        changed_services=changed,
        added_inputs=sorted(set(new_inputs) - set(old_inputs)),
        removed_inputs=sorted(set(old_inputs) - set(new_inputs)),
        changed_inputs=sorted(
            i
            for i in set(new_inputs) & set(old_inputs)
            if _fingerprint(new_inputs[i]) != _fingerprint(old_inputs[i])
        ),
        now_reference=now_reference,
    )


# --------------------------------------------------------------------------- the manifest to deploy


def defined_ids(manifest: Manifest) -> dict[str, set[str]]:
    """What ``manifest`` defines, by reference kind: params by name, the rest by id."""
    return {
        "param": {p.name for p in manifest.params},
        "secret": {s.id for s in manifest.secrets},
        "volume": {v.id for v in manifest.volumes},
        "input": {i.id for i in manifest.inputs},
    }


def effective_manifest(new: Manifest, previous: Manifest | None, keep: Collection[str]) -> Manifest:
    """``new`` with the services in ``keep`` as ``previous`` defined them.

    Two cases need this: a service removed from the manifest stays deployed
    until the admin confirms the removal, and a running service whose new
    definition needs something not there yet (an unanswered input, a dependency
    that does not run) keeps its previous definition meanwhile. A stack update
    renders the whole manifest, so the old definitions must be in it; what they
    reference (params, secrets, volumes, inputs) is brought along when ``new``
    lacks it.
    """
    from stacks.config import service_values

    if previous is None:
        return new
    old_names = {s.name for s in previous.services}
    keep = [n for n in keep if n in old_names]
    if not keep:
        return new
    data = new.model_dump(mode="python")
    new_names = {s.name for s in new.services}
    have = defined_ids(new)

    def bring(kind: str, ident: str) -> None:
        if ident in have[kind]:
            return
        have[kind].add(ident)
        if kind == "param":
            item: BaseModel = next(p for p in previous.params if p.name == ident)
            data["params"].append(item.model_dump(mode="python"))
        elif kind == "secret":
            secret = previous.secret(ident)
            data["secrets"].append(secret.model_dump(mode="python"))
            for arg in secret.args.values():
                bring_refs(arg)
        elif kind == "volume":
            volume = previous.volume(ident)
            data["volumes"].append(volume.model_dump(mode="python"))
            bring_refs(volume.host)
        elif kind == "input":
            data["inputs"].append(previous.input(ident).model_dump(mode="python"))

    def bring_refs(value: Any) -> None:
        for r in refs(value):
            kind, path = r.kind, r.path
            try:
                if kind in ("param", "secret", "input"):
                    bring(kind, path)
            except (KeyError, StopIteration):
                pass  # not in previous either: let the stack report it

    for name in keep:
        old = previous.service(name)
        dumped = old.model_dump(mode="python")
        if name in new_names:
            data["services"] = [dumped if s["name"] == name else s for s in data["services"]]
        else:
            data["services"].append(dumped)
        for value in service_values(previous, old):
            bring_refs(value)
        for sid in old.secrets:
            bring("secret", sid)
        for vid in [*old.volumes, *(m.volume for m in old.mounts)]:
            bring("volume", vid)
        for iid in old.inputs:
            bring("input", iid)
        data["graph"]["edges"] = [e for e in data["graph"]["edges"] if e["service"] != name] + [
            e.model_dump(mode="python") for e in previous.graph.edges if e.service == name
        ]
    merged = Manifest.model_validate(data)
    return merged.model_copy(
        update={"graph": merged.graph.model_copy(update={"waves": waves(merged)})}
    )

