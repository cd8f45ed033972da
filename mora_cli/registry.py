"""The small contract between ``main`` and the command modules.

Each command module exposes ``register(registry)`` and adds its subcommands
with :meth:`CommandRegistry.add`. The registry gives every subcommand the
global options (so ``mora check --color never .`` works as well as
``mora --color never check .``) and remembers its handler. Handlers import
what they need inside their body: building the parser must stay cheap, so
``mora --help`` starts fast whatever later commands depend on.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .output import COLOR_CHOICES

Handler = Callable[[argparse.Namespace], int]


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Options accepted before and after the subcommand name.

    On subcommands the default is ``SUPPRESS`` so that a value given before the
    subcommand is not overwritten by the subcommand's own default.
    """
    parser.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default="auto" if defaults else argparse.SUPPRESS,
        help="colour diagnostics: auto (a terminal, unless NO_COLOR is set), always, never",
    )


class CommandRegistry:
    """Adds subcommands to the ``mora`` parser, each with a handler and the global options."""

    def __init__(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        self._subparsers = subparsers
        self._common = argparse.ArgumentParser(add_help=False)
        add_global_options(self._common, defaults=False)

    def add(
        self, name: str, handler: Handler, *, help: str, description: str | None = None
    ) -> argparse.ArgumentParser:
        """Add subcommand ``name``; ``help`` is its line in ``mora --help``."""
        parser: argparse.ArgumentParser = self._subparsers.add_parser(
            name,
            help=help,
            description=description or help[:1].upper() + help[1:] + ".",
            parents=[self._common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(handler=handler)
        return parser
