"""The manifest: the compiled, generic form of a mora project.

The manifest is the seam between the language and everything downstream
(`stacks`, `manager_app`). It is *generic*: references to params, inputs,
generated secrets and service attributes stay symbolic (``{"ref": ...}``), so a
manifest holds no personal value and no secret and is safe to send, store and
diff. Values that only exist at deploy time (a param, a generated password, a
service's public URL) are resolved by the consumer with :mod:`mora_dsl.values`.

Every model is frozen and forbids unknown fields, so a manifest written by a
newer compiler fails loudly instead of being half-understood.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Tag, model_validator
from pydantic import Discriminator as _Discriminator

MANIFEST_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(_Model):
    """Where something was written: file (relative to the project), 1-based line/column."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# --------------------------------------------------------------------------- values
#
# A value is a JSON scalar or one tagged object. Tags (not bare dicts/lists) are
# used for every composite so that a map literal can never be confused with a
# reference, whatever keys the user chose.


class Ref(_Model):
    """A symbolic reference, resolved at deploy time.

    ``ref`` is ``KIND:PATH``:

    * ``param:domain`` – a per-deployment param;
    * ``secret:ldap_admin_password`` / ``secret:lldap.jwt_secret`` – a generated
      secret (project-wide, or owned by a service); ``attr`` picks a part of a
      TLS secret (``cert_pem``, ``private_key_pem``, ``public_key_pem``,
      ``public_key_openssh``, ``ca_cert_pem``);
    * ``input:jellyfin.api_key`` – a wizard answer;
    * ``service:jellyfin.url`` / ``.internal_url`` / ``.host`` / ``.public_host``
      – an address that depends on the domain or the cluster.
    """

    ref: str
    attr: str | None = None

    @property
    def kind(self) -> str:
        return self.ref.split(":", 1)[0]

    @property
    def path(self) -> str:
        return self.ref.split(":", 1)[1]


class Concat(_Model):
    """An interpolated string: the parts, evaluated and joined."""

    concat: list[Value]


class Call(_Model):
    """A built-in function applied at deploy time (its arguments were not constant)."""

    call: str
    args: list[Value] = Field(default_factory=list)


class ListValue(_Model):
    list: list[Value]


class MapValue(_Model):
    map: dict[str, Value]


def _value_tag(v: Any) -> str:
    if isinstance(v, dict):
        for key in ("ref", "concat", "call", "list", "map"):
            if key in v:
                return key
        return "invalid"
    if isinstance(v, BaseModel):
        return {Ref: "ref", Concat: "concat", Call: "call", ListValue: "list", MapValue: "map"}.get(
            type(v), "invalid"
        )
    return "scalar"


Value = Annotated[
    Annotated[str | bool | int | None, Tag("scalar")]
    | Annotated[Ref, Tag("ref")]
    | Annotated[Concat, Tag("concat")]
    | Annotated[Call, Tag("call")]
    | Annotated[ListValue, Tag("list")]
    | Annotated[MapValue, Tag("map")],
    _Discriminator(_value_tag),
]

for _m in (Concat, Call, ListValue, MapValue):
    _m.model_rebuild()


# --------------------------------------------------------------------------- types


TypeName = Literal[
    "string", "int", "bool", "secret", "email", "url", "domain", "path", "port",
    "list", "map", "one_of",
]


class TypeSpec(_Model):
    """A declared type: ``string``, ``list[port]``, ``one_of("a", "b")``..."""

    name: TypeName
    item: TypeSpec | None = None
    choices: list[str] | None = None

    def __str__(self) -> str:
        if self.name in ("list", "map"):
            return f"{self.name}[{self.item}]"
        if self.name == "one_of":
            return "one_of(" + ", ".join(f'"{c}"' for c in self.choices or []) + ")"
        return self.name


# --------------------------------------------------------------------------- declarations


class Project(_Model):
    name: str
    description: str = ""
    namespace: str
    span: Span


class Param(_Model):
    """A per-deployment value, asked by ``mora init`` and kept in stack config."""

    name: str
    type: TypeSpec
    default: Value = None
    has_default: bool = False
    prompt: str | None = None
    help: str | None = None
    example: str | None = None
    span: Span


SecretKind = Literal["password", "token", "uuid", "private_key", "ca", "certificate"]


class Secret(_Model):
    """A generated secret; ``args`` are the generator's arguments with defaults applied."""

    id: str  # "internal_ca" or "lldap.jwt_secret"
    name: str
    owner: str | None = None  # the service that owns it, if declared inside one
    kind: SecretKind
    args: dict[str, Value] = Field(default_factory=dict)
    span: Span


class Volume(_Model):
    """Persistent storage: a claim (``size``) or a folder on the node (``host``)."""

    id: str  # "downloads" or "lldap.data"
    name: str
    owner: str | None = None
    kind: Literal["claim", "host"]
    size: str | None = None
    host: Value = None
    storage_class: str | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] = "ReadWriteOnce"
    span: Span


