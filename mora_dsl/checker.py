"""Semantic analysis: from parsed files to a checked, JSON-ready manifest.

The checker works in two passes. *Collect* registers every declaration (so order
and files do not matter) and expands templates structurally. *Check* then walks
each declaration, resolving names and types through :mod:`mora_dsl.expressions`
and service bodies through :mod:`mora_dsl.services`, and assembles the manifest.
Every problem becomes a diagnostic; nothing raises for a bad program.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import graph
from . import syntax as ast
from . import types as t
from .diagnostics import Diagnostic, Diagnostics, Note, did_you_mean
from .expressions import ExpressionMixin
from .project import LoadedProject
from .scope import BodyItem, Scope, ServiceDecl, TemplateDecl
from .services import ServiceMixin
from .signatures import GENERATORS, SIGNATURES
from .syntax import Span, Statement
from .typed import TV, emit, is_constant

TOP_LEVEL = ("project", "param", "secret", "volume", "service", "template", "extend")
NESTED = ("port", "secret", "volume", "mount", "input", "file")


@dataclass(slots=True)
class ParamDecl:
    name: str
    stmt: Statement
    type: t.Type | None


@dataclass(slots=True)
class SecretDecl:
    id: str
    stmt: Statement
    owner: ServiceDecl | None
    item: BodyItem | None = None


class Checker(ServiceMixin, ExpressionMixin):
    def __init__(self, project: LoadedProject) -> None:
        self.project = project
        self.root: Path = project.root
        self.sources = project.sources
        self.diags = Diagnostics()
        self.project_stmt: Statement | None = None
        self.project_info: dict[str, str] = {}
        self.params: dict[str, ParamDecl] = {}
        self.secrets: dict[str, SecretDecl] = {}  # project-wide, by name
        self.all_secrets: dict[str, SecretDecl] = {}  # every secret, by id
        self.volumes: dict[str, Statement] = {}
        self.services: dict[str, ServiceDecl] = {}
        self.templates: dict[str, TemplateDecl] = {}
        self.extensions: list[Statement] = []  # `extend SERVICE { ... }`, in file order
        self._defined: dict[str, tuple[str, Span]] = {}
        self._templates_read: dict[str, Any] = {}
        self._secret_kinds: dict[str, str | None] = {}
        self._input_types: dict[str, t.Type] = {}
        # output
        self.m_secrets: list[dict[str, Any]] = []
        self.m_volumes: list[dict[str, Any]] = []
        self.m_services: list[dict[str, Any]] = []
        self.m_inputs: list[dict[str, Any]] = []
        self.input_users: dict[str, list[str]] = {}
        self.edges: list[graph.EdgeInfo] = []
        self.subdomain_owners: dict[str, tuple[str, Span]] = {}  # subdomain -> first service

    # ================================================================== collect
    def collect(self) -> None:
        for f in self.project.files:
            for st in f.statements:
                self._collect_top(st)
        if self.project_stmt is None:
            first = next((f for f in self.project.files if f.statements), None)
            span = first.statements[0].keyword_span if first else None
            self.diags.error(
                "E106",
                "the project has no `project` block",
                span,
                help='add one to a file: `project "my-homelab" { description = "..." }`',
            )
        for ext in self.extensions:
            if ext.label not in self.services:
                self.diags.error(
                    "E113",
                    f"`extend {ext.label}`: there is no service `{ext.label}`",
                    ext.label_span or ext.span,
                    help=did_you_mean(ext.label or "", self.services)
                    or "`extend` adds to or replaces parts of a service declared elsewhere",
                )
        for svc in self.services.values():
            self._expand(svc)

    def _define(self, name: str, kind: str, span: Span) -> bool:
        if name in self._defined:
            other_kind, other = self._defined[name]
            self.diags.error(
                "E102",
                f"`{name}` is already defined (as a {other_kind})",
                span,
                help="names of params, secrets, volumes, services and templates must differ",
                notes=[Note(other, f"`{name}` is first defined here")],
            )
            return False
        self._defined[name] = (kind, span)
        return True

    def _shape(
        self,
        st: Statement,
        *,
        label: str | None,  # None: no label; "name" / "string": required label kind
        params: bool = False,
        type_: str = "no",  # "no", "required", "optional"
        value: str = "no",
        body: str = "no",
        usage: str,
    ) -> bool:
        """Check which parts a statement has; report the first thing out of place."""
        problems: list[tuple[Span, str]] = []
        if label is None and st.label is not None:
            problems.append((st.label_span or st.span, f"`{st.keyword}` takes no name"))
        if label is not None:
            if st.label is None:
                problems.append((st.keyword_span, f"`{st.keyword}` needs a name"))
            elif label == "name" and st.label_is_string:
                problems.append((st.label_span or st.span, f"`{st.keyword}` names are not quoted"))
            elif label == "string" and not st.label_is_string:
                problems.append((st.label_span or st.span, f"`{st.keyword}` takes a quoted string"))
        if not params and st.params is not None:
            problems.append((st.span, f"`{st.keyword}` takes no parameter list"))
        if params and st.params is None:
            problems.append((st.keyword_span, f"`{st.keyword}` needs a parameter list"))
        for part, has, want in (
            ("type", st.type is not None, type_),
            ("value", st.value is not None, value),
            ("block", st.body is not None, body),
        ):
            if want == "no" and has:
                what = {"type": "a type", "value": "a value (`= ...`)", "block": "a block"}[part]
                problems.append((st.span, f"`{st.keyword}` takes no {what}"))
            if want == "required" and not has:
                what = {"type": "a type (`: type`)", "value": "a value (`= ...`)",
                        "block": "a block (`{ ... }`)"}[part]
                problems.append((st.span, f"`{st.keyword}` needs {what}"))
        if problems:
            span, msg = problems[0]
            self.diags.error("E112", msg, span, help=f"write it as `{usage}`")
            return False
        return True

    def _collect_top(self, st: Statement) -> None:
        kw = st.keyword
        if kw == "project":
            if not self._shape(st, label="string", body="required",
                               usage='project "name" { description = "..." }'):
                return
            if self.project_stmt is not None:
                self.diags.error(
                    "E106",
                    "the project has a second `project` block",
                    st.keyword_span,
                    notes=[Note(self.project_stmt.keyword_span, "the first one is here")],
                    help="keep one `project` block in one file",
                )
                return
            self.project_stmt = st
        elif kw == "param":
            if not self._shape(st, label="name", type_="required", value="optional",
                               body="optional", usage='param NAME: TYPE [= default] { prompt = "..." }'):
                return
            assert st.label is not None
            if self._define(st.label, "param", st.label_span or st.span):
                self.params[st.label] = ParamDecl(st.label, st, self._type(st.type))
        elif kw == "secret":
            if not self._shape(st, label="name", value="required",
                               usage="secret NAME = password(length = 24)"):
                return
            assert st.label is not None
            if self._define(st.label, "secret", st.label_span or st.span):
                decl = SecretDecl(st.label, st, None)
                self.secrets[st.label] = decl
                self.all_secrets[st.label] = decl
                self._secret_kinds[st.label] = _generator_name(st.value)
        elif kw == "volume":
            if not self._shape(st, label="name", body="required",
                               usage='volume NAME { size = "10Gi" }  or  volume NAME { host = "/srv" }'):
                return
            assert st.label is not None
            if self._define(st.label, "volume", st.label_span or st.span):
                self.volumes[st.label] = st
        elif kw == "service":
            if not self._shape(st, label="name", value="optional", body="optional",
                               usage='service NAME { image = "..." }  or  service NAME = TEMPLATE(...) { }'):
                return
            assert st.label is not None
            if st.value is None and st.body is None:
                self.diags.error("E112", f"service `{st.label}` needs a body `{{ ... }}`", st.span,
                                 help='write it as `service NAME { image = "..." }`')
                return
            if self._define(st.label, "service", st.label_span or st.span):
                self.services[st.label] = ServiceDecl(st.label, st, st.label_span or st.span)
        elif kw == "extend":
            if not self._shape(st, label="name", body="required",
                               usage='extend SERVICE { micromanager = "..." }'):
                return
            assert st.label is not None
            self.extensions.append(st)
        elif kw == "template":
            if not self._shape(st, label="name", params=True, body="required",
                               usage="template NAME(param: type, ...) { ...service body... }"):
                return
            assert st.label is not None
            if self._define(st.label, "template", st.label_span or st.span):
                self.templates[st.label] = TemplateDecl(st.label, st, st.label_span or st.span)
        else:
            self.diags.error(
                "E105",
                f"unknown declaration `{kw}`",
                st.keyword_span,
                help=did_you_mean(kw, TOP_LEVEL)
                or "a file declares: " + ", ".join(f"`{k}`" for k in TOP_LEVEL),
            )

    def _type(self, te: ast.TypeExpr | None) -> t.Type | None:
        if te is None:
            return None
        typ, reason = t.from_syntax(te)
        if typ is None:
            if reason is None:
                bad = te
                while bad.item is not None and bad.name in ("list", "map"):
                    bad = bad.item
                self.diags.error(
                    "E108",
                    f"unknown type `{bad.name}`",
                    bad.span,
                    help=did_you_mean(bad.name, t.TYPE_NAMES)
                    or "types: " + ", ".join(t.TYPE_NAMES),
                )
            else:
                self.diags.error("E108", reason, te.span)
        return typ

    def _expand(self, svc: ServiceDecl) -> None:
        """Merge a template's body with the instance's overrides; register the members."""
        st = svc.stmt
        items: list[BodyItem] = []
        if st.value is not None:
            call = st.value
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                self.diags.error(
                    "E112",
                    f"`service {svc.name} = ...` must instantiate a template",
                    call.span,
                    help="write `service NAME = TEMPLATE(arg = value) { overrides }`",
                )
            else:
                tname = call.func.name
                tpl = self.templates.get(tname)
                if tpl is None:
                    self.diags.error(
                        "E109",
                        f"unknown template `{tname}`",
                        call.func.span,
                        help=did_you_mean(tname, self.templates)
                        or "declare it: `template NAME(param: type) { ... }`",
                    )
                else:
                    tpl.instances += 1
                    svc.template = tname
                    svc.call_span = call.span
                    items = [BodyItem(s, True) for s in tpl.stmt.body or []]
        for it in items:
            it.layer = 0
        layers = [st.body or []] + [e.body or [] for e in self.extensions if e.label == svc.name]
        for layer, body in enumerate(layers, start=1):
            for o in (BodyItem(s, False, layer) for s in body):
                key = _key(o.stmt)
                if key is not None and key != ("environment", None):
                    for i, it in enumerate(items):
                        if it.layer < layer and _key(it.stmt) == key:
                            items[i] = o
                            break
                    else:
                        items.append(o)
                else:
                    items.append(o)
        svc.body = items
        seen: dict[tuple[str, str | None], BodyItem] = {}
        duplicates: list[BodyItem] = []
        for it in items:
            s = it.stmt
            key = _key(s)
            if key is None:
                continue
            if key in seen and not (key == ("environment", None) and seen[key].layer != it.layer):
                first = seen[key].stmt
                what = f"`{s.keyword} {s.label}`" if s.label else f"`{s.keyword}`"
                self.diags.error(
                    "E102",
                    f"{what} is given twice in `{svc.name}`",
                    s.span,
                    notes=[Note(first.span, "first given here")],
                )
                duplicates.append(it)
                continue
            seen[key] = it
            if s.label is None:
                if s.keyword == "subdomain":
                    svc.subdomain = it
                continue
            table = {"secret": svc.secrets, "input": svc.inputs, "port": svc.ports,
                     "volume": svc.volumes}.get(s.keyword)
            if table is not None:
                table[s.label] = it
            if s.keyword == "secret":
                sid = f"{svc.name}.{s.label}"
                self.all_secrets[sid] = SecretDecl(sid, s, svc, it)
                self._secret_kinds[sid] = _generator_name(s.value)
        # A statement given twice is reported once (above) and then not checked again.
        svc.body = [it for it in items if not any(it is d for d in duplicates)]
        for name, it in list(svc.inputs.items()):
            typ = self._type(it.stmt.type) if it.stmt.type else None
            self._input_types[f"{svc.name}.{name}"] = typ or t.ANY

    # hooks for ExpressionMixin ------------------------------------------------------
    def secret_kind(self, secret_id: str) -> str | None:
        return self._secret_kinds.get(secret_id)

    def input_type(self, svc: ServiceDecl, name: str) -> t.Type:
        return self._input_types.get(f"{svc.name}.{name}", t.ANY)

    # ================================================================== check
    def check_all(self) -> dict[str, Any] | None:
        project = self._check_project()
        params = [self._check_param(p) for p in self.params.values()]
        for decl in self.secrets.values():
            self.check_secret(decl, Scope())
        for name, st in self.volumes.items():
            self._check_volume(name, st)
        for tpl in self.templates.values():
            self.check_template_params(tpl)
        for svc in self.services.values():
            self.check_service(svc)
        for tpl in self.templates.values():
            if tpl.instances == 0:
                self.check_unused_template(tpl)
        for inp in self.m_inputs:
            users = self.input_users.get(inp["id"], [])
            inp["used_by"] = users
            if inp["when"] is None:
                inp["when"] = "before_deploy" if inp["service"] in users else "after_start"
        g = graph.build(list(self.services), self.edges, self.diags)
        if self.diags.has_errors or project is None:
            return None
        manifest = {
            "manifest_version": 1,
            "compiler": "mora",
            "project": project,
            "params": params,
            "secrets": self.m_secrets,
            "volumes": self.m_volumes,
            "services": self.m_services,
            "inputs": self.m_inputs,
            "graph": g,
        }
        _relocate_spans(manifest, self.root.resolve(), {})
        return manifest

    # ------------------------------------------------------------------ project
    def _check_project(self) -> dict[str, Any] | None:
        st = self.project_stmt
        if st is None:
            return None
        name = st.label or ""
        if not t.is_dns_label(name):
            self.diags.error(
                "E308",
                f'project name "{name}" is not a valid name',
                st.label_span,
                help="use lower-case letters, digits and `-` (it names Kubernetes objects)",
            )
        attrs = self.attributes(st.body or [], {"description": t.STRING, "namespace": t.STRING},
                                Scope(), f'project "{name}"')
        description = attrs.get("description")
        namespace = attrs.get("namespace")
        info: dict[str, str] = {"name": name}
        desc_value = self.constant_str(description, "the description")
        info["description"] = desc_value or ""
        ns = self.constant_str(namespace, "the namespace") if namespace else None
        if ns is not None and not t.is_dns_label(ns):
            self.diags.error(
                "E308",
                f'namespace "{ns}" is not a valid Kubernetes namespace',
                namespace.span if namespace else st.span,
                help="use lower-case letters, digits and `-`, at most 63 characters",
            )
        info["namespace"] = ns or name
        self.project_info = info
        return {**info, "span": st.span.to_dict()}

    # ------------------------------------------------------------------ params
    def _check_param(self, p: ParamDecl) -> dict[str, Any]:
        st = p.stmt
        out: dict[str, Any] = {
            "name": p.name,
            "type": (p.type or t.STRING).to_manifest(),
            "default": None,
            "has_default": st.value is not None,
            "prompt": None,
            "help": None,
            "example": None,
            "span": st.span.to_dict(),
        }
        if st.value is not None:
            tv = self.expr(st.value, Scope())
            if not tv.error:
                if not is_constant(tv.value):
                    self.diags.error(
                        "E206",
                        f"the default of `{p.name}` must be a constant",
                        st.value.span,
                        help="params are asked before anything else is known",
                    )
                elif p.type is not None and self.check_type(
                    tv, p.type, st.value.span, f"the default of `{p.name}`"
                ):
                    out["default"] = emit(tv.value)
        attrs = self.attributes(st.body or [], {"prompt": t.STRING, "help": t.STRING,
                                                "example": t.STRING}, Scope(), f"param `{p.name}`")
        for key in ("prompt", "help", "example"):
            if key in attrs:
                out[key] = self.constant_str(attrs[key], f"the {key} of `{p.name}`")
        if p.type is not None and p.type.name == "secret" and st.value is not None:
            self.diags.error(
                "E203",
                f"param `{p.name}` is a secret and cannot have a default in the program",
                st.value.span,
                help="the program is public; let `mora init` ask for it",
            )
        return out

    # ------------------------------------------------------------------ volumes
    def _check_volume(self, name: str, st: Statement) -> None:
        attrs = self.attributes(
            st.body or [],
            {"size": t.STRING, "host": t.PATH, "storage_class": t.STRING,
             "access_mode": t.one_of("ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany")},
            Scope(),
            f"volume `{name}`",
        )
        vol = self.volume_dict(name, name, None, attrs, st)
        if vol is not None:
            self.m_volumes.append(vol)


def _key(st: Statement) -> tuple[str, str | None] | None:
    """What makes two body statements "the same" for template overrides and duplicates."""
    if st.keyword in NESTED:
        return (st.keyword, st.label)
    if st.label is None:
        return (st.keyword, None)
    return None


def _relocate_spans(node: Any, root: Path, cache: dict[str, str]) -> None:
    """Make the manifest's span files relative to the project folder.

    Diagnostics show files relative to the working directory; the manifest must
    not depend on where the compiler ran (nor carry a user's absolute paths).
    """
    if isinstance(node, list):
        for item in node:
            _relocate_spans(item, root, cache)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "span" and isinstance(value, dict) and isinstance(value.get("file"), str):
            shown = value["file"]
            if shown not in cache:
                try:
                    cache[shown] = Path(shown).resolve().relative_to(root).as_posix()
                except ValueError:  # pragma: no cover - every source is inside the project
                    cache[shown] = shown
            value["file"] = cache[shown]
        else:
            _relocate_spans(value, root, cache)


def _generator_name(value: ast.Expr | None) -> str | None:
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        if value.func.name in GENERATORS:
            return value.func.name
    return None


def check(project: LoadedProject) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
    """Check a parsed project; the manifest (plain JSON) when there is no error."""
    c = Checker(project)
    c.collect()
    manifest = c.check_all()
    return manifest, list(c.diags)


__all__ = ["SIGNATURES", "TV", "check"]
