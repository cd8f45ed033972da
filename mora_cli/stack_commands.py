"""The stack commands: init, stacks, render, and the steps every stack command shares.

Each handler compiles the project with the same code as ``mora check``, keeps
its own record of the stack (:mod:`mora_cli.stack_store`) and calls
:mod:`stacks` for the real work: :func:`stacks.render.render` offline,
:class:`stacks.automation.Workspace` for anything that needs the Pulumi engine.
Everything heavy (pydantic, pulumi, rich, stacks) is imported inside handlers.
The commands that act on a deployed stack (preview, up, destroy, secrets show,
ca) are in :mod:`.deploy_commands`, on top of the shared steps here.

Exit codes, on top of ``main``'s: 1 the program has errors or the engine failed,
2 misuse (unknown param, missing value, no such stack), 3 a tool mora needs (the
``pulumi`` CLI, a kubeconfig) is missing or unreachable. Errors from ``stacks``
are written as one ``mora: error:`` line; they never hold a secret value.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import output, stack_store
from .errors import EXIT_FAILED, EXIT_OK, EXIT_TOOL_MISSING, UsageError
from .registry import CommandRegistry

if TYPE_CHECKING:
    from mora_dsl.manifest import Manifest, Param
    from stacks.automation import Workspace
    from stacks.config import StackConfig


INSTALL_HINT = "https://www.pulumi.com/docs/install/"


def workspace_factory(
    manifest: Manifest, *, backend_url: str | None = None, kubeconfig: Path | None = None
) -> Workspace:
    """The :class:`~stacks.automation.Workspace` the engine commands use.

    A module-level hook so tests can hand in a recording stand-in for the Pulumi CLI.
    """
    from stacks.automation import Workspace

    return Workspace(manifest, backend_url=backend_url, kubeconfig=kubeconfig)


# --------------------------------------------------------------------------- registration


def register(registry: CommandRegistry) -> None:
    """Add init, stacks and render to the ``mora`` parser."""
    p = registry.add(
        "init",
        guard(run_init),
        help="create or update a stack: one deployment of a project, with its own params",
        description="Create or update a stack (one deployment of a project, e.g. one per "
        "domain). Asks each param not given with --set (on a terminal), validates it by "
        "type and keeps it in mora's stack record; when the Pulumi CLI is installed, also "
        "creates the Pulumi stack and writes its config.",
    )
    path_argument(p, required=True)
    stack_option(p, required=True)
    _set_option(p)
    p.add_argument("--backend", metavar="URL",
                   help="Pulumi state backend: `local` (default: a file backend under the "
                   "mora home, no account needed), `cloud` (your Pulumi Cloud login) or a "
                   "backend URL (file://, s3://, https://api.pulumi.com, …)")
    p.add_argument("--kubeconfig", metavar="FILE",
                   help="the kubeconfig of this stack's cluster (default: $KUBECONFIG, "
                   "else ~/.kube/config); an empty value goes back to the default")
    p.add_argument("--cert-manager-issuer", metavar="NAME",
                   help="cert-manager ClusterIssuer for ingress certificates (default: "
                   "mora's internal CA); an empty value goes back to the default")
    p.add_argument("--storage-class", metavar="NAME",
                   help="storage class for volumes that name none (default: the cluster's)")
    p.add_argument("--ingress-class", metavar="NAME", help="ingress class for the Ingresses")
    p.add_argument("--cluster-domain", metavar="DOMAIN",
                   help="the cluster's DNS domain (default: cluster.local)")
    _namespace_option(p, "an empty value goes back to the default")
    p.add_argument("--render-group", metavar="GID", type=int,
                   help="GID of the node's `render` group, for Intel GPU services")
    p.add_argument("--micromanager-image", metavar="IMAGE",
                   help="image of the micromanager sidecars (default: "
                   "mora-micromanagers:<mora version>, built from Dockerfile.micromanagers); "
                   "an empty value goes back to the default")
    p.add_argument("--yes", "-y", action="store_true",
                   help="ask nothing: use defaults, fail on params without one")

    p = registry.add(
        "stacks",
        guard(run_stacks),
        help="list the stacks mora knows (of one project, with PATH)",
    )
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="only the stacks of this project folder")

    p = registry.add(
        "render",
        guard(run_render),
        help="print the Kubernetes objects a stack would create (offline)",
        description="Print the Kubernetes objects a stack would create, as YAML: one "
        "multi-document stream on stdout, or one file per object with -o DIR. Offline: "
        "needs neither the Pulumi CLI nor a cluster. Generated secrets and wizard "
        "answers are shown as placeholders.",
    )
    path_argument(p, required=True)
    stack_option(p, required=False,
                  extra=" (its params and settings; without it, only --set and defaults)")
    _set_option(p)
    _namespace_option(p, "overrides the stack's")
    p.add_argument("-o", "--output", metavar="DIR",
                   help="write one YAML file per object into DIR instead of stdout")


def path_argument(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("path", metavar="PATH", nargs=None if required else "?",
                        help="project folder or .mora file")


def stack_option(parser: argparse.ArgumentParser, *, required: bool, extra: str = "") -> None:
    parser.add_argument("--stack", "-s", metavar="NAME", required=required,
                        help=f"the stack's name, e.g. home{extra}")


def _set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                        help="a param's value (repeatable), e.g. --set domain=home.example.com")


def _namespace_option(parser: argparse.ArgumentParser, extra: str) -> None:
    parser.add_argument("--namespace", "-n", metavar="NS",
                        help="the namespace of the stack's objects (default: the one the "
                        "project names); two stacks of one project on one cluster need "
                        f"different ones, e.g. PROJECT-STACK; {extra}")



# --------------------------------------------------------------------------- error handling


class _Exit(Exception):
    """Stop a handler with an exit code after its message was printed."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def guard(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the errors of :mod:`stacks` into one ``mora: error:`` line and an exit code."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from stacks.errors import KubeconfigMissing, PulumiNotInstalled, StackError

        try:
            return handler(args)
        except _Exit as stop:
            return stop.code
        except (PulumiNotInstalled, KubeconfigMissing) as err:
            output.error(str(err))
            return EXIT_TOOL_MISSING
        except (StackError, stack_store.RecordError) as err:
            output.error(str(err))
            return EXIT_FAILED

    return run


