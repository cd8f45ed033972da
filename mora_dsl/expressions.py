"""Checking expressions: names, members, calls and strings, with constant folding.

A mixin of :class:`mora_dsl.checker.Checker`; it reads the checker's symbol tables
(``self.params``, ``self.services``…) and reports into ``self.diags``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import builtins
from . import syntax as ast
from . import types as t
from .diagnostics import Diagnostics, did_you_mean
from .project import display_path, read_text
from .scope import Scope, ServiceDecl
from .signatures import GENERATORS, REQUIRED, SECRET_MEMBERS, SIGNATURES, Signature
from .typed import (
    TV,
    PortsMarker,
    ProjectMarker,
    ServiceMarker,
    Sym,
    VolumeMarker,
    error_tv,
    is_constant,
    is_marker,
    make_concat,
    make_list,
    make_map,
    ref,
)

if TYPE_CHECKING:
    from .syntax import Span, TemplateFile

SERVICE_MEMBERS = ("url", "internal_url", "host", "public_host", "port", "name", "subdomain")
# the members that are addresses, known only when deploying: their types
_ADDRESS_TYPES = {"url": t.URL, "internal_url": t.URL, "host": t.DOMAIN, "public_host": t.DOMAIN}


class ExpressionMixin:
    diags: Diagnostics
    root: Path
    sources: dict[str, str]
    params: dict[str, Any]
    secrets: dict[str, Any]
    volumes: dict[str, Any]
    services: dict[str, ServiceDecl]
    templates: dict[str, Any]
    project_info: dict[str, str]
    _templates_read: dict[str, TemplateFile | None]

    # hooks the checker provides
    def port_value(self, svc: ServiceDecl, name: str, span: Span) -> TV:  # pragma: no cover
        raise NotImplementedError

    def secret_kind(self, secret_id: str) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def input_type(self, svc: ServiceDecl, name: str) -> t.Type:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ entry point
    def expr(self, e: ast.Expr, scope: Scope) -> TV:
        if isinstance(e, ast.Str):
            return self._string(e.parts, scope)
        if isinstance(e, ast.Int):
            return TV(e.value, t.INT)
        if isinstance(e, ast.Bool):
            return TV(e.value, t.BOOL)
        if isinstance(e, ast.Null):
            return TV(None, t.NULL)
        if isinstance(e, ast.Name):
            return self._name(e, scope)
        if isinstance(e, ast.Member):
            return self._member(e, scope)
        if isinstance(e, ast.ListExpr):
            return self._list(e, scope)
        if isinstance(e, ast.MapExpr):
            return self._map(e, scope)
        if isinstance(e, ast.Call):
            return self._call(e, scope)
        raise TypeError(f"unknown expression {type(e).__name__}")  # pragma: no cover

    # ------------------------------------------------------------------ strings
    def _string(self, parts: list[ast.Text | ast.Interpolation], scope: Scope) -> TV:
        out = TV(None, t.STRING)
        values: list[Any] = []
        for p in parts:
            if isinstance(p, ast.Text):
                values.append(p.value)
                continue
            tv = self.expr(p.expr, scope)
            out.absorb(tv)
            if tv.error:
                continue
            if tv.type.name in ("list", "map") or is_marker(tv.value):
                what = self._what(tv)
                self.diags.error(
                    "E207",
                    f"cannot write {what} into a string",
                    p.expr.span,
                    help=self._interp_help(tv),
                )
                out.error = True
                continue
            values.append(tv.value)
        if out.error:
            out.value = None
            out.type = t.ANY
            return out
        out.value = make_concat(values)
        return out

    def _what(self, tv: TV) -> str:
        if isinstance(tv.value, ServiceMarker):
            return f"the service `{tv.value.name}`"
        if isinstance(tv.value, VolumeMarker):
            return f"the volume `{tv.value.name}`"
        if isinstance(tv.value, ProjectMarker):
            return "`project`"
        if isinstance(tv.value, PortsMarker):
            return f"the ports of `{tv.value.service}`"
        return t.describe(tv.type)

    def _interp_help(self, tv: TV) -> str:
        if isinstance(tv.value, ServiceMarker):
            return f"use a member, e.g. `{tv.value.name}.url` or `{tv.value.name}.internal_url`"
        if isinstance(tv.value, PortsMarker):
            return f"name the port: `{tv.value.service}.port.http`"
        if isinstance(tv.value, ProjectMarker):
            return "use `project.name` or `project.namespace`"
        return 'turn it into text first, e.g. `join(list, ",")` or `json(value)`'

    # ------------------------------------------------------------------ names
    def visible_names(self, scope: Scope) -> list[str]:
        names = ["project", *self.params, *self.secrets, *self.volumes, *self.services]
        if scope.service:
            names += [*scope.service.secrets, *scope.service.inputs]
        if scope.tparams:
            names += list(scope.tparams)
        return names

    def _name(self, e: ast.Name, scope: Scope) -> TV:
        n = e.name
        if scope.tparams is not None and n in scope.tparams:
            src = scope.tparams[n]
            return TV(src.value, src.type, src.secret, src.error, src.secret_kind, src.secret_id,
                      dict(src.deps), dict(src.inputs))
        svc = scope.service
        if svc is not None:
            if n in svc.secrets:
                return self._secret_ref(f"{svc.name}.{n}")
            if n in svc.inputs:
                return self._input_ref(svc, n, e.span)
        if n in self.params:
            p = self.params[n]
            ptype = p.type if p.type is not None else t.ANY
            return TV(ref("param", n), ptype, secret=ptype.name == "secret", error=p.type is None)
        if n in self.secrets:
            return self._secret_ref(n)
        if n in self.services:
            tv = TV(ServiceMarker(n), t.SERVICE)
            if svc is None or svc.name != n:
                tv.deps[n] = e.span
            return tv
        if n in self.volumes:
            return TV(VolumeMarker(n), t.VOLUME)
        if n == "project":
            return TV(ProjectMarker(), t.PROJECT)
        if n in self.templates:
            self.diags.error(
                "E201",
                f"`{n}` is a template, not a value",
                e.span,
                help=f"instantiate it: `service NAME = {n}(...) {{ }}`",
            )
            return error_tv()
        if n in SIGNATURES:
            self.diags.error("E201", f"`{n}` is a function; call it: `{n}(...)`", e.span)
            return error_tv()
        self.diags.error(
            "E101",
            f"unknown name `{n}`",
            e.span,
            help=did_you_mean(n, self.visible_names(scope))
            or "declare it as a `param`, `secret`, `service` or `volume`",
        )
        return error_tv()

    def _secret_ref(self, secret_id: str, attr: str | None = None) -> TV:
        kind = self.secret_kind(secret_id)
        return TV(ref("secret", secret_id, attr), t.SECRET, secret=True, secret_kind=kind,
                  secret_id=secret_id)

    def _input_ref(self, svc: ServiceDecl, name: str, span: Span) -> TV:
        itype = self.input_type(svc, name)
        input_id = f"{svc.name}.{name}"
        tv = TV(ref("input", input_id), itype, secret=itype.name == "secret")
        tv.inputs[input_id] = span
        return tv

    # ------------------------------------------------------------------ members
    def _member(self, e: ast.Member, scope: Scope) -> TV:
        base = self.expr(e.obj, scope)
        if base.error:
            return error_tv()
        v, m = base.value, e.name
        if isinstance(v, ProjectMarker):
            if m in self.project_info:
                return TV(self.project_info[m], t.STRING)
            return self._no_member(e, "`project`", list(self.project_info))
        if isinstance(v, ServiceMarker):
            return self._service_member(e, base, v.name, scope)
        if isinstance(v, PortsMarker):
            svc = self.services[v.service]
            if m not in svc.ports:
                return self._no_member(e, f"`{v.service}.port`", list(svc.ports))
            pv = self.port_value(svc, m, e.span)
            out = TV(pv.value if pv.constant else ref("service", f"{svc.name}.port.{m}"),
                     t.PORT, error=pv.error)
            out.absorb(base)
            return out
        if base.secret_kind is not None and base.secret_id is not None:
            members = SECRET_MEMBERS.get(base.secret_kind, ())
            if m in members and isinstance(v, Sym) and "attr" not in v.data:
                return self._secret_ref(base.secret_id, m)
            what = f"a `{base.secret_kind}()` secret"
            return self._no_member(e, what, list(members))
        if isinstance(v, VolumeMarker):
            return self._no_member(e, f"the volume `{v.name}`", [])
        return self._no_member(e, t.describe(base.type) + " value", [])

    def _no_member(self, e: ast.Member, what: str, members: list[str]) -> TV:
        if members:
            hint = did_you_mean(e.name, members) or "its members: " + ", ".join(
                f"`{x}`" for x in members
            )
        else:
            hint = f"{what} has no members"
        self.diags.error("E104", f"{what} has no member `{e.name}`", e.name_span, help=hint)
        return error_tv()

    def _service_member(self, e: ast.Member, base: TV, name: str, scope: Scope) -> TV:
        svc = self.services[name]
        m = e.name
        out: TV
        if m in _ADDRESS_TYPES:
            if m in ("url", "public_host") and svc.subdomain is None:
                return self._no_address(e, name, "subdomain", f"use `{name}.internal_url`, "
                                        f"or give `{name}` a `subdomain`")
            if m == "internal_url" and not svc.ports:
                return self._no_address(e, name, "port",
                                        f"declare one: `port http = 8080` in `{name}`")
            out = TV(ref("service", f"{name}.{m}"), _ADDRESS_TYPES[m])
        elif m == "name":
            out = TV(name, t.STRING)
        elif m == "subdomain":
            const = None
            if svc.subdomain is not None:
                val = svc.subdomain.stmt.value
                const = val.constant() if isinstance(val, ast.Str) else None
            if const is None:
                return self._no_member(e, f"`{name}`", [x for x in SERVICE_MEMBERS if x != m])
            out = TV(const, t.STRING)
        elif m == "port":
            out = TV(PortsMarker(name), t.ANY)
        elif m in svc.secrets:
            out = self._secret_ref(f"{name}.{m}")
        elif m in svc.inputs:
            out = self._input_ref(svc, m, e.span)
        else:
            members = [*SERVICE_MEMBERS, *svc.secrets, *svc.inputs]
            return self._no_member(e, f"the service `{name}`", members)
        out.absorb(base)
        return out

    def _no_address(self, e: ast.Member, name: str, missing: str, hint: str) -> TV:
        """E309: ``svc.url`` of a service without a subdomain, ``.internal_url`` without a port."""
        self.diags.error("E309", f"`{name}` has no {missing}, so it has no `.{e.name}`", e.span,
                         help=hint)
        return error_tv()

    # ------------------------------------------------------------------ collections
    def _list(self, e: ast.ListExpr, scope: Scope) -> TV:
        out = TV(None, t.list_of(t.ANY))
        items: list[Any] = []
        item_type: t.Type | None = None
        for item in e.items:
            tv = self.expr(item, scope)
            out.absorb(tv)
            items.append(tv.value)
            item_type = _item_type(item_type, tv)
        if out.error:
            return TV(None, t.ANY, out.secret, True, deps=out.deps, inputs=out.inputs)
        out.type = t.list_of(item_type or t.ANY)
        if any(is_marker(i) for i in items):
            out.value = items  # a list of services (depends_on); never emitted as is
        else:
            out.value = make_list(items)
        return out

    def _map(self, e: ast.MapExpr, scope: Scope) -> TV:
        out = TV(None, t.map_of(t.ANY))
        entries: dict[str, Any] = {}
        item_type: t.Type | None = None
        for entry in e.entries:
            key = self.map_key(entry, scope)
            tv = self.expr(entry.value, scope)
            out.absorb(tv)
            if key is None:
                out.error = True
                continue
            if key in entries:
                self.diags.error("E102", f"key `{key}` is given twice", entry.key_span)
                continue
            entries[key] = tv.value
            item_type = _item_type(item_type, tv)
        if out.error:
            return TV(None, t.ANY, out.secret, True, deps=out.deps, inputs=out.inputs)
        out.type = t.map_of(item_type or t.ANY)
        out.value = entries if any(is_marker(i) for i in entries.values()) else make_map(entries)
        return out

    def map_key(self, entry: ast.MapEntry, scope: Scope) -> str | None:
        if isinstance(entry.key, str):
            return entry.key
        tv = self._string(entry.key.parts, scope)
        if tv.error:
            return None
        if not isinstance(tv.value, str):
            self.diags.error(
                "E206",
                "a key must be known when compiling",
                entry.key_span,
                help="use literal text or template arguments in keys, not params or secrets",
            )
            return None
        return tv.value

    # ------------------------------------------------------------------ calls
    def _call(self, e: ast.Call, scope: Scope, allow_generator: bool = False) -> TV:
        if not isinstance(e.func, ast.Name):
            self.diags.error("E107", "only built-in functions can be called", e.func.span)
            return error_tv()
        name = e.func.name
        sig = SIGNATURES.get(name)
        if sig is None:
            if name in self.templates:
                self.diags.error(
                    "E201",
                    f"`{name}` is a template; it makes a service, not a value",
                    e.span,
                    help=f"write `service NAME = {name}(...) {{ }}`",
                )
            else:
                self.diags.error(
                    "E107",
                    f"unknown function `{name}`",
                    e.func.span,
                    help=did_you_mean(name, SIGNATURES)
                    or "functions: " + ", ".join(sorted(SIGNATURES)),
                )
            for a in e.args:
                self.expr(a.value, scope)
            return error_tv()
        if sig.generator and not allow_generator:
            self.diags.error(
                "E204",
                f"`{name}()` creates a secret and can only be a `secret`'s value",
                e.span,
                help=f"declare `secret my_{name} = {name}(...)` and use `my_{name}` here",
            )
            return error_tv()
        args = self.bind_args(e, sig, scope)
        if args is None:
            return error_tv()
        return self._apply(e, sig, args, scope)

    def bind_args(self, e: ast.Call, sig: Signature, scope: Scope) -> dict[str, TV] | None:
        """Match a call's arguments to a signature; types checked, defaults filled."""
        given: dict[str, tuple[TV, ast.Arg]] = {}
        ok = True
        positional_done = False
        for i, a in enumerate(e.args):
            tv = self.expr(a.value, scope)
            if a.name is None:
                if positional_done:
                    self.diags.error("E202", "positional argument after a keyword argument",
                                     a.span, help="name it: `name = value`")
                    ok = False
                    continue
                if i >= len(sig.params):
                    self.diags.error(
                        "E202",
                        f"`{sig.name}()` takes {len(sig.params)} argument"
                        f"{'s' if len(sig.params) != 1 else ''}, not {len(e.args)}",
                        a.span,
                        help=_sig_help(sig),
                    )
                    ok = False
                    continue
                pname = sig.params[i].name
            else:
                positional_done = True
                pname = a.name
                if pname not in {p.name for p in sig.params}:
                    self.diags.error(
                        "E202",
                        f"`{sig.name}()` has no parameter `{pname}`",
                        a.span,
                        help=did_you_mean(pname, [p.name for p in sig.params]) or _sig_help(sig),
                    )
                    ok = False
                    continue
            if pname in given:
                self.diags.error("E202", f"`{pname}` is given twice", a.span)
                ok = False
                continue
            given[pname] = (tv, a)
        out: dict[str, TV] = {}
        for p in sig.params:
            if p.name not in given:
                if p.default is REQUIRED:
                    self.diags.error(
                        "E202",
                        f"`{sig.name}()` needs `{p.name}`",
                        e.span,
                        help=_sig_help(sig),
                    )
                    ok = False
                elif p.default is not None:
                    out[p.name] = TV(p.default, p.type)
                continue
            tv, a = given[p.name]
            if tv.error:
                ok = False
                continue
            if tv.type.name == "null":
                self.diags.error("E201", f"`{p.name}` cannot be null", a.value.span,
                                 help="leave the argument out to take its default"
                                 if p.default is not REQUIRED else "give it a value")
                ok = False
                continue
            if not self.check_type(tv, p.type, a.value.span, f"`{p.name}`"):
                ok = False
                continue
            if isinstance(tv.value, int) and not isinstance(tv.value, bool):
                if (p.minimum is not None and tv.value < p.minimum) or (
                    p.maximum is not None and tv.value > p.maximum
                ):
                    self.diags.error(
                        "E201",
                        f"`{p.name}` must be between {p.minimum} and {p.maximum}, not {tv.value}",
                        a.value.span,
                    )
                    ok = False
                    continue
            out[p.name] = tv
        return out if ok else None

    def _apply(self, e: ast.Call, sig: Signature, args: dict[str, TV], scope: Scope) -> TV:
        out = TV(None, sig.returns)
        for tv in args.values():
            out.absorb(tv)
        if sig.name in ("template", "file"):
            return self._read_file(e, sig.name, args["path"], scope)
        values = [args[p.name].value for p in sig.params if p.name in args]
        if all(is_constant(v) for v in values):
            try:
                out.value = builtins.apply(sig.name, values)
            except (TypeError, ValueError) as err:
                self.diags.error("E201", f"`{sig.name}()`: {err}", e.span)
                return error_tv()
        else:
            from .typed import emit

            out.value = Sym({"call": sig.name, "args": [emit(v) for v in values]})
        return out

    def _read_file(self, e: ast.Call, kind: str, path_tv: TV, scope: Scope) -> TV:
        if not isinstance(path_tv.value, str):
            self.diags.error(
                "E206",
                f"the file name of `{kind}()` must be known when compiling",
                e.span,
                help='write it as literal text: `template("app.yml")`',
            )
            return error_tv()
        rel = path_tv.value
        target = (self.root / rel).resolve()
        try:
            target.relative_to(self.root.resolve())
        except ValueError:
            self.diags.error(
                "E307",
                f'"{rel}" is outside the project folder',
                e.args[0].value.span if e.args else e.span,
                help="keep template and data files beside the .mora files",
            )
            return error_tv()
        shown = display_path(target)
        if not target.is_file():
            self.diags.error(
                "E307",
                f'cannot find "{rel}" in the project folder',
                e.args[0].value.span if e.args else e.span,
                help=did_you_mean(rel, [p.name for p in self.root.iterdir() if p.is_file()])
                if self.root.is_dir()
                else None,
            )
            return error_tv()
        text, err = read_text(target, shown)
        if err is not None or text is None:
            if err is not None:
                self.diags.add(err)
            return error_tv()
        self.sources.setdefault(shown, text)
        if kind == "file":
            return TV(text, t.STRING)
        tpl = self._templates_read.get(shown)
        if shown not in self._templates_read:
            from .parser import parse_template

            tpl, diags = parse_template(shown, text)
            self.diags.extend(diags)
            self._templates_read[shown] = tpl if not diags else None
        if tpl is None:
            return error_tv()
        return self._string(tpl.parts, scope)

    # ------------------------------------------------------------------ types
    def check_type(self, tv: TV, expected: t.Type, span: Span, what: str) -> bool:
        """Report when ``tv`` does not fit ``expected``; constants are checked by shape too."""
        if tv.error or expected.name == "any":
            return True
        if is_marker(tv.value) and expected.name != "service":
            self.diags.error(
                "E201",
                f"{what} must be {t.describe(expected)}, not {self._what(tv)}",
                span,
                help=self._interp_help(tv),
            )
            return False
        if not t.fits(tv.type, expected):
            self.diags.error(
                "E201",
                f"{what} must be {t.describe(expected)}, not {t.describe(tv.type)}",
                span,
                help=_type_help(tv, expected),
            )
            return False
        if is_constant(tv.value):
            reason = _shape_errors(expected, tv.value)
            if reason:
                if expected.name == "one_of" and isinstance(tv.value, str):
                    # a value outside a fixed set (`when`, `gpu`, `protocol`...): E308
                    choices = expected.choices or ()
                    self.diags.error(
                        "E308",
                        f"{what}: {reason}",
                        span,
                        help=did_you_mean(tv.value, choices)
                        or "use one of " + ", ".join(f'"{c}"' for c in choices),
                    )
                    return False
                self.diags.error("E201", f"{what}: {reason}", span)
                return False
        elif expected.name == "one_of" and tv.type.name != "one_of":
            self.diags.error(
                "E201",
                f"{what} must be one of {', '.join(repr(c) for c in expected.choices or ())}, "
                "and this value is only known when deploying",
                span,
                help="use a literal, or a param of a `one_of(...)` type",
            )
            return False
        return True


