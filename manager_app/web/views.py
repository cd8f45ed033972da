"""What the wizard's templates show, computed from the plan and the manifest.

Kept apart from the routes and free of HTTP so each rule (how inputs group
into steps, which HTML field a type gets, how a help text becomes safe HTML
with links, what a service's public URL is) can be tested on its own and the
templates stay logic-free.

Values in the manifest may be symbolic (``{"ref": "service:jellyfin.url"}``).
For display, params and service addresses are resolved; generated secrets and
wizard answers never are: they appear as a placeholder, so no page can leak
them by showing a help text or an image name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from mora_dsl.manifest import Input, Manifest, Ref, Service
from mora_dsl.values import EvaluationError, evaluate, is_constant, to_text

from ..planner import PendingInput, Plan, ServicePlan
from ..store import ServiceRecord, UpdateRecord

#: Human wording of each service state (the badge text); the CSS class is the state itself.
STATE_LABELS: dict[str, str] = {
    "waiting_for_dependencies": "waiting for dependencies",
    "waiting_for_input": "waiting for input",
    "ready": "ready",
    "deploying": "deploying",
    "running": "running",
    "failed": "failed",
}

#: Human wording of an update's status.
UPDATE_LABELS: dict[str, str] = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "interrupted": "interrupted",
}

SECRET_PLACEHOLDER = "‹generated secret›"
ANSWER_PLACEHOLDER = "‹your answer›"
UNKNOWN_PLACEHOLDER = "‹not known yet›"


# --------------------------------------------------------------------------- resolving for display


def display_resolver(manifest: Manifest, params: Mapping[str, Any]) -> Callable[[Ref], Any]:
    """A resolver for :func:`mora_dsl.values.evaluate` that is safe to put into HTML.

    Params (unless typed ``secret``) and public service addresses resolve;
    secrets and answers resolve to a placeholder, never to their value.
    """
    declared = {p.name: p for p in manifest.params}

    def param(name: str) -> Any:
        spec = declared.get(name)
        if spec is not None and spec.type.name == "secret":
            return SECRET_PLACEHOLDER
        if name in params:
            return params[name]
        if spec is not None and spec.has_default and is_constant(spec.default):
            return spec.default
        return f"‹{name}›"

    def resolve(ref: Ref) -> Any:
        kind, path = ref.kind, ref.path
        if kind == "param":
            return param(path)
        if kind == "secret":
            return SECRET_PLACEHOLDER
        if kind == "input":
            return ANSWER_PLACEHOLDER
        if kind == "service":
            name, _, attr = path.partition(".")
            try:
                svc = manifest.service(name)
            except KeyError:
                return UNKNOWN_PLACEHOLDER
            if attr.startswith("port."):
                wanted = attr[len("port."):]
                return next((p.port for p in svc.ports if p.name == wanted), UNKNOWN_PLACEHOLDER)
            host = public_host(manifest, svc, params)
            if attr == "url":
                return f"https://{host}" if host else UNKNOWN_PLACEHOLDER
            if attr == "public_host":
                return host or UNKNOWN_PLACEHOLDER
            return f"‹{name} inside the cluster›"
        return UNKNOWN_PLACEHOLDER

    return resolve


def display_text(value: Any, manifest: Manifest, params: Mapping[str, Any]) -> str:
    """``value`` as text for a page, with secrets and answers as placeholders."""
    if value is None:
        return ""
    try:
        return to_text(evaluate(value, display_resolver(manifest, params)))
    except (EvaluationError, TypeError, ValueError):
        return UNKNOWN_PLACEHOLDER


def public_host(manifest: Manifest, service: Service, params: Mapping[str, Any]) -> str | None:
    """``<subdomain>.<domain>`` when the service has a subdomain and a domain is set."""
    if not service.subdomain:
        return None
    domain = params.get("domain")
    if domain is None:
        spec = next((p for p in manifest.params if p.name == "domain"), None)
        if spec is not None and spec.has_default and isinstance(spec.default, str):
            domain = spec.default
    if not isinstance(domain, str) or not domain.strip(". "):
        return None
    return f"{service.subdomain}.{domain.strip().strip('.')}"


def service_url(manifest: Manifest, service: Service, params: Mapping[str, Any]) -> str | None:
    """The service's public URL (``https://<subdomain>.<domain>``), if it has one."""
    if not any(p.public for p in service.ports):
        return None
    host = public_host(manifest, service, params)
    return f"https://{host}" if host else None


