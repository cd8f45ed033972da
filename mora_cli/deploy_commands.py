"""The commands that act on a deployed stack: preview, up, destroy, secrets show, ca.

`mora up` goes through the in-cluster manager (:mod:`.bootstrap`) unless
``--local``. A stack that the last `mora up` deployed through the manager (its
record's ``mode``) is previewed, destroyed, and has its CA and secrets read
through the manager's API (:mod:`.manager_mode`); ``--local`` reads this
machine's Pulumi state instead, through :class:`stacks.automation.Workspace`.
They share the steps of :mod:`.stack_commands` (compiling, the stack record,
the error guard) and its exit codes.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import output, stack_commands, stack_store
from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .registry import CommandRegistry, add_global_options
from .stack_commands import (
    check_namespace,
    check_stack_name,
    compile_manifest,
    confirm,
    deployable_config,
    guard,
    home_dir,
    path_argument,
    require_record,
    stack_option,
    sync_pulumi,
)

if TYPE_CHECKING:
    from mora_dsl.manifest import Manifest
    from stacks.automation import Result
    from stacks.config import StackConfig

    from .progress import Display


# --------------------------------------------------------------------------- registration


def register(registry: CommandRegistry) -> None:
    """Add preview, up, destroy, secrets and ca to the ``mora`` parser."""
    for name, blurb in (
        ("preview", "show what `mora up` would change in the cluster"),
        ("up", "deploy a stack to the cluster"),
        ("destroy", "remove a stack's resources from the cluster (volumes are kept)"),
    ):
        p = registry.add(name, guard(functools.partial(run_operation, name)), help=blurb)
        path_argument(p, required=True)
        stack_option(p, required=True)
        if name == "up":
            _up_options(p)
        else:
            _mode_options(p, name)
        if name == "destroy":
            p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
            p.add_argument("--delete-volumes", action="store_true",
                           help="also delete the volumes (claims), their data and the namespace "
                           "(with --manager: the manager's state volume too)")
            p.add_argument("--manager", action="store_true",
                           help="also remove the in-cluster manager itself (its stack "
                           "STACK-manager, through the Pulumi CLI on this machine); without "
                           "it, mora asks on a terminal")

    p = registry.add("secrets", _secrets_without_action, help="work with a stack's generated secrets")
    actions = p.add_subparsers(title="actions", metavar="ACTION", dest="secrets_action",
                               parser_class=_IntermixedParser)
    show = actions.add_parser(
        "show",
        help="print one generated secret in clear text (after confirmation)",
        description="Print one generated secret (a password, a token…) of a deployed stack "
        "in clear text, after confirmation.",
    )
    add_global_options(show, defaults=False)
    show.set_defaults(handler=guard(run_secrets_show))
    show.add_argument("name", metavar="NAME", help="the secret's id, e.g. ldap_admin_password")
    stack_option(show, required=True)
    show.add_argument("path", nargs="?", metavar="PATH",
                      help="project folder (default: the folder `mora init` was given "
                      "for this stack)")
    show.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _mode_options(show, "secrets show")

    p = registry.add(
        "ca",
        guard(run_ca),
        help="print the certificate of a stack's internal CA, to trust it",
        description="Print the certificate of the CA that signs a deployed stack's ingress "
        "certificates (the public part only; the CA's key never leaves the Pulumi state), "
        "so browsers and tools can trust it. Asks the manager for a stack it runs; with "
        "--local, reads the stack's outputs on this machine (needs the Pulumi CLI).",
    )
    stack_option(p, required=True)
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="project folder (default: the folder `mora init` was given for "
                   "this stack)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the certificate (PEM) to FILE instead of stdout")
    _mode_options(p, "ca")


class _IntermixedParser(argparse.ArgumentParser):
    """A parser that accepts positionals after options (``show NAME --stack S PATH``).

    Plain argparse gives an optional positional its (empty) match at the first
    positional and then rejects a PATH that follows an option.
    """

    _inner = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        if self._inner:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def _up_options(parser: argparse.ArgumentParser) -> None:
    """`mora up`'s two modes: through the in-cluster manager (default) or ``--local``."""
    parser.description = (
        "Deploy a stack. By default through the manager in the cluster: when it does not "
        "answer at https://mora.<domain> (or --manager-url), it is deployed first (a small "
        "stack of its own; needs the Pulumi CLI and a kubeconfig), then it receives the "
        "manifest and the stack's params, deploys the services in waves and asks the "
        "wizard's questions; `mora up` follows its progress and prints the wizard's URL. "
        "With --local this machine runs the services' stack itself."
    )
    parser.add_argument("--local", action="store_true",
                        help="run the services' stack from this machine instead of through "
                        "the in-cluster manager")
    parser.add_argument("--manager-url", metavar="URL",
                        help="the manager's address (default: https://mora.<domain>), e.g. "
                        "http://127.0.0.1:8080 through `kubectl port-forward`; remembered "
                        "for the stack, an empty value goes back to the default")
    parser.add_argument("--manager-image", metavar="IMAGE",
                        help="the manager's container image when it is deployed "
                        "(default: mora-manager:<mora version>, built from the Dockerfile); "
                        "remembered, an empty value goes back to the default")
    parser.add_argument("--manager-namespace", metavar="NAME",
                        help="the manager's namespace when it is deployed (default: "
                        "mora-system); remembered, an empty value goes back to the default")
    parser.add_argument("--manager-timeout", metavar="SECONDS", type=float, default=None,
                        help="how long to wait for a newly deployed manager to answer "
                        "(default: 300)")
    parser.add_argument("--follow-timeout", metavar="SECONDS", type=float, default=None,
                        help="stop following the manager's progress after this long "
                        "(default: 1800); it goes on in the cluster")


