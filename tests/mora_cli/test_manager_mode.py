"""`preview`, `destroy`, `ca` and `secrets show` for a stack the in-cluster manager runs.

* The stack record remembers how the last `mora up` deployed (``mode``) and the
  manager options it was given; a later `mora up` reuses them (and says so).
* With a respx fake manager: each command calls its endpoint with the API token
  from the credentials file, never prints the token or the admin password, and
  turns 401/403/404/5xx into one ``mora: error:`` line with exit code 1, a
  manager that does not answer into exit code 3.
* `mora destroy --manager` also removes the manager's own stack through the
  Automation API (a recording stand-in for the Pulumi CLI).
* A real dry-run manager on loopback goes through up, preview, ca, secrets show
  and destroy.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from cli_helpers import needs_checker
from test_bootstrap import (
    MINIMAL,
    PASSWORD,
    TOKEN,
    URL,
    FakeManager,
    _plan,
    engine,  # noqa: F401  (fixture)
    real_manager,  # noqa: F401  (fixture)
)
from test_stack_commands import RecordingPulumi

from mora_cli import bootstrap, manager_mode, stack_commands, stack_store
from mora_cli.main import main
from stacks.automation import Workspace
from stacks.manager_program import ManagerConfig

pytestmark = needs_checker

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
SECRET_VALUE = "generated-secret-value-shown-once"
INIT = ["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private mora home, no Pulumi CLI, no token or password in the environment."""
    path = tmp_path / "mora-home"
    monkeypatch.setenv("MORA_HOME", str(path))
    monkeypatch.delenv(bootstrap.API_TOKEN_ENV, raising=False)
    monkeypatch.delenv(manager_mode.ADMIN_PASSWORD_ENV, raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(bootstrap, "POLL_INTERVAL", 0.0)
    return path


def _record(home: Path) -> stack_store.StackRecord:
    record = stack_store.load(home, "hello", "home")
    assert record is not None
    return record


def _managed(home: Path, capsys: pytest.CaptureFixture[str], **manager: str) -> None:
    """A stack whose last `mora up` went through the manager, with its token kept."""
    assert main(INIT) == 0
    record = _record(home)
    record.mode, record.manager = "manager", dict(manager)
    stack_store.save(home, record)
    bootstrap.save_credentials(home, "hello", "home", bootstrap.Credentials(
        url=URL, api_token=TOKEN, admin_password=PASSWORD))
    capsys.readouterr()


class Calls:
    """What the fake manager's stack routes received."""

    def __init__(self) -> None:
        self.auth: list[str | None] = []
        self.bodies: list[Any] = []

    def route(self, answer: httpx.Response) -> Any:
        def handle(request: httpx.Request) -> httpx.Response:
            self.auth.append(request.headers.get("authorization"))
            self.bodies.append(json.loads(request.content) if request.content else None)
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return httpx.Response(401, json={"detail": "not logged in"})
            return answer

        return handle


def _no_secret_shown(captured: Any) -> None:
    shown = captured.out + captured.err
    assert TOKEN not in shown and PASSWORD not in shown


# --------------------------------------------------------------------------- the record


def test_up_remembers_the_mode_and_the_manager_options(home, engine, capsys) -> None:  # noqa: F811
    assert main(INIT) == 0
    bootstrap.save_credentials(home, "hello", "home",
                               bootstrap.Credentials(url=URL, api_token=TOKEN))
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[True], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home", "--manager-url", URL + "/",
                     "--manager-namespace", "mora-home",
                     "--manager-image", "registry.example/mora-manager:2"]) == 0
    record = _record(home)
    assert record.mode == "manager"
    assert record.manager == {"url": URL, "namespace": "mora-home",
                              "image": "registry.example/mora-manager:2"}
    capsys.readouterr()

    # The manager is gone: the next `mora up` redeploys it with the remembered options.
    cli = engine(missing=("home-manager",), outputs={"api_token": TOKEN})
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[False, True], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home"]) == 0
    (config,) = cli.configs  # type: ignore[attr-defined]
    assert config.namespace == "mora-home"
    assert config.image == "registry.example/mora-manager:2"
    err = capsys.readouterr().err
    assert ("Using the remembered --manager-url https://mora.hello.example.org, "
            "--manager-namespace mora-home, --manager-image registry.example/mora-manager:2"
            ) in err


