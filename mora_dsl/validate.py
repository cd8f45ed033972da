"""Checking a value a person types (a param at ``mora init``, an answer in the wizard).

The compiler checks constants in the program; this checks what arrives later, as
text, against the same types, so ``mora init`` and the manager's wizard accept
and refuse exactly the same things. Messages never repeat a ``secret`` value.
"""

from __future__ import annotations

import json
from typing import Any

from . import types as t
from .manifest import TypeSpec


class InvalidValue(ValueError):
    """The text does not fit the type; the message says why, without echoing secrets."""


def _type(spec: TypeSpec) -> t.Type:
    item = _type(spec.item) if spec.item is not None else None
    choices = tuple(spec.choices) if spec.choices is not None else None
    return t.Type(spec.name, item=item, choices=choices)


def parse_value(spec: TypeSpec, text: str) -> Any:
    """The typed value of ``text`` for ``spec``, or :class:`InvalidValue`.

    Lists and maps are given as JSON (``["a", "b"]``) or, for lists of scalars, as
    comma-separated text.
    """
    return _parse(_type(spec), text)


def _parse(typ: t.Type, text: str) -> Any:
    name = typ.name
    raw = text.strip() if name != "secret" else text
    if name == "secret":
        if not raw:
            raise InvalidValue("enter a value")
        return raw
    if name in ("int", "port"):
        try:
            value = int(raw)
        except ValueError:
            raise InvalidValue(f'"{raw}" is not a whole number') from None
        reason = t.shape_error(typ, value)
        if reason:
            raise InvalidValue(reason)
        return value
    if name == "bool":
        lowered = raw.lower()
        if lowered in ("true", "yes", "y", "1", "on"):
            return True
        if lowered in ("false", "no", "n", "0", "off"):
            return False
        raise InvalidValue(f'"{raw}" is not yes or no')
    if name in ("list", "map"):
        assert typ.item is not None
        value: Any
        if raw.startswith(("[", "{")):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as err:
                raise InvalidValue(f"not valid JSON: {err.msg} at column {err.colno}") from None
        elif name == "list":
            value = [p.strip() for p in raw.split(",") if p.strip()]
        else:
            raise InvalidValue('write a map as JSON: {"key": "value"}')
        if name == "list":
            if not isinstance(value, list):
                raise InvalidValue("expected a list")
            return [_parse(typ.item, v if isinstance(v, str) else json.dumps(v)) for v in value]
        if not isinstance(value, dict):
            raise InvalidValue("expected a map")
        return {
            str(k): _parse(typ.item, v if isinstance(v, str) else json.dumps(v))
            for k, v in value.items()
        }
    # string-like types
    if not raw and name != "string":
        raise InvalidValue("enter a value")
    reason = t.shape_error(typ, raw)
    if reason:
        raise InvalidValue(reason)
    if name == "domain":
        return raw.lower().rstrip(".")
    return raw
