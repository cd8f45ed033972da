"""Signatures of the built-in functions: parameters, their types and defaults.

Kept apart from the code that checks calls so that the language reference and
``mora explain`` can list them, and so the generators' defaults are written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import types as t

REQUIRED = object()  # marks a parameter without a default


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: t.Type
    default: object = REQUIRED
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    params: tuple[Parameter, ...]
    returns: t.Type
    summary: str
    generator: bool = False  # creates a secret: only valid as a `secret` declaration's value

    def __str__(self) -> str:
        """How the call is written in help texts and the reference: ``name(p: type = default)``."""
        params = [
            f"{p.name}: {p.type}" if p.default is REQUIRED
            else f"{p.name}: {p.type} = {_literal(p.default)}"
            for p in self.params
        ]
        return f"{self.name}({', '.join(params)})"


def _literal(v: object) -> str:
    """A default value as a program writes it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


_ALGORITHM = t.one_of("RSA", "ECDSA", "ED25519")

SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature(
            "password",
            (
                Parameter("length", t.INT, 20, 8, 1024),
                Parameter("special", t.BOOL, False),
                Parameter("upper", t.BOOL, True),
                Parameter("lower", t.BOOL, True),
                Parameter("numeric", t.BOOL, True),
            ),
            t.SECRET,
            "a random password (letters and digits unless `special = true`)",
            generator=True,
        ),
        Signature(
            "token",
            (
                Parameter("bytes", t.INT, 32, 8, 1024),
                Parameter("encoding", t.one_of("hex", "base64", "base64url"), "hex"),
            ),
            t.SECRET,
            "random bytes, written in the requested encoding (an API key, a JWT secret)",
            generator=True,
        ),
        Signature("uuid", (), t.SECRET, "a random UUID (version 4)", generator=True),
        Signature(
            "private_key",
            (
                Parameter("algorithm", _ALGORITHM, "ECDSA"),
                Parameter("rsa_bits", t.INT, 2048, 2048, 8192),
                Parameter("ecdsa_curve", t.one_of("P224", "P256", "P384", "P521"), "P256"),
            ),
            t.SECRET,
            "a private key; `.private_key_pem`, `.public_key_pem`, `.public_key_openssh`",
            generator=True,
        ),
        Signature(
            "ca",
            (
                Parameter("common_name", t.STRING),
                Parameter("organization", t.STRING, None),
                Parameter("valid_days", t.INT, 3650, 1, 36500),
                Parameter("algorithm", _ALGORITHM, "ECDSA"),
            ),
            t.SECRET,
            "a self-signed certificate authority; `.cert_pem`, `.private_key_pem`",
            generator=True,
        ),
        Signature(
            "certificate",
            (
                Parameter("ca", t.SECRET),
                Parameter("hosts", t.list_of(t.STRING)),
                Parameter("common_name", t.STRING, None),
                Parameter("valid_days", t.INT, 365, 1, 36500),
                Parameter("algorithm", _ALGORITHM, "ECDSA"),
            ),
            t.SECRET,
            "a certificate signed by a `ca()` secret; `.cert_pem`, `.private_key_pem`, "
            "`.ca_cert_pem`",
            generator=True,
        ),
        Signature(
            "template",
            (Parameter("path", t.STRING),),
            t.STRING,
            "a file beside the .mora files, with its `${...}` interpolated",
        ),
        Signature("file", (Parameter("path", t.STRING),), t.STRING, "a file's content, as is"),
        Signature("json", (Parameter("value", t.ANY),), t.STRING, "a value written as JSON"),
        Signature("yaml", (Parameter("value", t.ANY),), t.STRING, "a value written as YAML"),
        Signature(
            "join",
            (Parameter("items", t.list_of(t.ANY)), Parameter("separator", t.STRING, ",")),
            t.STRING,
            "the items of a list joined into one string",
        ),
        Signature("lower", (Parameter("value", t.STRING),), t.STRING, "lower-case"),
        Signature("upper", (Parameter("value", t.STRING),), t.STRING, "upper-case"),
        Signature(
            "base_dn",
            (Parameter("domain", t.STRING),),
            t.STRING,
            "an LDAP base DN from a domain: `home.example.com` → `dc=home,dc=example,dc=com`",
        ),
    )
}

GENERATORS = {n for n, s in SIGNATURES.items() if s.generator}

# Members of a generated secret of each kind that has parts; the first is what a bare
# reference means.
SECRET_MEMBERS: dict[str, tuple[str, ...]] = {
    "private_key": ("private_key_pem", "public_key_pem", "public_key_openssh"),
    "ca": ("cert_pem", "private_key_pem", "public_key_pem"),
    "certificate": ("cert_pem", "private_key_pem", "ca_cert_pem", "public_key_pem"),
}
