"""Declaring a micromanager: the :class:`Micromanager` object and its decorators.

In the spirit of kopf: a module creates ``mm = Micromanager("ldap")`` and
decorates plain functions; the kit does the HTTP, the config reading, the
reporting and the error handling around them::

    mm = Micromanager("ldap")

    @mm.after_start
    def bootstrap(ctx: HookContext) -> None:
        ...

    @mm.action("add_person", title="Add a person", fields=[Field("uid", "User name")])
    async def add_person(ctx: HookContext) -> str:
        ...

Hooks may be sync (run in a worker thread, so blocking libraries like ldap3
are fine) or async. A hook returns ``None``, a message (``str``) or a ``dict``
of data for the person; it raises :class:`~.errors.HookError` to fail with a
message of its own. This module only records declarations; :mod:`.server`
serves them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from mora_dsl.manifest import TypeName, TypeSpec

from .context import HookContext
from .contract import ActionSpec, FormField, HookName, Registration, type_spec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .client import ManagerClient

HookFunction = Callable[[HookContext], Any | Awaitable[Any]]


def Field(  # a function that reads like the model it builds, as in pydantic
    name: str,
    title: str | None = None,
    *,
    type: TypeSpec | TypeName | str = "string",
    help: str | None = None,
    required: bool = True,
    default: str | int | bool | None = None,
) -> FormField:
    """One typed field of an action's form; ``type`` is a mora type name (``"email"``…)."""
    return FormField(
        name=name,
        title=title or name.replace("_", " ").capitalize(),
        type=type_spec(type),
        help=help,
        required=required,
        default=default,
    )


@dataclass(frozen=True)
class Action:
    spec: ActionSpec
    function: HookFunction


class Micromanager:
    """A named set of hooks and actions for one kind of service (``ldap``, ``jellyfin``…)."""

    def __init__(self, name: str, *, version: str = "0.1.0") -> None:
        self.name = name
        self.version = version
        self.hooks: dict[HookName, HookFunction] = {}
        self.actions: dict[str, Action] = {}

    def __repr__(self) -> str:
        return f"Micromanager({self.name!r}, hooks={sorted(self.hooks)}, actions={sorted(self.actions)})"

    # ------------------------------------------------------------------ lifecycle hooks

    def _hook(self, hook: HookName, fn: HookFunction | None) -> Any:
        def decorate(f: HookFunction) -> HookFunction:
            if hook in self.hooks:
                raise ValueError(f"{self.name}: a {hook} hook is already registered")
            self.hooks[hook] = f
            return f

        return decorate(fn) if fn is not None else decorate

    @overload
    def before_deploy(self, fn: HookFunction) -> HookFunction: ...
    @overload
    def before_deploy(self, fn: None = None) -> Callable[[HookFunction], HookFunction]: ...
    def before_deploy(self, fn: HookFunction | None = None) -> Any:
        """Before the service is first deployed: request the inputs the wizard must ask."""
        return self._hook("before_deploy", fn)

    @overload
    def after_start(self, fn: HookFunction) -> HookFunction: ...
    @overload
    def after_start(self, fn: None = None) -> Callable[[HookFunction], HookFunction]: ...
    def after_start(self, fn: HookFunction | None = None) -> Any:
        """Once the service runs: bootstrap it (idempotently: it is called after every start)."""
        return self._hook("after_start", fn)

    @overload
    def inputs_answered(self, fn: HookFunction) -> HookFunction: ...
    @overload
    def inputs_answered(self, fn: None = None) -> Callable[[HookFunction], HookFunction]: ...
    def inputs_answered(self, fn: HookFunction | None = None) -> Any:
        """The person answered inputs of the service (``ctx.answered`` lists them)."""
        return self._hook("inputs_answered", fn)

    @overload
    def reconfigure(self, fn: HookFunction) -> HookFunction: ...
    @overload
    def reconfigure(self, fn: None = None) -> Callable[[HookFunction], HookFunction]: ...
    def reconfigure(self, fn: HookFunction | None = None) -> Any:
        """Values the service uses changed (``ctx.changed`` lists the ref keys)."""
        return self._hook("reconfigure", fn)

    @overload
    def health(self, fn: HookFunction) -> HookFunction: ...
    @overload
    def health(self, fn: None = None) -> Callable[[HookFunction], HookFunction]: ...
    def health(self, fn: HookFunction | None = None) -> Any:
        """Is the service usable? Return ``False`` or raise for "no"; anything else is "yes"."""
        return self._hook("health", fn)

    # ------------------------------------------------------------------ actions

    def action(
        self,
        name: str,
        *,
        title: str,
        help: str | None = None,
        fields: Sequence[FormField] = (),
    ) -> Callable[[HookFunction], HookFunction]:
        """Offer a named tool in the manager's UI; the form's parsed values are ``ctx.values``."""
        if not name.isidentifier():
            raise ValueError(f"action name {name!r} must be an identifier")
        spec = ActionSpec(name=name, title=title, help=help, fields=list(fields))

        def decorate(f: HookFunction) -> HookFunction:
            if name in self.actions:
                raise ValueError(f"{self.name}: an action {name!r} is already registered")
            self.actions[name] = Action(spec, f)
            return f

        return decorate

    # ------------------------------------------------------------------ serving

    def registration(self, *, service: str, url: str, hook_token: str | None) -> Registration:
        """What the sidecar sends the manager at start."""
        return Registration(
            service=service,
            micromanager=self.name,
            version=self.version,
            url=url,
            hooks=sorted(self.hooks),
            actions=[a.spec for a in self.actions.values()],
            hook_token=hook_token,
        )

    def app(
        self,
        *,
        service: str | None = None,
        client: ManagerClient | None = None,
        hook_token: str | None = None,
        advertise_url: str | None = None,
        reregister_every: float = 300.0,
        service_host: str | None = None,
        service_ports: dict[str, int] | None = None,
    ) -> FastAPI:
        """The sidecar's FastAPI app: ``/healthz``, ``/hooks/*``, OpenAPI at ``/docs``.

        With a ``client`` and an ``advertise_url`` it registers with the manager
        at start (retrying in the background until the manager answers) and
        again every ``reregister_every`` seconds, so a manager that lost its
        state learns about the sidecar again. ``hook_token`` (when set) is
        required on every ``/hooks`` call. ``service_host`` / ``service_ports``
        say where the service answers when that is not its in-cluster address
        (a sidecar in the service's pod, a test); see :attr:`HookContext.host`.
        """
        from .server import build_app

        return build_app(
            self,
            service=service,
            client=client,
            hook_token=hook_token,
            advertise_url=advertise_url,
            reregister_every=reregister_every,
            service_host=service_host,
            service_ports=service_ports,
        )