def _mode_options(parser: argparse.ArgumentParser, command: str) -> None:
    """``--local`` and ``--manager-url`` for the commands that follow the stack's mode."""
    parser.add_argument("--local", action="store_true",
                        help=f"{command} the stack this machine runs (its local Pulumi state) "
                        "even when the last `mora up` went through the in-cluster manager")
    parser.add_argument("--manager-url", metavar="URL",
                        help="the manager's address for this command (default: the one `mora "
                        "up` remembered, else https://mora.<domain>)")



def _secrets_without_action(args: argparse.Namespace) -> int:
    raise UsageError("which action? `mora secrets show NAME --stack STACK`")



# --------------------------------------------------------------------------- preview / up / destroy


_TITLES = {"preview": "Previewing", "up": "Updating", "destroy": "Destroying"}


def run_operation(operation: str, args: argparse.Namespace) -> int:
    from stacks.automation import require_pulumi
    from stacks.errors import DeploymentFailed

    from . import manager_mode  # httpx: only for the commands that may need it

    if operation == "up" and not args.local:
        return run_up_through_manager(args)
    stack = check_stack_name(args.stack)
    manifest = compile_manifest(args.path, args.color)
    record = require_record(manifest, stack)
    if operation != "up" and manager_mode.uses_manager(record, args, home_dir()):
        if operation == "preview":
            return manager_mode.preview(args, manifest, record, home_dir())
        return manager_mode.destroy(args, manifest, record, home_dir(), confirm=confirm,
                                    kubeconfig=lambda: _kubeconfig(record))
    require_pulumi()
    kubeconfig = _kubeconfig(record)
    config = deployable_config(manifest, record, args.path)
    if operation == "destroy":
        volumes = ("volumes, their data and the namespace are deleted too"
                   if args.delete_volumes else "volumes and the namespace are kept")
        question = (f"This deletes the resources of stack {stack} ({manifest.project.name}) "
                    f"from the cluster; {volumes}. Continue? [y/N] ")
        if not confirm(question, args.yes):
            output.info("nothing destroyed")
            return EXIT_FAILED

    from stacks.config import micromanager_note

    from .progress import Display

    workspace = stack_commands.workspace_factory(manifest, backend_url=record.backend,
                                                 kubeconfig=kubeconfig)
    note = None
    if operation in ("preview", "up"):
        sync_pulumi(workspace, stack, config)
        note = micromanager_note(manifest, config)
        if note:
            output.info(note)
    display = Display(f"{_TITLES[operation]} {manifest.project.name} stack {stack}")
    try:
        with display:
            if operation == "destroy":
                result = workspace.destroy(stack, display, delete_volumes=args.delete_volumes)
            else:
                result = getattr(workspace, operation)(stack, display)
    except DeploymentFailed as err:
        where = f" at {', '.join(display.failed)}" if display.failed else ""
        reason = "; ".join(part.strip().removeprefix("error:").strip()
                           for part in str(err).split("; "))
        output.error(f"{operation} of stack {stack} failed{where}: {reason}")
        if display.link:
            output.info(f"details in the Pulumi console: {display.link}")
        return EXIT_FAILED
    _report(operation, manifest, config, result, display, args, note)
    if operation == "up":
        record.mode = "local"
        stack_store.save(home_dir(), record)
    if operation == "destroy" and args.manager:
        return manager_mode.destroy_manager(args, manifest, record, home_dir(),
                                            kubeconfig=lambda: kubeconfig)
    return EXIT_OK