def test_an_empty_option_goes_back_to_the_default(home, capsys) -> None:
    _managed(home, capsys, namespace="mora-home", image="registry.example/m:1")
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[True], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home", "--manager-namespace", ""]) == 0
    assert _record(home).manager == {"image": "registry.example/m:1"}
    err = capsys.readouterr().err
    assert "Using the remembered --manager-image registry.example/m:1" in err
    assert "--manager-namespace mora-home" not in err


def test_a_refused_manifest_does_not_change_the_record(home, capsys) -> None:
    assert main(INIT) == 0
    bootstrap.save_credentials(home, "hello", "home",
                               bootstrap.Credentials(url=URL, api_token="stale"))
    with respx.mock(assert_all_called=False) as router:
        FakeManager(router, healthy=[True], plans=[_plan("running")])
        assert main(["up", MINIMAL, "--stack", "home", "--manager-namespace", "x"]) == 1
    record = _record(home)
    assert record.mode is None and record.manager == {}


def test_up_local_records_local_mode(home, tmp_path, monkeypatch, capsys) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: "/usr/local/bin/" + name)
    cli = RecordingPulumi(outputs={"urls": {}, "deployed": ["whoami", "web"]})
    monkeypatch.setattr(stack_commands, "workspace_factory",
                        lambda manifest, **kw: Workspace(manifest, pulumi_command=cli, **kw))
    _managed(home, capsys, namespace="mora-home")
    assert main(["up", MINIMAL, "--stack", "home", "--local"]) == 0
    record = _record(home)
    assert record.mode == "local" and record.manager == {"namespace": "mora-home"}
    # Now preview reads this machine's state, not the manager's.
    cli.calls.clear()
    with respx.mock(assert_all_called=False) as router:
        preview = router.post(f"{URL}/api/v1/preview")
        assert main(["preview", MINIMAL, "--stack", "home"]) == 0
    assert not preview.called and cli.named("preview")


def test_a_record_with_a_bad_mode_is_one_line(home, capsys) -> None:
    assert main(INIT) == 0
    path = stack_store.record_path(home, "hello", "home")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "mode": "cloud"}))
    assert main(["preview", MINIMAL, "--stack", "home"]) == 1
    assert "`mode` must be one of manager, local" in capsys.readouterr().err


# --------------------------------------------------------------------------- preview


def test_preview_through_the_manager(home, capsys) -> None:
    _managed(home, capsys)
    calls = Calls()
    answer = httpx.Response(200, json={
        "stack": "home", "dry_run": False, "deploy": [],
        "changes": {"create": 1, "update": 1, "same": 5},
        "steps": [{"operation": "create", "type": "kubernetes:apps/v1:Deployment", "name": "web"},
                  {"operation": "update", "type": "kubernetes:core/v1:Secret", "name": "whoami"}]})
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/preview").mock(side_effect=calls.route(answer))
        assert main(["preview", MINIMAL, "--stack", "home"]) == 0
    assert calls.auth == [f"Bearer {TOKEN}"]
    captured = capsys.readouterr()
    assert "through the manager at https://mora.hello.example.org" in captured.err
    assert "  create Deployment web" in captured.err
    assert "  update Secret whoami" in captured.err
    assert "Preview done: 1 to create, 1 to update, 0 to delete, 5 unchanged" in captured.err
    assert "Not in the next update (they wait for inputs or dependencies): whoami" \
        in captured.err
    _no_secret_shown(captured)


