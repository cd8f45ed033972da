"""Render time and peak memory of the offline renderer for 10, 100 and 500 services.

Each service is media-server-like: a port and subdomain (Service, Ingress, TLS
Secret), a claim, a generated token in its environment (env Secret) and a plain
file (ConfigMap). Run: ``.venv/bin/python benchmarks/render.py [N ...]``.
Target (issue 3): linear growth, 100 services in under 5 s.
"""

from __future__ import annotations

import resource
import sys
import time

from mora_dsl.manifest import (
    File,
    Graph,
    Manifest,
    Mount,
    Param,
    Port,
    Project,
    Ref,
    Secret,
    Service,
    Span,
    TypeSpec,
    Volume,
)
from stacks.config import StackConfig
from stacks.render import render

SPAN = Span(file="bench.mora", line=1, column=1, end_line=1, end_column=2)


def manifest(n: int) -> Manifest:
    services, secrets, volumes = [], [], []
    for i in range(n):
        name = f"app{i}"
        secrets.append(Secret(id=f"{name}.key", name="key", owner=name, kind="token",
                              args={"bytes": 16, "encoding": "hex"}, span=SPAN))
        volumes.append(Volume(id=f"{name}.data", name="data", owner=name, kind="claim",
                              size="1Gi", span=SPAN))
        services.append(Service(
            name=name, image="traefik/whoami:v1.10", subdomain=name,
            ports=[Port(name="http", port=8080, span=SPAN)],
            environment={"API_KEY": Ref(ref=f"secret:{name}.key"), "TZ": Ref(ref="param:tz")},
            mounts=[Mount(volume=f"{name}.data", path="/data", span=SPAN)],
            files=[File(path="/etc/app.conf", content=f"name={name}\n", span=SPAN)],
            secrets=[f"{name}.key"], volumes=[f"{name}.data"], span=SPAN,
        ))
    return Manifest(
        project=Project(name="bench", namespace="bench", span=SPAN),
        params=[Param(name="domain", type=TypeSpec(name="domain"), span=SPAN),
                Param(name="tz", type=TypeSpec(name="string"), default="Etc/UTC",
                      has_default=True, span=SPAN)],
        secrets=secrets, volumes=volumes, services=services,
        graph=Graph(waves=[[s.name for s in services]]),
    )


def measure(n: int) -> tuple[int, float, float]:
    """Objects, seconds, and the process's peak RSS so far (sizes run in ascending order).

    Peak RSS rather than tracemalloc: tracing allocations slows Pulumi's many
    small objects several-fold and would distort the time.
    """
    m = manifest(n)
    config = StackConfig(params={"domain": "bench.example.com"})
    start = time.perf_counter()
    objects = render(m, config)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return len(objects), elapsed, peak


def main(sizes: list[int]) -> None:
    render(manifest(1), StackConfig(params={"domain": "x.org"}))  # imports and warm-up
    print(f"{'services':>8} | {'objects':>7} | {'render s':>8} | {'s/service':>9} | {'peak RSS MiB':>12}")
    print(f"{'-' * 8}-|-{'-' * 7}-|-{'-' * 8}-|-{'-' * 9}-|-{'-' * 12}")
    for n in sorted(sizes):
        count, elapsed, peak = measure(n)
        print(f"{n:>8} | {count:>7} | {elapsed:>8.2f} | {elapsed / n:>9.4f} | {peak:>12.1f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100, 500])