# --------------------------------------------------------------------------- shared steps
# (the commands of :mod:`.deploy_commands` use them too)


def compile_manifest(path: str, color: str) -> Manifest:
    """Compile ``path`` (diagnostics on stderr); errors in the program stop with exit 1."""
    from .lang_commands import _compile

    result = _compile(argparse.Namespace(path=path, color=color))
    if not result.ok:
        raise _Exit(EXIT_FAILED)
    return result.validated()


def _project_key(manifest: Manifest) -> str:
    from stacks.naming import k8s_name

    return k8s_name(manifest.project.name)


def home_dir() -> Path:
    from stacks.automation import mora_home

    return mora_home()


def check_stack_name(name: str) -> str:
    if not stack_store.valid_stack_name(name):
        raise UsageError(
            f"invalid stack name {name!r}: use letters, digits, `-`, `_` and `.`, "
            "starting with a letter or digit"
        )
    return name


def require_record(manifest: Manifest, stack: str) -> stack_store.StackRecord:
    record = stack_store.load(home_dir(), _project_key(manifest), check_stack_name(stack))
    if record is None:
        known = [r.stack for r, _ in stack_store.all_records(home_dir(), _project_key(manifest))]
        hint = f" (its stacks: {', '.join(known)})" if known else ""
        raise UsageError(
            f"{manifest.project.name} has no stack {stack!r}{hint}; create it with "
            f"`mora init PATH --stack {stack}`"
        )
    return record


def _text(value: Any) -> str:
    """A manifest value (param default, help, example) as a person reads it."""
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def parse_sets(manifest: Manifest, items: list[str]) -> dict[str, Any]:
    """``--set name=value`` options → typed values; a mistake is misuse (exit 2)."""
    import difflib

    from mora_dsl.validate import InvalidValue, parse_value

    params = {p.name: p for p in manifest.params}
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--set expects PARAM=VALUE, e.g. --set domain=home.example.com "
                             f"(got {name or item!r})")
        if name not in params:
            close = difflib.get_close_matches(name, list(params), n=1, cutoff=0.6)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            listing = f" (its params: {', '.join(params)})" if params else " (it has no params)"
            raise UsageError(
                f"--set {name}: {manifest.project.name} has no param `{name}`{hint}{listing}"
            )
        try:
            values[name] = parse_value(params[name].type, text)
        except InvalidValue as err:
            raise UsageError(f"--set {name}: {err}") from None
    return values


