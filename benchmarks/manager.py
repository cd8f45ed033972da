"""Manager benchmark: latency and throughput under 50 concurrent clients, and a burst of answers.

Two servers run as subprocesses on 127.0.0.1, each uvicorn with one worker and
the same settings (``--port 0``, access log off):

* the manager (`mora manager serve examples/media-server --dry-run`), once its
  first update has finished;
* a bare FastAPI app with one ``async def`` endpoint returning a small JSON
  object: the fastest thing FastAPI on this uvicorn can answer, the baseline.

Each endpoint is loaded by 50 concurrent clients (one keep-alive connection
each, ``httpx.AsyncClient`` in this process) that send requests back to back
until a fixed number has been answered or a time cap is reached; latency is the
client-side time per request (:func:`time.perf_counter`). Endpoints: the bare
one, ``GET /api/v1/plan`` (bearer token) and the wizard page ``GET /wizard``
(admin session cookie). The three are measured in rounds, the order rotating
every round; the table gives each one's median round by throughput.

Then the burst: a second manager (started empty) receives a manifest with one
service and 100 string inputs, 100 answers are sent at once (50 clients), and
the benchmark checks they were all accepted within a second, that at most two
updates followed, that they succeeded, and that the last one started after the
last answer was stored (an update reads every answer when it starts, so it
applied them all) and every value reads back as sent.

Targets (issue 4): p99 under 50 ms, throughput at least half the baseline's.

    .venv/bin/python benchmarks/manager.py [--requests 2000] [--rounds 3]
        [--markdown docs/performance.md] [--strict]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import queue
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
MEDIA_SERVER = REPO / "examples" / "media-server"
CLIENTS = 50
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.5
BURST = 100

BEGIN = "<!-- manager:begin -->"
END = "<!-- manager:end -->"

BARE_APP = """
import sys
import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, str]:
    return {"status": "ok"}


