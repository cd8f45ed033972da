"""The manager's side of the micromanager contract (:mod:`micromanager_kit.contract`).

A micromanager is a sidecar that sets up one service. The manager and the
sidecar talk REST both ways; this module holds the logic, and
:mod:`.micromanager_api` the thin routes:

* **Tokens.** Every service whose manifest entry says ``micromanager = "..."``
  gets a random bearer token when a manifest is received. Only its SHA-256 is
  stored; the token itself is handed over once, as a 0600 file
  ``<data>/micromanagers/<service>.token`` (``mora micromanager run`` reads it
  with ``--token-file`` or from ``MORA_MICROMANAGER_TOKEN``; in a cluster the
  deployers pass it to the services' stack, which makes the sidecar's Secret
  from it). A token reads and reports only for its
  own service, and only the values its manifest entry references (the
  contract's :func:`~micromanager_kit.contract.ref_in_scope`).
* **Registration.** A sidecar announces its URL, hooks, actions and a hook
  token of its own; the hook token is kept encrypted (Fernet, the answers'
  key) and sent as bearer on every ``/hooks`` call.
* **Config.** :func:`~micromanager_kit.contract.scoped_config` over what the
  manager knows: params, answers, service addresses and generated secrets
  (the dry-run secrets file, or the stack's outputs).
* **Reports** answer the matching input (``service.name``) as the wizard
  would, once per idempotency key; an answer the stack uses triggers a
  (coalesced) update. The wizard step stays as the fallback when no sidecar
  runs.
* **Input requests** become inputs of the service, asked by the wizard in its
  service's wave (see :meth:`MicromanagerHub.extend_manifest`).
* **Hooks** are called in background tasks with timeouts and retried with
  backoff while the error says ``retryable``: after-start once a service
  runs; inputs-answered and reconfigure after the update that applied an
  answer (or changed the service's definition, a param or a generated secret
  it uses) succeeded, since before that the service does not have the value;
  before-deploy for a service not deployed yet. The last outcome of each
  hook is stored, so the services page shows a failure with a retry button.
* **Health** of running services with a sidecar is polled every
  ``health_interval`` seconds (never by the update runner) and shown with the
  micromanager's state.
* **Actions** are forwarded to the sidecar and answered with its
  :class:`~micromanager_kit.contract.HookResult`.

The tables live in the manager's SQLite file with a schema version of their
own (:data:`MIGRATIONS`): they change with this module, so they do not
compete for numbers in the store's shared migration list.

Nothing here logs a token, a hook token, a reported value or an action's
values.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
from cryptography.fernet import Fernet
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from micromanager_kit import contract as c
from mora_dsl.manifest import Input, Manifest, Span
from mora_dsl.validate import InvalidValue, parse_value
from mora_dsl.values import EvaluationError, evaluate, to_text

from .core import (
    Applied,
    InvalidAnswer,
    ManagerListener,
    NoManifest,
    base_config,
    validate_answer,
)
from .crypto import hash_token, load_fernet, write_private
from .store import Store, now

if TYPE_CHECKING:
    from .core import Manager

log = logging.getLogger("mora.manager.micromanagers")

TOKEN_FOLDER = "micromanagers"
CLUSTER_DOMAIN = "cluster.local"  # stacks.config.StackConfig's default
#: Where a requested input "was written": shown instead of a file position.
REQUESTED_SPAN = Span(file="(requested by a micromanager)", line=1, column=1, end_line=1,
                      end_column=1)

#: This module's own tables; the version is kept in ``micromanager_schema_version``.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE mm_tokens (
        service TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        issued_at TEXT NOT NULL
    );
    CREATE TABLE mm_registrations (
        service TEXT PRIMARY KEY,
        micromanager TEXT NOT NULL,
        version TEXT NOT NULL,
        url TEXT NOT NULL,
        hooks TEXT NOT NULL,
        actions TEXT NOT NULL,
        hook_token BLOB,
        registered_at TEXT NOT NULL
    );
    CREATE TABLE mm_reports (
        service TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        digest TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (service, idempotency_key)
    );
    CREATE TABLE mm_input_requests (
        input_id TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        request TEXT NOT NULL,
        timing TEXT NOT NULL,
        requested_at TEXT NOT NULL
    );
    CREATE TABLE mm_hook_status (
        service TEXT NOT NULL,
        hook TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        message TEXT,
        changes TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (service, hook)
    );
    """,
]

HookStatusName = Literal["running", "ok", "failed"]


def token_path(data_dir: Path, service: str) -> Path:
    """Where the manager hands over ``service``'s token: ``<data>/micromanagers/<service>.token``."""
    return data_dir / TOKEN_FOLDER / f"{service}.token"


def read_tokens(data_dir: Path, services: Iterable[str]) -> dict[str, str]:
    """The issued tokens of ``services`` (those with a readable, non-empty token file).

    The deployers put them into the stack config, from which the services' stack
    makes each sidecar's Secret. Never logged.
    """
    tokens = {}
    for service in services:
        try:
            token = token_path(data_dir, service).read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if token:
            tokens[service] = token
    return tokens


# --------------------------------------------------------------------------- errors


class Refused(Exception):
    """A sidecar's request refused with a contract :class:`~micromanager_kit.contract.ErrorBody`."""

    def __init__(self, status: int, code: c.ErrorCode, detail: str, *, hint: str | None = None,
                 retryable: bool = False) -> None:
        super().__init__(detail)
        self.status = status
        self.body = c.ErrorBody(detail=detail, code=code, hint=hint, retryable=retryable)


