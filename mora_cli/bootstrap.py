"""`mora up` through the in-cluster manager: deploy it when needed, send the manifest, follow.

Without ``--local``, `mora up` does not run the services' stack itself: the
manager in the cluster owns it (waves, the wizard, updates on every answer).
This module is that path:

1. find the manager: ``--manager-url``, else ``https://mora.<domain>``;
2. if it does not answer ``/healthz`` (short timeout), deploy it through the
   Automation API as a stack of its own (``<stack>-manager``, see
   :mod:`stacks.manager_program`) — this needs the ``pulumi`` CLI and a kubeconfig
   (exit 3 with one sentence when missing) — and wait until it answers;
3. ``POST /api/v1/manifests`` with the manifest and the stack's params, with the
   API token;
4. poll ``/api/v1/plan``, print each service's state change, stop when nothing is
   left to do without a human (every service running or waiting for input), and
   print the wizard's URL.

The manager's credentials (API token, admin password) and its CA certificate
come from the manager stack's outputs and are kept in one private file
(``$MORA_HOME/managers/<project>/<stack>.json``, 0600). They are never printed:
the terminal shows the file's path, not its content.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from . import output, stack_store
from .errors import EXIT_FAILED, EXIT_OK, EXIT_TOOL_MISSING, UsageError
from .stack_commands import project_namespace

if TYPE_CHECKING:
    from mora_dsl.manifest import Manifest
    from stacks.manager_program import ManagerConfig, ManagerWorkspace

#: Seconds one ``/healthz`` probe may take before the manager counts as absent.
HEALTH_TIMEOUT = 3.0
#: Seconds to wait for a freshly deployed manager to answer (DNS, ingress, TLS).
READY_TIMEOUT = 300.0
#: Seconds between two polls of the plan (and of ``/healthz`` while waiting).
POLL_INTERVAL = 2.0
#: Seconds one API request may take.
REQUEST_TIMEOUT = 30.0
#: Seconds a preview or destroy may take (it waits for a running update first).
OPERATION_TIMEOUT = 1800.0
#: States after which a service needs nothing more from `mora up`.
SETTLED_STATES = frozenset({"running", "waiting_for_input", "failed"})
#: States that mean the manager is still working on a service.
BUSY_STATES = frozenset({"ready", "deploying"})
API_TOKEN_ENV = "MORA_API_TOKEN"


def _manager_workspace_factory(
    config: ManagerConfig, *, backend_url: str | None = None, kubeconfig: Path | None = None
) -> ManagerWorkspace:
    """The Automation API workspace of the manager stack; tests hand in a recording CLI."""
    from stacks.manager_program import ManagerWorkspace

    return ManagerWorkspace(config, backend_url=backend_url, kubeconfig=kubeconfig)


class ManagerUnreachable(Exception):
    """The manager was deployed (or should run) but does not answer; the message says why."""


class ManagerRefused(Exception):
    """The manager answered with an error (bad token, invalid manifest…).

    ``status`` and ``detail`` (the manager's own sentence) let a command word it.
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


# --------------------------------------------------------------------------- credentials


@dataclass
class Credentials:
    """What `mora up` keeps about one stack's manager. ``repr`` never shows a secret."""

    url: str | None = None
    #: The project namespaces the deployed manager may write to (its RBAC).
    namespaces: list[str] = field(default_factory=list)
    api_token: str | None = field(default=None, repr=False)
    admin_password: str | None = field(default=None, repr=False)
    ca_cert_pem: str | None = field(default=None, repr=False)

    def verify(self) -> ssl.SSLContext | bool:
        """TLS verification: the manager's own CA when it has one, else the system's CAs."""
        if self.ca_cert_pem:
            return ssl.create_default_context(cadata=self.ca_cert_pem)
        return True


def credentials_path(home: Path, project: str, stack: str) -> Path:
    return home / "managers" / project / f"{stack}.json"


def load_credentials(home: Path, project: str, stack: str) -> Credentials:
    path = credentials_path(home, project, stack)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Credentials()
    except (OSError, ValueError) as err:
        raise stack_store.RecordError(f"cannot read {path}: {err}") from None
    def text(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) else None

    creds = Credentials(url=text("url"), api_token=text("api_token"),
                        admin_password=text("admin_password"), ca_cert_pem=text("ca_cert_pem"))
    namespaces = data.get("namespaces")
    if isinstance(namespaces, list):
        creds.namespaces = sorted(str(n) for n in namespaces)
    return creds


def credentials(home: Path, project: str, stack: str) -> Credentials:
    """The kept credentials, with ``$MORA_API_TOKEN`` as the API token when it is set."""
    creds = load_credentials(home, project, stack)
    if os.environ.get(API_TOKEN_ENV):
        creds.api_token = os.environ[API_TOKEN_ENV]
    return creds


def save_credentials(home: Path, project: str, stack: str, creds: Credentials) -> Path:
    """Write ``creds`` atomically, 0600 in 0700 folders (like the stack records)."""
    data = {k: v for k, v in {
        "url": creds.url, "namespaces": creds.namespaces or None, "api_token": creds.api_token,
        "admin_password": creds.admin_password, "ca_cert_pem": creds.ca_cert_pem,
    }.items() if v is not None}
    return stack_store.write_private(credentials_path(home, project, stack),
                                     json.dumps(data, indent=2, sort_keys=True))


def credentials_from_outputs(url: str, outputs: dict[str, Any]) -> Credentials:
    def text(key: str) -> str | None:
        value = outputs.get(key)
        return value if isinstance(value, str) and value else None

    namespaces = outputs.get("project_namespaces")
    return Credentials(url=url, api_token=text("api_token"),
                       namespaces=sorted(map(str, namespaces)) if isinstance(namespaces, list)
                       else [],
                       admin_password=text("admin_password"), ca_cert_pem=text("ca_cert_pem"))


# --------------------------------------------------------------------------- the manager's API


class ManagerClient:
    """The few manager endpoints `mora up` uses, over httpx. Never logs the token."""

    def __init__(self, url: str, creds: Credentials) -> None:
        self.url = url.rstrip("/")
        self._creds = creds

    def _client(self, timeout: float) -> httpx.Client:
        headers = {}
        if self._creds.api_token:
            headers["Authorization"] = f"Bearer {self._creds.api_token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                            verify=self._creds.verify(), trust_env=False)

    def healthy(self, timeout: float = HEALTH_TIMEOUT) -> bool:
        """Whether ``/healthz`` answers 200 within ``timeout`` (any error: no)."""
        try:
            with self._client(timeout) as client:
                return client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def _call(self, method: str, path: str, body: Any = None, *,
              timeout: float = REQUEST_TIMEOUT) -> Any:
        try:
            with self._client(timeout) as client:
                response = client.request(method, path, json=body)
        except httpx.HTTPError as err:
            raise ManagerUnreachable(
                f"the manager at {self.url} does not answer ({type(err).__name__})"
            ) from None
        if response.status_code == 401:
            raise ManagerRefused(
                f"the manager at {self.url} refused the API token; if it was redeployed, "
                f"remove the stale credentials file and run `mora up` again"
            )
        if response.status_code >= 400:
            raise ManagerRefused(
                f"the manager answered {response.status_code} to {method} {path}: "
                f"{_detail(response)}",
                status=response.status_code, detail=_detail(response),
            )
        try:
            return response.json()
        except ValueError:
            raise ManagerRefused(
                f"the manager answered {method} {path} with something that is not JSON "
                f"(status {response.status_code}); is {self.url} a mora manager?"
            ) from None

    def send_manifest(self, manifest: Manifest, params: dict[str, Any]) -> dict[str, Any]:
        body = {"manifest": manifest.model_dump(mode="json"), "params": params}
        result: dict[str, Any] = self._call("POST", "/api/v1/manifests", body)
        return result

    def plan(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v1/plan")
        return result

    def busy(self) -> bool:
        """Whether an update is queued or running."""
        updates = self._call("GET", "/api/v1/updates?limit=5").get("updates", [])
        return any(u.get("status") in ("queued", "running") for u in updates)

    def preview(self) -> dict[str, Any]:
        """What the manager's next update would change (waits for a running update)."""
        result: dict[str, Any] = self._call("POST", "/api/v1/preview", timeout=OPERATION_TIMEOUT)
        return result

    def destroy(self, stack: str, *, delete_volumes: bool) -> dict[str, Any]:
        """Destroy the services' stack; ``stack`` is the confirmation the manager checks."""
        body = {"confirm": stack, "delete_volumes": delete_volumes}
        result: dict[str, Any] = self._call("POST", "/api/v1/destroy", body,
                                            timeout=OPERATION_TIMEOUT)
        return result

    def ca(self) -> str:
        """The stack's ingress CA certificate (PEM)."""
        return str(self._call("GET", "/api/v1/ca").get("cert_pem", ""))

    def reveal(self, secret_id: str, password: str) -> Any:
        """One generated secret's value (text, or PEM parts by name)."""
        path = f"/api/v1/secrets/{quote(secret_id, safe='')}/reveal"
        return self._call("POST", path, {"password": password}).get("value")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:200]
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) for d in detail[:3])
    return str(detail)[:300]


