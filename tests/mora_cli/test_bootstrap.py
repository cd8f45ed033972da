"""`mora up` through the in-cluster manager (``mora_cli.bootstrap``).

* A fake manager made with respx (httpx's mock transport) answers ``/healthz``,
  accepts the manifest and reports a sequence of plans; the test checks what is
  sent (bearer token, manifest, params) and what the terminal shows.
* When ``/healthz`` fails, the manager stack is deployed through the Automation
  API: a recording stand-in for the Pulumi CLI checks that ``<stack>-manager`` is
  selected (created when missing), configured and brought ``up``.
* A real manager (``mora manager serve`` with no project, dry-run, uvicorn on
  loopback) receives the minimal example from `mora up --manager-url` and brings
  it to ``running``.
* A real deployment into a cluster runs only when the Pulumi CLI, a kubeconfig and
  a manager image are there, and is skipped with the reason otherwise.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cli_helpers import REPO, needs_checker, why_no_real_cluster
from test_stack_commands import RecordingPulumi

from mora_cli import bootstrap
from mora_cli.main import main
from stacks.manager_program import ManagerConfig, ManagerWorkspace

pytestmark = needs_checker

MINIMAL = str(REPO / "examples" / "minimal")
URL = "https://mora.hello.example.org"
TOKEN = "tok-0123456789-do-not-print"
PASSWORD = "admin-pw-do-not-print"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private mora home, no Pulumi CLI, no token in the environment, fast polling."""
    path = tmp_path / "mora-home"
    monkeypatch.setenv("MORA_HOME", str(path))
    monkeypatch.delenv(bootstrap.API_TOKEN_ENV, raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(bootstrap, "POLL_INTERVAL", 0.0)
    return path


def _init(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    capsys.readouterr()


def _service(name: str, state: str) -> dict[str, Any]:
    return {"name": name, "state": state, "wave": 0, "dependencies": [], "missing_inputs": [],
            "update_after": []}


def _plan(state: str, pending: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"project": "hello", "services": [_service("whoami", state)], "waves": [["whoami"]],
            "pending_inputs": pending or [], "upcoming_inputs": [], "pending_removals": [],
            "complete": state == "running"}


def _sequence(responses: list[httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    """Answer with each response in turn, then keep answering with the last one."""
    queue = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


class FakeManager:
    """Routes of a manager on ``URL``; records what `mora up` sent."""

    def __init__(self, router: respx.MockRouter, *, healthy: list[bool],
                 plans: list[dict[str, Any]], busy: list[bool] | None = None,
                 token: str = TOKEN) -> None:
        self.sent: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        health = [httpx.Response(200, json={"status": "ok"}) if ok else None for ok in healthy]

        def healthz(request: httpx.Request) -> httpx.Response:
            answer = health.pop(0) if len(health) > 1 else health[0]
            if answer is None:
                raise httpx.ConnectError("connection refused", request=request)
            return answer

        def authorised(request: httpx.Request) -> bool:
            self.auth.append(request.headers.get("authorization"))
            return request.headers.get("authorization") == f"Bearer {token}"

        def manifests(request: httpx.Request) -> httpx.Response:
            if not authorised(request):
                return httpx.Response(401, json={"detail": "not logged in"})
            self.sent.append(json.loads(request.content))
            return httpx.Response(201, json={"manifest_id": 1, "update_id": 1, "changes": {
                "added_services": ["whoami"], "removed_services": [], "changed_services": [],
                "added_inputs": [], "removed_inputs": [], "changed_inputs": [],
                "now_reference": {}}})

        plan_answers = _sequence([httpx.Response(200, json=p) for p in plans])
        busy_answers = _sequence([httpx.Response(200, json={"updates": [
            {"id": 1, "status": "running" if b else "succeeded"}]}) for b in (busy or [False])])

        def plan(request: httpx.Request) -> httpx.Response:
            return plan_answers(request) if authorised(request) else httpx.Response(401)

        router.get(f"{URL}/healthz").mock(side_effect=healthz)
        router.post(f"{URL}/api/v1/manifests").mock(side_effect=manifests)
        router.get(f"{URL}/api/v1/plan").mock(side_effect=plan)
        router.get(f"{URL}/api/v1/updates").mock(side_effect=busy_answers)


def _save_token(home: Path) -> None:
    bootstrap.save_credentials(home, "hello", "home", bootstrap.Credentials(
        url=URL, api_token=TOKEN))


# --------------------------------------------------------------------------- a running manager


def test_up_sends_the_manifest_and_follows_the_plan(home, capsys) -> None:
    _init(capsys)
    _save_token(home)
    with respx.mock(assert_all_called=False) as router:
        fake = FakeManager(router, healthy=[True], plans=[
            _plan("ready"), _plan("deploying"), _plan("deploying"), _plan("running")],
            busy=[True, True, True, False])
        assert main(["up", MINIMAL, "--stack", "home"]) == 0
    (sent,) = fake.sent
    assert sent["manifest"]["project"]["name"] == "hello"
    assert sent["params"] == {"domain": "hello.example.org"}
    assert set(fake.auth) == {f"Bearer {TOKEN}"}
    captured = capsys.readouterr()
    err = captured.err
    assert "Sent hello to the manager at https://mora.hello.example.org" in err
    assert "added services: whoami" in err
    # Each state change once, in order.
    assert err.index("whoami: ready") < err.index("whoami: ready → deploying") \
        < err.index("whoami: deploying → running")
    assert err.count("→ deploying") == 1
    assert "1 of 1 services running" in err
    assert captured.out.strip() == f"wizard  {URL}/"
    assert TOKEN not in captured.out + captured.err


def test_up_stops_when_the_wizard_must_ask(home, capsys) -> None:
    _init(capsys)
    _save_token(home)
    question = {"id": "whoami.name", "service": "whoami", "title": "Your name",
                "type": "string", "when": "before_deploy", "optional": False, "blocks": []}
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[True], plans=[_plan("waiting_for_input", [question])])
        assert main(["up", MINIMAL, "--stack", "home"]) == 0
    err = capsys.readouterr().err
    assert "whoami: waiting for input" in err
    assert "The wizard asks 1 question(s): Your name" in err


def test_a_failed_service_points_at_the_wizard_and_exits_1(home, capsys) -> None:
    _init(capsys)
    _save_token(home)
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[True], plans=[_plan("deploying"), _plan("failed")],
                    busy=[True, False])
        assert main(["up", MINIMAL, "--stack", "home"]) == 1
    captured = capsys.readouterr()
    assert "mora: error: the update failed for whoami; see the wizard" in captured.err
    assert captured.out.strip() == f"wizard  {URL}/"


def test_a_refused_token_is_one_clear_line(home, capsys) -> None:
    _init(capsys)
    _save_token(home)
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[True], plans=[_plan("running")], token="another")
        assert main(["up", MINIMAL, "--stack", "home"]) == 1
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("mora: error:")]
    assert "refused the API token" in line
    assert TOKEN not in err