def _missing_message(manifest: Manifest, names: list[str], how: str) -> str:
    params = {p.name: p for p in manifest.params}
    sets = " ".join(
        f"--set {n}={_text(params[n].example) if params[n].example else 'VALUE'}" for n in names
    )
    return f"no value for {', '.join(names)}; {how} {sets}"


def _stack_config(manifest: Manifest, params: dict[str, Any],
                  settings: dict[str, Any]) -> StackConfig:
    from stacks.config import StackConfig

    known = {p.name for p in manifest.params}
    return StackConfig(
        params={k: v for k, v in params.items() if k in known},
        **{k: v for k, v in settings.items() if k in stack_store.SETTINGS and v is not None},
    )


def deployable_config(manifest: Manifest, record: stack_store.StackRecord,
                       path: str) -> StackConfig:
    """The record's config; params the project gained since `mora init` are misuse (exit 2)."""
    from stacks.config import missing_params

    config = _stack_config(manifest, record.params, record.settings)
    missing = missing_params(manifest, config)
    if missing:
        raise UsageError(_missing_message(
            manifest, missing, f"the project has new params; run `mora init {path} "
            f"--stack {record.stack}` with"))
    return config


def _domain_of(manifest: Manifest, params: dict[str, Any]) -> str | None:
    for p in manifest.params:
        if p.type.name == "domain":
            value = params.get(p.name, p.default if p.has_default else None)
            return None if value is None else _text(value)
    return None


def confirm(question: str, yes: bool) -> bool:
    if yes:
        return True
    try:
        answer = input(question)
    except EOFError:
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in ("y", "yes")


def _backend_label(backend: str | None) -> str:
    return "local" if backend is None else backend


# --------------------------------------------------------------------------- init


_DEFAULT = object()


def _ask(param: Param) -> Any:
    """Ask one param on the terminal until the value fits its type; ``_DEFAULT`` for Enter."""
    import getpass

    from mora_dsl.validate import InvalidValue, parse_value

    err = sys.stderr
    title = param.prompt or param.name
    what = f"{param.name}, {param.type}" if param.prompt else str(param.type)
    err.write(f"\n{title} ({what})\n")
    if param.help:
        for line in _text(param.help).strip().splitlines():
            err.write(f"  {line.strip()}\n")
    if param.example:
        err.write(f"  example: {_text(param.example)}\n")
    default = f" [{_text(param.default)}]" if param.has_default else ""
    prompt = f"  {param.name}{default}: "
    while True:
        try:
            text = getpass.getpass(prompt) if param.type.name == "secret" else input(prompt)
        except EOFError:
            err.write("\n")
            raise UsageError(f"no value for param `{param.name}` (input ended)") from None
        if text.strip() == "" and param.has_default:
            return _DEFAULT
        try:
            return parse_value(param.type, text)
        except InvalidValue as problem:
            err.write(f"  {problem}; try again\n")