# --------------------------------------------------------------------------- following the plan


@dataclass
class Follower:
    """Prints each service's state change once; knows when `mora up` can stop."""

    seen: dict[str, str] = field(default_factory=dict)
    write: Callable[[str], None] = output.info

    def show(self, plan: dict[str, Any]) -> None:
        for service in plan.get("services", []):
            name, state = service["name"], service["state"]
            before = self.seen.get(name)
            if before != state:
                arrow = f"{before} → {state}" if before else state
                self.write(f"  {name}: {arrow.replace('_', ' ')}")
                self.seen[name] = state

    @staticmethod
    def settled(plan: dict[str, Any], busy: bool) -> bool:
        """Nothing left to do without a human: no update runs and no service is on its way.

        A service waiting for dependencies counts as settled once no update runs:
        it waits, through its dependency, for an answer in the wizard.
        """
        states = {s["state"] for s in plan.get("services", [])}
        if states & BUSY_STATES:
            return False
        return not busy and states <= SETTLED_STATES | {"waiting_for_dependencies"}


def follow(client: ManagerClient, *, timeout: float, interval: float = POLL_INTERVAL,
           follower: Follower | None = None) -> dict[str, Any] | None:
    """Poll the plan until it settles; the last plan, or ``None`` when ``timeout`` ran out."""
    follower = follower or Follower()
    deadline = time.monotonic() + timeout
    while True:
        plan = client.plan()
        follower.show(plan)
        if Follower.settled(plan, client.busy()):
            return plan
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# --------------------------------------------------------------------------- the command