# --------------------------------------------------------------------------- what the API shows


class HookStatus(BaseModel):
    """The last outcome of one hook (or action) of one service, for the UI."""

    model_config = ConfigDict(frozen=True)

    hook: str
    status: HookStatusName
    attempts: int = 0
    message: str | None = None
    changes: list[str] = Field(default_factory=list)
    error: c.ErrorBody | None = None
    updated_at: str


class Health(BaseModel):
    """The last health check of a service by its micromanager (``/hooks/health``)."""

    model_config = ConfigDict(frozen=True)

    #: ``None``: the sidecar could not be asked (unreachable, timed out, a malformed answer).
    healthy: bool | None
    message: str | None = None
    checked_at: str


class MicromanagerStatus(BaseModel):
    """A micromanaged service as the manager knows it (never a token)."""

    model_config = ConfigDict(frozen=True)

    service: str
    micromanager: str
    registered: bool
    url: str | None = None
    version: str | None = None
    registered_at: str | None = None
    hooks: list[str] = Field(default_factory=list)
    actions: list[c.ActionSpec] = Field(default_factory=list)
    hook_status: list[HookStatus] = Field(default_factory=list)
    #: The last health check (``None``: not checked yet, or the service does not run).
    health: Health | None = None

    @property
    def failures(self) -> list[HookStatus]:
        return [h for h in self.hook_status if h.status == "failed"]


class ActionRequest(BaseModel):
    """``POST /api/v1/micromanagers/{service}/actions/{name}``: the form's values."""

    model_config = ConfigDict(extra="forbid")
    values: dict[str, JsonValue] = Field(default_factory=dict, repr=False)


class RetryQueued(BaseModel):
    service: str
    hooks: list[str]


@dataclass(frozen=True)
class Registered:
    """A stored registration, the hook token decrypted (keep it out of logs and answers)."""

    service: str
    micromanager: str
    version: str
    url: str
    hooks: list[str]
    actions: list[c.ActionSpec]
    hook_token: str | None
    registered_at: str

    def __repr__(self) -> str:  # the hook token never shows in a log line or a failed assert
        return f"Registered({self.service!r}, {self.micromanager!r}, url={self.url!r})"


# --------------------------------------------------------------------------- storage


