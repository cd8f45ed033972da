"""``mora micromanager run NAME``: serve a built-in micromanager as a sidecar.

This is the entry point of the micromanagers' container image
(``Dockerfile.micromanagers``): one image, every built-in, the name chosen at
run time. The kit and the built-ins (ldap3, FastAPI, uvicorn) are imported in
the handler, so ``mora --help`` stays fast.

The token comes from ``--token-file`` (a file, e.g. the manager's
``<data>/micromanagers/<service>.token``), ``--token`` (visible to every process
on the node: avoid it) or ``MORA_MICROMANAGER_TOKEN``, in that order; in a
cluster the services' stack puts it into the sidecar's environment from a
Kubernetes Secret (:mod:`stacks.sidecar`).
"""

from __future__ import annotations

import argparse
import os

from . import output
from .errors import UsageError
from .registry import CommandRegistry

TOKEN_ENV = "MORA_MICROMANAGER_TOKEN"
DEFAULT_PORT = 8765


def register(registry: CommandRegistry) -> None:
    """Add ``mora micromanager run`` to the ``mora`` parser."""
    parent = registry.add(
        "micromanager",
        _usage,
        help="run a built-in micromanager (the sidecar that sets up one service)",
    )
    sub = parent.add_subparsers(title="subcommands", metavar="SUBCOMMAND", dest="micromanager_command")
    p = sub.add_parser(
        "run",
        help="serve a built-in micromanager's hooks and register with the manager",
        description="Serve a built-in micromanager (ldap, qbittorrent, jellyfin, arr, "
        "jellyseerr) and register it with the manager. The service's token comes from "
        f"--token-file, else --token, else ${TOKEN_ENV}.",
    )
    p.set_defaults(handler=run_micromanager)
    p.add_argument("name", metavar="NAME", help="the built-in: the service's `micromanager = ...`")
    p.add_argument("--manager", required=True, metavar="URL",
                   help="the manager's base URL, e.g. "
                   "http://mora-manager.mora-system.svc.cluster.local:8080")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token-file", metavar="FILE", default=None,
                       help="read the service's token from FILE (surrounding white space "
                       "ignored); wins over $" + TOKEN_ENV)
    token.add_argument("--token", metavar="T", default=None,
                       help=f"the service's token; wins over ${TOKEN_ENV}, but a command line "
                       "is visible to every process on the machine: prefer --token-file or "
                       "the variable")
    p.add_argument("--service", metavar="SERVICE", default=os.environ.get("MORA_SERVICE"),
                   help="the service in the manifest (default: $MORA_SERVICE, else NAME)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--advertise-url", metavar="URL", default=os.environ.get("MORA_SIDECAR_URL"),
                   help="where the manager reaches this sidecar (default: $MORA_SIDECAR_URL, "
                   "else http://<this pod's address>:PORT)")
    p.add_argument("--service-host", metavar="HOST", default=os.environ.get("MORA_SERVICE_HOST"),
                   help="where the service answers (default: its in-cluster name; "
                   "127.0.0.1 for a sidecar in the service's pod)")
    p.add_argument("--service-port", metavar="NAME=PORT", action="append", default=[],
                   help="override a port of the service (repeatable)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _usage(args: argparse.Namespace) -> int:
    raise UsageError("say what to do: `mora micromanager run NAME --manager URL`")


def _ports(items: list[str]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for item in items:
        name, _, number = item.partition("=")
        if not name or not number.isdigit() or not 1 <= int(number) <= 65535:
            raise UsageError(f"--service-port takes NAME=PORT (PORT 1-65535), not {item!r}")
        ports[name] = int(number)
    return ports


def _http_url(option: str, value: str) -> str:
    """``value`` if it is an http(s) URL with a host; misuse otherwise.

    The client would take anything and fail later: ``notaurl`` as endless
    register retries, a bad port as an internal error from httpx.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as err:
        raise UsageError(f"{option}: {value!r} is not a URL ({err})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{option} takes an http:// or https:// URL with a host, not {value!r}")
    return value


def _check_port(port: int, advertise_url: str | None) -> None:
    """A port the sidecar can listen on and the manager can be told about."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {port}")
    if port == 0 and not advertise_url:
        raise UsageError("--port 0 (any free port) needs --advertise-url: the manager must "
                         "know the port to call the sidecar's hooks")


def resolve_token(args: argparse.Namespace) -> str:
    """The token: ``--token-file``, else ``--token``, else ``$MORA_MICROMANAGER_TOKEN``.

    Raises :class:`UsageError` (exit 2, one line) for a file that cannot be read or
    is empty, and when no source gives a token. The token never appears in a message.
    """
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or type(err).__name__
            raise UsageError(f"cannot read the token file {args.token_file}: {reason}") from None
        if not token:
            raise UsageError(f"the token file {args.token_file} is empty")
        return token
    token = args.token or os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise UsageError(f"give the service's token with --token-file FILE or ${TOKEN_ENV} "
                         "(or --token)")
    return str(token)


def _advertise_url(host: str, port: int) -> str:
    import socket

    if host not in ("0.0.0.0", "::", ""):
        return f"http://{host}:{port}"
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        address = "127.0.0.1"
    return f"http://{address}:{port}"


def run_micromanager(args: argparse.Namespace) -> int:
    """Build the sidecar app for the built-in and serve it with uvicorn until stopped."""
    import logging
    import secrets

    import uvicorn

    from micromanager_kit.builtins import BUILTINS, load
    from micromanager_kit.client import ManagerClient

    if args.name not in BUILTINS:
        raise UsageError(f"no built-in micromanager {args.name!r}; built-ins: {', '.join(sorted(BUILTINS))}")
    _http_url("--manager", args.manager)
    if args.advertise_url:
        _http_url("--advertise-url", args.advertise_url)
    _check_port(args.port, args.advertise_url)
    token = resolve_token(args)
    try:
        mm = load(args.name)
    except ModuleNotFoundError as err:
        raise UsageError(f"the built-in {args.name!r} is not available in this installation "
                         f"({err.name} is missing)") from None
    service = args.service or args.name
    ports = _ports(args.service_port)
    advertise = args.advertise_url or _advertise_url(args.host, args.port)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request URL at INFO; ours carry no secret, but keep the log about mora
    logging.getLogger("httpx").setLevel(logging.WARNING)
    client = ManagerClient(args.manager, token, service)
    app = mm.app(service=service, client=client, hook_token=secrets.token_urlsafe(32),
                 advertise_url=advertise, service_host=args.service_host, service_ports=ports)
    output.info(f"micromanager {mm.name} for {service}: listening on {args.host}:{args.port}, "
               f"manager {args.manager}")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