def test_a_command_line_manager_url_wins(home, monkeypatch, capsys) -> None:
    _managed(home, capsys, url="https://remembered.example")
    monkeypatch.setenv(bootstrap.API_TOKEN_ENV, TOKEN)
    with respx.mock(assert_all_called=False) as router:
        route = router.post("http://127.0.0.1:8080/api/v1/preview").mock(
            return_value=httpx.Response(200, json={"changes": {}, "steps": [], "deploy": []}))
        assert main(["preview", MINIMAL, "--stack", "home",
                     "--manager-url", "http://127.0.0.1:8080"]) == 0
    assert route.called


# --------------------------------------------------------------------------- destroy


def test_destroy_through_the_manager_keeps_it_running(home, capsys) -> None:
    _managed(home, capsys)
    calls = Calls()
    answer = httpx.Response(200, json={"stack": "home", "changes": {"delete": 7, "same": 1},
                                       "volumes_kept": True, "cancelled_updates": [4]})
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/destroy").mock(side_effect=calls.route(answer))
        assert main(["destroy", MINIMAL, "--stack", "home", "--yes"]) == 0
    assert calls.bodies == [{"confirm": "home", "delete_volumes": False}]
    assert calls.auth == [f"Bearer {TOKEN}"]
    captured = capsys.readouterr()
    assert "Destroy done: 0 created, 0 updated, 7 deleted, 1 unchanged" in captured.err
    assert "Queued updates cancelled: 4" in captured.err
    assert "Volumes and the namespace were kept" in captured.err
    assert "--manager` removes it too" in captured.err
    assert bootstrap.credentials_path(home, "hello", "home").exists()
    _no_secret_shown(captured)


def test_destroy_asks_first_and_no_destroys_nothing(home, monkeypatch, capsys) -> None:
    _managed(home, capsys)
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    with respx.mock(assert_all_called=False) as router:
        route = router.post(f"{URL}/api/v1/destroy")
        assert main(["destroy", MINIMAL, "--stack", "home"]) == 1
    assert not route.called
    assert "nothing destroyed" in capsys.readouterr().err


def _manager_cli(engine_fixture: Any) -> RecordingPulumi:
    written = ManagerConfig(stack="home", domain="hello.example.org",
                            project_namespaces=["hello", "older"], namespace="mora-home")
    return engine_fixture(config={"mora:manager": (written.to_text(), False)})


def test_destroy_with_manager_removes_the_manager_stack_too(
        home, engine, capsys) -> None:  # noqa: F811
    _managed(home, capsys, namespace="mora-home")
    cli = _manager_cli(engine)
    answer = httpx.Response(200, json={"changes": {"delete": 7}, "volumes_kept": True,
                                       "cancelled_updates": []})
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/destroy").mock(side_effect=Calls().route(answer))
        assert main(["destroy", MINIMAL, "--stack", "home", "--yes", "--manager"]) == 0
    assert ["stack", "select", "--stack", "home-manager"] in cli.calls
    (destroy,) = cli.named("destroy")
    assert "--exclude-protected" in destroy
    assert not cli.named("up")
    assert not bootstrap.credentials_path(home, "hello", "home").exists()
    captured = capsys.readouterr()
    assert "Manager removed" in captured.err and "state volume and namespace were kept" \
        in captured.err
    _no_secret_shown(captured)


def test_destroy_with_manager_and_volumes_releases_the_state_volume(
        home, engine, capsys) -> None:  # noqa: F811
    _managed(home, capsys)
    cli = _manager_cli(engine)
    calls = Calls()
    answer = httpx.Response(200, json={"changes": {"delete": 9}, "volumes_kept": False,
                                       "cancelled_updates": []})
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/destroy").mock(side_effect=calls.route(answer))
        assert main(["destroy", MINIMAL, "--stack", "home", "--yes", "--manager",
                     "--delete-volumes"]) == 0
    assert calls.bodies == [{"confirm": "home", "delete_volumes": True}]
    (set_all,) = cli.named("config", "set-all")
    (value,) = [a for a in set_all if a.startswith("mora:manager=")]
    released = ManagerConfig.from_text(value.removeprefix("mora:manager="))
    # The stack's own config (both namespaces, its namespace), with the volume released.
    assert released.release_volumes is True
    assert released.project_namespaces == ["hello", "older"]
    assert released.namespace == "mora-home"
    names = [c[0] for c in cli.calls if c[0] in ("up", "destroy")]
    assert names == ["up", "destroy"]
    assert "--exclude-protected" not in cli.named("destroy")[0]