def _remembered_manager_options(args: argparse.Namespace,
                                record: stack_store.StackRecord) -> dict[str, str]:
    """Fill ``args``'s unset manager options from the record; the options to remember.

    An option given on the command line wins (an empty one goes back to the
    default); one not given takes the remembered value, and mora says so.
    """
    remembered: dict[str, str] = {}
    reused = []
    for key in stack_store.MANAGER_OPTIONS:
        attr = f"manager_{key}"
        given = getattr(args, attr, None)
        if given is None and record.manager.get(key):
            setattr(args, attr, record.manager[key])
            reused.append(f"--{attr.replace('_', '-')} {record.manager[key]}")
        elif given == "":
            setattr(args, attr, None)
        value = getattr(args, attr, None)
        if value:
            remembered[key] = value.rstrip("/") if key == "url" else value
    if reused:
        output.info(f"Using the remembered {', '.join(reused)} (give another value to change "
                    "it, an empty one for the default).")
    return remembered


def run_up_through_manager(args: argparse.Namespace) -> int:
    """`mora up` without ``--local``: the in-cluster manager deploys (see :mod:`.bootstrap`).

    The Pulumi CLI is needed only when the manager has to be deployed first.
    """
    from . import bootstrap

    stack = check_stack_name(args.stack)
    manifest = compile_manifest(args.path, args.color)
    record = require_record(manifest, stack)
    config = deployable_config(manifest, record, args.path)
    options = _remembered_manager_options(args, record)
    check_namespace(args.manager_namespace, "--manager-namespace", example="mora-system")

    def accepted() -> None:  # the manager owns the stack from now on
        record.mode = "manager"
        record.manager = options
        stack_store.save(home_dir(), record)

    return bootstrap.run_up(
        args, manifest, record, dict(config.params), home=home_dir(),
        kubeconfig=lambda: _kubeconfig(record), on_accepted=accepted,
    )


def _kubeconfig(record: stack_store.StackRecord) -> Path:
    """The stack's own kubeconfig when ``mora init --kubeconfig`` gave one, else the default."""
    from stacks.automation import kubeconfig_path
    from stacks.errors import KubeconfigMissing

    if record.kubeconfig is None:
        return kubeconfig_path()
    path = Path(record.kubeconfig)
    if not path.is_file():
        raise KubeconfigMissing(
            f"the kubeconfig of stack {record.stack} ({path}) does not exist; point the stack "
            f"at another with `mora init PATH --stack {record.stack} --kubeconfig FILE`"
        )
    return path


def _report(operation: str, manifest: Manifest, config: StackConfig, result: Result,
            display: Display, args: argparse.Namespace, note: str | None) -> None:
    """The outcome of an engine operation; ``note`` is the micromanager note printed before it."""
    from .progress import summary, url_table

    word = {"preview": "Preview", "up": "Update", "destroy": "Destroy"}[operation]
    output.info(f"{word} done: {summary(result.changes, preview=operation == 'preview')}")
    link = result.console_url or display.link
    if link:
        output.info(f"Pulumi console: {link}")
    if operation == "destroy":
        if not args.delete_volumes:
            output.info("Volumes and the namespace were kept; `mora destroy --delete-volumes` "
                        "removes them with their data.")
        return
    urls = result.outputs.get("urls") or {}
    for line in url_table({str(k): str(v) for k, v in urls.items()}):
        output.out(line)
    deployed = result.outputs.get("deployed")
    if operation == "up" and isinstance(deployed, list):
        waiting = sorted({s.name for s in manifest.services} - set(deployed))
        if waiting:
            # The micromanager note (printed before the update) already says it.
            why = "" if note else (
                "; services that wait for inputs are not deployed in --local mode; use the "
                "manager (`mora up` without --local) for the wizard")
            output.info(f"Not deployed yet (they wait for inputs): {', '.join(waiting)}{why}")
    if operation == "up" and urls and not config.cert_manager_issuer:
        output.info(f"TLS certificates come from mora's internal CA: trust it (`mora ca "
                    f"--stack {args.stack} -o ca.crt`) in your browser, "
                    "or use a cert-manager issuer (`mora init … --cert-manager-issuer NAME`).")


