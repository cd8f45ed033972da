"""End to end: the manager in dry run, the ``ldap`` micromanager and a real slapd.

Real pieces only, each its own process on loopback:

* ``mora manager serve PROJECT --dry-run`` (uvicorn) with a small project whose
  ``directory`` service is lldap-like (``micromanager = "ldap"``, an
  ``admin_email`` input, the generated ``ldap_admin_password`` in its
  environment as ``LLDAP_LDAP_USER_PASS``);
* Debian's ``slapd`` standing in for the directory, started once the manager
  has generated ``ldap_admin_password`` (its root password is that secret, as
  lldap's admin password would be);
* ``mora micromanager run ldap`` with the token the manager wrote to its data
  folder, pointed at slapd with ``--service-host``/``--service-port``.

The admin answers the wizard through the API (bearer token); the manager
deploys (dry run), calls the sidecar's after-start hook, and the directory
then holds the administrator and both groups. The "add a person" action used
through the manager creates a person who can bind. Secrets, tokens and typed
passwords never appear in either log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "micromanager_kit"))  # the slapd helpers live there

from kit_peers import SLAPD_CONF, free_port, wait_for_port  # noqa: E402

SLAPD = shutil.which("slapd") or ("/usr/sbin/slapd" if Path("/usr/sbin/slapd").exists() else None)
if SLAPD is None:
    pytest.skip("needs slapd (Debian package slapd; `make system-deps` installs it)",
                allow_module_level=True)

with warnings.catch_warnings():  # ldap3 2.9 imports names pyasn1 deprecated
    warnings.simplefilter("ignore", DeprecationWarning)
    import ldap3

pytestmark = [pytest.mark.timeout(180)]

DOMAIN = "home.example.com"
BASE = "dc=home,dc=example,dc=com"
EMAIL = "admin@home.example.com"
API_TOKEN = "e2e-api-token-" + secrets.token_hex(12)
LISTENING = re.compile(r"listening on http://[^:]+:(\d+)/")

PROJECT = """\
project "directory" {
  description = "A directory for signing in"
}

param domain: domain {
  prompt  = "Base domain"
  example = "home.example.com"
}

secret ldap_admin_password = password(length = 32)