uvicorn.run(app, host="127.0.0.1", port=0, log_level="info", access_log=False)
"""

LISTENING = re.compile(r"(?:listening on|running on) (http://\S+?)(?:/|\s|$)", re.IGNORECASE)


# --------------------------------------------------------------------------- servers


class Server:
    """A subprocess whose output is read in a thread until it says where it listens."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def url(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            found = LISTENING.search(line)
            if found:
                return found.group(1).replace("localhost", "127.0.0.1").rstrip("/")
        raise RuntimeError("the server did not start:\n" + "".join(self.output[-20:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def server(args: list[str], env: dict[str, str]) -> Iterator[str]:
    proc = Server(args, env)
    try:
        yield proc.url()
    finally:
        proc.stop()


def manager_args(data: Path, project: Path | None) -> list[str]:
    args = [sys.executable, "-m", "mora_cli", "manager", "serve"]
    if project is not None:  # params come with the project, or with a POSTed manifest
        args += [str(project), "--set", "domain=home.example.com", "--set", "media_path=/srv/media"]
    return [*args, "--dry-run", "--host", "127.0.0.1", "--port", "0", "--data", str(data)]


def server_env(password: str, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORA_")}
    env.update({"MORA_ADMIN_PASSWORD": password, "MORA_API_TOKEN": token, "PYTHONUNBUFFERED": "1"})
    return env


def wait_idle(client: httpx.Client, headers: dict[str, str], timeout: float = 120.0) -> None:
    """Until no update is queued or running (the dry-run deploys the first waves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        updates = client.get("/api/v1/updates", headers=headers).json()["updates"]
        if updates and all(u["status"] not in ("queued", "running") for u in updates):
            time.sleep(0.5)  # a follow-up wave is queued right after an update finishes
            again = client.get("/api/v1/updates", headers=headers).json()["updates"]
            if all(u["status"] not in ("queued", "running") for u in again):
                return
        time.sleep(0.2)
    raise RuntimeError("the manager's updates did not finish")


# --------------------------------------------------------------------------- load


@dataclass
class Stats:
    name: str
    count: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        index = min(len(data) - 1, max(0, round(q / 100 * len(data)) - 1))
        return data[index]


async def load(
    base: str, path: str, *, name: str, requests: int, max_seconds: float,
    headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None,
    clients: int = CLIENTS,
) -> Stats:
    """``clients`` keep-alive connections sending ``GET path`` back to back."""
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = 0.0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.perf_counter() < deadline:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors += 1

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [
        httpx.AsyncClient(base_url=base, headers=headers, cookies=cookies, limits=limits,
                          timeout=30.0)
        for _ in range(clients)
    ]
    try:
        # Warm up: open every connection and let the server's caches fill.
        await asyncio.gather(*(c.get(path) for c in pool))
        deadline = time.perf_counter() + max_seconds
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in pool))
        seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    return Stats(name, len(latencies), errors, seconds, latencies)


# --------------------------------------------------------------------------- the burst


def burst_manifest() -> dict[str, Any]:
    """One service whose environment uses 100 string inputs, all asked before deploying."""
    from mora_dsl.manifest import Graph, Input, Manifest, Project, Ref, Service, Span, TypeSpec

    span = Span(file="main.mora", line=1, column=1, end_line=1, end_column=2)
    inputs = [
        Input(id=f"app.v{i:03d}", name=f"v{i:03d}", service="app", type=TypeSpec(name="string"),
              title=f"Value {i}", when="before_deploy", when_inferred=False, used_by=["app"],
              optional=False, span=span)
        for i in range(BURST)
    ]
    app = Service(
        name="app", image="example/app:1",
        environment={f"V{i:03d}": Ref(ref=f"input:app.v{i:03d}") for i in range(BURST)},
        inputs=[i.id for i in inputs], span=span,
    )
    manifest = Manifest(project=Project(name="burst", namespace="burst", span=span),
                        services=[app], inputs=inputs, graph=Graph(edges=[], waves=[["app"]]))
    return manifest.model_dump(mode="json")


@dataclass
class BurstResult:
    seconds: float
    accepted: int
    updates: int
    statuses: list[str]
    applied: bool


async def burst(base: str, bearer: dict[str, str]) -> BurstResult:
    values = {f"app.v{i:03d}": f"value-{i}-{secrets.token_hex(4)}" for i in range(BURST)}
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, headers=bearer, limits=limits, timeout=30) as client:
        response = await client.post("/api/v1/manifests", json={"manifest": burst_manifest()})
        response.raise_for_status()
        # The manifest's own update (nothing is deployable yet) must be over first.
        for _ in range(600):
            updates = (await client.get("/api/v1/updates")).json()["updates"]
            if all(u["status"] not in ("queued", "running") for u in updates):
                break
            await asyncio.sleep(0.05)
        before = {u["id"] for u in updates}
        started = time.perf_counter()
        answers = await asyncio.gather(*(
            client.put(f"/api/v1/answers/{key}", json={"value": value})
            for key, value in values.items()
        ))
        seconds = time.perf_counter() - started
        for _ in range(1200):
            updates = (await client.get("/api/v1/updates")).json()["updates"]
            new = [u for u in updates if u["id"] not in before]
            if new and all(u["status"] not in ("queued", "running") for u in new):
                await asyncio.sleep(0.5)  # a follow-up would be queued by now
                updates = (await client.get("/api/v1/updates")).json()["updates"]
                new = [u for u in updates if u["id"] not in before]
                if all(u["status"] not in ("queued", "running") for u in new):
                    break
            await asyncio.sleep(0.05)
        stored = await asyncio.gather(*(client.get(f"/api/v1/answers/{key}") for key in values))
    last_answer = max(s.json()["updated_at"] for s in stored)
    last_update = max(new, key=lambda u: u["id"])
    applied = (
        all(s.json()["value"] == values[s.json()["id"]] for s in stored)
        and last_update["status"] == "succeeded"
        and (last_update["started_at"] or "") >= last_answer
        and "app" in last_update["deploy"]
    )
    return BurstResult(
        seconds=seconds,
        accepted=sum(r.status_code == 200 for r in answers),
        updates=len(new),
        statuses=[u["status"] for u in sorted(new, key=lambda u: u["id"])],
        applied=applied,
    )


# --------------------------------------------------------------------------- run


def median_round(rounds: list[Stats]) -> Stats:
    ordered = sorted(rounds, key=lambda s: s.rps)
    return ordered[len(ordered) // 2]


def loadavg() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run(requests: int, rounds: int, max_seconds: float) -> dict[str, Any]:
    password, token = secrets.token_urlsafe(18), secrets.token_urlsafe(24)
    bearer = {"Authorization": f"Bearer {token}"}
    env = server_env(password, token)
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="mora-bench-manager-") as tmp:
        tmp_path = Path(tmp)
        with server([sys.executable, "-c", BARE_APP], env) as bare_url, \
                server(manager_args(tmp_path / "media", MEDIA_SERVER), env) as manager_url:
            with httpx.Client(base_url=manager_url, timeout=30) as client:
                wait_idle(client, bearer)
                login = client.post("/api/v1/login", json={"password": password})
                login.raise_for_status()
                cookies = dict(login.cookies)
                wizard = client.get("/wizard", cookies=cookies)
                wizard_path = "/wizard" if wizard.status_code == 200 else "/"
            targets = [
                ("bare FastAPI endpoint (baseline)", bare_url, "/bare", None, None),
                ("GET /api/v1/plan", manager_url, "/api/v1/plan", bearer, None),
                (f"GET {wizard_path} (wizard page)", manager_url, wizard_path, None, cookies),
            ]
            results: dict[str, list[Stats]] = {t[0]: [] for t in targets}
            for r in range(rounds):
                order = targets[r % len(targets):] + targets[:r % len(targets)]
                for name, base, path, headers, cookie in order:
                    stats = asyncio.run(load(base, path, name=name, requests=requests,
                                             max_seconds=max_seconds, headers=headers,
                                             cookies=cookie))
                    results[name].append(stats)
                    print(f"  round {r + 1}: {name}: {stats.rps:.0f} req/s, "
                          f"p50 {stats.pct(50):.1f} ms, p99 {stats.pct(99):.1f} ms, "
                          f"{stats.errors} errors", file=sys.stderr)
        with server(manager_args(tmp_path / "burst", None), env) as burst_url:
            burst_result = asyncio.run(burst(burst_url, bearer))
    return {
        "stats": {name: median_round(rs) for name, rs in results.items()},
        "burst": burst_result,
        "load_before": load_before,
        "load_after": loadavg(),
        "requests": requests,
        "rounds": rounds,
    }


def verdicts(result: dict[str, Any]) -> tuple[list[list[str]], list[bool]]:
    stats: dict[str, Stats] = result["stats"]
    names = list(stats)
    baseline = stats[names[0]]
    rows, passed = [], []
    for name in names:
        s = stats[name]
        ratio = s.rps / baseline.rps if baseline.rps else 0.0
        if name == names[0]:
            target, verdict = "–", "baseline"
        else:
            ok_p99 = s.pct(99) < TARGET_P99_MS
            ok_ratio = ratio >= TARGET_RATIO
            passed += [ok_p99, ok_ratio]
            target = f"p99 < {TARGET_P99_MS:.0f} ms, ≥ {TARGET_RATIO:.1f}× baseline"
            verdict = ", ".join("pass" if ok else "FAIL" for ok in (ok_p99, ok_ratio))
        rows.append([name, f"{s.pct(50):.1f}", f"{s.pct(99):.1f}", f"{s.rps:.0f}",
                     f"{ratio:.2f}", f"{s.count} / {s.errors}", target, verdict])
    return rows, passed


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    return "\n".join([line, rule, *body])


def markdown(result: dict[str, Any]) -> str:
    rows, _ = verdicts(result)
    b: BurstResult = result["burst"]
    burst_ok = b.seconds < 1.0 and b.accepted == BURST and 1 <= b.updates <= 2 and b.applied
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = ["endpoint", "p50 ms", "p99 ms", "req/s", "× baseline", "requests / errors",
              "targets", "result"]
    burst_rows = [[
        f"{BURST} answers (PUT /api/v1/answers/…, {CLIENTS} at a time)",
        f"{b.seconds:.2f} s", f"{b.accepted}/{BURST}", f"{b.updates} ({', '.join(b.statuses)})",
        "yes" if b.applied else "NO", "< 1 s, ≤ 2 updates, every value",
        "pass" if burst_ok else "FAIL",
    ]]
    return "\n".join([
        BEGIN,
        "## The manager: latency under 50 concurrent clients, a burst of answers",
        "",
        "`benchmarks/manager.py` serves the manager (`mora manager serve examples/media-server "
        "--dry-run`, after its first update) and a bare FastAPI app (one `async def` endpoint "
        "returning a small JSON object) as uvicorn subprocesses on 127.0.0.1, one worker each, "
        f"and loads each endpoint with {CLIENTS} concurrent keep-alive clients (httpx, in the "
        "benchmark's own process) sending requests back to back. Latency is measured by the "
        "client; each row is the median of the rounds by throughput. Targets: p99 under 50 ms "
        "and at least half the baseline's throughput.",
        "",
        table(header, rows),
        "",
        table(["burst", "sent in", "accepted", "updates after it", "every value applied",
               "targets", "result"], burst_rows),
        "",
        f"- measured {now} with `benchmarks/manager.py --requests {result['requests']} "
        f"--rounds {result['rounds']}`; {os.cpu_count()} cores, {platform_name()}, "
        f"Python {platform.python_version()}",
        f"- load average (1, 5, 15 min): {result['load_before']} before, "
        f"{result['load_after']} after; the client, the servers and any other work share the "
        "same cores, so the client's own cost is part of every number, baseline included",
        *([baseline_note(result)] if baseline_note(result) else []),
        "- the burst: a manager started empty receives a manifest with one service and 100 "
        "string inputs; 'every value applied' means every answer reads back as sent and the "
        "last update succeeded and started after the last answer was stored (an update reads "
        "all answers when it starts)",
        END,
    ])


def baseline_note(result: dict[str, Any]) -> str:
    """Why a p99 target can be out of reach for every endpoint, the baseline included."""
    baseline: Stats = next(iter(result["stats"].values()))
    if baseline.pct(99) < TARGET_P99_MS:
        return ""
    return (
        f"- the bare endpoint itself misses the p99 target here ({baseline.pct(99):.0f} ms): "
        f"with {CLIENTS} clients sending back to back, latency is about {CLIENTS} / throughput "
        "(Little's law), so p99 under 50 ms needs well over 1000 req/s from one uvicorn worker "
        "(pure-Python h11: httptools and uvloop are not installed) sharing the cores with the "
        "Python client and other work; the throughput ratio is the comparable number"
    )


def platform_name() -> str:
    try:
        info = platform.freedesktop_os_release()
        return info.get("PRETTY_NAME", platform.platform())
    except OSError:
        return platform.platform()


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Performance\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="time cap per endpoint and round")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="write the table into this file between the manager markers")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    result = run(args.requests, args.rounds, args.max_seconds)
    section = markdown(result)
    print(section)
    if args.markdown is not None:
        write_section(args.markdown, section)
    _, passed = verdicts(result)
    b: BurstResult = result["burst"]
    passed.append(b.seconds < 1.0 and b.accepted == BURST and 1 <= b.updates <= 2 and b.applied)
    return 1 if args.strict and not all(passed) else 0


if __name__ == "__main__":
    sys.exit(main())
