"""`mora preview`, `destroy`, `ca` and `secrets show` for a stack the in-cluster manager runs.

After `mora up` without ``--local`` the manager owns the services' stack: its
Pulumi state lives in the manager's volume, not on this machine. So when the
stack record says the last `mora up` went through the manager
(:attr:`~mora_cli.stack_store.StackRecord.mode`), these commands ask the manager
over its API instead of reading the local state (``--local`` still reads it):

* ``preview``: ``POST /api/v1/preview`` (what the manager's next update would change);
* ``destroy``: ``POST /api/v1/destroy`` (the services' stack, with the stack's name as
  the confirmation), then, with ``--manager`` or when asked, the manager's own stack
  (``<stack>-manager``) through the local Pulumi workspace, as `mora up` deployed it;
* ``ca``: ``GET /api/v1/ca``;
* ``secrets show``: ``POST /api/v1/secrets/{id}/reveal`` with the admin password
  (``MORA_ADMIN_PASSWORD``, else asked without echo).

The API token comes from the credentials file `mora up` keeps (or
``MORA_API_TOKEN``) and is never printed. A manager that does not answer exits
with code 3, one that refuses (401, 403, 404, 5xx…) with code 1, each with one
``mora: error:`` line.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from . import bootstrap, output, stack_store
from .errors import EXIT_FAILED, EXIT_OK, EXIT_TOOL_MISSING

if TYPE_CHECKING:
    from mora_dsl.manifest import Manifest

ADMIN_PASSWORD_ENV = "MORA_ADMIN_PASSWORD"


def uses_manager(record: stack_store.StackRecord, args: argparse.Namespace, home: Path) -> bool:
    """Whether a command acts through the manager: the record says so and no ``--local``.

    A record written before modes were kept counts as ``manager`` when `mora up`
    left the manager's credentials for it.
    """
    if getattr(args, "local", False):
        return False
    if record.mode is not None:
        return record.mode == "manager"
    return bootstrap.credentials_path(home, record.project, record.stack).is_file()


def manager_options(record: stack_store.StackRecord, args: argparse.Namespace) -> SimpleNamespace:
    """The manager options of a command: its own ``--manager-url``, else the remembered ones."""
    remembered = record.manager
    return SimpleNamespace(
        manager_url=getattr(args, "manager_url", None) or remembered.get("url"),
        manager_namespace=remembered.get("namespace"),
        manager_image=remembered.get("image"),
    )


def client_for(record: stack_store.StackRecord, args: argparse.Namespace,
               home: Path) -> bootstrap.ManagerClient:
    """A client for the stack's manager, with the token from the credentials file or env."""
    url = bootstrap.manager_url(manager_options(record, args), record)
    creds = bootstrap.credentials(home, record.project, record.stack)
    if not creds.api_token:
        path = bootstrap.credentials_path(home, record.project, record.stack)
        raise bootstrap.ManagerRefused(
            f"this machine has no API token for the manager of stack {record.stack} ({path} "
            f"holds none); run `mora up` to fetch it, or set {bootstrap.API_TOKEN_ENV}"
        )
    return bootstrap.ManagerClient(url, creds)


def guarded(run: Callable[[], int]) -> int:
    """The manager's failures as one line: 3 when it does not answer, 1 when it refuses."""
    try:
        return run()
    except bootstrap.ManagerUnreachable as err:
        output.error(f"{err}; check that it runs (`mora up` deploys it), reach it with "
                     "--manager-url (e.g. through `kubectl port-forward`), or use --local "
                     "for the stack this machine runs")
        return EXIT_TOOL_MISSING
    except bootstrap.ManagerRefused as err:
        output.error(str(err))
        return EXIT_FAILED


# --------------------------------------------------------------------------- preview


def preview(args: argparse.Namespace, manifest: Manifest, record: stack_store.StackRecord,
            home: Path) -> int:
    from .progress import short_type, summary

    def run() -> int:
        client = client_for(record, args, home)
        output.info(f"Previewing {manifest.project.name} stack {record.stack} through the "
                    f"manager at {client.url}")
        result = client.preview()
        for step in result.get("steps") or []:
            output.info(f"  {step.get('operation')} {short_type(str(step.get('type')))} "
                        f"{step.get('name')}")
        how = " (dry run: the objects the manager would render)" if result.get("dry_run") else ""
        output.info(f"Preview done{how}: "
                    f"{summary(result.get('changes') or {}, preview=True)}")
        deploy = result.get("deploy") or []
        waiting = sorted({s.name for s in manifest.services} - set(deploy))
        if waiting:
            output.info(f"Not in the next update (they wait for inputs or dependencies): "
                        f"{', '.join(waiting)}")
        return EXIT_OK

    return guarded(run)


# --------------------------------------------------------------------------- destroy


