"""Compile-time benchmark: cold-process `mora check` beside `docker-compose config`.

For each size N it generates two equivalent projects in a temporary folder:

* a mora project: N services, each with an image, a public port, a subdomain, a
  claim volume, a mount of one shared volume, a generated secret, and 3-4
  environment entries that use a param, the secret and (except the first
  service) another service's ``internal_url`` or port;
* a docker-compose file with the same services: image, published port,
  environment (params become ``${VAR:-default}`` substitutions, the reference
  becomes a literal URL or port plus the matching ``depends_on``), a named
  volume per service and the shared named volume.

Both are checked once (the mora project must compile without a diagnostic, the
compose file must pass ``docker-compose config`` with N services), which also
warms the disk caches and lark's grammar cache. Then each size is timed in
rounds that alternate the two tools (the order flips every round), each run a
fresh process started with :func:`subprocess.run` and timed with
:func:`time.perf_counter`. Finally ``mora check examples/media-server`` is
timed on its own.

Targets (issue 2): media-server under 0.3 s, 1000 services under 2 s, and
mora/docker-compose under 0.5 at every size (all on the median).

    .venv/bin/python benchmarks/compile.py [--sizes 10,100,1000] [--rounds 5]
        [--markdown docs/performance.md] [--strict]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from doc_section import load_average, os_name, write_section

REPO = Path(__file__).resolve().parent.parent
MEDIA_SERVER = REPO / "examples" / "media-server"
MEDIA_RUNS = 10

TARGET_MEDIA_S = 0.3
TARGET_1000_S = 2.0
TARGET_RATIO = 0.5

BEGIN = "<!-- compile:begin -->"
END = "<!-- compile:end -->"

DOC_INTRO = """\
# Performance

How fast mora's commands are, measured by the scripts under `benchmarks/`.
Every number is the wall time of a **cold process**: a new interpreter started
with `subprocess.run` and timed with `time.perf_counter` around the whole run
(start-up, imports, work, exit), the way a user runs the command. Bytecode
caches and lark's grammar cache on disk are warm, as they are after the first
run on any machine (the benchmark turns the bytecode cache on even where the
environment sets `PYTHONDONTWRITEBYTECODE`, and keeps it in its temporary folder). Each table states its median and minimum over several
runs and the load average when it was taken.

