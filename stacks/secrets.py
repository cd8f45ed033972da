"""Generated secrets: pulumi-random and pulumi-tls resources, created once and kept.

A generated secret lives in Pulumi state (encrypted) and in the Kubernetes
Secrets that use it; it never appears in the manifest. Applications often store
a credential on first start (lldap's admin password, an *arr API key), so a
secret must *not* change when the program is edited: the generator arguments are
in ``ignore_changes``, and a secret is regenerated only when the stack's
``rotate`` stamp for it changes (a keeper for pulumi-random, a replacement
trigger for pulumi-tls).

Resource names follow one convention the offline renderer relies on for its
placeholders: the main resource is named after the secret id; a TLS secret's
key is ``<id>-key`` and its request ``<id>-csr`` (ids never contain ``-``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from mora_dsl.manifest import ListValue, Manifest, Ref, Secret

from .errors import StackError
from .resolve import Resolver

#: What a bare reference (no ``attr``) to each kind of secret means.
DEFAULT_ATTR = {
    "password": "value",
    "token": "value",
    "uuid": "value",
    "private_key": "private_key_pem",
    "ca": "cert_pem",
    "certificate": "cert_pem",
}
_PASSWORD_ARGS = (
    "length", "special", "upper", "lower", "numeric",
    "min_lower", "min_upper", "min_numeric", "min_special", "override_special",
)
_CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
_SERVER_USES = ["key_encipherment", "digital_signature", "server_auth", "client_auth"]


@dataclass
class GeneratedSecret:
    """A created secret: its parts (``value``, ``cert_pem``, …) as secret Outputs."""

    id: str
    kind: str
    parts: dict[str, pulumi.Output[Any]] = field(default_factory=dict)

    def get(self, attr: str | None) -> pulumi.Output[Any]:
        name = attr or DEFAULT_ATTR[self.kind]
        try:
            return self.parts[name]
        except KeyError:
            raise StackError(
                f"secret {self.id!r} ({self.kind}) has no part {name!r}; "
                f"it has {', '.join(sorted(self.parts))}"
            ) from None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StackError(f"{what} must be a whole number")
    return value


def _secret_outputs(parts: dict[str, Any]) -> dict[str, pulumi.Output[Any]]:
    # Under the unit-test mocks the engine does not apply additional_secret_outputs,
    # so secrecy is made explicit here; with a real engine this is a no-op.
    return {k: pulumi.Output.secret(v) for k, v in parts.items()}


class SecretFactory:
    """Creates the pulumi-random / pulumi-tls resources for a stack's secrets."""

    def __init__(self, resolver: Resolver, parent: pulumi.Resource, rotate: dict[str, str]) -> None:
        self.resolver = resolver
        self.parent = parent
        self.rotate = rotate

    def _args(self, secret: Secret) -> dict[str, Any]:
        # A certificate's `ca` and `hosts` are handled by _certificate itself.
        return {
            key: self.resolver.value(value)
            for key, value in secret.args.items()
            if not (secret.kind == "certificate" and key in ("ca", "hosts"))
        }

    def _opts(self, id: str, ignore: list[str]) -> pulumi.ResourceOptions:
        stamp = self.rotate.get(id)
        return pulumi.ResourceOptions(
            parent=self.parent,
            ignore_changes=ignore,
            replacement_trigger=stamp,
        )

    def _keepers(self, id: str) -> dict[str, str] | None:
        stamp = self.rotate.get(id)
        return {"rotation": stamp} if stamp else None

    # ------------------------------------------------------------------ one secret

    def create(self, secret: Secret, known: dict[str, GeneratedSecret]) -> GeneratedSecret:
        args = self._args(secret)
        maker = getattr(self, f"_{secret.kind}")
        parts: dict[str, Any] = maker(secret.id, args, known)
        return GeneratedSecret(secret.id, secret.kind, _secret_outputs(parts))

    def _password(self, id: str, args: dict[str, Any], known: Any) -> dict[str, Any]:
        unknown = sorted(set(args) - set(_PASSWORD_ARGS))
        if unknown:
            raise StackError(f"password {id!r}: unknown arguments {', '.join(unknown)}")
        kwargs = {"length": 32, "special": False, **args}
        kwargs["length"] = _int(kwargs["length"], f"password {id!r} length")
        pw = random.RandomPassword(
            id, keepers=self._keepers(id), opts=self._opts(id, list(_PASSWORD_ARGS)), **kwargs
        )
        return {"value": pw.result}

    def _token(self, id: str, args: dict[str, Any], known: Any) -> dict[str, Any]:
        size = _int(args.get("bytes", 32), f"token {id!r} bytes")
        encoding = args.get("encoding", "hex")
        if encoding == "base64":
            data = random.RandomBytes(
                id, length=size, keepers=self._keepers(id), opts=self._opts(id, ["length"])
            )
            return {"value": data.base64}
        if encoding in ("hex", "base64url"):
            rid = random.RandomId(
                id, byte_length=size, keepers=self._keepers(id), opts=self._opts(id, ["byte_length"])
            )
            return {"value": rid.hex if encoding == "hex" else rid.b64_url}
        raise StackError(f"token {id!r}: unknown encoding {encoding!r}")

    def _uuid(self, id: str, args: dict[str, Any], known: Any) -> dict[str, Any]:
        return {"value": random.RandomUuid(id, keepers=self._keepers(id), opts=self._opts(id, [])).result}

    def _key(self, name: str, id: str, args: dict[str, Any]) -> tls.PrivateKey:
        algorithm = str(args.get("algorithm", "ECDSA")).upper()
        kwargs: dict[str, Any] = {"algorithm": algorithm}
        if algorithm == "RSA":
            kwargs["rsa_bits"] = _int(args.get("rsa_bits", 4096), f"{id!r} rsa_bits")
        elif algorithm == "ECDSA":
            kwargs["ecdsa_curve"] = str(args.get("ecdsa_curve", "P256"))
        elif algorithm != "ED25519":
            raise StackError(f"secret {id!r}: unknown key algorithm {algorithm!r}")
        return tls.PrivateKey(
            name, **kwargs, opts=self._opts(id, ["algorithm", "rsa_bits", "ecdsa_curve"])
        )

    @staticmethod
    def _key_parts(key: tls.PrivateKey) -> dict[str, Any]:
        return {
            "private_key_pem": key.private_key_pem,
            "public_key_pem": key.public_key_pem,
            "public_key_openssh": key.public_key_openssh,
        }

    def _private_key(self, id: str, args: dict[str, Any], known: Any) -> dict[str, Any]:
        return self._key_parts(self._key(id, id, args))

    def _ca(self, id: str, args: dict[str, Any], known: Any) -> dict[str, Any]:
        key = self._key(f"{id}-key", id, args)
        cert = tls.SelfSignedCert(
            id,
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=args.get("common_name", id),
                organization=args.get("organization"),
            ),
            validity_period_hours=_int(args.get("valid_days", 3650), f"ca {id!r} valid_days") * 24,
            is_ca_certificate=True,
            allowed_uses=_CA_USES,
            opts=self._opts(id, []),
        )
        return {**self._key_parts(key), "cert_pem": cert.cert_pem, "ca_cert_pem": cert.cert_pem}

    def _certificate(
        self, id: str, args: dict[str, Any], known: dict[str, GeneratedSecret]
    ) -> dict[str, Any]:
        ca_ref = self.resolver.manifest.secret(id).args.get("ca")
        if not isinstance(ca_ref, Ref) or ca_ref.kind != "secret":
            raise StackError(f"certificate {id!r} needs `ca = <a ca secret>`")
        ca = known.get(ca_ref.path)
        if ca is None or ca.kind != "ca":
            raise StackError(f"certificate {id!r}: {ca_ref.path!r} is not a ca secret")
        hosts_value = self.resolver.manifest.secret(id).args.get("hosts", ListValue(list=[]))
        hosts = pulumi.Output.from_input(self.resolver.value(hosts_value))
        key = self._key(f"{id}-key", id, args)
        cert = issue_certificate(
            id,
            key=key,
            ca=ca,
            hosts=hosts,
            common_name=args.get("common_name"),
            valid_days=_int(args.get("valid_days", 825), f"certificate {id!r} valid_days"),
            opts=self._opts(id, []),
        )
        return {**self._key_parts(key), "cert_pem": cert.cert_pem, "ca_cert_pem": ca.get("cert_pem")}