def manager_url(args: Any, record: stack_store.StackRecord) -> str:
    """``--manager-url``, else ``https://mora.<domain>`` of the stack."""
    if getattr(args, "manager_url", None):
        return str(args.manager_url).rstrip("/")
    if not record.domain:
        raise UsageError(
            "the project has no domain param, so the manager's address is unknown; "
            "give it with --manager-url URL"
        )
    return f"https://mora.{record.domain}"


def manager_config(manifest: Manifest, record: stack_store.StackRecord, args: Any,
                   extra_namespaces: tuple[str, ...] = ()) -> ManagerConfig:
    from stacks.manager_program import FORWARDED_SETTINGS, ManagerConfig

    settings = {k: v for k, v in record.settings.items() if k in FORWARDED_SETTINGS}
    values: dict[str, Any] = {
        "stack": record.stack,
        "domain": record.domain,
        "project_namespaces": [project_namespace(manifest, record), *extra_namespaces],
        "stack_settings": settings,
        "storage_class": settings.get("storage_class"),
        "ingress_class": settings.get("ingress_class"),
        "cert_manager_issuer": settings.get("cert_manager_issuer"),
    }
    if getattr(args, "manager_image", None):
        values["image"] = args.manager_image
    if getattr(args, "manager_namespace", None):
        values["namespace"] = args.manager_namespace
    return ManagerConfig(**values)