def run_init(args: argparse.Namespace) -> int:
    stack = check_stack_name(args.stack)
    manifest = compile_manifest(args.path, args.color)
    sets = parse_sets(manifest, args.set)
    check_namespace(args.namespace)
    _check_settings(args)
    home = home_dir()
    project = _project_key(manifest)
    existing = stack_store.load(home, project, stack)
    record = existing or stack_store.StackRecord(project=project, stack=stack)
    record.path = str(Path(args.path).resolve())

    declared = {p.name for p in manifest.params}
    dropped = sorted(set(record.params) - declared)
    kept = [n for n in record.params if n in declared and n not in sets]
    params = {k: v for k, v in record.params.items() if k in declared}
    params.update(sets)

    # What is left to ask: on a new stack every param not given; on an existing one,
    # only those without a value (a default counts: --set changes it).
    todo = [p for p in manifest.params if p.name not in params
            and (existing is None or not p.has_default)]
    interactive = not args.yes and output.stdin_is_tty()
    defaults: list[str] = []
    if interactive:
        if todo:
            sys.stderr.write(f"Stack {stack} of {manifest.project.name}: "
                             f"{len(todo)} param(s) to set (Enter takes the default).\n")
        for param in todo:
            value = _ask(param)
            if value is _DEFAULT:
                defaults.append(param.name)
            else:
                params[param.name] = value
    else:
        missing = [p.name for p in todo if not p.has_default]
        if missing:
            raise UsageError(_missing_message(
                manifest, missing, "not asked (stdin is not a terminal); give them with"
                if not args.yes else "give them with"))
        defaults = [p.name for p in todo]

    record.params = params
    _apply_settings(record, args)
    if args.backend is not None:
        record.backend = None if args.backend in ("", "local") else args.backend
    if args.kubeconfig is not None:
        record.kubeconfig = str(Path(args.kubeconfig).expanduser().resolve()) if args.kubeconfig \
            else None
    record.domain = _domain_of(manifest, params)
    path = stack_store.save(home, record)

    verb = "updated" if existing else "created"
    output.info(f"{verb} stack {stack} of {manifest.project.name} ({_shown_path(path)})")
    if sets:
        output.info(f"  set: {', '.join(sets)}")
    if existing and kept:
        output.info(f"  kept: {', '.join(kept)} (change with --set NAME=VALUE)")
    if defaults:
        output.info(f"  defaults: {', '.join(defaults)}")
    if dropped:
        output.info(f"  dropped (no longer in the project): {', '.join(dropped)}")
    _note_shared_namespace(manifest, record, args.path)

    from stacks.automation import require_pulumi
    from stacks.errors import PulumiNotInstalled

    try:
        require_pulumi()
    except PulumiNotInstalled:
        if record.mode != "manager":  # a running manager needs no Pulumi CLI here
            output.info(
                "note: the Pulumi CLI is not installed; `mora render` and `mora up` through a "
                "running manager work without it; deploying the manager (the first `mora up`) "
                f"and everything with --local need it ({INSTALL_HINT})."
            )
        return EXIT_OK
    workspace = workspace_factory(manifest, backend_url=record.backend)
    sync_pulumi(workspace, stack, _stack_config(manifest, record.params, record.settings))
    output.info(f"Pulumi stack {stack} is ready (backend: {_backend_label(record.backend)})")
    return EXIT_OK


def check_namespace(value: str | None, option: str = "--namespace",
                    example: str = "media-server-friend") -> None:
    """A namespace option that Kubernetes would refuse is misuse, before anything is saved."""
    from stacks.naming import valid_namespace

    if value and not valid_namespace(value):
        raise UsageError(f"{option} {value}: not a valid namespace name (lower-case "
                         "letters, digits and `-`, starting with a letter, at most 63 "
                         f"characters), e.g. {example}")


#: A DNS subdomain (RFC 1123): what Kubernetes accepts as an object's name and a domain.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _check_settings(args: argparse.Namespace) -> None:
    """Settings Kubernetes would refuse are misuse now, not a failed update much later.

    The values go into objects' fields (a storage class name, an ingress class, an
    issuer annotation, the services' host names, a pod's supplemental group), where
    the cluster would reject them deep inside ``mora up``; an empty value means
    "back to the default" and is always fine.
    """
    names = {"cert_manager_issuer": "--cert-manager-issuer", "storage_class": "--storage-class",
             "ingress_class": "--ingress-class", "cluster_domain": "--cluster-domain"}
    for name, option in names.items():
        value = getattr(args, name, None)
        if value and (len(value) > 253 or not _DNS_SUBDOMAIN.match(value)):
            raise UsageError(f"{option} {value!r}: not a valid Kubernetes name (lower-case "
                             "letters, digits, `-` and `.`, starting and ending with a letter "
                             "or digit)")
    group = getattr(args, "render_group", None)
    if group is not None and not 0 <= group <= 2**32 - 2:
        raise UsageError(f"--render-group {group}: a group id is a number from 0 to {2**32 - 2}")
    image = getattr(args, "micromanager_image", None)
    if image and (image != image.strip() or any(c.isspace() for c in image)):
        raise UsageError(f"--micromanager-image {image!r}: an image reference has no spaces")


def project_namespace(manifest: Manifest, record: stack_store.StackRecord) -> str:
    """The namespace of the stack's objects: its own setting, else the project's.

    :func:`stacks.config.stack_namespace` on the record, without building a ``StackConfig``.
    """
    from stacks.naming import k8s_name

    return str(record.settings.get("namespace") or k8s_name(manifest.project.namespace))