def test_the_token_can_come_from_the_environment(home, monkeypatch, capsys) -> None:
    _init(capsys)
    monkeypatch.setenv(bootstrap.API_TOKEN_ENV, TOKEN)
    with respx.mock(assert_all_called=False) as router:
        fake = FakeManager(router, healthy=[True], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home"]) == 0
    assert fake.sent


# --------------------------------------------------------------------------- no manager yet


def _ca_pem() -> str:
    """A real self-signed CA certificate: the client builds its TLS context from it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mora manager CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., RecordingPulumi]:
    """Pretend the CLI and a kubeconfig exist; the manager workspace uses a recording CLI."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))

    def install(**kw: Any) -> RecordingPulumi:
        monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: "/usr/local/bin/" + name)
        cli = RecordingPulumi(**kw)
        made: list[ManagerConfig] = []

        def factory(config: ManagerConfig, *, backend_url: str | None = None,
                    kubeconfig: Path | None = None) -> ManagerWorkspace:
            made.append(config)
            return ManagerWorkspace(config, backend_url=backend_url, kubeconfig=kubeconfig,
                                    pulumi_command=cli)

        monkeypatch.setattr(bootstrap, "_manager_workspace_factory", factory)
        cli.configs = made  # type: ignore[attr-defined]
        return cli

    return install