class MicromanagerStore:
    """This module's tables in the manager's SQLite file (same connection, same lock)."""

    def __init__(self, store: Store, fernet: Fernet) -> None:
        self.store = store
        self._fernet = fernet
        # This process is the only writer, so two small read-mostly tables are cached:
        # they are read on every plan and every answer.
        self._requests: list[tuple[str, str, c.InputRequest, str]] | None = None
        self._services: list[str] | None = None
        self.migrate()

    def migrate(self) -> None:
        store = self.store
        with store._lock:
            store._conn.execute(
                "CREATE TABLE IF NOT EXISTS micromanager_schema_version (version INTEGER NOT NULL)"
            )
            row = store._conn.execute(
                "SELECT MAX(version) FROM micromanager_schema_version"
            ).fetchone()
        current = int(row[0] or 0)
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"the manager's database ({store.path}) has micromanager tables of version "
                f"{current}, newer than this mora ({len(MIGRATIONS)}); upgrade mora"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            statements = [s.strip() for s in MIGRATIONS[version - 1].split(";") if s.strip()]
            with store._tx() as conn:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO micromanager_schema_version (version) VALUES (?)",
                             (version,))

    # ------------------------------------------------------------------ tokens

    def token_services(self) -> set[str]:
        return {r["service"] for r in self.store._query("SELECT service FROM mm_tokens")}

    def set_token(self, service: str, token: str) -> None:
        with self.store._tx() as conn:
            conn.execute(
                "INSERT INTO mm_tokens (service, token_hash, issued_at) VALUES (?, ?, ?)"
                " ON CONFLICT (service) DO UPDATE SET token_hash = excluded.token_hash,"
                " issued_at = excluded.issued_at",
                (service, hash_token(token), now()),
            )

    def token_owner(self, token: str) -> str | None:
        rows = self.store._query("SELECT service FROM mm_tokens WHERE token_hash = ?",
                                 (hash_token(token),))
        return str(rows[0]["service"]) if rows else None

    # ------------------------------------------------------------------ registrations

    def save_registration(self, r: c.Registration) -> None:
        token = self._fernet.encrypt(r.hook_token.encode()) if r.hook_token else None
        with self.store._tx() as conn:
            conn.execute(
                "INSERT INTO mm_registrations (service, micromanager, version, url, hooks, actions,"
                " hook_token, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (service) DO UPDATE SET micromanager = excluded.micromanager,"
                " version = excluded.version, url = excluded.url, hooks = excluded.hooks,"
                " actions = excluded.actions, hook_token = excluded.hook_token,"
                " registered_at = excluded.registered_at",
                (r.service, r.micromanager, r.version, r.url, json.dumps(list(r.hooks)),
                 json.dumps([a.model_dump(mode="json") for a in r.actions]), token, now()),
            )
        self._services = None

    def registrations(self) -> dict[str, Registered]:
        rows = self.store._query("SELECT * FROM mm_registrations ORDER BY service")
        return {r["service"]: self._registered(r) for r in rows}

    def registered_services(self) -> list[str]:
        if self._services is None:
            self._services = [r["service"] for r in self.store._query(
                "SELECT service FROM mm_registrations ORDER BY service")]
        return list(self._services)

    def registration(self, service: str) -> Registered | None:
        rows = self.store._query("SELECT * FROM mm_registrations WHERE service = ?", (service,))
        return self._registered(rows[0]) if rows else None

    def _registered(self, row: Any) -> Registered:
        token = self._fernet.decrypt(row["hook_token"]).decode() if row["hook_token"] else None
        return Registered(
            service=row["service"], micromanager=row["micromanager"], version=row["version"],
            url=row["url"], hooks=json.loads(row["hooks"]),
            actions=[c.ActionSpec.model_validate(a) for a in json.loads(row["actions"])],
            hook_token=token, registered_at=row["registered_at"],
        )

    # ------------------------------------------------------------------ reports

    def report_seen(self, service: str, key: str) -> tuple[str, c.ReportAccepted] | None:
        rows = self.store._query(
            "SELECT digest, response FROM mm_reports WHERE service = ? AND idempotency_key = ?",
            (service, key),
        )
        if not rows:
            return None
        return rows[0]["digest"], c.ReportAccepted.model_validate_json(rows[0]["response"])

    def remember_report(self, service: str, key: str, digest: str,
                        accepted: c.ReportAccepted) -> None:
        with self.store._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO mm_reports (service, idempotency_key, digest, response,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (service, key, digest, accepted.model_dump_json(), now()),
            )

    # ------------------------------------------------------------------ input requests

    def add_input_request(self, input_id: str, service: str, request: c.InputRequest,
                          timing: str) -> None:
        """Store (or refresh) a request; the timing of the first request is kept."""
        with self.store._tx() as conn:
            conn.execute(
                "INSERT INTO mm_input_requests (input_id, service, request, timing, requested_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (input_id) DO UPDATE SET"
                " request = excluded.request",
                (input_id, service, request.model_dump_json(), timing, now()),
            )
        self._requests = None

    def input_requests(self) -> list[tuple[str, str, c.InputRequest, str]]:
        """``(input id, service, request, timing)`` in the order they were first asked."""
        if self._requests is None:
            rows = self.store._query(
                "SELECT * FROM mm_input_requests ORDER BY requested_at, input_id")
            self._requests = [(r["input_id"], r["service"],
                               c.InputRequest.model_validate_json(r["request"]), r["timing"])
                              for r in rows]
        return list(self._requests)

    # ------------------------------------------------------------------ hook outcomes

    def set_hook_status(self, service: str, hook: str, status: HookStatusName, *,
                        attempts: int = 0, message: str | None = None,
                        changes: Iterable[str] = (), error: c.ErrorBody | None = None) -> None:
        with self.store._tx() as conn:
            conn.execute(
                "INSERT INTO mm_hook_status (service, hook, status, attempts, message, changes,"
                " error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (service, hook)"
                " DO UPDATE SET status = excluded.status, attempts = excluded.attempts,"
                " message = excluded.message, changes = excluded.changes,"
                " error = excluded.error, updated_at = excluded.updated_at",
                (service, hook, status, attempts, message, json.dumps(list(changes)),
                 error.model_dump_json() if error else None, now()),
            )

    def hook_statuses(self, service: str) -> list[HookStatus]:
        rows = self.store._query(
            "SELECT * FROM mm_hook_status WHERE service = ? ORDER BY updated_at DESC, hook",
            (service,),
        )
        return [
            HookStatus(
                hook=r["hook"], status=r["status"], attempts=r["attempts"], message=r["message"],
                changes=json.loads(r["changes"]),
                error=c.ErrorBody.model_validate_json(r["error"]) if r["error"] else None,
                updated_at=r["updated_at"],
            )
            for r in rows
        ]


# --------------------------------------------------------------------------- values


def _typed(spec: Input | None, text: str) -> JsonValue:
    """An answer as the sidecar expects it: typed by its input, text when that fails."""
    if spec is None:
        return text
    try:
        value: JsonValue = parse_value(spec.type, text)
    except InvalidValue:
        return text
    return value


def service_addresses(
    manifest: Manifest,
    params: Mapping[str, Any],
    *,
    namespace: str | None = None,
    cluster_domain: str = CLUSTER_DOMAIN,
) -> dict[str, JsonValue]:
    """``service:NAME.ATTR`` values, as :class:`stacks.resolve.Resolver` computes them.

    ``namespace`` is the stack's (:meth:`manager_app.core.Manager.namespace`);
    without it, the project's. Recomputed here (a few lines) rather than
    imported, so answering a sidecar does not load Pulumi.
    """
    from stacks.config import StackConfig, stack_namespace
    from stacks.naming import service_host

    namespace = namespace or stack_namespace(manifest, StackConfig())
    domain = str(params.get("domain", "")).strip().strip(".")
    out: dict[str, JsonValue] = {}
    for svc in manifest.services:
        host = service_host(svc.name, namespace, cluster_domain)
        out[f"service:{svc.name}.host"] = host
        if svc.ports:
            out[f"service:{svc.name}.internal_url"] = f"http://{host}:{svc.ports[0].port}"
        for port in svc.ports:
            out[f"service:{svc.name}.port.{port.name}"] = port.port
        if svc.subdomain and domain:
            out[f"service:{svc.name}.public_host"] = f"{svc.subdomain}.{domain}"
            out[f"service:{svc.name}.url"] = f"https://{svc.subdomain}.{domain}"
    return out


