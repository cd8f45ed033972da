"""The manager commands: ``mora manager serve``.

Thin: parse the options, compile the project, hand over to
:func:`manager_app.server.serve`. Without PATH the manager starts empty and waits
for the manifest `mora up` POSTs to ``/api/v1/manifests`` (how it runs in the
cluster: the image holds no project). FastAPI, uvicorn and the manager load inside
the handler, so ``mora --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from . import output
from .errors import EXIT_FAILED, EXIT_OK, UsageError
from .registry import CommandRegistry, add_global_options

if TYPE_CHECKING:
    from manager_app.settings import Settings
    from mora_dsl.manifest import Manifest


def register(registry: CommandRegistry) -> None:
    """Add ``mora manager …`` to the ``mora`` parser."""
    manager = registry.add(
        "manager",
        _missing_subcommand,
        help="run the manager (setup wizard, deployment in waves) for a project",
    )
    sub = manager.add_subparsers(title="manager commands", metavar="COMMAND", dest="manager_command")
    serve = sub.add_parser(
        "serve",
        help="serve the manager and its wizard for a project",
        description="Compile the project and serve the manager: the setup wizard, the REST API "
        "under /api/v1 and the update runner. Without PATH it starts empty and waits for "
        "`mora up` to send a manifest. With --dry-run nothing touches a cluster.",
    )
    serve.set_defaults(handler=run_serve)
    add_global_options(serve, defaults=False)
    serve.add_argument("path", metavar="PATH", nargs="?", default=None,
                       help="project folder or .mora file (default: none; wait for a manifest "
                       "from `mora up`)")
    serve.add_argument("--stack", default="default", metavar="NAME", help="stack name (default: default)")
    serve.add_argument(
        "--set", dest="params", action="append", default=[], metavar="PARAM=VALUE",
        help="a param value for this stack (repeatable)",
    )
    serve.add_argument("--dry-run", action="store_true",
                       help="render offline and mark services running; no cluster, no Pulumi CLI")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0: a free one)")
    serve.add_argument("--data", metavar="DIR", default=None,
                       help="the manager's data folder (default: $MORA_HOME/manager)")


def _missing_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("missing manager command; try `mora manager serve PATH`")


def run_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    if args.path is None:
        return _serve_empty(args)

    from mora_dsl.api import compile_project
    from mora_dsl.project import ProjectPathError

    try:
        result = compile_project(args.path)
    except ProjectPathError as err:
        raise UsageError(str(err)) from None
    output.diagnostics(result.render_diagnostics(output.use_color(args.color)))
    if not result.ok:
        output.error("the project has errors; fix them and start the manager again")
        return EXIT_FAILED
    manifest = result.validated()
    # The same checks and messages as `mora init` and `mora render` (types, did-you-mean).
    from .stack_commands import parse_sets

    params = parse_sets(manifest, args.params)
    missing = [p.name for p in manifest.params if p.name not in params and not p.has_default]
    if missing:
        output.info(
            "note: no value for param(s) " + ", ".join(missing) + "; updates will fail until "
            "they are given (`--set NAME=VALUE`, or `mora up` sends them)"
        )

    from manager_app.settings import Settings

    settings = Settings.from_env(
        project=Path(args.path).resolve(),
        stack=args.stack,
        params=params,
        dry_run=args.dry_run,
        host=args.host,
        port=args.port,
        data_dir=Path(args.data).resolve() if args.data else None,
    )
    return _serve(settings, manifest)


def _serve_empty(args: argparse.Namespace) -> int:
    """Serve with no project: the first manifest arrives with `mora up` (in the cluster)."""
    if args.params:
        raise UsageError("--set needs PATH: without a project the params come with the "
                         "manifest `mora up` sends")
    from manager_app.settings import Settings

    settings = Settings.from_env(
        project=None,
        stack=args.stack,
        dry_run=args.dry_run,
        host=args.host,
        port=args.port,
        data_dir=Path(args.data).resolve() if args.data else None,
    )
    return _serve(settings, None)


def _serve(settings: Settings, manifest: Manifest | None) -> int:
    """Check the data folder, then serve; a damaged database ends with one line, not a bug.

    The store opens the folder deep inside the app's construction, where a file
    in the folder's place, a folder nobody may write or a damaged database or
    key would surface as an internal error. They are the user's to fix (often
    a wrong ``--data``), so they are found here first and named.
    """
    import sqlite3

    from manager_app.server import serve

    _check_data_dir(settings.data_dir)
    damage = _damage(settings.data_dir)
    if damage:
        output.error(damage)
        return EXIT_FAILED
    if manifest is None:
        output.info("no project given: waiting for a manifest (`mora up` sends one)")
    try:
        serve(settings, manifest, announce=output.out)
    except sqlite3.DatabaseError as err:  # damage the first look did not see
        output.error(f"the manager's database in {settings.data_dir} cannot be used: {err}")
        return EXIT_FAILED
    return EXIT_OK


def _check_data_dir(folder: Path) -> None:
    """Create ``folder`` if needed; one that is a file or cannot be written is misuse."""
    import tempfile

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"the manager's data folder {folder} is a file (--data)")
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryFile(dir=folder):  # root passes os.access, not a read-only mount
            pass
    except OSError as err:
        raise UsageError(
            f"cannot write in the manager's data folder {folder} (--data): {err.strerror or err}"
        ) from None


def _damage(folder: Path) -> str | None:
    """What is wrong with the database or the answers key in ``folder`` (``None``: nothing)."""
    import sqlite3

    from cryptography.fernet import Fernet

    from manager_app.crypto import KEY_FILE
    from manager_app.store import DB_FILE

    database, key = folder / DB_FILE, folder / KEY_FILE
    fresh = "move it away to start afresh (the stored answers and tokens go with it)"
    if database.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True)) as db:
                db.execute("PRAGMA schema_version").fetchone()
        except sqlite3.Error as err:
            return f"{database} is not a manager database ({err}); {fresh}"
    if key.exists():
        try:
            Fernet(key.read_bytes().strip())
        except (OSError, ValueError) as err:
            return f"{key} is not the manager's answers key ({err}); {fresh}, with {DB_FILE}"
    return None