def test_a_missing_manager_is_deployed_then_sent_the_manifest(home, engine, capsys) -> None:
    ca = _ca_pem()
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org",
                 "--storage-class", "local-path"]) == 0
    capsys.readouterr()
    cli = engine(missing=("home-manager",), outputs={
        "url": URL, "namespace": "mora-system", "api_token": TOKEN,
        "admin_password": PASSWORD, "ca_cert_pem": ca})
    with respx.mock(assert_all_called=False) as router:
        fake = FakeManager(router, healthy=[False, False, True],
                           plans=[_plan("deploying"), _plan("running")], busy=[True, False])
        assert main(["up", MINIMAL, "--stack", "home", "--manager-image",
                     "registry.example/mora-manager:1"]) == 0

    # The manager stack: selected, created when missing, configured, brought up.
    assert ["stack", "select", "--stack", "home-manager"] in cli.calls
    (init,) = cli.named("stack", "init")
    assert init[:3] == ["stack", "init", "home-manager"]
    (set_all,) = cli.named("config", "set-all")
    (value,) = [a for a in set_all if a.startswith("mora:manager=")]
    config = ManagerConfig.from_text(value.removeprefix("mora:manager="))
    assert config.stack == "home" and config.domain == "hello.example.org"
    assert config.project_namespaces == ["hello"]
    assert config.image == "registry.example/mora-manager:1"
    assert config.storage_class == "local-path"
    assert config.stack_settings == {"storage_class": "local-path"}
    (up,) = cli.named("up")
    assert "--yes" in up
    # Then the manifest, with the token from the stack's outputs.
    assert fake.sent and set(fake.auth) == {f"Bearer {TOKEN}"}
    path = home / "managers" / "hello" / "home.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    kept = json.loads(path.read_text())
    assert kept["api_token"] == TOKEN and kept["ca_cert_pem"] == ca
    captured = capsys.readouterr()
    assert "The manager does not answer at https://mora.hello.example.org; deploying it" \
        in captured.err
    assert f"its credentials are in {path} (0600)" in captured.err
    assert TOKEN not in captured.out + captured.err
    assert PASSWORD not in captured.out + captured.err


