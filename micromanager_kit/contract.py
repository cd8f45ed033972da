"""The REST contract between the manager and its micromanager sidecars.

One source of truth for both sides: the manager (``manager_app``) and the kit
import these models and path constants, so a field renamed on one side breaks
the other at import or validation time instead of in production.

Two directions, both plain REST (no sockets):

* **sidecar → manager**, under ``/api/v1``, with a per-service bearer token:
  register (:class:`Registration`), read the service's config
  (:class:`ConfigResponse`), report values it created (:class:`Report`), ask the
  wizard for more inputs (:class:`InputRequests`).
* **manager → sidecar**: ``/healthz`` and ``/hooks/*`` (:class:`HookCall` in,
  :class:`HookResult` / :class:`HealthResult` / :class:`ErrorBody` out).

Scoping lives here too, as pure functions over the manifest
(:func:`refs_of_service`, :func:`ref_in_scope`, :func:`report_key_to_input_id`),
so the manager enforces exactly what the kit's test stand-in enforces.

Values are keyed by *ref key*: the manifest's reference text
(``secret:lldap.jwt_secret``, ``input:lldap.admin_email``, ``param:domain``,
``service:lldap.url``), with ``#attr`` appended when a reference picks a part of
a TLS secret (``secret:lldap.tls#cert_pem``).

``CONTRACT_VERSION`` changes on any incompatible change; every request body
carries the version its sender speaks, and a receiver refuses another one
with ``409`` and code ``contract_version``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue, field_validator

from mora_dsl.manifest import Manifest, Ref, TypeName, TypeSpec
from mora_dsl.values import EvaluationError, evaluate, refs, to_text

from .errors import MASK

CONTRACT_VERSION = 1

# --------------------------------------------------------------------------- paths
#
# sidecar → manager (bearer token of the service). ``{service}`` is the service
# name from the manifest; a token for another service gets 403.
API_PREFIX = "/api/v1"
PATH_REGISTER = API_PREFIX + "/micromanagers/{service}/register"  # POST Registration
# GET → ConfigResponse; ``?key=REF`` (repeatable) asks for just those keys (403 if out of scope)
PATH_CONFIG = API_PREFIX + "/micromanagers/{service}/config"
PATH_REPORT = API_PREFIX + "/micromanagers/{service}/reports"  # POST Report
PATH_INPUT_REQUESTS = API_PREFIX + "/micromanagers/{service}/input-requests"  # POST InputRequests

# manager → sidecar.
PATH_HEALTHZ = "/healthz"  # GET → Liveness (the process answers; says nothing of the service)
PATH_HOOK_BEFORE_DEPLOY = "/hooks/before-deploy"
PATH_HOOK_AFTER_START = "/hooks/after-start"
PATH_HOOK_INPUTS_ANSWERED = "/hooks/inputs-answered"
PATH_HOOK_RECONFIGURE = "/hooks/reconfigure"
PATH_HOOK_HEALTH = "/hooks/health"  # POST HookCall → HealthResult (200 healthy, 503 not)
PATH_HOOK_ACTION = "/hooks/actions/{name}"  # POST ActionCall → HookResult

HookName = Literal["before_deploy", "after_start", "inputs_answered", "reconfigure", "health"]
LIFECYCLE_HOOKS: tuple[HookName, ...] = (
    "before_deploy",
    "after_start",
    "inputs_answered",
    "reconfigure",
    "health",
)
HOOK_PATHS: dict[str, str] = {
    "before_deploy": PATH_HOOK_BEFORE_DEPLOY,
    "after_start": PATH_HOOK_AFTER_START,
    "inputs_answered": PATH_HOOK_INPUTS_ANSWERED,
    "reconfigure": PATH_HOOK_RECONFIGURE,
    "health": PATH_HOOK_HEALTH,
}

BEARER = "Bearer"
IDEMPOTENCY_HEADER = "Idempotency-Key"  # also carried in the Report body

Scalar = str | int | bool | None


class _Model(BaseModel):
    # Frozen and strict about unknown fields, like the manifest: a newer peer's
    # extra field fails loudly instead of being silently dropped.
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Versioned(_Model):
    contract_version: int = CONTRACT_VERSION




def _masked(values: dict[str, Any], keys: Any = None) -> dict[str, Any]:
    """``values`` with the values under ``keys`` (all when ``None``) replaced by :data:`MASK`."""
    return {k: (MASK if keys is None or k in keys else v) for k, v in values.items()}


# --------------------------------------------------------------------------- errors

ErrorCode = Literal[
    "unauthorized",  # 401: no or unknown token
    "forbidden",  # 403: token of another service, or a ref outside the service's scope
    "not_found",  # 404: unknown service, unknown action
    "contract_version",  # 409: the peer speaks another contract version
    "idempotency_conflict",  # 409: same idempotency key, different body
    "invalid",  # 422: a body or an action's fields do not validate
    "not_ready",  # 503: a value the hook needs is not known yet (unanswered input…)
    "hook_failed",  # 500: the hook raised
    "unavailable",  # 503: the manager or the service cannot be reached
]


class ErrorBody(_Model):
    """Every error either side returns.

    ``detail`` is one sentence for a person (the manager shows it in the wizard
    next to a retry button); it never holds a traceback or a secret. ``detail``
    is also FastAPI's own error key, so a plain ``HTTPException`` reads alike.
    """

    detail: str
    code: ErrorCode
    retryable: bool = False
    hook: str | None = None  # the hook or ``action:NAME`` that failed
    hint: str | None = None  # what the person can do about it
    fields: dict[str, str] = {}  # per form field, for ``invalid`` action calls


# --------------------------------------------------------------------------- forms


class FormField(_Model):
    """One typed field of an action's form (or of a requested input).

    ``type`` is a manifest :class:`TypeSpec`, so the manager renders and checks
    it exactly like a wizard input (``mora_dsl.validate.parse_value``).
    """

    name: str
    title: str
    type: TypeSpec = TypeSpec(name="string")
    help: str | None = None
    required: bool = True
    default: Scalar = None

    @property
    def secret(self) -> bool:
        return self.type.name == "secret"


class ActionSpec(_Model):
    """An action a micromanager offers; the manager shows it as a tool in its UI."""

    name: str
    title: str
    help: str | None = None
    fields: list[FormField] = []


# --------------------------------------------------------------------------- sidecar → manager


class Registration(_Versioned):
    """``POST PATH_REGISTER``: a sidecar announces itself (again after each start)."""

    service: str
    micromanager: str  # "ldap": must match the service's ``micromanager`` in the manifest
    version: str  # the micromanager's own version, shown in the manager UI
    url: str  # where the manager reaches the sidecar's /hooks, e.g. http://10.0.0.5:8765
    hooks: list[HookName] = []  # the lifecycle hooks it implements
    actions: list[ActionSpec] = []
    # A random token the sidecar makes at each start: the manager sends it as
    # ``Authorization: Bearer …`` on every /hooks call, so nobody else in the
    # cluster can trigger an action (reset a password…) on the sidecar.
    hook_token: str | None = None

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # never show the hook token in a repr (logs, test failure output)
        for name, value in super().__repr_args__():
            yield name, (MASK if name == "hook_token" and value else value)


class RegistrationAccepted(_Versioned):
    service: str
    micromanager: str


class ConfigResponse(_Versioned):
    """``GET PATH_CONFIG``: the service's resolved values, only those in its scope.

    ``values`` holds every ref key the service's manifest entry references and
    whose value is known; ``missing`` the ones not known yet (an unanswered
    input, a secret not generated before the first deploy). ``secret_keys``
    says which values are secret so the kit masks them in reprs and errors.
    ``environment`` is the service's environment with references resolved
    (only variables whose references are all known); ``ports`` its ports.
    """

    service: str
    micromanager: str | None = None
    values: dict[str, JsonValue] = {}
    secret_keys: list[str] = []
    missing: list[str] = []
    environment: dict[str, str] = {}
    ports: dict[str, int] = {}

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # a repr (a log line, a failed assert) shows which values exist, not the secret ones;
        # the environment is masked whole, since any variable may embed a secret
        for name, value in super().__repr_args__():
            if name == "values":
                value = _masked(value, set(self.secret_keys))
            elif name == "environment":
                value = _masked(value)
            yield name, value


class Report(_Versioned):
    """``POST PATH_REPORT``: values the sidecar created (an API key…).

    Keys are the service's input names (``api_key``) or ids (``jellyfin.api_key``).
    The manager stores them as the inputs' answers (a reported answer satisfies
    the wizard step, which stays as the fallback when no micromanager runs) and,
    when stack config changed, queues a coalesced update. The same
    ``idempotency_key`` with the same body is answered like the first time and
    stored once; with another body it is refused (409).
    """

    idempotency_key: str
    values: dict[str, JsonValue]

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for name, value in super().__repr_args__():
            yield name, (_masked(value) if name == "values" else value)

    @field_validator("idempotency_key")
    @classmethod
    def _key_not_blank(cls, v: str) -> str:
        if not v.strip() or len(v) > 200:
            raise ValueError("idempotency_key must be 1-200 characters")
        return v


class ReportAccepted(_Versioned):
    inputs: list[str]  # input ids the values were stored for
    changed: list[str]  # those whose stored value changed (they trigger an update)
    replayed: bool = False  # True when this idempotency key was seen before


class InputRequest(_Model):
    """A new wizard input the micromanager asks for (becomes ``input:SERVICE.NAME``)."""

    name: str
    title: str
    type: TypeSpec = TypeSpec(name="string")
    help: str | None = None
    optional: bool = False
    default: Scalar = None

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not v.isidentifier():
            raise ValueError("an input name is an identifier (letters, digits, _)")
        return v


class InputRequests(_Versioned):
    """``POST PATH_INPUT_REQUESTS``: ask the wizard for these (idempotent by name)."""

    inputs: list[InputRequest]


class InputStatus(_Model):
    id: str
    answered: bool


class InputRequestsAccepted(_Versioned):
    inputs: list[InputStatus]


# --------------------------------------------------------------------------- manager → sidecar


class Liveness(_Model):
    """``GET /healthz``: the sidecar process answers."""

    status: Literal["ok"] = "ok"
    micromanager: str
    contract_version: int = CONTRACT_VERSION


class HookCall(_Versioned):
    """The body of every ``POST /hooks/*`` call.

    ``call_id`` identifies one call for logs (a retry from the wizard gets a new
    one). ``answered`` lists input ids answered since the last call
    (inputs-answered), ``changed`` the ref keys whose values changed
    (reconfigure). ``config`` lets the manager push the scoped config along and
    save the sidecar a round trip; when absent, the sidecar reads it.
    """

    service: str
    call_id: str = ""
    answered: list[str] = []
    changed: list[str] = []
    config: ConfigResponse | None = None


class ActionCall(HookCall):
    """``POST /hooks/actions/{name}``: the form the person filled in.

    Values arrive as typed JSON or as the text of a form field; the kit parses
    text with the field's type.
    """

    values: dict[str, JsonValue] = {}

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for name, value in super().__repr_args__():
            yield name, (_masked(value) if name == "values" else value)


class HookResult(_Versioned):
    """A hook or action that succeeded.

    ``changes`` says in a few words what the hook did (empty when nothing
    needed doing, which is how idempotency shows); ``reported`` and
    ``requested_inputs`` list what it sent to the manager; ``data`` is an
    action's output for the person (never a secret).
    """

    status: Literal["ok"] = "ok"
    hook: str
    message: str | None = None
    changes: list[str] = []
    reported: list[str] = []
    requested_inputs: list[str] = []
    data: dict[str, JsonValue] = {}


class HealthResult(_Versioned):
    healthy: bool
    message: str | None = None


# --------------------------------------------------------------------------- scoping


def ref_key(ref: Ref) -> str:
    """The key a reference's value has in :attr:`ConfigResponse.values`."""
    return ref.ref if ref.attr is None else f"{ref.ref}#{ref.attr}"


SERVICE_ATTRS = ("url", "internal_url", "host", "public_host")


def refs_of_service(manifest: Manifest, service: str) -> set[str]:
    """Every ref key a service's micromanager may read.

    That is what the service's manifest entry references (image, command, args,
    environment, files), plus what the service owns: its inputs, its secrets
    and its own addresses. Anything else (another service's API key) is out of
    scope and the manager answers 403. Inputs a micromanager requested at run
    time are owned too; see :func:`ref_in_scope`.
    """
    svc = manifest.service(service)  # KeyError for an unknown service
    keys = {ref_key(r) for value in svc.config_values() for r in refs(value)}
    keys |= {f"input:{i}" for i in svc.inputs}
    keys |= {f"secret:{s}" for s in svc.secrets}
    keys |= {f"service:{service}.{attr}" for attr in SERVICE_ATTRS}
    return keys


def ref_in_scope(manifest: Manifest, service: str, key: str) -> bool:
    """Whether ``service``'s token may read ``key`` (also inputs it requested itself)."""
    if key.startswith(f"input:{service}.") and "#" not in key:
        return True
    return key in refs_of_service(manifest, service)


def report_key_to_input_id(service: str, key: str) -> str | None:
    """The input id a report key names, or ``None`` when it names another service's input.

    ``api_key`` and ``jellyfin.api_key`` both mean ``jellyfin.api_key`` for the
    jellyfin service; ``sonarr.api_key`` is out of its scope (403).
    """
    if "." not in key:
        return f"{service}.{key}" if key.isidentifier() else None
    owner, _, name = key.partition(".")
    if owner != service or not name.isidentifier():
        return None
    return key


def type_spec(type: TypeSpec | TypeName | str) -> TypeSpec:
    """A :class:`TypeSpec` from its short name (``"email"``), for the decorators' convenience."""
    if isinstance(type, TypeSpec):
        return type
    return TypeSpec.model_validate({"name": type})


def is_secret_key(manifest: Manifest, key: str) -> bool:
    """Whether the value under ``key`` is secret: a generated secret or a ``secret``-typed input."""
    kind, _, path = key.partition(":")
    if kind == "secret":
        return True
    if kind == "input":
        try:
            return manifest.input(path.split("#", 1)[0]).type.name == "secret"
        except KeyError:
            return False  # an input a micromanager requested: its request says
    return False


def scoped_config(
    manifest: Manifest,
    service: str,
    known: Mapping[str, JsonValue],
    *,
    extra_secret_keys: Iterable[str] = (),
    keys: Iterable[str] | None = None,
) -> ConfigResponse:
    """The :class:`ConfigResponse` for ``service`` out of every value the manager knows.

    ``known`` maps ref keys to values (params, generated secrets, answers,
    addresses). Only keys in the service's scope are included; ``keys``
    narrows the answer further (the caller checks they are in scope first).
    ``extra_secret_keys`` marks requested inputs whose request said ``secret``.
    """
    svc = manifest.service(service)
    wanted = refs_of_service(manifest, service)
    wanted |= {k for k in known if k.startswith(f"input:{service}.")}
    if keys is not None:
        wanted = set(keys)
    extra = set(extra_secret_keys)
    values = {k: known[k] for k in sorted(wanted) if k in known}
    environment: dict[str, str] = {}
    for name, value in svc.environment.items():
        try:
            environment[name] = to_text(evaluate(value, lambda r: known[ref_key(r)]))
        except (KeyError, EvaluationError):
            continue  # a reference not known yet: the variable is left out
    return ConfigResponse(
        service=service,
        micromanager=svc.micromanager,
        values=values,
        secret_keys=sorted(k for k in values if is_secret_key(manifest, k) or k in extra),
        missing=sorted(k for k in wanted if k not in known),
        environment=environment,
        ports={p.name: p.port for p in svc.ports},
    )
