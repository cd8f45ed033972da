"""The dependency graph between services: cycles, and the waves of a deployment.

An edge ``a → b`` means *a needs b running first*; it comes from a reference
(``b.url`` in a's configuration) or from ``depends_on``. Waves are the layers of
a topological order: wave 1 needs nothing, wave n needs only earlier waves. The
manager deploys wave by wave; ``mora graph`` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .diagnostics import Diagnostics, Note
from .syntax import Span


@dataclass(frozen=True, slots=True)
class EdgeInfo:
    service: str
    on: str
    reason: str  # "reference" | "depends_on"
    span: Span


def build(order: list[str], edges: list[EdgeInfo], diags: Diagnostics) -> dict[str, Any]:
    """The manifest's ``graph`` section; reports every cycle as one diagnostic."""
    known = set(order)
    unique: list[EdgeInfo] = []
    seen: set[tuple[str, str, str]] = set()
    for e in edges:
        key = (e.service, e.on, e.reason)
        if e.on in known and e.service in known and key not in seen:
            seen.add(key)
            unique.append(e)
    adjacency: dict[str, list[str]] = {n: [] for n in order}
    first_edge: dict[tuple[str, str], EdgeInfo] = {}
    for e in unique:
        if e.on not in adjacency[e.service]:
            adjacency[e.service].append(e.on)
        first_edge.setdefault((e.service, e.on), e)
    cyclic = _report_cycles(order, adjacency, first_edge, diags)
    return {
        "edges": [
            {"service": e.service, "on": e.on, "reason": e.reason, "span": e.span.to_dict()}
            for e in unique
        ],
        "waves": [] if cyclic else waves(order, adjacency),
    }


def waves(order: list[str], adjacency: dict[str, list[str]]) -> list[list[str]]:
    """Kahn's algorithm by layers; within a wave, services keep their declaration order."""
    level: dict[str, int] = {}
    remaining = list(order)
    current = 0
    out: list[list[str]] = []
    while remaining:
        wave = [n for n in remaining if all(level.get(d, -1) >= 0 and level[d] < current
                                             for d in adjacency[n])]
        if not wave:  # pragma: no cover - cycles are reported before
            break
        for n in wave:
            level[n] = current
        out.append(wave)
        remaining = [n for n in remaining if n not in level]
        current += 1
    return out


def _report_cycles(
    order: list[str],
    adjacency: dict[str, list[str]],
    first_edge: dict[tuple[str, str], EdgeInfo],
    diags: Diagnostics,
) -> bool:
    """Tarjan's strongly connected components; one diagnostic per component with a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    for root in order:
        if root in index:
            continue
        # iterative DFS to stay clear of the recursion limit on large projects
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = adjacency[node]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    components.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])

    for comp in components:
        members = set(comp)
        start = min(comp, key=order.index)
        path = _cycle_path(start, adjacency, members)
        hops = list(pairwise(path))
        edges = [first_edge[h] for h in hops]
        text = " → ".join(path)
        diags.error(
            "E401",
            f"dependency cycle: {text}",
            edges[0].span,
            help="remove one of these references or `depends_on` entries",
            notes=[
                Note(e.span, f"`{e.service}` needs `{e.on}` ({e.reason.replace('_', ' ')})")
                for e in edges
            ],
        )
    return bool(components)


def _cycle_path(start: str, adjacency: dict[str, list[str]], members: set[str]) -> list[str]:
    """A shortest cycle through ``start`` inside one component (breadth-first)."""
    from collections import deque

    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in adjacency[node]:
            if nxt not in members:
                continue
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                path.reverse()
                return [*path, start]
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return [start, start]  # pragma: no cover
