"""What a hook sees: the service's resolved config, and a way to report back.

A hook gets one :class:`HookContext`. Reading is by the names a micromanager
author knows from the ``.mora`` file (``ctx.secret("jwt_secret")``,
``ctx.input("admin_email")``, ``ctx.param("domain")``); the context turns them
into ref keys of the contract and looks them up in the config the manager gave
for this service (already scoped by the manager's token check).

Writing is buffered: ``ctx.report(...)`` and ``ctx.request_input(...)`` collect,
and the kit sends them to the manager when the hook returns (even when it
raises: an API key created before a later failure still exists and must not
be created twice). That keeps hooks plain functions, sync or async alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import JsonValue

from mora_dsl.manifest import TypeName, TypeSpec

from .contract import MASK, ConfigResponse, HookCall, InputRequest, type_spec
from .errors import HookError, NotReady

_MISSING: Any = object()


class ServiceConfig(Mapping[str, JsonValue]):
    """The service's resolved values by ref key, read-only; its repr masks secrets."""

    def __init__(self, response: ConfigResponse) -> None:
        self.service = response.service
        self._values = dict(response.values)
        self._secret_keys = frozenset(response.secret_keys)
        self.missing = tuple(response.missing)
        self.environment: Mapping[str, str] = dict(response.environment)
        self.ports: Mapping[str, int] = dict(response.ports)

    def __getitem__(self, key: str) -> JsonValue:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shown = {k: (MASK if k in self._secret_keys else v) for k, v in self._values.items()}
        return f"ServiceConfig({self.service!r}, {shown!r})"

    def is_secret(self, key: str) -> bool:
        return key in self._secret_keys

    def secret_values(self) -> list[str]:
        """Every secret value (for scrubbing messages), environment values included.

        An environment variable may embed a secret in a longer text
        (``postgres://u:PASSWORD@db``): the secrets themselves catch that.
        """
        return [str(self._values[k]) for k in self._secret_keys if k in self._values]


