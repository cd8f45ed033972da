"""Checking service bodies: attributes, ports, volumes, mounts, files, inputs, secrets.

A mixin of :class:`mora_dsl.checker.Checker`. Each service is checked once, with
its template's parameters bound to the instance's arguments; what the service
reads from other services becomes dependency edges, and which inputs its
configuration reads decides when the wizard asks them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import graph
from . import syntax as ast
from . import types as t
from .diagnostics import Note, did_you_mean
from .scope import BodyItem, Scope, ServiceDecl, TemplateDecl
from .signatures import GENERATORS, SIGNATURES, Parameter, Signature
from .typed import TV, ServiceMarker, Sym, emit, error_tv, is_constant

if TYPE_CHECKING:
    from collections.abc import Collection

    from .checker import SecretDecl
    from .syntax import Span, Statement

_ANY_SCALAR = t.Type("any")

SERVICE_ATTRS: dict[str, t.Type] = {
    "image": t.STRING,
    "command": t.ANY,
    "args": t.ANY,
    "subdomain": t.STRING,
    "environment": t.map_of(t.ANY),
    "depends_on": t.list_of(t.SERVICE),
    "replicas": t.INT,
    "resources": t.map_of(t.STRING),
    "health": t.map_of(t.ANY),
    "user": t.INT,
    "group": t.INT,
    "gpu": t.one_of("intel", "nvidia"),
    "devices": t.list_of(t.PATH),
    "micromanager": t.STRING,
}
SECRET_OK = {"environment", "command", "args"}
NESTED = ("port", "secret", "volume", "mount", "input", "file")
RESOURCE_KEYS = ("cpu", "memory", "cpu_limit", "memory_limit")
HEALTH_KEYS: dict[str, t.Type] = {
    "http": t.PATH,
    "tcp": t.BOOL,
    "command": t.list_of(t.STRING),
    "port": t.STRING,
    "initial_delay": t.INT,
    "period": t.INT,
}


@dataclass(slots=True)
class Attr:
    tv: TV
    span: Span
    stmt: Statement


class ServiceMixin:
    # provided by Checker / ExpressionMixin (declared for type checkers)
    diags: Any
    services: dict[str, ServiceDecl]
    volumes: dict[str, Any]
    all_secrets: dict[str, SecretDecl]
    templates: dict[str, TemplateDecl]
    m_secrets: list[dict[str, Any]]
    m_volumes: list[dict[str, Any]]
    m_services: list[dict[str, Any]]
    m_inputs: list[dict[str, Any]]
    input_users: dict[str, list[str]]
    edges: list[graph.EdgeInfo]
    subdomain_owners: dict[str, tuple[str, Span]]
    _input_types: dict[str, t.Type]

    if TYPE_CHECKING:  # provided by ExpressionMixin / Checker

        def expr(self, e: ast.Expr, scope: Scope) -> TV: ...
        def check_type(self, tv: TV, expected: t.Type, span: Span, what: str) -> bool: ...
        def bind_args(self, e: ast.Call, sig: Signature, scope: Scope) -> dict[str, TV] | None: ...
        def _type(self, te: ast.TypeExpr | None) -> t.Type | None: ...
        def _call(self, e: ast.Call, scope: Scope, allow_generator: bool = False) -> TV: ...
        def _shape(self, st: Statement, **kw: Any) -> bool: ...

    # ------------------------------------------------------------------ helpers
    def attributes(
        self,
        body: list[Statement],
        schema: dict[str, t.Type],
        scope: Scope,
        where: str,
        secret_ok: frozenset[str] = frozenset(),
    ) -> dict[str, Attr]:
        """Check a block of plain ``name = value`` attributes against a schema."""
        out: dict[str, Attr] = {}
        for st in body:
            if st.keyword not in schema:
                self.diags.error(
                    "E103",
                    f"{where} has no attribute `{st.keyword}`",
                    st.keyword_span,
                    help=did_you_mean(st.keyword, schema)
                    or "it takes: " + ", ".join(f"`{k}`" for k in schema),
                )
                continue
            if not self._shape(st, label=None, value="required", usage=f"{st.keyword} = VALUE"):
                continue
            assert st.value is not None
            if st.keyword in out:
                self.diags.error("E102", f"`{st.keyword}` is given twice in {where}", st.span)
                continue
            tv = self.expr(st.value, scope)
            if not tv.error and tv.secret and st.keyword not in secret_ok:
                self.clear_text_error(st.keyword, st.value.span)
                tv = error_tv()
            elif not self.check_type(tv, schema[st.keyword], st.value.span, f"`{st.keyword}`"):
                tv = error_tv()
            out[st.keyword] = Attr(tv, st.value.span, st)
        return out

    def clear_text_error(self, what: str, span: Span) -> None:
        self.diags.error(
            "E203",
            f"a secret cannot be written into `{what}`: it would be visible in clear text",
            span,
            help="secrets go into `environment`, `file` contents, `command` or `args`",
        )

    def constant_str(self, attr: Attr | None, what: str) -> str | None:
        if attr is None or attr.tv.error:
            return None
        v = attr.tv.value
        if isinstance(v, str):
            return v
        if v is None:
            return None
        self.diags.error(
            "E206",
            f"{what} must be known when compiling",
            attr.span,
            help="use literal text (template arguments are fine), not params, secrets or inputs",
        )
        return None

    def constant_int(self, attr: Attr | None, what: str) -> int | None:
        if attr is None or attr.tv.error:
            return None
        v = attr.tv.value
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        self.diags.error("E206", f"{what} must be known when compiling", attr.span)
        return None

    def volume_dict(
        self, vid: str, name: str, owner: str | None, attrs: dict[str, Attr], st: Statement
    ) -> dict[str, Any] | None:
        size = self.constant_str(attrs.get("size"), "`size`")
        host = attrs.get("host")
        if size is None and host is None:
            if "size" not in attrs:
                self.diags.error(
                    "E110",
                    f"volume `{name}` needs a `size` (a claim) or a `host` folder",
                    st.span,
                    help='add `size = "10Gi"`, or `host = "/srv/data"` for a folder on the node',
                )
            return None
        if size is not None and host is not None:
            self.diags.error(
                "E112",
                f"volume `{name}` has both `size` and `host`",
                attrs["host"].span,
                help="a volume is either a claim (`size`) or a folder on the node (`host`)",
            )
            return None
        if size is not None and not t.is_size(size):
            self.diags.error(
                "E304",
                f'"{size}" is not a size',
                attrs["size"].span,
                help='write a number and a unit, e.g. "10Gi" or "500Mi"',
            )
            return None
        out: dict[str, Any] = {
            "id": vid,
            "name": name,
            "owner": owner,
            "kind": "claim" if size is not None else "host",
            "size": size,
            "host": emit(host.tv.value) if host is not None and not host.tv.error else None,
            "storage_class": self.constant_str(attrs.get("storage_class"), "`storage_class`"),
            "span": st.span.to_dict(),
        }
        mode = self.constant_str(attrs.get("access_mode"), "`access_mode`")
        if mode:
            out["access_mode"] = mode
        return out

    # ------------------------------------------------------------------ secrets
    def check_secret(self, decl: SecretDecl, scope: Scope) -> TV:
        st = decl.stmt
        value = st.value
        out = TV(None, t.SECRET, secret=True)
        if not isinstance(value, ast.Call) or not isinstance(value.func, ast.Name):
            self.diags.error(
                "E205",
                f"secret `{decl.stmt.label}` must be generated by a function",
                value.span if value else st.span,
                help="use `password()`, `token()`, `uuid()`, `private_key()`, `ca()` or "
                "`certificate()`; a value a human gives is an `input`",
            )
            return error_tv()
        fname = value.func.name
        if fname not in GENERATORS:
            if fname in SIGNATURES:
                self.diags.error(
                    "E205",
                    f"`{fname}()` does not generate a secret",
                    value.func.span,
                    help="generators: " + ", ".join(f"`{g}()`" for g in sorted(GENERATORS)),
                )
            else:
                self.diags.error(
                    "E107",
                    f"unknown function `{fname}`",
                    value.func.span,
                    help=did_you_mean(fname, SIGNATURES)
                    or "generators: " + ", ".join(f"`{g}()`" for g in sorted(GENERATORS)),
                )
            return error_tv()
        args = self.bind_args(value, SIGNATURES[fname], scope)
        if args is None:
            return error_tv()
        for a in args.values():
            out.absorb(a)
        if fname == "certificate":
            ca = args.get("ca")
            if ca is not None and not ca.error and ca.secret_kind != "ca":
                span = next((a.value.span for a in value.args if a.name == "ca"), value.span)
                self.diags.error(
                    "E201",
                    "`ca` must be a secret made by `ca()`",
                    span,
                    help="declare `secret my_ca = ca(common_name = \"...\")` and pass `ca = my_ca`",
                )
                return error_tv()
        for key in ("common_name", "organization"):
            a = args.get(key)
            if a is not None and a.secret:
                self.clear_text_error(key, value.span)
                return error_tv()
        self.m_secrets.append(
            {
                "id": decl.id,
                "name": st.label,
                "owner": decl.owner.name if decl.owner else None,
                "kind": fname,
                "args": {k: emit(v.value) for k, v in args.items()},
                "span": st.span.to_dict(),
            }
        )
        return out

    # ------------------------------------------------------------------ templates
    def template_signature(self, tpl: TemplateDecl) -> Signature:
        if tpl.signature is not None:
            return tpl.signature
        params: list[Parameter] = []
        seen: set[str] = set()
        for p in tpl.stmt.params or []:
            if p.name in seen:
                self.diags.error("E102", f"template parameter `{p.name}` is declared twice", p.span)
                continue
            seen.add(p.name)
            typ = self._type(p.type) or t.ANY
            default: object = SIGNATURES["join"].params[0].default  # REQUIRED
            if p.default is not None:
                tv = self.expr(p.default, Scope())
                if not tv.error and self.check_type(tv, typ, p.default.span,
                                                    f"the default of `{p.name}`"):
                    default = tv.value
                else:
                    default = None
            params.append(Parameter(p.name, typ, default))
        sig = Signature(tpl.name, tuple(params), t.ANY, f"template {tpl.name}")
        tpl.signature = sig
        return sig

    def check_template_params(self, tpl: TemplateDecl) -> None:
        self.template_signature(tpl)

    def service_args(self, svc: ServiceDecl) -> dict[str, TV] | None:
        if svc.args is not None or svc.template is None:
            return svc.args
        tpl = self.templates[svc.template]
        call = svc.stmt.value
        assert isinstance(call, ast.Call)
        sig = self.template_signature(tpl)
        args = self.bind_args(call, sig, Scope(svc))
        if args is None:
            args = {p.name: error_tv() for p in sig.params}
        for p in sig.params:
            args.setdefault(p.name, TV(None, p.type))
        svc.args = args
        return args

    def check_unused_template(self, tpl: TemplateDecl) -> None:
        """Check a template nobody instantiates, with opaque arguments, so its errors show."""
        fake = ServiceDecl(tpl.name, tpl.stmt, tpl.span, template=tpl.name)
        fake.body = [BodyItem(s, True, 0) for s in tpl.stmt.body or []]
        for it in fake.body:
            s = it.stmt
            table = {"secret": fake.secrets, "input": fake.inputs, "port": fake.ports,
                     "volume": fake.volumes}.get(s.keyword)
            if table is not None and s.label:
                table[s.label] = it
            if s.keyword == "subdomain" and s.label is None:
                fake.subdomain = it
        sig = self.template_signature(tpl)
        fake.args = {
            p.name: TV(_placeholder(p.type, i), p.type) for i, p in enumerate(sig.params)
        }
        self.check_service(fake, emit_output=False)

    # ------------------------------------------------------------------ ports
    def port_value(self, svc: ServiceDecl, name: str, span: Span) -> TV:
        if name in svc.port_values:
            return svc.port_values[name]
        it = svc.ports[name]
        svc.port_values[name] = error_tv()  # recursion guard
        if it.stmt.value is None:
            return error_tv()
        args = self.service_args(svc)
        tv = self.expr(it.stmt.value, Scope.of(svc, it, args))
        svc.port_values[name] = tv
        return tv

    # ------------------------------------------------------------------ services
    def check_service(self, svc: ServiceDecl, emit_output: bool = True) -> None:
        where = f"service `{svc.name}`"
        if emit_output and not t.is_service_name(svc.name):
            self.diags.error(
                "E301",
                f"`{svc.name}` is not a valid service name",
                svc.span,
                help="use lower-case letters, digits and `-`, starting with a letter "
                "(at most 63 characters)",
            )
        args = self.service_args(svc)
        deps: dict[str, Span] = {}
        used_inputs: dict[str, Span] = {}
        depends_on: list[tuple[str, Span]] = []
        out: dict[str, Any] = {
            "name": svc.name,
            "template": svc.template,
            "image": None,
            "command": None,
            "args": None,
            "subdomain": None,
            "ports": [],
            "environment": {},
            "mounts": [],
            "files": [],
            "depends_on": [],
            "replicas": 1,
            "resources": None,
            "health": None,
            "user": None,
            "group": None,
            "gpu": None,
            "devices": [],
            "micromanager": None,
            "inputs": [],
            "secrets": [],
            "volumes": [],
            "span": svc.stmt.span.to_dict(),
        }
        env_sources: list[tuple[dict[str, Any], int]] = []
        misspelt_image = False  # `imgae = ...`: reported as E103, so no E110 as well
        unknown_template = svc.stmt.value is not None and svc.template is None
        if unknown_template and isinstance(svc.stmt.value, ast.Call):
            # the arguments' own mistakes are independent of the template's name
            for a in svc.stmt.value.args:
                self.expr(a.value, Scope(svc))

        def take(tv: TV) -> None:
            for k, v in tv.deps.items():
                if k != svc.name:
                    deps.setdefault(k, v)
            for k, v in tv.inputs.items():
                used_inputs.setdefault(k, v)

        given: dict[tuple[str, str | None], int] = {}
        for it in svc.body:
            st = it.stmt
            scope = Scope.of(svc, it, args)
            kw = st.keyword
            key = (kw, st.label) if kw in NESTED or st.label is None else None
            if key is not None:
                # a statement given twice is reported (E102) when the body is collected;
                # checking the second one too would report it again as something else
                if key in given and not (kw == "environment" and given[key] != it.layer):
                    continue
                given[key] = it.layer
            if kw == "port":
                self._port(svc, it, scope, out)
            elif kw == "secret":
                if not self._shape(st, label="name", value="required",
                                   usage="secret NAME = password()"):
                    continue
                decl = self.all_secrets.get(f"{svc.name}.{st.label}")
                if decl is None or decl.stmt is not st:
                    continue
                tv = self.check_secret(decl, scope)
                take(tv)
                out["secrets"].append(decl.id)
            elif kw == "volume":
                self._own_volume(svc, st, scope, out, emit_output)
            elif kw == "mount":
                self._mount(st, scope, out)
            elif kw == "input":
                self._input(svc, st, scope, out, emit_output, take_help=take)
            elif kw == "file":
                tv = self._file(st, scope, out)
                if tv is not None:
                    take(tv)
            elif kw in SERVICE_ATTRS:
                if not self._shape(st, label=None, value="required", usage=f"{kw} = VALUE"):
                    continue
                assert st.value is not None
                if kw == "depends_on":
                    depends_on.extend(self._depends_on(svc, st, scope))
                    continue
                if kw == "environment" and isinstance(st.value, ast.MapExpr):
                    # entry by entry, so that each bad entry is reported on its own
                    env: dict[str, Any] = {}
                    for entry in st.value.entries:
                        key = self.map_key(entry, scope)
                        etv = self.expr(entry.value, scope)
                        if key is None or etv.error:
                            continue
                        if key in env:
                            self.diags.error("E102", f"`{key}` is given twice", entry.key_span)
                            continue
                        take(etv)
                        one = self._environment(
                            TV({key: etv.value}, t.map_of(etv.type)), st, {key: entry.value.span}
                        )
                        if one is not None:
                            env.update(one)
                    env_sources.append((env, it.layer))
                    continue
                tv = self.expr(st.value, scope)
                if tv.error:
                    continue
                if tv.type.name == "null":
                    self.diags.error("E201", f"`{kw}` cannot be null", st.value.span,
                                     help=f"remove the `{kw}` line to leave it unset")
                    continue
                take(tv)
                if tv.secret and kw not in SECRET_OK:
                    self.clear_text_error(kw, st.value.span)
                    continue
                if kw == "environment":
                    env = self._environment(tv, st)
                    if env is not None:
                        env_sources.append((env, it.layer))
                    continue
                if kw in ("command", "args"):
                    cmd = self._command(tv, st)
                    if cmd is not None:
                        out[kw] = cmd
                    continue
                if not self.check_type(tv, SERVICE_ATTRS[kw], st.value.span, f"`{kw}`"):
                    continue
                self._attribute(svc, kw, tv, st, out)
            else:
                nested = ("port", "secret", "volume", "mount", "input", "file")
                hint = did_you_mean(kw, [*SERVICE_ATTRS, *nested])
                if hint == "did you mean `image`?":
                    misspelt_image = True
                self.diags.error(
                    "E103",
                    f"{where} has no attribute `{kw}`",
                    st.keyword_span,
                    help=hint
                    or "it takes: " + ", ".join(f"`{k}`" for k in [*SERVICE_ATTRS, *nested]),
                )
        # environment: the template's entries, then the instance's (which win)
        for env, _ in sorted(env_sources, key=lambda e: e[1]):
            out["environment"].update(env)
        if out["image"] is None and not unknown_template and not misspelt_image and not any(
            it.stmt.keyword == "image" for it in svc.body
        ):
            self.diags.error(
                "E110",
                f"{where} has no `image`",
                svc.span,
                help='add the container image: `image = "nginx:1.27"`',
            )
        if svc.subdomain is not None and out["subdomain"] is not None and not unknown_template:
            # a port whose own check failed is not in out["ports"]: that error is enough
            if len(out["ports"]) == len(svc.ports) and not any(p["public"] for p in out["ports"]):
                self.diags.error(
                    "E309",
                    f"{where} has a subdomain but no public port to route it to",
                    svc.subdomain.stmt.span,
                    help="declare `port http = 8080`",
                )
        if not emit_output:
            return
        if out["subdomain"] is not None and svc.subdomain is not None:
            sd_span = (svc.subdomain.stmt.value or svc.subdomain.stmt).span
            first = self.subdomain_owners.get(out["subdomain"])
            if first is not None:
                self.diags.error(
                    "E305",
                    f'subdomain "{out["subdomain"]}" is already used by `{first[0]}`',
                    sd_span,
                    help="give one of them another subdomain",
                    notes=[Note(first[1], f"`{first[0]}` uses it here")],
                )
            else:
                self.subdomain_owners[out["subdomain"]] = (svc.name, sd_span)
        out["depends_on"] = [name for name, _ in depends_on]
        for name, span in depends_on:
            self.edges.append(graph.EdgeInfo(svc.name, name, "depends_on", span))
        for name, span in deps.items():
            if name in self.services:
                self.edges.append(graph.EdgeInfo(svc.name, name, "reference", span))
        for input_id in used_inputs:
            users = self.input_users.setdefault(input_id, [])
            if svc.name not in users:
                users.append(svc.name)
        self.m_services.append(out)

    def _attribute(self, svc: ServiceDecl, kw: str, tv: TV, st: Statement, out: dict[str, Any]) -> None:
        assert st.value is not None
        span = st.value.span
        if kw == "subdomain":
            v = tv.value
            if not isinstance(v, str):
                self.diags.error("E206", "`subdomain` must be known when compiling", span,
                                 help="write it as literal text")
                return
            if not t.is_dns_label(v):
                self.diags.error(
                    "E302",
                    f'"{v}" is not a valid subdomain',
                    span,
                    help="one DNS label: lower-case letters, digits and `-`, no dots",
                )
                return
            out["subdomain"] = v
        elif kw == "image":
            out["image"] = emit(tv.value)
        elif kw == "replicas":
            if isinstance(tv.value, int) and tv.value < 0:
                self.diags.error("E201", "`replicas` cannot be negative", span)
                return
            if not isinstance(tv.value, int):
                self.diags.error("E206", "`replicas` must be known when compiling", span,
                                 help="write the number, or use a template argument")
                return
            out["replicas"] = tv.value
        elif kw in ("user", "group"):
            if not isinstance(tv.value, int) or tv.value < 0:
                self.diags.error("E201", f"`{kw}` must be a known, non-negative number", span)
                return
            out[kw] = tv.value
        elif kw in ("gpu", "micromanager"):
            if not isinstance(tv.value, str):
                self.diags.error("E206", f"`{kw}` must be known when compiling", span)
                return
            out[kw] = tv.value
        elif kw == "devices":
            if not isinstance(tv.value, list):
                self.diags.error("E206", "`devices` must be known when compiling", span)
                return
            out["devices"] = tv.value
        elif kw == "resources":
            out["resources"] = self._resources(tv, st)
        elif kw == "health":
            out["health"] = self._health(tv, st)

    def _depends_on(self, svc: ServiceDecl, st: Statement, scope: Scope) -> list[tuple[str, Span]]:
        assert st.value is not None
        items = st.value.items if isinstance(st.value, ast.ListExpr) else None
        if items is None:
            self.diags.error("E201", "`depends_on` must be a list of services", st.value.span,
                             help="write `depends_on = [db, cache]`")
            return []
        out: list[tuple[str, Span]] = []
        for item in items:
            tv = self.expr(item, scope)
            if tv.error:
                continue
            if not isinstance(tv.value, ServiceMarker):
                self.diags.error(
                    "E201",
                    "`depends_on` lists services by name",
                    item.span,
                    help="write the service's name without quotes: `depends_on = [db]`",
                )
                continue
            if tv.value.name == svc.name:
                self.diags.error("E402", f"`{svc.name}` depends on itself", item.span,
                                 help="remove it from `depends_on`")
                continue
            if any(n == tv.value.name for n, _ in out):
                continue
            out.append((tv.value.name, item.span))
        return out

    def _environment(
        self, tv: TV, st: Statement, spans: dict[str, Span] | None = None
    ) -> dict[str, Any] | None:
        assert st.value is not None
        if not isinstance(st.value, ast.MapExpr) and not (
            isinstance(tv.value, dict) or (isinstance(tv.value, Sym) and "map" in tv.value.data)
        ):
            self.diags.error("E201", "`environment` must be a map: `{ NAME = value }`",
                             st.value.span)
            return None
        entries = tv.value if isinstance(tv.value, dict) else tv.value.data["map"]
        spans = dict(spans or {})
        if not spans and isinstance(st.value, ast.MapExpr):
            for e in st.value.entries:
                key = e.key if isinstance(e.key, str) else (e.key.constant() or "")
                spans[key] = e.value.span
        out: dict[str, Any] = {}
        symbolic = isinstance(tv.value, Sym)
        for key, value in entries.items():
            span = spans.get(key, st.value.span)
            if not re.match(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", key):
                self.diags.error(
                    "E308",
                    f'"{key}" is not a valid environment variable name',
                    span,
                    help="use letters, digits, `_`, `-` and `.`, not starting with a digit",
                )
                continue
            if isinstance(value, ServiceMarker):
                self.diags.error(
                    "E201",
                    f"environment variable `{key}` cannot hold a service",
                    span,
                    help=f"use `{value.name}.url` or `{value.name}.internal_url`",
                )
                continue
            if symbolic:
                composite = isinstance(value, dict) and ("list" in value or "map" in value)
            else:
                composite = isinstance(value, (list, dict))
            if composite:
                self.diags.error(
                    "E201",
                    f"environment variable `{key}` must be text, a number or a boolean",
                    span,
                    help='turn it into text, e.g. `join(list, ",")` or `json(value)`',
                )
                continue
            out[key] = value if symbolic else emit(value)
        return out

    def _command(self, tv: TV, st: Statement) -> list[Any] | None:
        assert st.value is not None
        v = tv.value
        if isinstance(v, str):
            try:
                return list(shlex.split(v))
            except ValueError as err:
                self.diags.error("E201", f"cannot split `{st.keyword}`: {err}", st.value.span,
                                 help="write it as a list of words: `[\"app\", \"--flag\"]`")
                return None
        if isinstance(v, list):
            items = v
        elif isinstance(v, Sym) and "list" in v.data:
            items = v.data["list"]
        else:
            self.diags.error(
                "E201",
                f"`{st.keyword}` must be a list of words",
                st.value.span,
                help='write it as a list: `["app", "--port", "8080"]`',
            )
            return None
        out = []
        for i in items:
            composite = isinstance(i, dict) and ("list" in i or "map" in i)
            if composite or isinstance(i, (list, bool)) or (
                isinstance(i, dict) and not isinstance(v, Sym)
            ):
                self.diags.error("E201", f"`{st.keyword}` holds text and numbers only",
                                 st.value.span)
                return None
            out.append(emit(i) if not isinstance(i, dict) else i)
        return out

    def _known_keys(self, tv: TV, st: Statement, keys: Collection[str]) -> dict[str, Any] | None:
        """The entries of a constant map attribute (``resources``, ``health``) with known keys.

        E206 when the map is not a constant, E103 for each unknown key (left out).
        """
        assert st.value is not None
        if not isinstance(tv.value, dict):
            self.diags.error("E206", f"`{st.keyword}` must be known when compiling", st.value.span)
            return None
        out: dict[str, Any] = {}
        for k, v in tv.value.items():
            if k in keys:
                out[k] = v
                continue
            self.diags.error(
                "E103",
                f"`{st.keyword}` has no key `{k}`",
                st.value.span,
                help=did_you_mean(k, keys) or "keys: " + ", ".join(f"`{x}`" for x in keys),
            )
        return out

    def _resources(self, tv: TV, st: Statement) -> dict[str, Any] | None:
        given = self._known_keys(tv, st, RESOURCE_KEYS)
        if given is None:
            return None
        assert st.value is not None
        out: dict[str, Any] = {}
        for k, v in given.items():
            ok = t.is_cpu(v) if k.startswith("cpu") else t.is_size(v)
            if not isinstance(v, str) or not ok:
                self.diags.error(
                    "E304",
                    f'"{v}" is not a valid {k.replace("_", " ")}',
                    st.value.span,
                    help='CPU as "500m" or "2"; memory as "512Mi" or "2Gi"',
                )
                continue
            out[k] = v
        return out

    def _health(self, tv: TV, st: Statement) -> dict[str, Any] | None:
        given = self._known_keys(tv, st, HEALTH_KEYS)
        if given is None:
            return None
        assert st.value is not None
        out: dict[str, Any] = {}
        for k, v in given.items():
            sub = TV(v, _type_of_constant(v))
            if not self.check_type(sub, HEALTH_KEYS[k], st.value.span, f"`health.{k}`"):
                continue
            out[k] = v
        kinds = [k for k in ("http", "tcp", "command") if out.get(k)]
        if len(kinds) != 1:
            self.diags.error(
                "E112",
                "`health` needs exactly one of `http`, `tcp = true` or `command`",
                st.value.span,
                help='e.g. `health = { http = "/health" }`',
            )
            return None
        return out

    def _port(self, svc: ServiceDecl, it: BodyItem, scope: Scope, out: dict[str, Any]) -> None:
        st = it.stmt
        if not self._shape(st, label="name", value="required", body="optional",
                           usage="port NAME = NUMBER { public = false }"):
            return
        assert st.label is not None and st.value is not None
        tv = self.port_value(svc, st.label, st.span)
        if tv.error:
            return
        if tv.secret:
            self.clear_text_error("port", st.value.span)
            return
        if isinstance(tv.value, int) and not isinstance(tv.value, bool):
            if not 1 <= tv.value <= 65535:
                self.diags.error("E303", f"{tv.value} is not a port", st.value.span,
                                 help="ports are whole numbers from 1 to 65535")
                return
        if not self.check_type(tv, t.PORT, st.value.span, f"port `{st.label}`"):
            return
        if not isinstance(tv.value, int):
            self.diags.error("E206", f"port `{st.label}` must be known when compiling",
                             st.value.span, help="write the number, or use a template argument")
            return
        attrs = self.attributes(st.body or [], {"public": t.BOOL,
                                                "protocol": t.one_of("tcp", "udp", "TCP", "UDP")},
                                scope, f"port `{st.label}`")
        for p in out["ports"]:
            if p["port"] == tv.value:
                self.diags.error("E306", f"port {tv.value} is used twice in `{svc.name}`",
                                 st.value.span, help="give each port its own number")
                return
        public = attrs.get("public")
        protocol = attrs.get("protocol")
        out["ports"].append(
            {
                "name": st.label,
                "port": tv.value,
                "protocol": str(protocol.tv.value).upper() if protocol and not protocol.tv.error else "TCP",
                "public": bool(public.tv.value) if public and not public.tv.error else True,
                "span": st.span.to_dict(),
            }
        )

    def _own_volume(self, svc: ServiceDecl, st: Statement, scope: Scope, out: dict[str, Any],
                    emit_output: bool) -> None:
        if not self._shape(st, label="name", body="required",
                           usage='volume NAME { path = "/data"  size = "1Gi" }'):
            return
        assert st.label is not None
        attrs = self.attributes(
            st.body or [],
            {"path": t.PATH, "size": t.STRING, "host": t.PATH, "storage_class": t.STRING,
             "access_mode": t.one_of("ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"),
             "read_only": t.BOOL, "sub_path": t.STRING},
            scope,
            f"volume `{st.label}`",
        )
        path = self.constant_str(attrs.get("path"), "the mount `path`")
        if "path" not in attrs:
            self.diags.error("E110", f"volume `{st.label}` needs a `path` in the container",
                             st.span, help='add `path = "/data"`')
        vid = f"{svc.name}.{st.label}"
        vol = self.volume_dict(vid, st.label, svc.name,
                               {k: v for k, v in attrs.items() if k in
                                ("size", "host", "storage_class", "access_mode")}, st)
        if vol is None or path is None or not emit_output:
            return
        self.m_volumes.append(vol)
        out["volumes"].append(vid)
        out["mounts"].append(self._mount_dict(vid, path, attrs, st))

    def _mount_dict(self, vid: str, path: str, attrs: dict[str, Attr], st: Statement) -> dict[str, Any]:
        ro = attrs.get("read_only")
        sub = attrs.get("sub_path")
        return {
            "volume": vid,
            "path": path,
            "read_only": bool(ro.tv.value) if ro and not ro.tv.error else False,
            "sub_path": self.constant_str(sub, "`sub_path`") if sub else None,
            "span": st.span.to_dict(),
        }

    def _mount(self, st: Statement, scope: Scope, out: dict[str, Any]) -> None:
        if not self._shape(st, label="name", body="required",
                           usage='mount VOLUME { path = "/media"  read_only = true }'):
            return
        assert st.label is not None
        if st.label not in self.volumes:
            self.diags.error(
                "E111",
                f"`{st.label}` is not a project volume",
                st.label_span or st.span,
                help=did_you_mean(st.label, self.volumes)
                or f"declare it at the top level: `volume {st.label} {{ size = \"10Gi\" }}`",
            )
            return
        attrs = self.attributes(st.body or [], {"path": t.PATH, "read_only": t.BOOL,
                                                "sub_path": t.STRING},
                                scope, f"mount `{st.label}`")
        path = self.constant_str(attrs.get("path"), "the mount `path`")
        if "path" not in attrs:
            self.diags.error("E110", f"mount `{st.label}` needs a `path` in the container",
                             st.span, help='add `path = "/media"`')
        if path is None:
            return
        for m in out["mounts"]:
            if m["path"] == path:
                self.diags.error("E102", f"two volumes are mounted at {path}", st.span)
                return
        out["mounts"].append(self._mount_dict(st.label, path, attrs, st))

    def _file(self, st: Statement, scope: Scope, out: dict[str, Any]) -> TV | None:
        if not self._shape(st, label="string", value="required", body="optional",
                           usage='file "/etc/app.conf" = template("app.conf")'):
            return None
        assert st.label is not None and st.value is not None
        path = st.label
        if not path.startswith("/") or "${" in path:
            self.diags.error("E201", f'file path "{path}" must be an absolute path',
                             st.label_span or st.span, help='e.g. `file "/config/app.yml" = ...`')
            return None
        tv = self.expr(st.value, scope)
        if tv.error:
            return tv
        if not self.check_type(tv, t.STRING, st.value.span, "a file's content"):
            return None
        attrs = self.attributes(st.body or [], {"mode": t.STRING}, scope, f'file "{path}"')
        mode = 0o644
        if "mode" in attrs and not attrs["mode"].tv.error:
            raw = attrs["mode"].tv.value
            try:
                mode = int(str(raw), 8)
                if not 0 <= mode <= 0o777:
                    raise ValueError
            except ValueError:
                self.diags.error("E308", f'"{raw}" is not a file mode', attrs["mode"].span,
                                 help='write it in octal, e.g. "0600"')
        if any(f["path"] == path for f in out["files"]):
            self.diags.error("E102", f'file "{path}" is given twice', st.span)
            return None
        out["files"].append(
            {
                "path": path,
                "content": emit(tv.value),
                "mode": mode,
                "secret": tv.secret or bool(tv.inputs),
                "span": st.span.to_dict(),
            }
        )
        return tv

    def _input(self, svc: ServiceDecl, st: Statement, scope: Scope, out: dict[str, Any],
               emit_output: bool, take_help: Any) -> None:
        if not self._shape(st, label="name", type_="required", body="optional",
                           usage='input NAME: TYPE { title = "..."  help = "..." }'):
            return
        assert st.label is not None
        typ = self._input_types.get(f"{svc.name}.{st.label}", t.ANY)
        help_scope = Scope(scope.service, scope.tparams, in_input_help=True)
        body = st.body or []
        attrs = self.attributes(
            [s for s in body if s.keyword != "default"],
            {"title": t.STRING, "help": t.STRING, "when": t.one_of("before_deploy", "after_start"),
             "optional": t.BOOL},
            help_scope,
            f"input `{st.label}`",
        )
        default = None
        for s in body:
            if s.keyword == "default" and s.value is not None:
                dtv = self.expr(s.value, scope)
                if dtv.secret or typ.name == "secret":
                    self.clear_text_error("an input's default", s.value.span)
                elif not dtv.error and self.check_type(dtv, typ, s.value.span, "the default"):
                    if not is_constant(dtv.value):
                        self.diags.error("E206", "an input's default must be a constant",
                                         s.value.span)
                    else:
                        default = emit(dtv.value)
        title = self.constant_str(attrs.get("title"), "the title") or st.label.replace(
            "_", " "
        ).capitalize()
        help_value = None
        if "help" in attrs and not attrs["help"].tv.error:
            take_help(TV(None, t.STRING, deps=attrs["help"].tv.deps))
            help_value = emit(attrs["help"].tv.value)
        when = self.constant_str(attrs.get("when"), "`when`") if "when" in attrs else None
        opt = attrs.get("optional")
        iid = f"{svc.name}.{st.label}"
        if not emit_output:
            return
        out["inputs"].append(iid)
        self.m_inputs.append(
            {
                "id": iid,
                "name": st.label,
                "service": svc.name,
                "type": typ.to_manifest() if typ.name != "any" else t.STRING.to_manifest(),
                "title": title,
                "help": help_value,
                "when": when,
                "when_inferred": when is None,
                "used_by": [],
                "optional": bool(opt.tv.value) if opt and not opt.tv.error else False,
                "default": default,
                "span": st.span.to_dict(),
            }
        )


def _type_of_constant(v: Any) -> t.Type:
    if isinstance(v, bool):
        return t.BOOL
    if isinstance(v, int):
        return t.INT
    if isinstance(v, str):
        return t.STRING
    if isinstance(v, list):
        return t.list_of(_type_of_constant(v[0]) if v else t.ANY)
    if isinstance(v, dict):
        return t.map_of(t.ANY)
    return t.ANY


def _placeholder(typ: t.Type, index: int) -> Any:
    """A stand-in argument of type ``typ`` for checking a template nobody instantiates.

    Constants, not references: a template may use a parameter where only constants
    are allowed (a port number). Distinct numbers so two ports do not collide.
    """
    samples: dict[str, Any] = {
        "string": f"sample{index}",
        "int": 10000 + index,
        "port": 10000 + index,
        "bool": False,
        "email": "someone@example.com",
        "url": "https://example.com",
        "domain": "example.com",
        "path": f"/sample{index}",
        "list": [],
        "map": {},
    }
    if typ.name == "one_of" and typ.choices:
        return typ.choices[0]
    if typ.name in samples:
        return samples[typ.name]
    return Sym({"ref": f"param:sample{index}"})
