"""The deployment order of a compiled project, drawn as text, Mermaid or JSON.

Works on the manifest as plain dicts (``manifest["graph"]`` and
``manifest["inputs"]``) so ``mora graph`` does not need pydantic. Services
appear in the order the compiler gave them; nothing here re-derives the graph.
"""

from __future__ import annotations

import json
import re
from typing import Any

Manifest = dict[str, Any]


def _dependencies(graph: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """service -> dependency -> reasons, in edge order, duplicates dropped."""
    deps: dict[str, dict[str, list[str]]] = {}
    for edge in graph.get("edges", []):
        reasons = deps.setdefault(edge["service"], {}).setdefault(edge["on"], [])
        if edge["reason"] not in reasons:
            reasons.append(edge["reason"])
    return deps


def waiting_for_inputs(manifest: Manifest) -> dict[str, list[str]]:
    """service -> the inputs it cannot be deployed without.

    A service waits for every input its configuration uses (``used_by``); an
    input asked ``before_deploy`` also holds back the service that declares it.
    An ``after_start`` input of a service that does not use it itself holds back
    only its users, since the human needs the running service to answer.
    """
    waits: dict[str, list[str]] = {}
    for inp in manifest.get("inputs", []):
        holders = list(inp.get("used_by", []))
        if inp.get("when") == "before_deploy" and inp["service"] not in holders:
            holders.insert(0, inp["service"])
        for service in holders:
            waits.setdefault(service, []).append(inp["id"])
    return waits


def _ordered_services(manifest: Manifest) -> list[str]:
    """Services wave by wave, then any the waves do not mention (defensive)."""
    seen: list[str] = [s for wave in manifest["graph"].get("waves", []) for s in wave]
    rest = [s["name"] for s in manifest.get("services", []) if s["name"] not in seen]
    return seen + rest


def render_text(manifest: Manifest) -> str:
    """``wave N: a, b`` lines, then each service's dependencies and awaited inputs."""
    graph = manifest["graph"]
    lines = [
        f"wave {i}: {', '.join(wave)}" for i, wave in enumerate(graph.get("waves", []), start=1)
    ]
    if not lines:
        lines.append("no services")
    deps = _dependencies(graph)
    waits = waiting_for_inputs(manifest)
    rows: list[tuple[str, str]] = []
    for service in _ordered_services(manifest):
        parts = []
        if service in deps:
            parts.append(_describe_dependencies(deps[service]))
        if service in waits:
            parts.append("waits for input " + ", ".join(waits[service]))
        if parts:
            rows.append((service, "; ".join(parts)))
    if rows:
        width = max(len(name) for name, _ in rows)
        lines.append("")
        for name, text in rows:
            arrow = "← " if not text.startswith("waits") else ""
            lines.append(f"{name.ljust(width)} {arrow}{text}")
    inputs = manifest.get("inputs", [])
    if inputs:
        lines += ["", "inputs:"]
        width = max(len(i["id"]) for i in inputs)
        for inp in inputs:
            lines.append(f"  {inp['id'].ljust(width)}  {_describe_input(inp)}")
    return "\n".join(lines)


def _describe_dependencies(on: dict[str, list[str]]) -> str:
    """``qbittorrent, prowlarr (depends_on)``: dependencies grouped by why they exist."""
    groups: dict[str, list[str]] = {}
    for dep, reasons in on.items():
        groups.setdefault(" + ".join(reasons), []).append(dep)
    return "; ".join(f"{', '.join(names)} ({why})" for why, names in groups.items())


def _describe_input(inp: dict[str, Any]) -> str:
    if inp.get("when") == "before_deploy":
        text = f"asked before {inp['service']} is deployed"
    else:
        text = f"asked once {inp['service']} runs"
    users = [u for u in inp.get("used_by", []) if u != inp["service"]]
    if users:
        text += f"; {', '.join(users)} wait{'s' if len(users) == 1 else ''} for it"
    return text


_MERMAID_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MERMAID_RESERVED = {"end", "graph", "subgraph", "style", "class", "classDef", "click", "direction"}


def _mermaid_id(name: str) -> str:
    """A node id Mermaid accepts; service names are DNS labels, so ``-`` → ``_`` is unique."""
    ident = name.replace("-", "_")
    if not _MERMAID_ID.fullmatch(ident) or ident in _MERMAID_RESERVED:
        ident = "svc_" + re.sub(r"\W", "_", ident)
    return ident


def render_mermaid(manifest: Manifest) -> str:
    """A ``graph TD`` flowchart: one subgraph per wave, ``dependency --> dependent`` edges.

    Services that wait for a wizard answer get the dashed ``waits`` class.
    """
    graph = manifest["graph"]
    lines = ["graph TD"]
    placed: set[str] = set()

    def node(name: str) -> str:
        ident = _mermaid_id(name)
        return ident if ident == name else f'{ident}["{name}"]'

    for i, wave in enumerate(graph.get("waves", []), start=1):
        lines.append(f'  subgraph wave{i}["wave {i}"]')
        lines += [f"    {node(s)}" for s in wave]
        lines.append("  end")
        placed.update(wave)
    lines += [f"  {node(s)}" for s in _ordered_services(manifest) if s not in placed]
    for service, on in _dependencies(graph).items():
        for dep in on:
            lines.append(f"  {_mermaid_id(dep)} --> {_mermaid_id(service)}")
    waits = waiting_for_inputs(manifest)
    if waits:
        lines.append("  classDef waits stroke-dasharray: 5 5")
        lines.append(f"  class {','.join(_mermaid_id(s) for s in waits)} waits")
    return "\n".join(lines)


def render_json(manifest: Manifest) -> str:
    """The manifest's ``graph`` object as it is, for scripts."""
    return json.dumps(manifest["graph"], indent=2, ensure_ascii=False)


RENDERERS = {"text": render_text, "mermaid": render_mermaid, "json": render_json}
