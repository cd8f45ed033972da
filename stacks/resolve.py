"""Turning the manifest's symbolic values into plain values or Pulumi Outputs.

The compiler folded every constant; what is left here needs a deployment: a
param (stack config), a wizard answer (secret stack config), a generated secret
(a pulumi-random / pulumi-tls output) or a service address (domain, the stack's
namespace, cluster domain). A value becomes an ``Output`` only when it needs a generated
secret or an answer, and such a value is always marked secret, so Pulumi keeps
it encrypted in state and `stacks` knows to put it into a Kubernetes Secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pulumi

from mora_dsl.manifest import Manifest, Ref
from mora_dsl.values import EvaluationError, evaluate, refs, to_text

from .config import StackConfig, stack_namespace
from .errors import ConfigError, StackError
from .naming import service_host

if TYPE_CHECKING:
    from .secrets import GeneratedSecret

SECRET_KINDS = frozenset({"secret", "input"})
DOMAIN_PARAM = "domain"


def is_secret(value: Any) -> bool:
    """True when ``value`` (transitively) holds a generated secret or a wizard answer."""
    return any(r.kind in SECRET_KINDS for r in refs(value))


class Resolver:
    """Resolves values of one manifest for one stack.

    ``secrets`` is filled while the secrets are being created (a certificate's
    hosts are values too), so it is held by reference.
    """

    def __init__(
        self, manifest: Manifest, config: StackConfig, secrets: Mapping[str, GeneratedSecret]
    ) -> None:
        self.manifest = manifest
        self.config = config
        self.secrets = secrets
        #: Where the stack's objects live, so ``service:X.host`` points into this stack only.
        self.namespace = stack_namespace(manifest, config)
        # Looked up for every reference: by name once, not a scan of the manifest per reference.
        self._params = {p.name: p for p in manifest.params}
        self._services = {s.name: s for s in manifest.services}

    # ------------------------------------------------------------------ public

    def value(self, value: Any) -> Any:
        """The value: plain Python when it can be, an ``Output`` (secret) otherwise."""
        found = list(refs(value))
        secret = any(r.kind in SECRET_KINDS for r in found)
        resolved = {(r.ref, r.attr): self._ref(r) for r in found}
        outputs = {k: v for k, v in resolved.items() if isinstance(v, pulumi.Output)}

        def compute(known: Mapping[tuple[str, str | None], Any]) -> Any:
            try:
                return evaluate(value, lambda r: known[(r.ref, r.attr)])
            except EvaluationError as err:
                raise StackError(str(err)) from None

        if not outputs:
            result = compute(resolved)
            return pulumi.Output.secret(result) if secret else result
        keys = list(outputs)
        combined = pulumi.Output.all(*outputs.values()).apply(
            lambda vals: compute({**resolved, **dict(zip(keys, vals, strict=True))})
        )
        return pulumi.Output.secret(combined) if secret else combined

    def text(self, value: Any) -> Any:
        """The value as it reads in an environment variable or a file (``str`` or ``Output[str]``)."""
        result = self.value(value)
        if isinstance(result, pulumi.Output):
            return result.apply(to_text)
        return to_text(result)

    def param(self, name: str) -> Any:
        if name in self.config.params:
            return self.config.params[name]
        p = self._params.get(name)
        if p is None:
            raise StackError(f"the manifest has no param {name!r}")
        if not p.has_default:
            raise ConfigError(f"param {name!r} has no value in this stack")
        default = self.value(p.default)
        if isinstance(default, pulumi.Output):
            raise ConfigError(f"the default of param {name!r} cannot use a secret")
        return default

    def domain(self, why: str) -> str:
        if DOMAIN_PARAM not in self._params:
            raise StackError(f"{why} needs a `{DOMAIN_PARAM}` param, and the project has none")
        return to_text(self.param(DOMAIN_PARAM)).strip().strip(".")

    def public_host(self, service: str) -> str:
        sub = self._services[service].subdomain
        if not sub:
            raise StackError(f"service {service!r} has no subdomain, so it has no public address")
        return f"{sub}.{self.domain(f'the public address of {service!r}')}"

    def host(self, service: str) -> str:
        return service_host(service, self.namespace, self.config.cluster_domain)

    def internal_url(self, service: str) -> str:
        ports = self._services[service].ports
        if not ports:
            raise StackError(f"service {service!r} has no port, so it has no internal URL")
        return f"http://{self.host(service)}:{ports[0].port}"

    # ------------------------------------------------------------------ references

    def _ref(self, ref: Ref) -> Any:
        kind, path = ref.kind, ref.path
        if kind == "param":
            return self.param(path)
        if kind == "secret":
            if path not in self.secrets:
                raise StackError(f"secret {path!r} is used before it is defined")
            return self.secrets[path].get(ref.attr)
        if kind == "input":
            answer = self.config.answer(path)
            if answer is not None:
                return pulumi.Output.secret(answer)
            spec = self.manifest.input(path)
            if spec.optional:
                return "" if spec.default is None else self.value(spec.default)
            raise ConfigError(f"input {path!r} is not answered yet")
        if kind == "service":
            service, _, attr = path.partition(".")
            if service not in self._services:
                raise StackError(f"reference {ref.ref!r} names an unknown service")
            if attr.startswith("port."):
                return self._port(service, attr[len("port."):])
            if attr == "url":
                return f"https://{self.public_host(service)}"
            if attr == "public_host":
                return self.public_host(service)
            if attr == "host":
                return self.host(service)
            if attr == "internal_url":
                return self.internal_url(service)
            raise StackError(f"unknown service attribute in reference {ref.ref!r}")
        raise StackError(f"unknown reference {ref.ref!r}")

    def _port(self, service: str, name: str) -> int:
        for port in self._services[service].ports:
            if port.name == name:
                return port.port
        raise StackError(f"service {service!r} has no port {name!r}")
