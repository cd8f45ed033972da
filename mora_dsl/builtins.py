"""The built-in functions that compute values: ``join``, ``lower``, ``upper``, ``base_dn``,
``json``, ``yaml``.

One implementation serves both the compiler (constant folding) and deploy-time
evaluation (:mod:`mora_dsl.values`). Secret generators (``password`` …) and the
file readers (``template``, ``file``) are not here: they are declarations the
checker handles, not computations.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable
from typing import Any


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return _json.dumps(value, separators=(",", ":"))
    return str(value)


def _join(items: list[Any], separator: str = ",") -> str:
    if not isinstance(items, list):
        raise TypeError("expects a list")
    return str(separator).join(to_text(i) for i in items)


def _lower(s: Any) -> str:
    return to_text(s).lower()


def _upper(s: Any) -> str:
    return to_text(s).upper()


def base_dn(domain: Any) -> str:
    """``home.example.com`` → ``dc=home,dc=example,dc=com`` (an LDAP base DN)."""
    text = to_text(domain).strip().strip(".")
    labels = [p for p in text.split(".") if p]
    if not labels:
        raise ValueError(f"{domain!r} is not a domain")
    return ",".join(f"dc={label}" for label in labels)


def _json_text(value: Any) -> str:
    return _json.dumps(value, indent=2, sort_keys=False)


def _yaml_text(value: Any) -> str:
    import yaml  # imported here: only deploy-time evaluation or a constant yaml() needs it

    return str(yaml.safe_dump(value, sort_keys=False, default_flow_style=False))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "join": _join,
    "lower": _lower,
    "upper": _upper,
    "base_dn": base_dn,
    "json": _json_text,
    "yaml": _yaml_text,
}


def apply(name: str, args: list[Any]) -> Any:
    try:
        fn = FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown function {name!r}") from None
    return fn(*args)
