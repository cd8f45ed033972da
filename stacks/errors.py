"""The errors `stacks` raises, by meaning.

Each one carries a sentence a user can act on; none ever holds a secret value,
only the *names* of params, inputs and secrets, so they are safe to print.
"""

from __future__ import annotations


class StackError(Exception):
    """Something about the manifest or the stack config keeps the program from running."""


class ConfigError(StackError):
    """The stack config is incomplete or names something the manifest does not have."""


class PulumiNotInstalled(StackError):
    """The `pulumi` CLI, which the engine-backed commands need, is not on PATH."""

    def __init__(self) -> None:
        super().__init__(
            "The Pulumi CLI (`pulumi`) is not installed or not on PATH; install it with "
            "`curl -fsSL https://get.pulumi.com | sh` (see https://www.pulumi.com/docs/install/) "
            "and run the command again."
        )


class KubeconfigMissing(StackError):
    """No kubeconfig was found for a command that talks to a cluster."""


class DeploymentFailed(StackError):
    """The Pulumi engine reported an error; the message names the resource when it can."""