def test_destroy_manager_needs_pulumi(home, capsys) -> None:
    _managed(home, capsys)
    answer = httpx.Response(200, json={"changes": {}, "volumes_kept": True,
                                       "cancelled_updates": []})
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/destroy").mock(side_effect=Calls().route(answer))
        assert main(["destroy", MINIMAL, "--stack", "home", "--yes", "--manager"]) == 3
    err = capsys.readouterr().err
    assert "mora: error: The Pulumi CLI (`pulumi`) is not installed" in err


# --------------------------------------------------------------------------- ca


def test_ca_through_the_manager(home, tmp_path, capsys) -> None:
    _managed(home, capsys)
    calls = Calls()
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/api/v1/ca").mock(side_effect=calls.route(
            httpx.Response(200, json={"stack": "home", "cert_pem": PEM})))
        assert main(["ca", "--stack", "home", MINIMAL]) == 0
        assert capsys.readouterr().out == PEM
        target = tmp_path / "ca.crt"
        assert main(["ca", "--stack", "home", "-o", str(target)]) == 0
    assert target.read_text() == PEM
    assert calls.auth == [f"Bearer {TOKEN}"] * 2


def test_ca_404_is_one_line_with_the_managers_reason(home, capsys) -> None:
    _managed(home, capsys)
    reason = "this manager runs in dry run: it makes no CA"
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{URL}/api/v1/ca").mock(
            return_value=httpx.Response(404, json={"detail": reason}))
        assert main(["ca", "--stack", "home", MINIMAL]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line == f"mora: error: the manager answered 404 to GET /api/v1/ca: {reason}"


# --------------------------------------------------------------------------- secrets show


def test_secrets_show_through_the_manager(home, monkeypatch, capsys) -> None:
    _managed(home, capsys)
    monkeypatch.setenv(manager_mode.ADMIN_PASSWORD_ENV, PASSWORD)
    calls = Calls()
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/secrets/admin_password/reveal").mock(
            side_effect=calls.route(httpx.Response(
                200, json={"id": "admin_password", "value": SECRET_VALUE})))
        assert main(["secrets", "show", "admin_password", "--stack", "home", MINIMAL,
                     "--yes"]) == 0
    assert calls.bodies == [{"password": PASSWORD}]
    captured = capsys.readouterr()
    assert captured.out == SECRET_VALUE + "\n"
    _no_secret_shown(captured)


def test_secrets_show_asks_for_the_password_on_a_terminal(home, monkeypatch, capsys) -> None:
    _managed(home, capsys)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[str] = []
    monkeypatch.setattr(sys, "stdin", Tty(""))
    monkeypatch.setattr("builtins.input", lambda prompt="": "y")
    monkeypatch.setattr(manager_mode.getpass, "getpass",
                        lambda prompt="": asked.append(prompt) or PASSWORD)
    calls = Calls()
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/secrets/admin_password/reveal").mock(
            side_effect=calls.route(httpx.Response(
                200, json={"id": "admin_password", "value": {"cert_pem": "PEM"}})))
        assert main(["secrets", "show", "admin_password", "--stack", "home", MINIMAL]) == 0
    assert asked == ["Admin password: "]
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"cert_pem": "PEM"}
    assert "field admin_password of" in captured.err
    _no_secret_shown(captured)


