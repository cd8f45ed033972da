"""Declarations and scopes: what names exist, and where an expression may see them.

Collection happens before any expression is checked, so a service can refer to
one declared later or in another file, and templates are expanded structurally
(their statements merged with the instance's overrides) without evaluating
anything yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .syntax import Span, Statement
from .typed import TV

if TYPE_CHECKING:
    from .signatures import Signature


@dataclass(slots=True)
class BodyItem:
    """A statement of a service body; ``from_template`` ones see the template's parameters.

    ``layer`` orders the places a body is assembled from: 0 the template, 1 the
    service itself, 2 and up each ``extend`` block in file order. A later layer
    replaces an earlier one's statement with the same key; environments merge.
    """

    stmt: Statement
    from_template: bool
    layer: int = 1


@dataclass(slots=True)
class ServiceDecl:
    name: str
    stmt: Statement
    span: Span
    template: str | None = None
    call_span: Span | None = None
    body: list[BodyItem] = field(default_factory=list)
    # members, by name, collected structurally
    secrets: dict[str, BodyItem] = field(default_factory=dict)
    inputs: dict[str, BodyItem] = field(default_factory=dict)
    ports: dict[str, BodyItem] = field(default_factory=dict)
    volumes: dict[str, BodyItem] = field(default_factory=dict)
    subdomain: BodyItem | None = None
    # filled lazily while checking
    args: dict[str, TV] | None = None
    port_values: dict[str, TV] = field(default_factory=dict)


@dataclass(slots=True)
class TemplateDecl:
    name: str
    stmt: Statement
    span: Span
    instances: int = 0
    signature: Signature | None = None  # its parameters, checked once


@dataclass(slots=True)
class Scope:
    """Where an expression is: in which service (if any), with which template arguments."""

    service: ServiceDecl | None = None
    tparams: dict[str, TV] | None = None
    in_input_help: bool = False

    @staticmethod
    def of(service: ServiceDecl, item: BodyItem, args: dict[str, TV] | None) -> Scope:
        return Scope(service, args if item.from_template else None)