def _dns_and_ips(hosts: list[Any]) -> tuple[list[str], list[str]]:
    dns, ips = [], []
    for host in hosts:
        text = str(host)
        try:
            ipaddress.ip_address(text)
            ips.append(text)
        except ValueError:
            dns.append(text)
    return dns, ips


def issue_certificate(
    name: str,
    *,
    key: tls.PrivateKey,
    ca: GeneratedSecret,
    hosts: pulumi.Output[list[Any]],
    common_name: Any,
    valid_days: int,
    opts: pulumi.ResourceOptions,
) -> tls.LocallySignedCert:
    """A server certificate for ``hosts`` signed by ``ca`` (request ``<name>-csr``, cert ``<name>``)."""
    split = hosts.apply(_dns_and_ips)
    first = hosts.apply(lambda hs: str(hs[0]) if hs else name)
    request = tls.CertRequest(
        f"{name}-csr",
        private_key_pem=key.private_key_pem,
        subject=tls.CertRequestSubjectArgs(common_name=common_name or first),
        dns_names=split.apply(lambda s: s[0]),
        ip_addresses=split.apply(lambda s: s[1]),
        opts=opts,
    )
    return tls.LocallySignedCert(
        name,
        cert_request_pem=request.cert_request_pem,
        ca_private_key_pem=ca.get("private_key_pem"),
        ca_cert_pem=ca.get("cert_pem"),
        validity_period_hours=valid_days * 24,
        early_renewal_hours=30 * 24,
        allowed_uses=_SERVER_USES,
        opts=opts,
    )


class SecretsComponent(pulumi.ComponentResource):
    """Every generated secret of the project, in one subtree.

    All of them are created whatever the deploy set, so a secret's URN never
    depends on which wave is being deployed, and a secret shared between services
    exists before the first of them.
    """

    def __init__(
        self,
        manifest: Manifest,
        resolver: Resolver,
        store: dict[str, GeneratedSecret],
        rotate: dict[str, str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """Fill ``store`` (the dict ``resolver`` reads secrets from) with every secret."""
        super().__init__("mora:index:Secrets", "secrets", None, opts)
        self.secrets = store
        factory = SecretFactory(resolver, self, rotate)
        # Certificates last: they are signed by a ca declared anywhere.
        ordered = sorted(manifest.secrets, key=lambda s: s.kind == "certificate")
        for secret in ordered:
            self.secrets[secret.id] = factory.create(secret, self.secrets)
        self.register_outputs({})