service directory {
  image     = "lldap/lldap:v0.6.1"
  port http = 17170
  port ldap = 3890 { public = false }
  environment = {
    LLDAP_LDAP_BASE_DN   = base_dn(domain)
    LLDAP_LDAP_USER_PASS = ldap_admin_password
  }
  micromanager = "ldap"

  input admin_email: email {
    title = "Administrator e-mail"
  }
}
"""


def wait_for(what: str, check: Callable[[], Any], *, timeout: float = 60.0,
             logs: tuple[Path, ...] = ()) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            shown = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
            pytest.fail(f"{what}: not within {timeout} s\n{shown}")
        time.sleep(0.1)


def terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process a test starts, stopped in reverse order afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in reversed(started):
            terminate(process)


def start(command: list[str], log: Path, env: dict[str, str],
          processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    processes.append(process)
    return process


def bind(port: int, dn: str, password: str) -> bool:
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=port, get_info=ldap3.NONE),
                            user=dn, password=password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def members(port: int, root_password: str, group: str) -> list[str]:
    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=port, get_info=ldap3.NONE),
                            user=f"cn=admin,{BASE}", password=root_password, auto_bind=True)
    try:
        conn.search(f"cn={group},ou=groups,{BASE}", "(objectClass=*)", search_scope=ldap3.BASE,
                    attributes=["uniqueMember"])
        return [str(m) for r in conn.response or [] for m in r["attributes"].get("uniqueMember", [])]
    finally:
        conn.unbind()


def test_the_wizard_answer_sets_up_the_directory_and_the_add_person_tool_works(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.mora").write_text(PROJECT)
    data = tmp_path / "data"
    manager_log, sidecar_log = tmp_path / "manager.log", tmp_path / "sidecar.log"
    logs = (manager_log, sidecar_log)
    env = {**os.environ, "MORA_ADMIN_PASSWORD": "e2e-admin-" + secrets.token_hex(8),
           "MORA_API_TOKEN": API_TOKEN, "MORA_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    env.pop("MORA_MICROMANAGER_TOKEN", None)

    # 1. the manager, dry run, on a free port
    manager = start([sys.executable, "-m", "mora_cli", "manager", "serve", str(project),
                     "--dry-run", "--host", "127.0.0.1", "--port", "0", "--data", str(data),
                     "--set", f"domain={DOMAIN}"], manager_log, env, processes)

    def listening() -> int | None:
        assert manager.poll() is None, manager_log.read_text()
        match = LISTENING.search(manager_log.read_text())
        return int(match.group(1)) if match else None

    url = f"http://127.0.0.1:{wait_for('the manager listens', listening, logs=logs)}"
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30)

    # 2. its first update generates the directory's admin password; the token is in the data folder
    secrets_file = data / "dry-run" / "secrets.json"
    token_file = data / "micromanagers" / "directory.token"
    wait_for("the secret and the token", lambda: secrets_file.exists() and token_file.exists()
             and "ldap_admin_password" in json.loads(secrets_file.read_text()), logs=logs)
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    root_password = json.loads(secrets_file.read_text())["ldap_admin_password"]
    token = token_file.read_text()

    # 3. slapd, its root password the generated secret (an empty directory: no base entry)
    (tmp_path / "slapd" / "db").mkdir(parents=True)
    conf = tmp_path / "slapd" / "slapd.conf"
    conf.write_text(SLAPD_CONF.format(dir=tmp_path / "slapd", base=BASE, root=f"cn=admin,{BASE}",
                                      password=root_password))
    ldap_port = free_port()
    slapd = subprocess.Popen([str(SLAPD), "-f", str(conf), "-h", f"ldap://127.0.0.1:{ldap_port}/",
                              "-d", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes.append(slapd)
    wait_for_port(ldap_port, slapd)

    # 4. the ldap micromanager, with the service's token from the environment
    sidecar_port = free_port()
    start([sys.executable, "-m", "mora_cli", "micromanager", "run", "ldap", "--manager", url,
           "--service", "directory", "--host", "127.0.0.1", "--port", str(sidecar_port),
           "--service-host", "127.0.0.1", "--service-port", f"ldap={ldap_port}"],
          sidecar_log, {**env, "MORA_MICROMANAGER_TOKEN": token}, processes)

    def status() -> dict[str, Any]:
        response = api.get("/api/v1/micromanagers/directory")
        assert response.status_code == 200, response.text
        return dict(response.json())

    registered = wait_for("the sidecar registers", lambda: status()["registered"] and status(),
                          logs=logs)
    assert registered["url"] == f"http://127.0.0.1:{sidecar_port}"
    assert [a["name"] for a in registered["actions"]] == ["add_person", "reset_password",
                                                          "add_to_group"]
    plan = api.get("/api/v1/plan").json()
    assert [i["id"] for i in plan["pending_inputs"]] == ["directory.admin_email"]

    # 5. the admin answers the wizard; the update runs the service; after-start sets it up
    answered = api.put("/api/v1/answers/directory.admin_email", json={"value": EMAIL})
    assert answered.status_code == 200, answered.text

    def after_start() -> dict[str, Any] | None:
        hooks = {h["hook"]: h for h in status()["hook_status"]}
        found = hooks.get("after_start")
        return found if found and found["status"] != "running" else None

    done = wait_for("the after-start hook", after_start, logs=logs)
    assert done["status"] == "ok", done
    assert f"created uid=admin,ou=people,{BASE}" in done["changes"]
    assert api.get("/api/v1/plan").json()["complete"] is True

    admin = f"uid=admin,ou=people,{BASE}"
    assert bind(ldap_port, admin, root_password)
    for group in ("admins", "users"):
        assert members(ldap_port, root_password, group) == [admin]

    # 6. "add a person" from the manager: the person can bind, and is in users
    password = "ada-" + secrets.token_hex(8)
    response = api.post("/api/v1/micromanagers/directory/actions/add_person", json={"values": {
        "uid": "ada", "full_name": "Ada Lovelace", "email": "ada@home.example.com",
        "password": password}})
    assert response.status_code == 200, response.text
    person = f"uid=ada,ou=people,{BASE}"
    assert response.json()["data"] == {"dn": person}
    assert bind(ldap_port, person, password)
    assert not bind(ldap_port, person, "wrong-" + password)
    assert person in members(ldap_port, root_password, "users")
    again = api.post("/api/v1/micromanagers/directory/actions/add_person", json={"values": {
        "uid": "ada", "full_name": "Ada Lovelace", "password": password}})
    assert again.status_code == 500 and "exists already" in again.json()["detail"]
    api.close()

    # 7. nothing secret in either log
    for process in reversed(processes):
        terminate(process)
    for log in logs:
        text = log.read_text()
        for value in (root_password, token, password, API_TOKEN):
            assert value not in text, f"a secret value in {log.name}"