def _digest(values: Mapping[str, JsonValue]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


# --------------------------------------------------------------------------- the hub


class MicromanagerHub(ManagerListener):
    """Everything the manager does with micromanagers; ``app.state.micromanagers``.

    It is the :class:`~manager_app.core.Manager`'s listener: it adds requested
    inputs to the manifest the planner and the wizard see, issues tokens when
    a manifest arrives, and schedules hooks when answers arrive or services
    start. Hook calls run as tasks in the app's event loop, one at a time per
    service (a bootstrap and an inputs-answered on the same directory must not
    race), each try bounded by ``timeout`` and retried ``attempts`` times with
    exponential backoff from ``base_delay`` while the error is retryable.
    """

    def __init__(
        self,
        manager: Manager,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        base_delay: float = 2.0,
        health_interval: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.manager = manager
        self.settings = manager.settings
        self.db = MicromanagerStore(manager.store, load_fernet(manager.settings.data_dir))
        self.timeout = timeout
        self.attempts = attempts
        self.base_delay = base_delay
        #: Seconds between health checks of the running services with a sidecar (0: none).
        self.health_interval = health_interval
        self.transport = transport
        self._health: dict[str, Health] = {}
        self._health_task: asyncio.Task[None] | None = None
        #: Stack input → the service whose sidecar reported it: that sidecar is not told
        #: about its own report once the update applies it.
        self._reported_by: dict[str, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._token_lock = threading.Lock()
        manager.listener = self

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Capture the loop hooks run in; issue tokens for a manifest received before start."""
        self._loop = asyncio.get_running_loop()
        record = self.manager.store.latest_manifest()
        if record is not None:
            self.ensure_tokens(record.manifest)
        self._health_task = asyncio.create_task(self._poll_health(), name="mora-health")

    async def stop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):  # cancelled, or its outcome is recorded
                await task
        self._loop = None

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until no hook call is scheduled or running (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("micromanager hooks still running")
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ manager listener

    def extend_manifest(self, manifest: Manifest) -> Manifest:
        """``manifest`` with the inputs sidecars requested, as inputs of their services.

        The planner then asks them in their service's wave: a request made
        before the service was deployed is a ``before_deploy`` input (it holds
        the service back), one made while it runs an ``after_start`` input.
        """
        requested = self.db.input_requests()
        if not requested:
            return manifest
        have = {i.id for i in manifest.inputs}
        services = {s.name for s in manifest.services}
        extra: list[Input] = []
        for input_id, service, request, timing in requested:
            if input_id in have or service not in services:
                continue
            extra.append(Input(
                id=input_id, name=request.name, service=service, type=request.type,
                title=request.title, help=request.help, when=timing,  # type: ignore[arg-type]
                when_inferred=False, used_by=[], optional=request.optional,
                default=request.default, span=REQUESTED_SPAN,
            ))
        if not extra:
            return manifest
        by_service: dict[str, list[str]] = {}
        for i in extra:
            by_service.setdefault(i.service, []).append(i.id)
        new_services = [
            s.model_copy(update={"inputs": [*s.inputs, *by_service[s.name]]})
            if s.name in by_service else s
            for s in manifest.services
        ]
        return manifest.model_copy(update={"inputs": [*manifest.inputs, *extra],
                                           "services": new_services})

    def manifest_received(self, manifest: Manifest) -> None:
        self.ensure_tokens(manifest)

    def answered(self, input_ids: list[str]) -> None:
        """Answers were stored: tell the running services that use them (inputs-answered).

        Only for inputs a sidecar requested, which no update applies (the sidecar
        reads them from the manager). An answer the stack uses reaches the
        service with the next update, so its sidecar hears of it from
        :meth:`started`, once that update succeeded.
        """
        self._notify_answered(self._outside_stack(input_ids))

    def started(self, services: list[str], applied: Applied | None = None) -> None:
        """An update succeeded: after-start for the services that now run, and for
        the others inputs-answered (answers it applied) and reconfigure (their
        definition, or a param or generated secret they use, changed)."""
        registered = self.db.registrations()
        for service in services:
            if service in registered:
                self.schedule(service, "after_start")
        if applied is None or not registered:
            return
        skip = set(services)
        if applied.answered:
            reporters = {i: self._reported_by.pop(i) for i in applied.answered
                         if i in self._reported_by}
            self._notify_answered(list(applied.answered), skip=skip, reported_by=reporters)
        if applied.changed or applied.changed_services:
            self._notify_reconfigure(applied, skip=skip)

    # ------------------------------------------------------------------ tokens

    def token_file(self, service: str) -> Path:
        return token_path(self.settings.data_dir, service)

    def ensure_tokens(self, manifest: Manifest) -> list[str]:
        """Issue a token to every micromanaged service that has none; returns their names."""
        with self._token_lock:
            have = self.db.token_services()
            issued = []
            for svc in manifest.services:
                if svc.micromanager and svc.name not in have:
                    self.issue_token(svc.name)
                    issued.append(svc.name)
            return issued

    def issue_token(self, service: str) -> str:
        """A new token for ``service`` (the old one stops working), handed over as a 0600 file.

        The file is the one place the token is readable: in a dry run the
        operator passes it to ``mora micromanager run --token-file``; in a cluster
        the deployers read it (:func:`read_tokens`) into the stack config, and the
        services' stack puts it into the sidecar's environment from a Secret.
        """
        token = secrets.token_urlsafe(32)
        self.db.set_token(service, token)
        write_private(self.token_file(service), token.encode())
        log.info("issued a micromanager token for %s (%s)", service, self.token_file(service))
        return token

    def authorise(self, token: str | None, service: str) -> str:
        """The path's service when ``token`` is its token; 401/403 otherwise."""
        owner = self.db.token_owner(token) if token else None
        if owner is None:
            raise Refused(401, "unauthorized", "missing or unknown micromanager token",
                          hint="use the token the manager issued for this service")
        if owner != service:
            raise Refused(403, "forbidden", f"this token belongs to another service, not {service}")
        return service

    # ------------------------------------------------------------------ helpers

    def _manifest(self) -> Manifest:
        try:
            return self.manager.manifest()
        except NoManifest as err:
            raise Refused(503, "unavailable", str(err), retryable=True) from None

    def _service(self, manifest: Manifest, service: str) -> str:
        try:
            svc = manifest.service(service)
        except KeyError:
            raise Refused(404, "not_found", f"the manifest has no service {service!r}") from None
        if not svc.micromanager:
            raise Refused(404, "not_found", f"{service} has no micromanager in the manifest")
        return svc.micromanager

    @staticmethod
    def _versioned(body: Any) -> None:
        if body.contract_version != c.CONTRACT_VERSION:
            raise Refused(409, "contract_version",
                          f"the manager speaks contract version {c.CONTRACT_VERSION}, "
                          f"not {body.contract_version}",
                          hint="run the micromanager image that matches the manager's version")

    def _requested_secret_keys(self) -> set[str]:
        return {f"input:{i}" for i, _, r, _ in self.db.input_requests() if r.type.name == "secret"}

    # ------------------------------------------------------------------ registration

    def register(self, service: str, body: c.Registration) -> c.RegistrationAccepted:
        """Store a registration; a new sidecar of a running service gets its after-start call."""
        self._versioned(body)
        manifest = self._manifest()
        expected = self._service(manifest, service)
        if body.service != service or body.micromanager != expected:
            raise Refused(422, "invalid",
                          f"{service} is managed by {expected!r}, not {body.micromanager!r}")
        previous = self.db.registration(service)
        self.db.save_registration(body)
        fresh = previous is None or (previous.url, previous.hook_token) != (body.url, body.hook_token)
        if fresh:
            log.info("micromanager %s registered for %s at %s", body.micromanager, service, body.url)
            state = self.manager.store.states().get(service)
            if state == "running":
                self.schedule(service, "after_start")
            elif "before_deploy" in body.hooks:
                self.schedule(service, "before_deploy")
        return c.RegistrationAccepted(service=service, micromanager=body.micromanager)

    # ------------------------------------------------------------------ config

    def known_values(self, manifest: Manifest, service: str) -> dict[str, JsonValue]:
        """Every value the manager knows that ``service`` may read, by ref key."""
        params = self.manager.params()
        for p in manifest.params:  # unset: its default, as the stack's resolver takes it
            if p.name not in params and p.has_default:
                with contextlib.suppress(KeyError, EvaluationError):
                    params[p.name] = evaluate(p.default, _unknown)
        known: dict[str, JsonValue] = {f"param:{name}": value for name, value in params.items()}
        specs = {i.id: i for i in manifest.inputs}
        for input_id, text in self.manager.store.answers().items():
            known[f"input:{input_id}"] = _typed(specs.get(input_id), text)
        known.update(service_addresses(
            manifest, params, namespace=self.manager.namespace(manifest),
            cluster_domain=base_config(self.settings).cluster_domain,
        ))
        scope = c.refs_of_service(manifest, service)
        wanted = {k.partition(":")[2].partition("#")[0] for k in scope if k.startswith("secret:")}
        known.update(self._secrets(manifest, wanted))
        return known

    def _secrets(self, manifest: Manifest, wanted: set[str]) -> dict[str, JsonValue]:
        """Generated secrets by ref key, as the manager reveals them (:attr:`Manager.secret_values`:
        the dry-run file, or the stack's outputs)."""
        from .cluster import ClusterError, NotGenerated

        out: dict[str, JsonValue] = {}
        for secret in manifest.secrets:
            if secret.id not in wanted:
                continue
            try:
                value = self.manager.secret_values.reveal(manifest, secret)
            except NotGenerated:
                continue
            except ClusterError as err:
                raise Refused(503, "unavailable", f"the generated secrets cannot be read here: {err}",
                              retryable=True) from None
            if isinstance(value, dict):
                out.update({f"secret:{secret.id}#{part}": text for part, text in value.items()})
            else:
                out[f"secret:{secret.id}"] = value
        return out

    def config_for(self, service: str, keys: list[str] | None = None) -> c.ConfigResponse:
        """The scoped config; 403 for a requested key out of the service's scope."""
        manifest = self._manifest()
        self._service(manifest, service)
        for key in keys or []:
            if not c.ref_in_scope(manifest, service, key):
                raise Refused(403, "forbidden", f"{key} is not referenced by {service}")
        return c.scoped_config(manifest, service, self.known_values(manifest, service),
                               extra_secret_keys=self._requested_secret_keys(), keys=keys or None)

    # ------------------------------------------------------------------ reports

    def report(self, service: str, body: c.Report) -> c.ReportAccepted:
        """Store reported values as answers, once per idempotency key (409 for another body)."""
        self._versioned(body)
        digest = _digest(body.values)
        seen = self.db.report_seen(service, body.idempotency_key)
        if seen is not None:
            if seen[0] != digest:
                raise Refused(409, "idempotency_conflict",
                              "this idempotency key was used for other values")
            return seen[1].model_copy(update={"replayed": True})
        manifest = self._manifest()
        self._service(manifest, service)
        texts: dict[str, str] = {}
        for key, value in body.values.items():
            input_id = c.report_key_to_input_id(service, key)
            if input_id is None:
                raise Refused(403, "forbidden", f"{service} may not report {key!r}")
            try:
                spec = manifest.input(input_id)
            except KeyError:
                raise Refused(422, "invalid",
                              f"{service} has no input {input_id.split('.', 1)[1]!r}") from None
            try:
                texts[input_id] = validate_answer(spec, to_text(value))
            except InvalidAnswer:  # not its message: that may quote the value (an API key…)
                raise Refused(422, "invalid", f"the value reported for {input_id} is not "
                              f"a valid {spec.type}") from None
        store = self.manager.store
        changed = [i for i, text in texts.items() if store.answer(i) != text]
        for input_id in changed:
            store.set_answer(input_id, texts[input_id])
        accepted = c.ReportAccepted(inputs=list(texts), changed=changed)
        self.db.remember_report(service, body.idempotency_key, digest, accepted)
        if changed:
            log.info("%s reported %s", service, ", ".join(changed))
            original = {i.id for i in self.manager.manifest_record().manifest.inputs}
            stack_inputs = [i for i in changed if i in original]
            if stack_inputs:  # answers of the manifest's inputs are stack config
                self.manager.trigger_update(f"report from the {service} micromanager",
                                            [f"reported {i}" for i in stack_inputs])
            for input_id in stack_inputs:  # told after the update that applies them
                self._reported_by[input_id] = service
            self._notify_answered(self._outside_stack(changed),
                                  reported_by=dict.fromkeys(changed, service))
        return accepted

    # ------------------------------------------------------------------ input requests

    def request_inputs(self, service: str, body: c.InputRequests) -> c.InputRequestsAccepted:
        """Add the requested inputs to the wizard (idempotent by name)."""
        self._versioned(body)
        manifest = self._manifest()
        self._service(manifest, service)
        running = self.manager.store.states().get(service) == "running"
        original = {i.id for i in self.manager.manifest_record().manifest.inputs}
        answered = self.manager.store.answered()
        statuses = []
        for request in body.inputs:
            input_id = f"{service}.{request.name}"
            if input_id not in original:
                self.db.add_input_request(input_id, service, request,
                                          "after_start" if running else "before_deploy")
            statuses.append(c.InputStatus(id=input_id, answered=input_id in answered))
        return c.InputRequestsAccepted(inputs=statuses)

    # ------------------------------------------------------------------ status

    def statuses(self) -> list[MicromanagerStatus]:
        try:
            manifest = self.manager.manifest()
        except NoManifest:
            return []
        registered = self.db.registrations()
        return [self._status(svc.name, svc.micromanager or "", registered.get(svc.name))
                for svc in manifest.services if svc.micromanager]

    def status(self, service: str) -> MicromanagerStatus:
        manifest = self._manifest()
        micromanager = self._service(manifest, service)
        return self._status(service, micromanager, self.db.registration(service))

    def _status(self, service: str, micromanager: str, reg: Registered | None) -> MicromanagerStatus:
        return MicromanagerStatus(
            service=service, micromanager=micromanager, registered=reg is not None,
            url=reg.url if reg else None, version=reg.version if reg else None,
            registered_at=reg.registered_at if reg else None,
            hooks=list(reg.hooks) if reg else [], actions=list(reg.actions) if reg else [],
            hook_status=self.db.hook_statuses(service),
            health=self._health.get(service) if reg is not None else None,
        )

    # ------------------------------------------------------------------ calling hooks

    def _outside_stack(self, input_ids: list[str]) -> list[str]:
        """The inputs no stack update applies (requested by sidecars, not in the manifest)."""
        try:
            original = {i.id for i in self.manager.manifest_record().manifest.inputs}
        except NoManifest:
            return list(input_ids)
        return [i for i in input_ids if i not in original]

    def _running_sidecars(self, skip: Iterable[str]) -> tuple[Manifest, list[str]] | None:
        """The manifest and the running services with a registered sidecar, not in ``skip``.

        ``None`` when there is nobody to call (or no loop to call from). Cheap checks
        first: this runs on every answer and update, and most projects have few sidecars.
        """
        skipped = set(skip)
        candidates = [s for s in self.db.registered_services() if s not in skipped]
        if not candidates or self._loop is None:
            return None
        states = self.manager.store.states()
        services = [s for s in candidates if states.get(s) == "running"]
        if not services:
            return None
        try:
            return self.manager.manifest(), services
        except NoManifest:
            return None

    def _notify_answered(self, input_ids: list[str], *, skip: Iterable[str] = (),
                         reported_by: Mapping[str, str] | None = None) -> None:
        """inputs-answered for the running services with a sidecar that use these inputs.

        ``skip``: services told otherwise (after-start); ``reported_by``: input →
        the service that reported it, which is not told about its own report.
        """
        if not input_ids or (running := self._running_sidecars(skip)) is None:
            return
        manifest, services = running
        reporters = reported_by or {}
        for service in services:
            try:
                mine = [i for i in input_ids if reporters.get(i) != service
                        and c.ref_in_scope(manifest, service, f"input:{i}")]
            except KeyError:
                continue  # the service left the manifest
            if mine:
                self.schedule(service, "inputs_answered", answered=mine)

    def _notify_reconfigure(self, applied: Applied, *, skip: Iterable[str] = ()) -> None:
        """reconfigure for running services with a sidecar that an update changed.

        A service changed when its definition did, or a param or generated secret
        in its scope (``changed`` lists those ref keys; answers go to inputs-answered).
        """
        if (running := self._running_sidecars(skip)) is None:
            return
        manifest, services = running
        for service in services:
            try:
                scope = {k.partition("#")[0] for k in c.refs_of_service(manifest, service)}
            except KeyError:
                continue  # the service left the manifest
            keys = [k for k in applied.changed if k in scope]
            if keys or service in applied.changed_services:
                self.schedule(service, "reconfigure", changed=keys)

    def schedule(self, service: str, hook: str, *, answered: list[str] | None = None,
                 changed: list[str] | None = None) -> None:
        """Call a hook in the background; safe from any thread, returns at once."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.debug("no event loop yet: %s %s not called", service, hook)
            return

        def create() -> None:
            task = loop.create_task(self._run_hook(service, hook, answered or [], changed or []),
                                    name=f"mora-hook-{service}-{hook}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            create()
        else:
            loop.call_soon_threadsafe(create)

    def _lock(self, service: str) -> asyncio.Lock:
        if service not in self._locks:
            self._locks[service] = asyncio.Lock()
        return self._locks[service]

    async def _run_hook(self, service: str, hook: str, answered: list[str],
                        changed: list[str] | None = None) -> None:
        """One hook call with retries; its outcome is stored for the UI. Never raises."""
        try:
            async with self._lock(service):
                await self._call_with_retries(service, hook, answered, changed or [])
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug here must not kill the loop; keep the UI honest
            log.exception("calling %s of %s failed", hook, service)
            self.db.set_hook_status(service, hook, "failed", error=c.ErrorBody(
                detail=f"the manager could not call the hook ({type(err).__name__})",
                code="unavailable", retryable=True, hook=hook))

    async def _call_with_retries(self, service: str, hook: str, answered: list[str],
                                 changed: list[str] | None = None) -> None:
        reg = self.db.registration(service)
        if reg is None:
            return
        if hook not in reg.hooks:
            return  # not implemented by this micromanager: nothing to do is a success
        attempt = 0
        while True:
            attempt += 1
            self.db.set_hook_status(service, hook, "running", attempts=attempt)
            config = await asyncio.to_thread(self._pushed_config, service)
            status, result = await self._post(reg, c.HOOK_PATHS[hook], hook, c.HookCall(
                service=service, call_id=str(uuid.uuid4()), answered=answered,
                changed=changed or [], config=config))
            if isinstance(result, c.HookResult):
                self.db.set_hook_status(service, hook, "ok", attempts=attempt,
                                        message=result.message, changes=result.changes)
                log.info("%s %s: ok (%d change(s))", service, hook, len(result.changes))
                return
            if not result.retryable or attempt >= self.attempts:
                self.db.set_hook_status(service, hook, "failed", attempts=attempt, error=result)
                log.warning("%s %s failed (%s): %s", service, hook, status, result.detail)
                return
            delay = self.base_delay * 2 ** (attempt - 1)
            log.info("%s %s: %s, retry %d in %.1f s", service, hook, result.code, attempt, delay)
            self.db.set_hook_status(service, hook, "running", attempts=attempt, error=result)
            await asyncio.sleep(delay)

    def _pushed_config(self, service: str) -> c.ConfigResponse | None:
        """The config sent along with a hook call (saves a round trip); ``None`` if unknown.

        Blocking (outside a dry run it reads the stack's outputs through the Pulumi CLI):
        the async callers run it in a worker thread.
        """
        try:
            return self.config_for(service)
        except Refused:
            return None  # the sidecar reads it itself, and reports that error if it persists

    async def _post(self, reg: Registered, path: str, hook: str,
                    call: c.HookCall) -> tuple[int, c.HookResult | c.ErrorBody]:
        """POST one hook; a transport failure or a malformed answer becomes an ErrorBody."""
        headers = {"Authorization": f"{c.BEARER} {reg.hook_token}"} if reg.hook_token else {}
        try:
            async with httpx.AsyncClient(base_url=reg.url, timeout=self.timeout,
                                         transport=self.transport) as http:
                response = await http.post(path, json=call.model_dump(mode="json"),
                                           headers=headers)
        except httpx.TimeoutException:
            return 504, c.ErrorBody(
                detail=f"the {reg.micromanager} micromanager did not answer within "
                f"{self.timeout:.0f} s", code="unavailable", retryable=True, hook=hook,
                hint="the service may be slow to start; retry in a moment")
        except httpx.TransportError as err:
            return 503, c.ErrorBody(
                detail=f"the {reg.micromanager} micromanager at {reg.url} cannot be reached "
                f"({type(err).__name__})", code="unavailable", retryable=True, hook=hook,
                hint="check that its sidecar runs; it registers again when it starts")
        try:
            data = response.json()
            if response.status_code < 400:
                return response.status_code, c.HookResult.model_validate(data)
            return response.status_code, c.ErrorBody.model_validate(data)
        except ValueError:
            return response.status_code, c.ErrorBody(
                detail=f"the {reg.micromanager} micromanager answered {response.status_code} "
                f"with a body that does not match contract version {c.CONTRACT_VERSION}",
                code="contract_version" if response.status_code < 500 else "hook_failed",
                retryable=response.status_code >= 500, hook=hook)

    # ------------------------------------------------------------------ health

    async def _poll_health(self) -> None:
        """Check health every ``health_interval`` s (the first within 10 s). Never raises.

        The interval is read on every tick, so a new one applies at once.
        """
        last, first = time.monotonic(), True
        while True:
            interval = min(self.health_interval, 10.0) if first else self.health_interval
            if self.health_interval <= 0:  # switched off
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(max(0.0, min(1.0, last + interval - time.monotonic())))
            if time.monotonic() - last < interval:
                continue
            try:
                await self.check_health()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end the polling
                log.exception("health checks failed")
            last, first = time.monotonic(), False

    async def check_health(self) -> dict[str, Health]:
        """Ask every running service's sidecar that has a health hook; returns the results.

        Services that no longer run (or lost their sidecar) lose their last result.
        Each check is bounded by the hook timeout and is not retried: the next
        round asks again.
        """
        states = self.manager.store.states()
        regs = [r for r in self.db.registrations().values()
                if "health" in r.hooks and states.get(r.service) == "running"]
        results = await asyncio.gather(*(self._health_of(r) for r in regs))
        self._health = {r.service: h for r, h in zip(regs, results, strict=True)}
        return dict(self._health)

    async def _health_of(self, reg: Registered) -> Health:
        headers = {"Authorization": f"{c.BEARER} {reg.hook_token}"} if reg.hook_token else {}
        call = c.HookCall(service=reg.service, call_id=str(uuid.uuid4()))
        try:
            async with httpx.AsyncClient(base_url=reg.url, timeout=self.timeout,
                                         transport=self.transport) as http:
                response = await http.post(c.PATH_HOOK_HEALTH, headers=headers,
                                           json=call.model_dump(mode="json"))
        except httpx.HTTPError as err:
            return Health(healthy=None, checked_at=now(),
                          message=f"the {reg.micromanager} micromanager cannot be reached "
                          f"({type(err).__name__})")
        try:
            if response.status_code in (200, 503):
                result = c.HealthResult.model_validate(response.json())
                return Health(healthy=result.healthy, message=result.message, checked_at=now())
            error = c.ErrorBody.model_validate(response.json())
            return Health(healthy=None, message=error.detail, checked_at=now())
        except ValueError:
            return Health(healthy=None, checked_at=now(),
                          message=f"the {reg.micromanager} micromanager answered "
                          f"{response.status_code} with a body that does not match the contract")

    # ------------------------------------------------------------------ retry and actions

    def retry(self, service: str) -> RetryQueued:
        """Call the failed hooks of ``service`` again (after-start when none failed)."""
        status = self.status(service)
        if not status.registered:
            raise Refused(409, "unavailable", f"no micromanager has registered for {service} yet",
                          hint="start its sidecar; it registers with the manager at start",
                          retryable=True)
        hooks = [h.hook for h in status.failures]
        if not hooks:
            hooks = ["after_start"]
        for hook in hooks:
            self.schedule(service, hook)
        return RetryQueued(service=service, hooks=hooks)

    def actions(self, service: str) -> list[c.ActionSpec]:
        reg = self._registered(service)
        return list(reg.actions)

    def _registered(self, service: str) -> Registered:
        manifest = self._manifest()
        self._service(manifest, service)
        reg = self.db.registration(service)
        if reg is None:
            raise Refused(409, "unavailable", f"no micromanager has registered for {service} yet",
                          hint="start its sidecar; it registers with the manager at start",
                          retryable=True)
        return reg

    async def action(self, service: str, name: str,
                     values: Mapping[str, JsonValue]) -> tuple[int, c.HookResult | c.ErrorBody]:
        """Forward an action to the sidecar: its result, or its error with its status."""
        reg = self._registered(service)
        if name not in {a.name for a in reg.actions}:
            raise Refused(404, "not_found", f"{reg.micromanager} offers no action {name!r}")
        hook = f"action:{name}"
        call = c.ActionCall(service=service, call_id=str(uuid.uuid4()), values=dict(values),
                            config=await asyncio.to_thread(self._pushed_config, service))
        async with self._lock(service):
            status, result = await self._post(reg, c.PATH_HOOK_ACTION.format(name=name), hook, call)
        # The person sees the outcome at once, so it is not kept as the service's hook status
        # (a mistyped field is not a failure of the service's setup).
        outcome = "ok" if isinstance(result, c.HookResult) else result.code
        log.info("%s action %s: %s", service, name, outcome)
        return status, result


def _unknown(ref: Any) -> Any:
    raise KeyError(ref)