def deploy_manager(manifest: Manifest, record: stack_store.StackRecord, args: Any,
                   url: str, kubeconfig: Path, *, reason: str,
                   extra_namespaces: tuple[str, ...] = ()) -> Credentials:
    """Run the manager stack's ``up``; returns the credentials from its outputs."""
    from stacks.errors import DeploymentFailed
    from stacks.manager_program import manager_stack_name

    from .progress import Display

    config = manager_config(manifest, record, args, extra_namespaces)
    workspace = _manager_workspace_factory(config, backend_url=record.backend,
                                           kubeconfig=kubeconfig)
    name = manager_stack_name(record.stack)
    output.info(f"{reason}; deploying it (stack {name}, namespace {config.namespace}, "
                f"image {config.image}).")
    display = Display(f"Deploying the mora manager (stack {name})")
    try:
        with display:
            outputs = workspace.deploy(name, display)
    except DeploymentFailed as err:
        where = f" at {', '.join(display.failed)}" if display.failed else ""
        raise DeploymentFailed(f"deploying the manager failed{where}: {err}") from None
    creds = credentials_from_outputs(url, outputs)
    creds.namespaces = creds.namespaces or list(config.project_namespaces)
    return creds


def wait_until_healthy(client: ManagerClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not client.healthy():
        if time.monotonic() >= deadline:
            raise ManagerUnreachable(
                f"the manager was deployed but {client.url}/healthz does not answer after "
                f"{int(timeout)} s; check that its host name resolves to your ingress, or "
                "reach it another way (e.g. `kubectl port-forward`) and pass --manager-url"
            )
        time.sleep(POLL_INTERVAL)


def run_up(args: Any, manifest: Manifest, record: stack_store.StackRecord,
           params: dict[str, Any], *, home: Path,
           kubeconfig: Callable[[], Path],
           on_accepted: Callable[[], None] | None = None) -> int:
    """`mora up` without ``--local`` (see the module docstring); returns the exit code.

    ``on_accepted`` is called once the manager accepted the manifest: from then on
    it owns the services' stack (the caller records that).
    """
    from stacks.automation import require_pulumi

    url = manager_url(args, record)
    project = record.project
    creds = credentials(home, project, record.stack)
    client = ManagerClient(url, creds)
    namespace = project_namespace(manifest, record)
    try:
        healthy = client.healthy()
        # A running manager whose RBAC does not cover this stack's namespace (it moved,
        # `mora init --namespace`) is updated, keeping the namespaces it had.
        widen = healthy and bool(creds.namespaces) and namespace not in creds.namespaces
        if not healthy or widen:
            require_pulumi()  # one sentence, exit 3, before anything is printed
            reason = (f"The manager does not answer at {url}" if not healthy else
                      f"The manager may not write to namespace {namespace} yet")
            fresh = deploy_manager(manifest, record, args, url, kubeconfig(), reason=reason,
                                   extra_namespaces=tuple(creds.namespaces))
            creds = _merge(creds, fresh)
            saved = save_credentials(home, project, record.stack, creds)
            client = ManagerClient(url, creds)
            wait_until_healthy(client, getattr(args, "manager_timeout", None) or READY_TIMEOUT)
            output.info(f"The manager answers at {url}; its credentials are in {saved} (0600).")
        elif not creds.api_token:
            creds = _merge(creds, _read_manager_outputs(manifest, record, args, url, kubeconfig))
            save_credentials(home, project, record.stack, creds)
            client = ManagerClient(url, creds)

        accepted = client.send_manifest(manifest, params)
        if on_accepted is not None:
            on_accepted()
        lines = change_lines(accepted.get("changes"))
        output.info(f"Sent {manifest.project.name} to the manager at {url} "
                    f"(manifest {accepted.get('manifest_id')}"
                    + (f"; {'; '.join(lines)}" if lines else "; no change") + ").")
        plan = follow(client, timeout=getattr(args, "follow_timeout", None) or 1800.0)
    except ManagerUnreachable as err:
        output.error(str(err))
        return EXIT_TOOL_MISSING
    except ManagerRefused as err:
        output.error(str(err))
        return EXIT_FAILED
    return _report(url, plan, home, project, record.stack)


def change_lines(changes: Any) -> list[str]:
    """``ManifestAccepted.changes`` as short lines (``added services: a, b``)."""
    if not isinstance(changes, dict):
        return []
    lines = []
    for key in ("added_services", "removed_services", "changed_services", "added_inputs",
                "removed_inputs", "changed_inputs"):
        items = changes.get(key) or []
        if items:
            lines.append(f"{key.replace('_', ' ')}: {', '.join(map(str, items))}")
    return lines


def _merge(old: Credentials, new: Credentials) -> Credentials:
    return Credentials(
        url=new.url or old.url,
        namespaces=new.namespaces or old.namespaces,
        api_token=new.api_token or old.api_token,
        admin_password=new.admin_password or old.admin_password,
        ca_cert_pem=new.ca_cert_pem or old.ca_cert_pem,
    )


def _read_manager_outputs(manifest: Manifest, record: stack_store.StackRecord, args: Any,
                          url: str, kubeconfig: Callable[[], Path]) -> Credentials:
    """The credentials of a running manager whose token this machine does not have."""
    from stacks.automation import require_pulumi
    from stacks.manager_program import manager_stack_name

    require_pulumi()
    config = manager_config(manifest, record, args)
    workspace = _manager_workspace_factory(config, backend_url=record.backend,
                                           kubeconfig=kubeconfig())
    output.info("Reading the manager's API token from its stack (not kept on this machine yet).")
    return credentials_from_outputs(url, workspace.all_outputs(manager_stack_name(record.stack)))


def _report(url: str, plan: dict[str, Any] | None, home: Path, project: str, stack: str) -> int:
    wizard = url + "/"
    if plan is None:
        output.info("The manager is still working; follow it in the wizard.")
        output.out(f"wizard  {wizard}")
        return EXIT_OK
    services = plan.get("services", [])
    failed = sorted(s["name"] for s in services if s["state"] == "failed")
    running = sorted(s["name"] for s in services if s["state"] == "running")
    waiting = sorted(s["name"] for s in services if s["state"] not in ("running", "failed"))
    output.info(f"{len(running)} of {len(services)} services running.")
    pending = plan.get("pending_inputs") or []
    if pending:
        titles = "; ".join(str(i.get("title") or i.get("id")) for i in pending)
        output.info(f"The wizard asks {len(pending)} question(s): {titles}")
    if waiting and not pending:
        output.info(f"Waiting (for inputs asked once other services run): {', '.join(waiting)}")
    removals = plan.get("pending_removals") or []
    if removals:
        output.info(f"Removing {', '.join(removals)} waits for your confirmation in the wizard "
                    "(their volumes are kept).")
    path = credentials_path(home, project, stack)
    if path.exists():
        output.info(f"Log in with the admin password kept in {path} (field admin_password).")
    output.out(f"wizard  {wizard}")
    if failed:
        output.error(f"the update failed for {', '.join(failed)}; see the wizard for "
                     "Pulumi's error and retry there")
        return EXIT_FAILED
    sys.stdout.flush()
    return EXIT_OK