# --------------------------------------------------------------------------- help text with links

_URL = re.compile(r"https?://[^\s<>\"'‹›]+")
_TRAILING = ".,;:!?)]}»"


def linkify(text: str) -> Markup:
    """``text`` HTML-escaped, with every http(s) URL turned into a link.

    Escaping happens piece by piece before the markup is assembled, so a
    ``<script>`` in a help text shows as text; trailing punctuation stays out
    of the link (``…/keys,`` links ``…/keys``).
    """
    out: list[str] = []
    pos = 0
    for match in _URL.finditer(text):
        url = match.group(0)
        trimmed = url.rstrip(_TRAILING)
        end = match.start() + len(trimmed)
        out.append(str(escape(text[pos:match.start()])))
        out.append(
            f'<a href="{escape(trimmed)}" target="_blank" rel="noopener noreferrer">'
            f"{escape(trimmed)}</a>"
        )
        pos = end
    out.append(str(escape(text[pos:])))
    # Paragraphs: a blank line separates them; single newlines are kept as breaks.
    html = "".join(out).strip()
    paragraphs = [p.replace("\n", "<br>") for p in re.split(r"\n\s*\n", html) if p.strip()]
    return Markup("".join(f"<p>{p}</p>" for p in paragraphs))


def help_html(spec: Input, manifest: Manifest, params: Mapping[str, Any]) -> Markup:
    """The input's help as safe HTML: resolved for display, escaped, URLs as links."""
    if spec.help is None:
        return Markup("")
    text = display_text(spec.help, manifest, params)
    lines = [line.strip() for line in text.strip().splitlines()]
    return linkify("\n".join(lines))


# --------------------------------------------------------------------------- fields


@dataclass(frozen=True)
class Field:
    """One form field of a wizard step: everything its template needs."""

    id: str
    #: The HTML ``id`` attribute (input ids contain dots, which are fine but awkward in CSS).
    html_id: str
    name: str
    title: str
    service: str
    type_name: str
    type_text: str
    #: ``input``, ``select``.
    widget: str
    #: The ``type`` attribute of an ``<input>``.
    input_type: str = "text"
    choices: list[tuple[str, str]] = field(default_factory=list)
    secret: bool = False
    optional: bool = False
    help: Markup = field(default_factory=Markup)
    hint: str = ""
    min: int | None = None
    max: int | None = None
    autocomplete: str = "on"
    #: What to show in the field (never set for a secret).
    value: str = ""
    error: str | None = None
    #: Already answered (saved); a blank secret then keeps the saved value.
    answered: bool = False


def html_id(input_id: str) -> str:
    return "answer-" + re.sub(r"[^A-Za-z0-9_-]", "-", input_id)