def _item_type(so_far: t.Type | None, tv: TV) -> t.Type | None:
    """The item type of a list or map literal after one more item: ``any`` once they differ."""
    if tv.error or tv.type.name in ("any", "null"):
        return so_far
    if so_far is None:
        return tv.type
    return so_far if t.fits(tv.type, so_far) else t.ANY


def _shape_errors(expected: t.Type, value: Any) -> str | None:
    item = expected.item
    if expected.name == "list" and isinstance(value, list) and item:
        return next((r for v in value if (r := _shape_errors(item, v))), None)
    if expected.name == "map" and isinstance(value, dict) and item:
        return next((r for v in value.values() if (r := _shape_errors(item, v))), None)
    return t.shape_error(expected, value)


def _type_help(tv: TV, expected: t.Type) -> str | None:
    if expected.name in t.INTY and tv.type.name in t.STRINGY and isinstance(tv.value, str):
        if tv.value.strip().isdigit():
            return f"write the number without quotes: {tv.value.strip()}"
    if expected.name in t.STRINGY and tv.type.name in t.INTY | {"bool"}:
        return f'quote it: "{tv.value}"' if is_constant(tv.value) else None
    if expected.name == "list" and tv.type.name not in ("list",):
        return "write a list: `[a, b]`"
    return None


def _sig_help(sig: Signature) -> str:
    return f"`{sig}`"


__all__ = ["GENERATORS", "ExpressionMixin"]
