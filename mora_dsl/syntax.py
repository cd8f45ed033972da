"""The typed syntax tree: what a `.mora` file says, with where it says it.

Nodes are plain slotted dataclasses rather than pydantic models: a 1000-service
project builds tens of thousands of them and `mora check` must start and finish
fast. Every node carries a :class:`Span` so that any later stage (names, types,
graph, even the manifest's consumers) can point at the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Span(NamedTuple):
    """A range in a source file. Lines and columns are 1-based; ``end_column`` is exclusive.

    A NamedTuple, not a frozen dataclass: tens of thousands are made per large
    project, and a tuple is several times cheaper to create.
    """

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
        }


# --------------------------------------------------------------------------- expressions


@dataclass(slots=True)
class Expr:
    span: Span


@dataclass(slots=True)
class Name(Expr):
    name: str


@dataclass(slots=True)
class Member(Expr):
    """``obj.name``; ``name_span`` points at the member name alone."""

    obj: Expr
    name: str
    name_span: Span


@dataclass(slots=True)
class Arg:
    name: str | None  # None for a positional argument
    value: Expr
    span: Span


@dataclass(slots=True)
class Call(Expr):
    func: Expr
    args: list[Arg]


@dataclass(slots=True)
class Int(Expr):
    value: int


@dataclass(slots=True)
class Bool(Expr):
    value: bool


@dataclass(slots=True)
class Null(Expr):
    pass


@dataclass(slots=True)
class Text:
    """A literal run of a string. ``raw`` is as written (escapes intact), ``value`` is cooked."""

    raw: str
    value: str
    span: Span


@dataclass(slots=True)
class Interpolation:
    expr: Expr
    span: Span


@dataclass(slots=True)
class Str(Expr):
    """A string; ``long`` for ``\"\"\"`` strings, whose ``parts`` are already dedented."""

    parts: list[Text | Interpolation]
    long: bool = False
    raw: str = ""

    def constant(self) -> str | None:
        """The string's value when it has no interpolation."""
        if all(isinstance(p, Text) for p in self.parts):
            return "".join(p.value for p in self.parts)  # type: ignore[union-attr]
        return None


@dataclass(slots=True)
class ListExpr(Expr):
    items: list[Expr]


@dataclass(slots=True)
class MapEntry:
    key: str | Str  # a bare name, or a (possibly interpolated) string
    key_span: Span
    value: Expr
    span: Span


@dataclass(slots=True)
class MapExpr(Expr):
    entries: list[MapEntry]


# --------------------------------------------------------------------------- statements


@dataclass(slots=True)
class TypeExpr:
    name: str
    span: Span
    item: TypeExpr | None = None
    choices: list[str] | None = None
    generic: bool = False  # written with brackets: list[...]

    def __str__(self) -> str:
        if self.choices is not None:
            return self.name + "(" + ", ".join(f'"{c}"' for c in self.choices) + ")"
        if self.generic:
            return f"{self.name}[{self.item}]"
        return self.name


@dataclass(slots=True)
class TemplateParam:
    name: str
    type: TypeExpr
    default: Expr | None
    span: Span


@dataclass(slots=True)
class Statement:
    """One statement: ``keyword [label] [(params)] [: type] [= value] [{ body }]``.

    The grammar is deliberately generic; which keywords exist and which parts
    each takes is decided by the checker, which can then explain mistakes.
    """

    keyword: str
    keyword_span: Span
    span: Span
    label: str | None = None
    label_span: Span | None = None
    label_is_string: bool = False
    params: list[TemplateParam] | None = None
    type: TypeExpr | None = None
    value: Expr | None = None
    body: list[Statement] | None = None


@dataclass(slots=True)
class Comment:
    text: str  # including the leading '#'
    span: Span


@dataclass(slots=True)
class SourceFile:
    path: str  # as shown in messages (relative to the project folder)
    text: str
    statements: list[Statement] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)


@dataclass(slots=True)
class TemplateFile:
    """A file read by ``template(path)``: text with ``${expr}`` interpolations."""

    path: str
    text: str
    parts: list[Text | Interpolation] = field(default_factory=list)