def _note_shared_namespace(manifest: Manifest, record: stack_store.StackRecord,
                           path: str) -> None:
    """Warn when another stack of the project would deploy into the same namespace.

    Two such stacks on one cluster would create (and fight over) the same objects.
    Only a note: with different kubeconfigs, or one kubeconfig pointed at different
    clusters over time, the same namespace is fine.
    """
    namespace = project_namespace(manifest, record)
    others = [r.stack for r, _ in stack_store.all_records(home_dir(), record.project)
              if r.stack != record.stack and r.kubeconfig == record.kubeconfig
              and project_namespace(manifest, r) == namespace]
    if others:
        output.info(
            f"note: stack {', '.join(others)} also uses namespace {namespace} with the same "
            "kubeconfig; on one cluster two stacks need different namespaces: "
            f"`mora init {path} --stack {record.stack} --namespace "
            f"{record.project}-{record.stack}`"
        )


def _shown_path(path: Path) -> str:
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _apply_settings(record: stack_store.StackRecord, args: argparse.Namespace) -> None:
    for name in stack_store.SETTINGS:
        value = getattr(args, name, None)
        if value is None:
            continue
        if value == "":
            record.settings.pop(name, None)
        else:
            record.settings[name] = value


def sync_pulumi(workspace: Workspace, stack: str, config: StackConfig) -> None:
    """Create/select the Pulumi stack and write ``config``, keeping what mora's record lacks.

    The wizard's answers, the deploy set and rotation stamps live only in the Pulumi
    stack; :meth:`~stacks.automation.Workspace.update_config` keeps them.
    """
    workspace.update_config(stack, config, create=True)


# --------------------------------------------------------------------------- stacks


def run_stacks(args: argparse.Namespace) -> int:
    from datetime import datetime

    project = _project_key(compile_manifest(args.path, args.color)) if args.path else None
    records = stack_store.all_records(home_dir(), project)
    if not records:
        where = " for this project" if project else ""
        output.info(f"no stacks{where} yet; create one with `mora init PATH --stack NAME`")
        return EXIT_OK
    rows = [("project", "stack", "domain", "backend", "last modified")]
    for record, path in records:
        modified = datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        rows.append((record.project, record.stack, record.domain or "-",
                     _backend_label(record.backend), modified))
    for line in _table(rows):
        output.out(line)
    return EXIT_OK


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


# --------------------------------------------------------------------------- render


def run_render(args: argparse.Namespace) -> int:
    manifest = compile_manifest(args.path, args.color)
    params: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    if args.stack:
        record = require_record(manifest, args.stack)
        params, settings = dict(record.params), dict(record.settings)
    params.update(parse_sets(manifest, args.set))
    check_namespace(args.namespace)
    if args.namespace:
        settings["namespace"] = args.namespace
    config = _stack_config(manifest, params, settings)

    from stacks.config import deploy_set, missing_params, required_inputs

    missing = missing_params(manifest, config)
    if missing:
        how = (f"set them in the stack (`mora init {args.path} --stack {args.stack}`) or with"
               if args.stack else "give them with")
        raise UsageError(_missing_message(manifest, missing, how))

    from stacks.render import file_name, render, to_yaml

    # render() pauses the cycle collector itself (linear time for large projects).
    objects = render(manifest, config)
    if args.output:
        _write_objects(Path(args.output), objects, file_name, to_yaml)
    else:
        sys.stdout.write(to_yaml(objects))

    deploy = deploy_set(manifest, config)
    output.info(f"{len(objects)} objects for {len(deploy)} of {len(manifest.services)} services")
    waiting = [s for s in manifest.services if s.name not in deploy]
    if waiting:
        reasons = "; ".join(
            f"{s.name} ({', '.join(sorted(required_inputs(manifest, s)))})" for s in waiting
        )
        output.info(f"not deployed yet, waiting for inputs: {reasons}")
    return EXIT_OK


def _write_objects(folder: Path, objects: list[dict[str, Any]],
                   file_name: Callable[[dict[str, Any]], str],
                   to_yaml: Callable[[list[dict[str, Any]]], str]) -> None:
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = set()
        for obj in objects:
            name = file_name(obj)
            (folder / name).write_text(to_yaml([obj]), encoding="utf-8")
            written.add(name)
    except OSError as err:
        raise UsageError(f"cannot write to {folder}: {err.strerror or err}") from None
    output.info(f"wrote {len(written)} files to {folder}")
    stale = sorted(p.name for p in folder.glob("*.yaml") if p.name not in written)
    if stale:
        output.info(f"note: {folder} also holds files this render did not write "
                    f"(left as they are): {', '.join(stale)}")


__all__ = ["EXIT_TOOL_MISSING", "register"]