Reference machine: 2 shared cores, Debian 12, Python 3.11. Other work ran on the
same cores during some measurements, so treat small differences as noise.
Re-run a benchmark before quoting a number.
"""


# --------------------------------------------------------------------------- generation


def _name(i: int) -> str:
    return f"svc{i:04d}"


def _upstream(i: int) -> int | None:
    """The service ``i`` refers to: a tree with fan-out 3, so the graph has ~log3(N) waves."""
    return None if i == 0 else (i - 1) // 3


def _port(i: int) -> int:
    return 8000 + i % 1000


def mora_project(n: int) -> str:
    """A mora project with ``n`` services (see the module docstring)."""
    out = [
        f'project "bench-{n}" {{',
        f'  description = "Generated benchmark project with {n} services"',
        "}",
        "",
        "param domain: domain {",
        '  prompt  = "Base domain for all services"',
        '  example = "home.example.com"',
        "}",
        'param timezone: string = "Etc/UTC"',
        "",
        'volume shared { size = "10Gi" }',
    ]
    for i in range(n):
        name = _name(i)
        up = _upstream(i)
        env = [
            "    TZ       = timezone",
            f'    BASE_URL = "https://s{i:04d}.${{domain}}"',
        ]
        if up is not None:
            if i % 2:
                env.append(f"    UPSTREAM = {_name(up)}.internal_url")
            else:
                env.append(f'    UPSTREAM = "{_name(up)}:${{{_name(up)}.port.http}}"')
        env.append("    API_KEY  = api_key")
        out += [
            "",
            f"service {name} {{",
            f'  image     = "example/app{i}:1.{i % 10}.0"',
            f'  subdomain = "s{i:04d}"',
            f"  port http = {_port(i)}",
            "  secret api_key = token(bytes = 16)",
            "  environment = {",
            *env,
            "  }",
            '  volume data { path = "/data"  size = "1Gi" }',
            '  mount shared { path = "/shared" }',
            "}",
        ]
    return "\n".join(out) + "\n"


def compose_file(n: int) -> str:
    """The docker-compose equivalent of :func:`mora_project` (hand-written YAML)."""
    out = ['version: "3.8"', "services:"]
    volumes = ["  shared: {}"]
    for i in range(n):
        name = _name(i)
        up = _upstream(i)
        env = [
            '      TZ: "${TZ:-Etc/UTC}"',
            f'      BASE_URL: "https://s{i:04d}.${{DOMAIN:-home.example.com}}"',
        ]
        if up is not None:
            if i % 2:
                env.append(f'      UPSTREAM: "http://{_name(up)}:{_port(up)}"')
            else:
                env.append(f'      UPSTREAM: "{_name(up)}:{_port(up)}"')
        env.append(f'      API_KEY: "${{{name.upper()}_API_KEY:-}}"')
        out += [
            f"  {name}:",
            f'    image: "example/app{i}:1.{i % 10}.0"',
            "    ports:",
            f'      - "{20000 + i}:{_port(i)}"',
            "    environment:",
            *env,
            "    volumes:",
            f'      - "{name}-data:/data"',
            '      - "shared:/shared"',
        ]
        if up is not None:
            out += ["    depends_on:", f"      - {_name(up)}"]
        volumes.append(f"  {name}-data: {{}}")
    out += ["volumes:", *volumes]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- running


class BenchError(RuntimeError):
    """A generated project did not compile, or a tool failed: the numbers would mean nothing."""


def mora_command() -> list[str]:
    script = REPO / ".venv" / "bin" / "mora"
    if script.exists():
        return [str(script)]
    found = shutil.which("mora")
    if found:
        return [found]
    return [sys.executable, "-m", "mora_cli"]


def compose_command() -> list[str] | None:
    found = shutil.which("docker-compose")
    return [found] if found else None


# The environment of every measured process; see :func:`bytecode_env`.
RUN_ENV: dict[str, str] | None = None


def bytecode_env(root: Path) -> dict[str, str]:
    """This environment, with Python's bytecode cache on, kept under ``root``.

    An installed mora (and Debian's docker-compose) run from cached bytecode; a
    sandbox that sets ``PYTHONDONTWRITEBYTECODE`` would make every run recompile
    mora's sources (~30 ms each). The cache goes to the temporary folder so the
    benchmark leaves nothing in the source tree. The warm-up runs fill it.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return env


def run_once(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``cmd`` as a fresh process; wall seconds from spawn to exit, and its result."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=RUN_ENV, check=False)
    return time.perf_counter() - start, proc


def timed(cmd: list[str]) -> float:
    seconds, proc = run_once(cmd)
    if proc.returncode != 0:
        raise BenchError(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return seconds


def verify_mora(cmd: list[str], project: Path, n: int) -> None:
    _, proc = run_once([*cmd, "check", str(project)])
    words = f"{n} service{'' if n == 1 else 's'}"
    if proc.returncode != 0 or proc.stderr.strip() or words not in proc.stdout:
        raise BenchError(
            f"the generated mora project with {n} services does not check cleanly "
            f"(exit {proc.returncode}):\n{proc.stdout}{proc.stderr[-4000:]}"
        )


def verify_compose(cmd: list[str], path: Path, n: int) -> None:
    _, proc = run_once([*cmd, "-f", str(path), "config"])
    if proc.returncode != 0:
        raise BenchError(f"docker-compose rejects {path} (exit {proc.returncode}):\n{proc.stderr}")
    _, proc = run_once([*cmd, "-f", str(path), "config", "--services"])
    services = proc.stdout.split()
    if proc.returncode != 0 or len(services) != n:
        raise BenchError(f"docker-compose sees {len(services)} services in {path}, expected {n}")


@dataclass
class Row:
    label: str
    mora: list[float] = field(default_factory=list)
    compose: list[float] = field(default_factory=list)
    target_s: float | None = None  # an absolute target on mora's median, if any
    ratio_target: float | None = None

    @property
    def ratio(self) -> float | None:
        if not self.mora or not self.compose:
            return None
        return statistics.median(self.mora) / statistics.median(self.compose)

    @property
    def ratio_of_mins(self) -> float | None:
        """Less sensitive to other load on the machine than the ratio of medians."""
        if not self.mora or not self.compose:
            return None
        return min(self.mora) / min(self.compose)

    def verdicts(self) -> list[tuple[str, bool]]:
        checks = []
        if self.target_s is not None:
            checks.append((f"< {self.target_s:g} s", statistics.median(self.mora) < self.target_s))
        if self.ratio_target is not None and self.ratio is not None:
            checks.append((f"ratio < {self.ratio_target:g}", self.ratio < self.ratio_target))
        return checks

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.verdicts())


def bench_size(mora: list[str], compose: list[str] | None, root: Path, n: int, rounds: int) -> Row:
    project = root / f"mora-{n}"
    project.mkdir()
    (project / "main.mora").write_text(mora_project(n), encoding="utf-8")
    verify_mora(mora, project, n)
    mora_cmd = [*mora, "check", str(project)]
    compose_cmd: list[str] | None = None
    if compose is not None:
        yml = root / f"compose-{n}.yml"
        yml.write_text(compose_file(n), encoding="utf-8")
        verify_compose(compose, yml, n)
        compose_cmd = [*compose, "-f", str(yml), "config"]
    row = Row(
        f"{n} services",
        target_s=TARGET_1000_S if n == 1000 else None,
        ratio_target=TARGET_RATIO,
    )
    for r in range(rounds):
        order = ("mora", "compose") if r % 2 == 0 else ("compose", "mora")
        for tool in order:
            if tool == "mora":
                row.mora.append(timed(mora_cmd))
            elif compose_cmd is not None:
                row.compose.append(timed(compose_cmd))
        print(f"  {row.label}: round {r + 1}/{rounds}", file=sys.stderr, flush=True)
    return row


def bench_media(mora: list[str], runs: int) -> Row:
    cmd = [*mora, "check", str(MEDIA_SERVER)]
    timed(cmd)  # warm-up, and fail loudly if the example does not check
    return Row("media-server", mora=[timed(cmd) for _ in range(runs)], target_s=TARGET_MEDIA_S)


# --------------------------------------------------------------------------- reporting


def _stat(xs: list[float]) -> str:
    if not xs:
        return "–"
    return f"{statistics.median(xs):.3f} ({min(xs):.3f})"


def table(rows: list[Row]) -> str:
    head = [
        "project",
        "mora check s, median (min)",
        "docker-compose config s, median (min)",
        "ratio, medians (mins)",
        "targets",
        "result",
    ]
    body = []
    for row in rows:
        verdicts = row.verdicts()
        body.append(
            [
                row.label,
                _stat(row.mora),
                _stat(row.compose),
                "–" if row.ratio is None else f"{row.ratio:.2f} ({row.ratio_of_mins:.2f})",
                ", ".join(name for name, _ in verdicts) or "–",
                ", ".join("pass" if ok else "FAIL" for _, ok in verdicts) or "–",
            ]
        )
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def _tool_version(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else "unknown"


def context_lines(compose: list[str] | None, rounds: int, load_before: str, load_after: str) -> str:
    compose_v = _tool_version([*compose, "version", "--short"]) if compose else "not installed"
    return "\n".join(
        [
            f"- measured {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} with "
            f"`benchmarks/compile.py --rounds {rounds}`; {os.cpu_count()} cores, "
            f"{os_name()}, Python {platform.python_version()}, "
            f"docker-compose {compose_v}",
            f"- load average (1, 5, 15 min): {load_before} before, {load_after} after",
            f"- generated projects: {rounds} rounds per size alternating mora and "
            f"docker-compose (the order flips every round); media-server: {MEDIA_RUNS} runs",
        ]
    )


def markdown_section(rows: list[Row], context: str) -> str:
    return "\n".join(
        [
            BEGIN,
            "## Compiling: `mora check` beside `docker-compose config`",
            "",
            "`benchmarks/compile.py` generates a mora project and an equivalent compose file "
            "of N services (image, port, subdomain, environment with a param, a generated "
            "secret and a reference to another service, a claim volume, a shared volume) and "
            "times both tools as cold processes. Targets: media-server under "
            f"{TARGET_MEDIA_S:g} s, 1000 services under {TARGET_1000_S:g} s, "
            f"mora/docker-compose under {TARGET_RATIO:g} at every size (medians).",
            "",
            table(rows),
            "",
            context,
            END,
        ]
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="10,100,1000", help="service counts (default 10,100,1000)")
    p.add_argument("--rounds", type=int, default=5, help="timed runs per tool and size")
    p.add_argument("--markdown", metavar="FILE", help="write the table into FILE's compile section")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--keep", action="store_true", help="keep the generated projects")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error("--sizes takes numbers separated by commas, e.g. 10,100,1000")
    if not args.sizes or min(args.sizes) < 1 or args.rounds < 1:
        p.error("sizes and rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mora = mora_command()
    compose = compose_command()
    if compose is None:
        print(
            "docker-compose is not installed (Debian: apt-get install --no-install-recommends "
            "docker-compose); measuring mora only",
            file=sys.stderr,
        )
    load_before = load_average()
    root = Path(tempfile.mkdtemp(prefix="mora-bench-"))
    global RUN_ENV
    RUN_ENV = bytecode_env(root)
    try:
        rows = [bench_media(mora, MEDIA_RUNS)]
        rows += [bench_size(mora, compose, root, n, args.rounds) for n in args.sizes]
    except BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"generated projects kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    context = context_lines(compose, args.rounds, load_before, load_average())
    print(table(rows))
    print()
    print(context)
    if args.markdown:
        write_section(Path(args.markdown), markdown_section(rows, context), BEGIN, END, DOC_INTRO)
        print(f"\nwrote the compile section of {args.markdown}", file=sys.stderr)
    missed = [row.label for row in rows if not row.passed]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