def make_field(
    spec: Input,
    manifest: Manifest,
    params: Mapping[str, Any],
    *,
    value: str = "",
    error: str | None = None,
    answered: bool = False,
) -> Field:
    """The form field for an input: typed widget, escaped help, kept value (never a secret's)."""
    name = spec.type.name
    common: dict[str, Any] = {
        "id": spec.id,
        "html_id": html_id(spec.id),
        "name": spec.id,
        "title": spec.title,
        "service": spec.service,
        "type_name": name,
        "type_text": str(spec.type),
        "optional": spec.optional,
        "help": help_html(spec, manifest, params),
        "error": error,
        "answered": answered,
    }
    if name == "secret":
        return Field(
            widget="input", input_type="password", secret=True, autocomplete="off",
            hint="Kept encrypted; never shown again.",
            **common,
        )
    kept = value
    if name == "bool":
        return Field(
            widget="select", choices=[("", "— choose —"), ("true", "Yes"), ("false", "No")],
            value=_bool_text(kept), **common,
        )
    if name == "one_of":
        choices = [("", "— choose —")] + [(c, c) for c in spec.type.choices or []]
        return Field(widget="select", choices=choices, value=kept, **common)
    if name in ("int", "port"):
        return Field(
            widget="input", input_type="number", value=kept,
            min=1 if name == "port" else None, max=65535 if name == "port" else None,
            hint="A port (1–65535)." if name == "port" else "A whole number.",
            **common,
        )
    if name == "email":
        return Field(widget="input", input_type="email", value=kept, autocomplete="email", **common)
    if name == "url":
        return Field(
            widget="input", input_type="url", value=kept, hint="A full URL, e.g. https://…",
            **common,
        )
    hints = {
        "domain": "A domain name, e.g. home.example.com.",
        "path": "An absolute path, e.g. /srv/media.",
        "list": "Separate items with commas, or write a JSON list.",
        "map": 'Write a JSON object: {"key": "value"}.',
    }
    return Field(widget="input", input_type="text", value=kept, hint=hints.get(name, ""), **common)


def _bool_text(text: str) -> str:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "y", "1", "on"):
        return "true"
    if lowered in ("false", "no", "n", "0", "off"):
        return "false"
    return ""


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class Step:
    """Inputs the wizard asks on one page: those that became askable at the same moment.

    Inputs of the same wave and timing are asked together (for the
    media-server: the LDAP admin's e-mail and the Jellyfin API key, both once
    the first wave runs), so the person answers everything the next update
    needs in one form.
    """

    inputs: list[PendingInput]

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.inputs]

    @property
    def services(self) -> list[str]:
        seen: list[str] = []
        for i in self.inputs:
            if i.service not in seen:
                seen.append(i.service)
        return seen

    @property
    def title(self) -> str:
        return ", ".join(self.services)


def steps(plan: Plan) -> list[Step]:
    """The plan's pending inputs grouped into steps, in the planner's order."""
    wave_of = {s.name: s.wave for s in plan.services}
    out: list[Step] = []
    current: list[PendingInput] = []
    key: tuple[int, str] | None = None
    for inp in plan.pending_inputs:
        k = (wave_of.get(inp.service, len(wave_of)), inp.when)
        if current and k != key:
            out.append(Step(current))
            current = []
        current.append(inp)
        key = k
    if current:
        out.append(Step(current))
    return out


# --------------------------------------------------------------------------- overview and services


@dataclass(frozen=True)
class ServiceRow:
    name: str
    state: str
    state_label: str
    wave: int
    dependencies: list[str]
    missing_inputs: list[str]
    url: str | None
    image: str
    error: str | None
    last_update: UpdateRecord | None


def service_rows(
    plan: Plan,
    manifest: Manifest,
    params: Mapping[str, Any],
    records: Mapping[str, ServiceRecord],
    updates: Mapping[int, UpdateRecord],
) -> list[ServiceRow]:
    """One row per planned service, with its URL only once it runs."""
    rows = []
    for sp in plan.services:
        svc = manifest.service(sp.name)
        rec = records.get(sp.name)
        rows.append(
            ServiceRow(
                name=sp.name,
                state=sp.state,
                state_label=STATE_LABELS.get(sp.state, sp.state),
                wave=sp.wave,
                dependencies=sp.dependencies,
                missing_inputs=sp.missing_inputs,
                url=service_url(manifest, svc, params) if sp.state == "running" else None,
                image=display_text(svc.image, manifest, params),
                error=rec.error if rec is not None and sp.state == "failed" else None,
                last_update=updates.get(rec.last_update_id) if rec and rec.last_update_id else None,
            )
        )
    return rows


def waves_view(plan: Plan, rows: Iterable[ServiceRow]) -> list[list[ServiceRow]]:
    by_name = {r.name: r for r in rows}
    return [[by_name[n] for n in wave if n in by_name] for wave in plan.waves]


def counts(services: Iterable[ServicePlan]) -> dict[str, int]:
    out = dict.fromkeys(STATE_LABELS, 0)
    for s in services:
        out[s.state] = out.get(s.state, 0) + 1
    return out