# --------------------------------------------------------------------------- secrets show


def run_secrets_show(args: argparse.Namespace) -> int:
    from stacks.automation import require_pulumi

    from . import manager_mode

    stack = check_stack_name(args.stack)
    path = args.path or _path_for_stack(stack, "mora secrets show NAME --stack STACK PATH")
    manifest = compile_manifest(path, args.color)
    known = [s.id for s in manifest.secrets]
    if args.name not in known:
        import difflib

        close = difflib.get_close_matches(args.name, known, n=1, cutoff=0.6)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        listing = f" (its secrets: {', '.join(known)})" if known else " (it has none)"
        raise UsageError(f"{manifest.project.name} has no secret `{args.name}`{hint}{listing}")
    record = require_record(manifest, stack)
    through_manager = manager_mode.uses_manager(record, args, home_dir())
    if not through_manager:
        require_pulumi()
    if not confirm("This prints the secret in clear text. Continue? [y/N] ", args.yes):
        output.info("not shown")
        return EXIT_FAILED
    if through_manager:
        return manager_mode.show_secret(args, record, home_dir())
    workspace = stack_commands.workspace_factory(manifest, backend_url=record.backend)
    value = workspace.reveal_secret(stack, args.name)
    sys.stdout.write(value + "\n")
    return EXIT_OK


def _path_for_stack(stack: str, usage: str) -> str:
    """The project folder of the only project that has ``stack``; else the current folder."""
    records = [r for r in stack_store.find_by_stack(home_dir(), stack) if r.path]
    if len(records) > 1:
        projects = ", ".join(r.project for r in records)
        raise UsageError(f"several projects have a stack {stack!r} ({projects}); give the "
                         f"project folder: `{usage}`")
    if records and Path(records[0].path or ".").exists():
        return records[0].path or "."
    return "."


# --------------------------------------------------------------------------- ca


def run_ca(args: argparse.Namespace) -> int:
    """Print (or write) the internal CA's certificate from the stack output ``ingress_ca_cert``.

    The certificate is public; the output is not a Pulumi secret, so reading it
    reveals nothing and needs no confirmation.
    """
    from stacks.automation import require_pulumi

    from . import manager_mode

    stack = check_stack_name(args.stack)
    path = args.path or _path_for_stack(stack, "mora ca --stack STACK PATH")
    manifest = compile_manifest(path, args.color)
    record = require_record(manifest, stack)
    if manager_mode.uses_manager(record, args, home_dir()):
        return manager_mode.ca(args, record, home_dir(), lambda pem: _write_ca(args, stack, pem))
    require_pulumi()
    workspace = stack_commands.workspace_factory(manifest, backend_url=record.backend)
    cert = workspace.outputs(stack).get("ingress_ca_cert")
    if not isinstance(cert, str) or not cert.strip():
        issuer = record.settings.get("cert_manager_issuer")
        if issuer:
            output.error(f"stack {stack} gets its certificates from cert-manager (issuer "
                         f"{issuer}), not from mora's CA: trust that issuer's CA instead")
        else:
            output.error(f"stack {stack} has no internal CA yet; it is made by the first "
                         f"`mora up {path} --stack {stack} --local` that deploys a service "
                         "with a subdomain")
        return EXIT_FAILED
    return _write_ca(args, stack, cert)


def _write_ca(args: argparse.Namespace, stack: str, cert: str) -> int:
    """The certificate on stdout, or in ``--output`` with how to trust it."""
    pem = cert if cert.endswith("\n") else cert + "\n"
    if not args.output:
        sys.stdout.write(pem)
        return EXIT_OK
    target = Path(args.output).expanduser()
    try:
        target.write_text(pem, encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot write {target}: {err.strerror or err}") from None
    output.info(f"wrote the CA certificate of stack {stack} to {target}; trust it in your "
                "browser's certificate settings, or system-wide (Debian: copy it to "
                "/usr/local/share/ca-certificates/ and run `sudo update-ca-certificates`)")
    return EXIT_OK

