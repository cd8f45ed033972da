"""The ``mora`` command: builds the argument parser and runs one subcommand.

This module only parses and dispatches; what a command does lives in its own
module (``lang_commands`` for the language part), and the real work in the
packages those call. It also owns the promise that the user never sees a
Python traceback: misuse exits 2 with one line, a bug exits 70 with one line
(``MORA_DEBUG=1`` shows the traceback), Ctrl-C exits 130 quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import (
    deploy_commands,
    lang_commands,
    manager_commands,
    micromanager_commands,
    output,
    stack_commands,
)
from .errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from .registry import CommandRegistry, add_global_options

# Each module exposes ``register(registry)``; later issues append theirs here.
COMMAND_MODULES = (lang_commands, manager_commands, stack_commands, deploy_commands,
                   micromanager_commands)

DESCRIPTION = """\
mora turns a shareable homelab description (a folder of .mora files) into a
running Kubernetes homelab: check, format and compile a project, render or deploy
it as a Pulumi stack, and run the manager that walks you through its setup.
"""

EPILOG = """\
exit codes: 0 ok, 1 errors in the program (or the deployment failed), 2 misuse of the command,
3 a tool mora needs is missing or unreachable (the pulumi CLI, a kubeconfig), 70 a bug in mora.
Run `mora COMMAND --help` for a command's options, `mora explain CODE` for an error code.
"""


class _VersionAction(argparse.Action):
    """``--version``, reading the installed distribution's version only when asked.

    ``importlib.metadata`` is not free to import; every other run skips it.
    """

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: object):
        super().__init__(option_strings, dest, nargs=0, help="print mora's version and exit")

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("mora")
        except PackageNotFoundError:  # running from a source tree that is not installed
            v = "unknown"
        output.out(f"mora {v}")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The full ``mora`` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="mora",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    add_global_options(parser, defaults=True)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    registry = CommandRegistry(subparsers)
    for module in COMMAND_MODULES:
        module.register(registry)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; errors other than misuse propagate."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits on --help, --version and bad arguments
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_USAGE)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(handler(args))
    except UsageError as err:
        output.error(str(err))
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script: run a command and turn failures into exit codes."""
    output.make_streams_safe()
    try:
        code = run(argv)
        sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `mora schema | head`: the reader left. Point stdout at devnull so the
        # interpreter's final flush does not complain a second time.
        _silence_stdout()
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("MORA_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        output.error_internal(_one_line(exc))
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message``: enough to report, short enough to read."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no real fd (tests)
        pass


if __name__ == "__main__":
    sys.exit(main())