class Port(_Model):
    name: str
    port: int
    protocol: Literal["TCP", "UDP"] = "TCP"
    public: bool = True
    span: Span


class Mount(_Model):
    """A volume mounted into a service's container."""

    volume: str  # a Volume.id
    path: str
    read_only: bool = False
    sub_path: str | None = None
    span: Span


class File(_Model):
    """A file written into the container; ``secret`` when its content holds a secret."""

    path: str
    content: Value
    mode: int = 0o644
    secret: bool = False
    span: Span


class Resources(_Model):
    cpu: str | None = None
    memory: str | None = None
    cpu_limit: str | None = None
    memory_limit: str | None = None


class Health(_Model):
    """A readiness/liveness probe: an HTTP GET, a TCP connect or a command."""

    http: str | None = None  # path, e.g. "/health"
    tcp: bool = False
    command: list[str] | None = None
    port: str | None = None  # a Port.name; default: the first port
    initial_delay: int = 0
    period: int = 10


InputTiming = Literal["before_deploy", "after_start"]


class Input(_Model):
    """A value only a human (or a micromanager) can give, asked by the setup wizard."""

    id: str  # "jellyfin.api_key"
    name: str
    service: str
    type: TypeSpec
    title: str
    help: Value = None
    when: InputTiming
    when_inferred: bool  # False when the program says `when = ...`
    used_by: list[str] = Field(default_factory=list)  # services whose config uses it
    optional: bool = False
    default: Value = None
    span: Span


class Service(_Model):
    name: str
    template: str | None = None  # the template it was instantiated from
    image: Value
    command: list[Value] | None = None
    args: list[Value] | None = None
    subdomain: str | None = None
    ports: list[Port] = Field(default_factory=list)
    environment: dict[str, Value] = Field(default_factory=dict)
    mounts: list[Mount] = Field(default_factory=list)
    files: list[File] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)  # as written; see Graph for all edges
    replicas: int = 1
    resources: Resources | None = None
    health: Health | None = None
    user: int | None = None
    group: int | None = None
    gpu: Literal["intel", "nvidia"] | None = None
    devices: list[str] = Field(default_factory=list)
    micromanager: str | None = None
    inputs: list[str] = Field(default_factory=list)  # Input.id
    secrets: list[str] = Field(default_factory=list)  # Secret.id it owns
    volumes: list[str] = Field(default_factory=list)  # Volume.id it owns
    span: Span

    def config_values(self) -> list[Value]:
        """The values its container is configured with: image, command, args, env, files.

        What a service's configuration reads, for the stack (which adds its mounts'
        host folders) and for scoping what its micromanager may read.
        """
        return [
            self.image,
            *(self.command or []),
            *(self.args or []),
            *self.environment.values(),
            *(f.content for f in self.files),
        ]


class Edge(_Model):
    """``service`` depends on ``on``: it must run first. ``reason`` says why."""

    service: str
    on: str
    reason: Literal["reference", "depends_on"]
    span: Span


class Graph(_Model):
    edges: list[Edge] = Field(default_factory=list)
    waves: list[list[str]] = Field(default_factory=list)

    def dependencies(self, service: str) -> list[str]:
        return sorted({e.on for e in self.edges if e.service == service})


class Manifest(_Model):
    """A compiled mora project. ``manifest_version`` changes on any incompatible change."""

    manifest_version: Literal[1] = MANIFEST_VERSION
    compiler: str = "mora"
    project: Project
    params: list[Param] = Field(default_factory=list)
    secrets: list[Secret] = Field(default_factory=list)
    volumes: list[Volume] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)
    inputs: list[Input] = Field(default_factory=list)
    graph: Graph = Field(default_factory=Graph)

    @model_validator(mode="after")
    def _ids_unique(self) -> Manifest:
        for label, ids in (
            ("param", [p.name for p in self.params]),
            ("secret", [s.id for s in self.secrets]),
            ("volume", [v.id for v in self.volumes]),
            ("service", [s.name for s in self.services]),
            ("input", [i.id for i in self.inputs]),
        ):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    raise ValueError(f"duplicate {label} {i!r}")
                seen.add(i)
        return self

    def service(self, name: str) -> Service:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    def secret(self, id: str) -> Secret:
        for s in self.secrets:
            if s.id == id:
                return s
        raise KeyError(id)

    def input(self, id: str) -> Input:
        for i in self.inputs:
            if i.id == id:
                return i
        raise KeyError(id)

    def volume(self, id: str) -> Volume:
        for v in self.volumes:
            if v.id == id:
                return v
        raise KeyError(id)


def json_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (what ``mora schema`` prints)."""
    return Manifest.model_json_schema()