class HookContext:
    """The one argument of every hook."""

    def __init__(
        self,
        *,
        micromanager: str,
        hook: str,
        call: HookCall,
        config: ServiceConfig,
        values: Mapping[str, Any] | None = None,
        logger: logging.Logger | None = None,
        service_host: str | None = None,
        service_ports: Mapping[str, int] | None = None,
    ) -> None:
        self.micromanager = micromanager
        self.hook = hook
        self.call = call
        self.service = call.service
        self.config = config
        #: an action's parsed form values (empty for lifecycle hooks)
        self.values: Mapping[str, Any] = dict(values or {})
        self.logger = logger or logging.getLogger(f"micromanager.{micromanager}")
        self.reports: dict[str, JsonValue] = {}
        self.input_requests: dict[str, InputRequest] = {}
        self.changes: list[str] = []
        self._extra_secrets: list[str] = []
        self._service_host = service_host
        self._service_ports = dict(service_ports or {})

    # ------------------------------------------------------------------ reading

    @property
    def answered(self) -> list[str]:
        """Input ids answered since the last call (the inputs-answered hook)."""
        return list(self.call.answered)

    @property
    def changed(self) -> list[str]:
        """Ref keys whose values changed (the reconfigure hook)."""
        return list(self.call.changed)

    def value(self, key: str, default: Any = _MISSING) -> Any:
        """The value of a ref key (``param:domain``); :class:`NotReady` when unknown."""
        if key in self.config:
            return self.config[key]
        if default is not _MISSING:
            return default
        what = "not known yet" if key in self.config.missing else "not in this service's config"
        raise NotReady(
            f"{key} is {what}",
            hint="answer the service's inputs in the wizard, or deploy it first"
            if key in self.config.missing
            else "reference it from the service in the .mora file so its micromanager may read it",
        )

    def referenced(self, *keys: str) -> bool:
        """Whether the service references all of ``keys`` (a peer's address and its key).

        ``True`` when all are known, ``False`` when none is referenced (the hook
        may skip that peer); :class:`NotReady` while one is not known yet, and
        :class:`HookError` when only some are referenced.
        """
        missing = [k for k in keys if k in self.config.missing]
        if missing:
            raise NotReady(f"{', '.join(missing)} not known yet",
                           hint="answer the service's inputs in the wizard, or deploy it first")
        known = [k in self.config for k in keys]
        if all(known):
            return True
        if not any(known):
            return False
        names = [k.partition(":")[2] for k in keys]  # as the .mora file writes them
        raise HookError(
            f"{self.service} references only part of {', '.join(names)}",
            hint=f"reference all of them from service {self.service} (environment entries will do)",
            retryable=False,
        )

    def param(self, name: str, default: Any = _MISSING) -> Any:
        return self.value(f"param:{name}", default)

    def secret(self, name: str, default: Any = _MISSING) -> str:
        """A generated secret: its own name (``jwt_secret``), an id or a ref key.

        A name is looked up among the service's own secrets first, then the
        project-wide ones (``ldap_admin_password``).
        """
        candidates = self._candidates("secret", name)
        for key in candidates:
            if key in self.config:
                return str(self.config[key])
        return self.value(candidates[-1], default)  # type: ignore[no-any-return]

    def input(self, name: str, default: Any = _MISSING) -> Any:
        """A wizard answer: the service's input name (``admin_email``) or an input id."""
        return self.value(self._candidates("input", name)[0], default)

    def env(self, name: str, default: Any = _MISSING) -> str:
        """The service's environment variable, references resolved."""
        if name in self.config.environment:
            return self.config.environment[name]
        if default is not _MISSING:
            return default  # type: ignore[no-any-return]
        raise NotReady(f"environment variable {name} of {self.service} is not known yet")

    @property
    def host(self) -> str:
        """Where the service answers: the sidecar's override, else its in-cluster host name.

        The override (``mora micromanager run --service-host``) is for a sidecar
        in the service's pod (``127.0.0.1``) and for tests.
        """
        if self._service_host:
            return self._service_host
        return str(self.value(f"service:{self.service}.host", "127.0.0.1"))

    def port(self, name: str, default: int | None = None) -> int:
        """The service's port ``name`` (``--service-port NAME=PORT`` overrides the manifest)."""
        if name in self._service_ports:
            return self._service_ports[name]
        if name in self.config.ports:
            return self.config.ports[name]
        if default is not None:
            return default
        raise NotReady(f"{self.service} has no port named {name!r}")

    def _candidates(self, kind: str, name: str) -> list[str]:
        """Ref keys ``name`` may mean, the service's own first (a ref key, an id, a name)."""
        if ":" in name:
            return [name]
        if "." in name:
            return [f"{kind}:{name}"]
        return [f"{kind}:{self.service}.{name}", f"{kind}:{name}"]

    # ------------------------------------------------------------------ writing

    def report(self, key: str, value: JsonValue) -> None:
        """Report a value the hook created, for the service's input ``key`` (sent after the hook)."""
        self.reports[key] = value
        if isinstance(value, str):
            self._extra_secrets.append(value)  # an API key: keep it out of any error text

    def request_input(
        self,
        name: str,
        title: str,
        *,
        type: TypeSpec | TypeName | str = "string",
        help: str | None = None,
        optional: bool = False,
        default: str | int | bool | None = None,
    ) -> Any:
        """Ask the wizard for a new input; returns its answer when there is one already.

        Idempotent: asking again for the same name is how a hook says "still
        needed". When the answer is ``None`` the hook should return; the manager
        calls the inputs-answered hook once the person has answered.
        """
        self.input_requests[name] = InputRequest(
            name=name, title=title, type=type_spec(type), help=help, optional=optional,
            default=default,
        )
        return self.input(name, None)

    def note_change(self, change: str) -> None:
        """Record what the hook changed (shown in the manager; empty means "nothing to do")."""
        self.changes.append(change)
        self.logger.info("%s: %s", self.service, change)

    def add_secret(self, value: str) -> None:
        """Mask ``value`` in this hook's error messages (a password an action received…)."""
        self._extra_secrets.append(value)

    def secret_values(self) -> list[str]:
        return [*self.config.secret_values(), *self._extra_secrets]