def destroy(args: argparse.Namespace, manifest: Manifest, record: stack_store.StackRecord,
            home: Path, *, confirm: Callable[[str, bool], bool],
            kubeconfig: Callable[[], Path]) -> int:
    """Destroy the services' stack through the manager, then maybe the manager itself."""
    from .progress import summary

    def run() -> int:
        client = client_for(record, args, home)
        volumes = ("volumes, their data and the namespace are deleted too"
                   if args.delete_volumes else "volumes and the namespace are kept")
        question = (f"This deletes the resources of stack {record.stack} "
                    f"({manifest.project.name}) from the cluster, through its manager at "
                    f"{client.url}; {volumes}. Continue? [y/N] ")
        if not confirm(question, args.yes):
            output.info("nothing destroyed")
            return EXIT_FAILED
        result = client.destroy(record.stack, delete_volumes=args.delete_volumes)
        output.info(f"Destroy done: {summary(result.get('changes') or {})}")
        cancelled = result.get("cancelled_updates") or []
        if cancelled:
            output.info(f"Queued updates cancelled: {', '.join(map(str, cancelled))}")
        if not args.delete_volumes:
            output.info("Volumes and the namespace were kept; `mora destroy --delete-volumes` "
                        "removes them with their data.")
        return EXIT_OK

    code = guarded(run)
    if code != EXIT_OK:
        return code
    if not args.manager and (args.yes or not confirm(
            f"Also remove the manager itself (stack {_manager_stack(record)})? [y/N] ", False)):
        output.info(f"The manager keeps running and `mora up` deploys the stack again; "
                    f"`mora destroy {args.path} --stack {record.stack} --manager` removes it too.")
        return EXIT_OK
    return destroy_manager(args, manifest, record, home, kubeconfig=kubeconfig)


def _manager_stack(record: stack_store.StackRecord) -> str:
    from stacks.manager_program import manager_stack_name

    return manager_stack_name(record.stack)


def destroy_manager(args: argparse.Namespace, manifest: Manifest,
                    record: stack_store.StackRecord, home: Path, *,
                    kubeconfig: Callable[[], Path]) -> int:
    """Remove the manager's own stack from this machine (needs the Pulumi CLI).

    Its state volume (the manager's store and the services' Pulumi state) and its
    namespace are kept unless ``--delete-volumes``. The credentials file goes: the
    next manager gets new credentials.
    """
    from stacks.automation import require_pulumi
    from stacks.errors import DeploymentFailed

    from .progress import Display, summary

    require_pulumi()
    config = bootstrap.manager_config(manifest, record, manager_options(record, args))
    workspace = bootstrap._manager_workspace_factory(config, backend_url=record.backend,
                                                     kubeconfig=kubeconfig())
    name = _manager_stack(record)
    display = Display(f"Removing the mora manager (stack {name})")
    try:
        with display:
            result = workspace.destroy(name, display, delete_volumes=args.delete_volumes)
    except DeploymentFailed as err:
        where = f" at {', '.join(display.failed)}" if display.failed else ""
        output.error(f"removing the manager (stack {name}) failed{where}: {err}")
        return EXIT_FAILED
    bootstrap.credentials_path(home, record.project, record.stack).unlink(missing_ok=True)
    output.info(f"Manager removed: {summary(getattr(result, 'changes', {}) or {})}")
    if not args.delete_volumes:
        output.info("Its state volume and namespace were kept; `--delete-volumes` removes "
                    "them. The next `mora up` deploys a new manager.")
    return EXIT_OK


# --------------------------------------------------------------------------- ca


def ca(args: argparse.Namespace, record: stack_store.StackRecord, home: Path,
       write: Callable[[str], int]) -> int:
    return guarded(lambda: write(client_for(record, args, home).ca()))


# --------------------------------------------------------------------------- secrets show


def _admin_password(record: stack_store.StackRecord, home: Path) -> str | None:
    if os.environ.get(ADMIN_PASSWORD_ENV):
        return os.environ[ADMIN_PASSWORD_ENV]
    if not output.stdin_is_tty():
        return None
    path = bootstrap.credentials_path(home, record.project, record.stack)
    hint = f" (field admin_password of {path})" if path.is_file() else ""
    sys.stderr.write(f"The manager asks for its admin password again{hint}.\n")
    try:
        return getpass.getpass("Admin password: ")
    except EOFError:
        return None


def show_secret(args: argparse.Namespace, record: stack_store.StackRecord, home: Path) -> int:
    """Reveal one generated secret through the manager (the caller confirmed already)."""

    def run() -> int:
        client = client_for(record, args, home)
        password = _admin_password(record, home)
        if not password:
            output.error(f"the manager needs its admin password to reveal a secret: set "
                         f"{ADMIN_PASSWORD_ENV} or run this on a terminal")
            return EXIT_FAILED
        try:
            value = client.reveal(args.name, password)
        except bootstrap.ManagerRefused as err:
            if err.status == 403:
                raise bootstrap.ManagerRefused(
                    f"the manager at {client.url} refused the admin password") from None
            raise
        sys.stdout.write(_value_text(value) + "\n")
        return EXIT_OK

    return guarded(run)


def _value_text(value: Any) -> str:
    """A revealed value as text: as is, or a key's PEM parts as JSON."""
    if isinstance(value, dict):
        return json.dumps(value, indent=2, sort_keys=True)
    return str(value)
