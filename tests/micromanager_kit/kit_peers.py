"""Helpers for the micromanager tests: ports, process control, the peers' throwaway configs.

Shared by ``conftest.py`` and the tests (imported as ``from kit_peers import
...``: test folders in this repository are not packages).
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[2]
BASE_DN = "dc=home,dc=example,dc=com"
DOMAIN = "home.example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None,
                  timeout: float = 10.0) -> None:
    """Poll with a raw socket: ldap3 marks a reused Server unavailable after a refusal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass(frozen=True)
class Slapd:
    url: str
    port: int
    base_dn: str
    root_dn: str
    password: str  # the rootpw: what mora's ldap_admin_password is in a real project


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 16777216
suffix "{base}"
rootdn "{root}"
rootpw {password}
directory {dir}/db
"""


@dataclass(frozen=True)
class QBittorrent:
    url: str
    port: int
    save_path: Path


QBT_CONF = """\
[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\PeXEnabled=false
Session\\LSDEnabled=false
Session\\DefaultSavePath={save}
Session\\Port={torrent_port}

[Network]
PortForwardingEnabled=false

[Preferences]
WebUI\\Address=127.0.0.1
WebUI\\Port={port}
WebUI\\UPnP=false
WebUI\\CSRFProtection=true
WebUI\\HostHeaderValidation=false
Connection\\UPnP=false
Downloads\\SavePath={save}
"""


class Served:
    """A uvicorn serving ``app`` on ``port`` in a thread, stoppable and restartable."""

    def __init__(self, app: Any, port: int) -> None:
        self.app, self.port = app, port
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for_port(self.port)

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.thread.join(timeout=10)
