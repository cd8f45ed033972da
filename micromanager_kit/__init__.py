"""micromanager_kit: write a mora micromanager, a sidecar that sets up one kind of service.

The public surface, in the spirit of kopf::

    from micromanager_kit import Field, HookContext, HookError, Micromanager

    mm = Micromanager("ldap")

    @mm.after_start
    def bootstrap(ctx: HookContext) -> None:
        password = ctx.secret("ldap_admin_password")
        ...
        ctx.report("api_key", key)

    app = mm.app(...)  # FastAPI: /healthz, /hooks/*, OpenAPI

* :class:`Micromanager` – the hooks and actions of one kind of service;
* :class:`HookContext` – what a hook reads (config, secrets, inputs) and reports;
* :class:`HookError` / :class:`NotReady` – fail with a message shown in the wizard;
* :func:`Field` – a typed field of an action's form;
* :mod:`micromanager_kit.contract` – the REST contract the manager shares;
* :class:`~micromanager_kit.client.ManagerClient` – the sidecar → manager client;
* :mod:`micromanager_kit.testing` – an in-process manager stand-in for tests.
"""

from .context import HookContext
from .errors import HookError, ManagerError, NotReady
from .micromanager import Field, Micromanager

__all__ = ["Field", "HookContext", "HookError", "ManagerError", "Micromanager", "NotReady"]
