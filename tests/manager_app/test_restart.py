"""A real server killed mid-update resumes on restart and loses nothing.

`mora manager serve` runs as a subprocess (uvicorn on 127.0.0.1, a free port
read from its output), with a dry-run deployer slowed down by a test-only
environment variable so the first update is still running when the test sends
SIGKILL. The second start must mark that update interrupted, resume it
(refresh, then update), keep every answer, and finish the waves.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from manager_helpers import BEARER, MEDIA_SERVER, PASSWORD, REPO, TOKEN

from manager_app.settings import ADMIN_PASSWORD_ENV, API_TOKEN_ENV, TEST_DEPLOY_DELAY_ENV

SECRET_ANSWER = "restart-s3cret-jellyfin-key"
URL_LINE = re.compile(r"listening on (http://\S+?)/")


class Server:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
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
            found = URL_LINE.search(line)
            if found:
                return found.group(1).replace("localhost", "127.0.0.1")
        raise AssertionError("the server did not start:\n" + "".join(self.output))


@contextmanager
def serve(data: Path, *, delay: float | None) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORA_")}
    env.update({ADMIN_PASSWORD_ENV: PASSWORD, API_TOKEN_ENV: TOKEN, "PYTHONUNBUFFERED": "1"})
    if delay is not None:
        env[TEST_DEPLOY_DELAY_ENV] = str(delay)
    process = subprocess.Popen(
        [sys.executable, "-m", "mora_cli", "manager", "serve", str(MEDIA_SERVER), "--dry-run",
         "--host", "127.0.0.1", "--port", "0", "--data", str(data),
         "--set", "domain=home.example.com", "--set", "media_path=/srv/media"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    server = Server(process)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def updates(client: httpx.Client) -> list[dict[str, Any]]:
    return client.get("/api/v1/updates", headers=BEARER).json()["updates"]


@pytest.mark.slow
def test_a_manager_killed_mid_update_resumes_on_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serve(data, delay=60) as first:
        url = first.url()
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            running = wait_for(
                lambda: [u for u in updates(client) if u["status"] == "running"],
                what="the first update to start",
            )
            assert running[0]["deploy"] == ["jellyfin", "lldap", "prowlarr", "qbittorrent"]
            # An answer arrives while the update runs: it is queued for the next one.
            put = client.put("/api/v1/answers/jellyfin.api_key", json={"value": SECRET_ANSWER},
                             headers=BEARER)
            assert put.status_code == 200
            queued = [u for u in updates(client) if u["status"] == "queued"]
            assert queued and queued[0]["triggers"] == ["answer to jellyfin.api_key"]
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        assert first.process.returncode == -signal.SIGKILL

    with serve(data, delay=None) as second:
        url = second.url()
        with httpx.Client(base_url=url, timeout=10) as client:
            def settled() -> list[dict[str, Any]] | None:
                history = updates(client)
                busy = any(u["status"] in ("queued", "running") for u in history)
                states = {s["name"]: s["state"]
                          for s in client.get("/api/v1/plan", headers=BEARER).json()["services"]}
                return None if busy or states["jellyseerr"] != "running" else history

            history = wait_for(settled, timeout=120, what="the resumed updates to finish")
            by_id = {u["id"]: u for u in history}
            interrupted = by_id[running[0]["id"]]
            assert interrupted["status"] == "interrupted"
            assert by_id[queued[0]["id"]]["status"] == "succeeded"  # the queued answer's update
            resumed = [u for u in history if u["resume"]]
            assert len(resumed) == 1 and resumed[0]["status"] == "succeeded"
            # The resume folds into the update already queued (coalescing), refreshing first.
            assert resumed[0]["id"] == queued[0]["id"]
            assert resumed[0]["triggers"] == [
                "answer to jellyfin.api_key", "resume after the manager restarted",
            ]
            assert resumed[0]["deploy"] == running[0]["deploy"]
            assert all(u["status"] == "succeeded" for u in history if u["id"] != interrupted["id"])

            answer = client.get("/api/v1/answers/jellyfin.api_key", headers=BEARER).json()
            assert answer["answered"] is True and answer.get("value") is None
            plan = client.get("/api/v1/plan", headers=BEARER).json()
            states = {s["name"]: s["state"] for s in plan["services"]}
            assert states["janitorr"] == "waiting_for_input"  # needs jellyseerr's key still
            assert {n for n, s in states.items() if s == "running"} == {
                "lldap", "qbittorrent", "prowlarr", "jellyfin", "sonarr", "radarr", "jellyseerr",
            }
            assert [i["id"] for i in plan["pending_inputs"]] == [
                "lldap.admin_email", "jellyseerr.api_key",
            ]

    output = "".join(first.output + second.output)
    assert SECRET_ANSWER not in output and PASSWORD not in output and TOKEN not in output
    for path in data.iterdir():
        if path.is_file():
            assert SECRET_ANSWER.encode() not in path.read_bytes(), path.name
