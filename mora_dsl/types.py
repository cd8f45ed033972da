"""The language's types and the rules for which value fits where.

Types are small immutable values. The string-like types (``email``, ``url``,
``domain``, ``path``, ``one_of``) are strings with a shape; ``port`` is an int in
1–65535; ``secret`` is a string that must never be written in clear. Constants
are checked against the shape at compile time; values only known at deploy time
(a param, an answer) are checked when they are given (``mora init``, the wizard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .syntax import TypeExpr

SCALARS = ("string", "int", "bool", "secret", "email", "url", "domain", "path", "port")
STRINGY = {"string", "secret", "email", "url", "domain", "path", "one_of"}
INTY = {"int", "port"}
TYPE_NAMES = (*SCALARS, "list", "map", "one_of")


@dataclass(frozen=True, slots=True)
class Type:
    name: str  # a TYPE_NAME, or internal: "any", "null", "service", "volume", "project"
    item: Type | None = None
    choices: tuple[str, ...] | None = None

    def __str__(self) -> str:
        if self.name in ("list", "map"):
            return f"{self.name}[{self.item}]"
        if self.name == "one_of":
            return "one_of(" + ", ".join(f'"{c}"' for c in self.choices or ()) + ")"
        return self.name

    def to_manifest(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name}
        if self.item is not None:
            out["item"] = self.item.to_manifest()
        if self.choices is not None:
            out["choices"] = list(self.choices)
        return out


STRING = Type("string")
INT = Type("int")
BOOL = Type("bool")
SECRET = Type("secret")
PORT = Type("port")
PATH = Type("path")
DOMAIN = Type("domain")
URL = Type("url")
EMAIL = Type("email")
ANY = Type("any")  # the type of an expression that already had an error: fits everywhere
NULL = Type("null")
SERVICE = Type("service")
VOLUME = Type("volume")
PROJECT = Type("project")


def list_of(t: Type) -> Type:
    return Type("list", item=t)


def map_of(t: Type) -> Type:
    return Type("map", item=t)


def one_of(*choices: str) -> Type:
    return Type("one_of", choices=tuple(choices))


def from_syntax(t: TypeExpr) -> tuple[Type | None, str | None]:
    """A type from its syntax, or (None, reason)."""
    if t.choices is not None:
        if t.name != "one_of":
            return None, f"`{t.name}(...)` is not a type; only `one_of(...)` takes choices"
        if not t.choices:
            return None, "`one_of` needs at least one choice"
        return one_of(*t.choices), None
    if t.generic:
        if t.name not in ("list", "map"):
            return None, f"`{t.name}` takes no type argument; only `list[...]` and `map[...]` do"
        assert t.item is not None
        inner, err = from_syntax(t.item)
        if inner is None:
            return None, err
        return Type(t.name, item=inner), None
    if t.name in ("list", "map"):
        return None, f"`{t.name}` needs an item type, e.g. `{t.name}[string]`"
    if t.name == "one_of":
        return None, 'write the choices: `one_of("a", "b")`'
    if t.name in SCALARS:
        return Type(t.name), None
    return None, None  # unknown name: the caller suggests the nearest


# --------------------------------------------------------------------------- shapes

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#]+[^\s]*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_CPU = re.compile(r"^[0-9]+(\.[0-9]+)?m?$")


def is_dns_label(s: str) -> bool:
    """RFC 1123 label: what a subdomain or a namespace may be."""
    return len(s) <= 63 and bool(_LABEL.match(s))


def is_service_name(s: str) -> bool:
    """RFC 1035 label: what a Kubernetes Service may be named."""
    return len(s) <= 63 and bool(_DNS1035.match(s))


def is_domain(s: str) -> bool:
    labels = s.rstrip(".").split(".")
    return len(s) <= 253 and len(labels) >= 1 and all(is_dns_label(p) for p in labels) and s != ""


def is_size(s: str) -> bool:
    return bool(_QUANTITY.match(s))


def is_cpu(s: str) -> bool:
    return bool(_CPU.match(s))


def shape_error(t: Type, value: object) -> str | None:
    """Why a constant does not fit ``t``'s shape, or None if it does."""
    name = t.name
    if name == "email" and isinstance(value, str) and not _EMAIL.match(value):
        return f'"{value}" is not an e-mail address'
    if name == "url" and isinstance(value, str) and not _URL.match(value):
        return f'"{value}" is not a URL (scheme://host…)'
    if name == "domain" and isinstance(value, str) and not is_domain(value.lower()):
        return f'"{value}" is not a domain name'
    if name == "path" and isinstance(value, str) and not value.startswith("/"):
        return f'"{value}" is not an absolute path'
    if name == "port" and isinstance(value, int) and not 1 <= value <= 65535:
        return f"{value} is not a port (1–65535)"
    if name == "one_of" and isinstance(value, str) and value not in (t.choices or ()):
        options = ", ".join(f'"{c}"' for c in t.choices or ())
        return f'"{value}" is not one of {options}'
    return None


def fits(actual: Type, expected: Type) -> bool:
    """Whether a value of type ``actual`` may stand where ``expected`` is wanted."""
    if actual.name == "any" or expected.name == "any":
        return True
    if actual.name == "null":
        return True  # null means "unset"; required-ness is checked separately
    if expected.name in ("list", "map"):
        return (
            actual.name == expected.name
            and actual.item is not None
            and expected.item is not None
            and fits(actual.item, expected.item)
        )
    if expected.name == "one_of":
        if actual.name == "one_of":
            return set(actual.choices or ()) <= set(expected.choices or ())
        return actual.name == "string"  # a constant string is checked by shape_error
    if expected.name in STRINGY:
        return actual.name in STRINGY
    if expected.name in INTY:
        return actual.name in INTY
    return actual.name == expected.name


def describe(t: Type) -> str:
    if t.name in ("list", "map", "one_of"):
        return f"`{t}`"
    article = "an" if t.name[0] in "aeiou" else "a"
    return f"{article} `{t}`"