def test_a_running_manager_is_widened_to_a_new_namespace(home, engine, capsys) -> None:
    """The manager's RBAC names the namespaces it may write to: a new one updates it."""
    _init(capsys)
    bootstrap.save_credentials(home, "hello", "home", bootstrap.Credentials(
        url=URL, api_token=TOKEN, namespaces=["older"]))
    cli = engine(outputs={"api_token": TOKEN, "project_namespaces": ["hello", "older"]})
    with respx.mock(assert_all_called=False) as router:
        fake = FakeManager(router, healthy=[True], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home"]) == 0
    (config,) = cli.configs  # type: ignore[attr-defined]
    assert config.project_namespaces == ["hello", "older"]
    assert cli.named("up") and fake.sent
    kept = bootstrap.load_credentials(home, "hello", "home")
    assert kept.namespaces == ["hello", "older"]
    assert "The manager may not write to namespace hello yet; deploying it" in \
        capsys.readouterr().err
    # Next time nothing is redeployed.
    cli.calls.clear()
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[True], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home"]) == 0
    assert not cli.named("up")


def test_the_stack_namespace_setting_wins_over_the_projects() -> None:
    from cli_helpers import sample_manifest_model

    from mora_cli.stack_store import StackRecord
    from stacks.manager_program import FORWARDED_SETTINGS

    manifest = sample_manifest_model()
    plain = StackRecord(project="demo", stack="home", domain="example.org")
    assert bootstrap.project_namespace(manifest, plain) == "demo"
    own = StackRecord(project="demo", stack="friend", domain="example.org",
                      settings={"namespace": "demo-friend"})
    assert bootstrap.project_namespace(manifest, own) == "demo-friend"
    assert "namespace" in FORWARDED_SETTINGS
    config = bootstrap.manager_config(manifest, own, object())
    assert config.project_namespaces == ["demo-friend"]
    assert config.stack_settings == {"namespace": "demo-friend"}


def test_no_pulumi_cli_to_deploy_the_manager_exits_3_with_one_sentence(home, capsys) -> None:
    _init(capsys)
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[False], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("mora: error: The Pulumi CLI (`pulumi`) is not installed")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_a_deployed_manager_that_never_answers_exits_3(home, engine, monkeypatch, capsys) -> None:
    _init(capsys)
    engine(missing=("home-manager",), outputs={"api_token": TOKEN})
    monkeypatch.setattr(bootstrap, "READY_TIMEOUT", 0.0)
    with respx.mock(assert_all_called=False) as router:
        fake = FakeManager(router, healthy=[False], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home"]) == 3
    err = capsys.readouterr().err
    assert "does not answer after 0 s" in err and "--manager-url" in err
    assert not fake.sent


def test_no_domain_and_no_manager_url_is_misuse(home, tmp_path, capsys) -> None:
    project = tmp_path / "nodomain"
    project.mkdir()
    (project / "main.mora").write_text(
        'project "plain" {\n  description = "No domain"\n}\n\n'
        'service web {\n  image = "traefik/whoami:v1.10"\n  port http = 80\n}\n')
    assert main(["init", str(project), "--stack", "home"]) == 0
    capsys.readouterr()
    assert main(["up", str(project), "--stack", "home"]) == 2
    assert "give it with --manager-url URL" in capsys.readouterr().err


# --------------------------------------------------------------------------- a real manager


URL_LINE = re.compile(r"listening on (http://\S+?)/")


@pytest.fixture
def real_manager(tmp_path: Path) -> Iterator[str]:
    """`mora manager serve` with no project, dry-run, on a free loopback port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORA_")}
    env.update({"MORA_API_TOKEN": TOKEN, "MORA_ADMIN_PASSWORD": PASSWORD,
                "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "mora_cli", "manager", "serve", "--dry-run", "--stack", "home",
         "--host", "127.0.0.1", "--port", "0", "--data", str(tmp_path / "manager-data")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: list[str] = []
    found: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = URL_LINE.search(line)
            if match and not found:
                found.append(match.group(1).replace("localhost", "127.0.0.1"))

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while not found and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    try:
        assert found, "the manager did not start:\n" + "".join(lines)
        yield found[0]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert TOKEN not in "".join(lines) and PASSWORD not in "".join(lines)


@pytest.mark.slow
def test_up_against_a_real_manager_started_without_a_project(
        home, real_manager, monkeypatch, capsys) -> None:
    _init(capsys)
    with httpx.Client(base_url=real_manager, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        # No project yet: the plan is empty until `mora up` sends one.
        no_plan = client.get("/api/v1/plan", headers={"Authorization": f"Bearer {TOKEN}"})
        assert no_plan.status_code == 404
    monkeypatch.setenv(bootstrap.API_TOKEN_ENV, TOKEN)
    monkeypatch.setattr(bootstrap, "POLL_INTERVAL", 0.2)
    assert main(["up", MINIMAL, "--stack", "home", "--manager-url", real_manager]) == 0
    captured = capsys.readouterr()
    assert "whoami:" in captured.err and "→ running" in captured.err
    assert "1 of 1 services running" in captured.err
    assert captured.out.strip() == f"wizard  {real_manager}/"
    with httpx.Client(base_url=real_manager, timeout=10) as client:
        plan = client.get("/api/v1/plan", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert plan["project"] == "hello"
    assert [(s["name"], s["state"]) for s in plan["services"]] == [("whoami", "running")]


def test_serve_without_path_refuses_set(capsys) -> None:
    assert main(["manager", "serve", "--set", "domain=x.example"]) == 2
    assert "--set needs PATH" in capsys.readouterr().err


# --------------------------------------------------------------------------- a real cluster


_REAL_REASON = why_no_real_cluster(manager_image=True)


@pytest.mark.needs_pulumi
@pytest.mark.skipif(_REAL_REASON is not None, reason=str(_REAL_REASON))
def test_real_bootstrap_into_a_cluster(tmp_path, monkeypatch, capsys) -> None:
    """Deploys the manager for real, then the minimal example through it (needs DNS for
    ``mora.<MORA_TEST_DOMAIN>`` to reach the cluster's ingress)."""
    monkeypatch.undo()  # the real `which`, the real stdin
    monkeypatch.setenv("MORA_HOME", str(tmp_path / "home"))
    domain = os.environ.get("MORA_TEST_DOMAIN", "mora-test.example.org")
    assert main(["init", MINIMAL, "--stack", "e2e", "--set", f"domain={domain}"]) == 0
    assert main(["up", MINIMAL, "--stack", "e2e", "--manager-image",
                 os.environ["MORA_TEST_MANAGER_IMAGE"]]) == 0
    assert f"wizard  https://mora.{domain}/" in capsys.readouterr().out
