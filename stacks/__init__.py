"""From manifest to Kubernetes: the Pulumi program, the offline renderer, the Automation API.

The public surface (import the submodules; this package imports no Pulumi itself,
so importing it stays cheap):

* :class:`stacks.config.StackConfig` – one stack's params, answers and settings;
* :func:`stacks.render.render` / :func:`stacks.render.to_yaml` – the objects a stack
  would create, offline, secrets as placeholders;
* :func:`stacks.program.build` – the Pulumi program itself;
* :class:`stacks.automation.Workspace` – per-user stacks and preview/up/destroy/refresh.
"""

from __future__ import annotations

from .config import StackConfig
from .errors import ConfigError, PulumiNotInstalled, StackError

__all__ = ["ConfigError", "PulumiNotInstalled", "StackConfig", "StackError"]