def test_secrets_show_without_a_password_is_one_line(home, capsys) -> None:
    _managed(home, capsys)
    with respx.mock(assert_all_called=False) as router:
        route = router.post(f"{URL}/api/v1/secrets/admin_password/reveal")
        assert main(["secrets", "show", "admin_password", "--stack", "home", "--yes"]) == 1
    assert not route.called
    (line,) = capsys.readouterr().err.splitlines()
    assert "needs its admin password" in line and "MORA_ADMIN_PASSWORD" in line


def test_a_wrong_admin_password_is_one_line(home, monkeypatch, capsys) -> None:
    _managed(home, capsys)
    monkeypatch.setenv(manager_mode.ADMIN_PASSWORD_ENV, "wrong-" + PASSWORD)
    with respx.mock(assert_all_called=False) as router:
        router.post(f"{URL}/api/v1/secrets/admin_password/reveal").mock(
            return_value=httpx.Response(403, json={"detail": "wrong password"}))
        assert main(["secrets", "show", "admin_password", "--stack", "home", "--yes"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line == f"mora: error: the manager at {URL} refused the admin password"
    assert PASSWORD not in captured.err and captured.out == ""


# --------------------------------------------------------------------------- failures


COMMANDS = {
    "preview": (["preview", MINIMAL, "--stack", "home"], "POST", "/api/v1/preview"),
    "destroy": (["destroy", MINIMAL, "--stack", "home", "--yes"], "POST", "/api/v1/destroy"),
    "ca": (["ca", "--stack", "home", MINIMAL], "GET", "/api/v1/ca"),
    "secrets": (["secrets", "show", "admin_password", "--stack", "home", "--yes"], "POST",
                "/api/v1/secrets/admin_password/reveal"),
}


def _error_lines(err: str) -> list[str]:
    """The ``mora: error:`` lines; a command may have said what it was doing before."""
    lines = err.splitlines()
    assert all(ln.startswith("mora: error: ") or ln.startswith("Previewing ") for ln in lines)
    return [ln for ln in lines if ln.startswith("mora: error: ")]


@pytest.fixture
def answering(home, monkeypatch, capsys) -> None:
    _managed(home, capsys)
    monkeypatch.setenv(manager_mode.ADMIN_PASSWORD_ENV, PASSWORD)


@pytest.mark.usefixtures("answering")
@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("status", "expected"), [
    (401, "refused the API token"),
    (404, "the manager has no manifest yet"),
    (500, "Internal Server Error"),
    (502, "the engine failed: error: timeout"),
])
def test_manager_errors_are_one_line_and_exit_1(command, status, expected, capsys) -> None:
    argv, method, path = COMMANDS[command]
    detail = {401: "not logged in", 404: "the manager has no manifest yet",
              502: "the engine failed: error: timeout"}.get(status)
    answer = (httpx.Response(status, json={"detail": detail}) if detail
              else httpx.Response(status, text="Internal Server Error"))
    with respx.mock(assert_all_called=False) as router:
        route = router.request(method, URL + path).mock(return_value=answer)
        assert main(argv) == 1
    assert route.called
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    (line,) = _error_lines(captured.err)
    assert expected in line
    if status != 401:
        assert f"answered {status} to {method} {path}" in line
    _no_secret_shown(captured)


@pytest.mark.usefixtures("answering")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_manager_that_does_not_answer_exits_3(command, capsys) -> None:
    argv, method, path = COMMANDS[command]
    with respx.mock(assert_all_called=False) as router:
        router.request(method, URL + path).mock(side_effect=httpx.ConnectError("refused"))
        assert main(argv) == 3
    captured = capsys.readouterr()
    (line,) = _error_lines(captured.err)
    assert line.startswith(f"mora: error: the manager at {URL} does not answer (ConnectError)")
    assert "--manager-url" in line and "--local" in line
    _no_secret_shown(captured)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_token_is_one_line(home, command, capsys) -> None:
    _managed(home, capsys)
    bootstrap.credentials_path(home, "hello", "home").unlink()
    record = _record(home)
    assert record.mode == "manager"
    argv, method, path = COMMANDS[command]
    with respx.mock(assert_all_called=False) as router:
        route = router.request(method, URL + path)
        assert main(argv) == 1
    assert not route.called
    (line,) = capsys.readouterr().err.splitlines()
    assert "no API token for the manager of stack home" in line


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_local_reads_this_machines_state(home, command, capsys) -> None:
    _managed(home, capsys)
    argv, method, path = COMMANDS[command]
    with respx.mock(assert_all_called=False) as router:
        route = router.request(method, URL + path)
        assert main([*argv, "--local"]) == 3  # no Pulumi CLI here
    assert not route.called
    assert "The Pulumi CLI (`pulumi`) is not installed" in capsys.readouterr().err


def test_an_older_record_with_credentials_counts_as_manager(home, capsys) -> None:
    assert main(INIT) == 0
    bootstrap.save_credentials(home, "hello", "home",
                               bootstrap.Credentials(url=URL, api_token=TOKEN))
    capsys.readouterr()
    with respx.mock(assert_all_called=False) as router:
        route = router.get(f"{URL}/api/v1/ca").mock(
            return_value=httpx.Response(200, json={"stack": "home", "cert_pem": PEM}))
        assert main(["ca", "--stack", "home", MINIMAL]) == 0
    assert route.called


# --------------------------------------------------------------------------- a real manager


def test_init_without_pulumi_notes_what_needs_it(home, capsys) -> None:
    assert main(INIT) == 0
    err = capsys.readouterr().err
    assert "`mora up` through a running manager work without it" in err
    assert "deploying the manager (the first `mora up`) and everything with --local" in err
    # Once the manager runs the stack, init says nothing about Pulumi.
    _managed(home, capsys)
    assert main(INIT) == 0
    assert "Pulumi" not in capsys.readouterr().err


@pytest.mark.slow
def test_the_commands_against_a_real_dry_run_manager(
        home, real_manager, monkeypatch, capsys) -> None:  # noqa: F811
    assert main(INIT) == 0
    monkeypatch.setenv(bootstrap.API_TOKEN_ENV, TOKEN)
    monkeypatch.setattr(bootstrap, "POLL_INTERVAL", 0.2)
    assert main(["up", MINIMAL, "--stack", "home", "--manager-url", real_manager]) == 0
    record = _record(home)
    assert record.mode == "manager" and record.manager == {"url": real_manager}
    capsys.readouterr()

    # Remembered: no --manager-url needed from here on.
    assert main(["preview", MINIMAL, "--stack", "home"]) == 0
    err = capsys.readouterr().err
    assert "Preview done (dry run" in err and "0 to create, 0 to update, 0 to delete" in err

    assert main(["ca", "--stack", "home", MINIMAL]) == 1
    assert "dry run" in capsys.readouterr().err

    monkeypatch.setenv(manager_mode.ADMIN_PASSWORD_ENV, PASSWORD)
    assert main(["secrets", "show", "admin_password", "--stack", "home", "--yes"]) == 0
    captured = capsys.readouterr()
    value = captured.out.strip()
    assert len(value) == 24 and value.isalnum()
    _no_secret_shown(captured)

    assert main(["destroy", MINIMAL, "--stack", "home", "--yes"]) == 0
    assert "Destroy done" in capsys.readouterr().err
    with httpx.Client(base_url=real_manager, timeout=10) as client:
        plan = client.get("/api/v1/plan", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "running" not in {s["state"] for s in plan["services"]}
    # The secret went with the stack: revealing it now is the manager's 409, one line.
    assert main(["secrets", "show", "admin_password", "--stack", "home", "--yes"]) == 1
    assert "answered 409" in capsys.readouterr().err

    # `mora up` again deploys the same manifest anew.
    assert main(["up", MINIMAL, "--stack", "home"]) == 0
    assert "1 of 1 services running" in capsys.readouterr().err
