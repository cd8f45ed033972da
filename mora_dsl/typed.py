"""Typed values: what an expression means once names are resolved.

The checker turns every expression into a :class:`TV`: its value (a Python
constant when the compiler can fold it, otherwise a :class:`Sym` holding the
manifest's tagged JSON), its type, whether it carries a secret, and which other
services and inputs it reads (the dependency graph and input timing come from
those). An expression that already had an error becomes :data:`ERROR`, which
fits everywhere, so one mistake is reported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import builtins
from . import types as t
from .syntax import Span


@dataclass(frozen=True, slots=True)
class Sym:
    """A value known only at deploy time, as manifest JSON (``{"ref": ...}`` etc.)."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServiceMarker:
    """A bare service name: valid in ``depends_on`` and before a ``.member``."""

    name: str


@dataclass(frozen=True, slots=True)
class PortsMarker:
    service: str


@dataclass(frozen=True, slots=True)
class VolumeMarker:
    name: str


@dataclass(frozen=True, slots=True)
class ProjectMarker:
    pass


@dataclass(slots=True)
class TV:
    value: Any
    type: t.Type
    secret: bool = False
    error: bool = False
    secret_kind: str | None = None  # for a reference to a generated secret
    secret_id: str | None = None
    deps: dict[str, Span] = field(default_factory=dict)  # services read -> first place
    inputs: dict[str, Span] = field(default_factory=dict)  # inputs read -> first place

    @property
    def constant(self) -> bool:
        return not self.error and is_constant(self.value)

    def absorb(self, other: TV) -> None:
        """Take over what ``other`` reads (used when ``other`` is part of this value)."""
        self.secret = self.secret or other.secret
        self.error = self.error or other.error
        for k, v in other.deps.items():
            self.deps.setdefault(k, v)
        for k, v in other.inputs.items():
            self.inputs.setdefault(k, v)


ERROR_TYPE = t.ANY


def error_tv() -> TV:
    return TV(None, t.ANY, error=True)


_MARKERS = (ServiceMarker, PortsMarker, VolumeMarker, ProjectMarker)


def is_marker(v: Any) -> bool:
    return isinstance(v, _MARKERS)


def is_constant(v: Any) -> bool:
    if isinstance(v, Sym) or is_marker(v):
        return False
    if isinstance(v, list):
        return all(is_constant(i) for i in v)
    if isinstance(v, dict):
        return all(is_constant(i) for i in v.values())
    return True


def emit(v: Any) -> Any:
    """The manifest JSON of an internal value."""
    if isinstance(v, Sym):
        return v.data
    if isinstance(v, list):
        return {"list": [emit(i) for i in v]}
    if isinstance(v, dict):
        return {"map": {k: emit(i) for k, i in v.items()}}
    if is_marker(v):  # pragma: no cover - the checker rejects markers before emitting
        raise TypeError(f"cannot emit {v!r}")
    return v


def make_list(items: list[Any]) -> Any:
    if all(is_constant(i) for i in items):
        return list(items)
    return Sym({"list": [emit(i) for i in items]})


def make_map(entries: dict[str, Any]) -> Any:
    if all(is_constant(i) for i in entries.values()):
        return dict(entries)
    return Sym({"map": {k: emit(i) for k, i in entries.items()}})


def make_concat(parts: list[Any]) -> Any:
    """Join string parts, folding adjacent constants; a fully constant result is a str."""
    out: list[Any] = []
    for p in parts:
        if is_constant(p):
            text = builtins.to_text(p)
            if out and isinstance(out[-1], str):
                out[-1] += text
            elif text:
                out.append(text)
        elif isinstance(p, Sym) and "concat" in p.data:
            for q in p.data["concat"]:
                if isinstance(q, str) and out and isinstance(out[-1], str):
                    out[-1] += q
                else:
                    out.append(q)
        else:
            out.append(emit(p))
    if not out:
        return ""
    if len(out) == 1 and isinstance(out[0], str):
        return out[0]
    return Sym({"concat": out})


def ref(kind: str, path: str, attr: str | None = None) -> Sym:
    data: dict[str, Any] = {"ref": f"{kind}:{path}"}
    if attr:
        data["attr"] = attr
    return Sym(data)
