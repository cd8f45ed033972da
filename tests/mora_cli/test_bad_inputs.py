"""Bad input the CLI used to turn into ``mora: internal error`` (exit 70): one line each now.

Each case ran through :func:`main` before its fix and ended in an internal error
(or, for the micromanager's URLs, endless retries): a stack record with fields
of the wrong type, a manager data folder that is a file or holds a damaged
database or key, a micromanager ``--manager`` URL that is not one, and stack
settings Kubernetes would refuse only at ``mora up``. The tests check the exit
code, that stderr is one ``mora: error:`` line naming the culprit, and that no
traceback is printed. Nothing is served: the manager's and the sidecar's
servers are replaced by recorders, so a missing check shows up as a call.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import REPO, needs_checker

from mora_cli.main import main

MINIMAL = str(REPO / "examples" / "minimal")
DOMAIN = ["--set", "domain=home.example.com"]


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private mora home and no Pulumi CLI."""
    path = tmp_path / "mora-home"
    monkeypatch.setenv("MORA_HOME", str(path))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: None)
    return path


def _one_error(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    """The stderr of the run: exactly one ``mora: error:`` line containing ``parts``."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("mora: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    for part in parts:
        assert part in lines[0], err
    return lines[0]


# --------------------------------------------------------------------------- stack records


def _write_record(home: Path, stack: str, data: Any) -> Path:
    path = home / "stacks" / "hello" / f"{stack}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@needs_checker
@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"params": "oops"}, "`params` must be an object, not a string"),
        ({"params": [1, 2]}, "`params` must be an object, not a list"),
        ({"settings": [1]}, "`settings` must be an object, not a list"),
        ({"path": 5}, "`path` must be a string or null, not a number"),
        ({"kubeconfig": True}, "`kubeconfig` must be a string or null, not true/false"),
        ({"domain": 3}, "`domain` must be a string or null, not a number"),
        ({"settings": {"render_group": "abc"}}, "setting `render_group` must be a number"),
        ({"settings": {"namespace": 7}}, "setting `namespace` must be a string or null"),
    ],
)
@pytest.mark.parametrize("command", ["render", "init", "up"])
def test_a_record_with_fields_of_the_wrong_type_is_named(
    home: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, Any], named: str,
    command: str,
) -> None:
    path = _write_record(home, "bad", {"project": "hello", "stack": "bad", **fields})
    extra = ["--yes"] if command == "init" else []
    assert main([command, MINIMAL, "--stack", "bad", *extra]) == 1
    _one_error(capsys, "cannot read the stack record", str(path), named)


def test_stacks_lists_the_readable_records_and_skips_one_of_the_wrong_shape(
    home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _write_record(home, "good", {"project": "hello", "stack": "good", "domain": "a.example.com"})
    _write_record(home, "bad", {"project": "hello", "stack": "bad", "domain": 3})
    assert main(["stacks"]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "a.example.com" in out
    assert "bad" not in out


def test_a_well_formed_record_still_loads(home: Path) -> None:
    from mora_cli import stack_store

    record = stack_store.StackRecord(project="hello", stack="ok", params={"domain": "x.example"},
                                     settings={"render_group": 44, "namespace": None})
    stack_store.save(home, record)
    loaded = stack_store.load(home, "hello", "ok")
    assert loaded is not None
    assert loaded.params == {"domain": "x.example"} and loaded.settings["render_group"] == 44


# --------------------------------------------------------------------------- init settings


@needs_checker
@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--storage-class", "BAD CLASS", "--storage-class 'BAD CLASS': not a valid Kubernetes name"),
        ("--ingress-class", "nginx/x", "--ingress-class 'nginx/x'"),
        ("--cert-manager-issuer", "a b", "--cert-manager-issuer 'a b'"),
        ("--cluster-domain", "bad domain!", "--cluster-domain 'bad domain!'"),
        ("--render-group", "-5", "--render-group -5: a group id is a number from 0"),
        ("--micromanager-image", " ", "--micromanager-image ' ': an image reference has no spaces"),
    ],
)
def test_init_refuses_settings_kubernetes_would_refuse(
    home: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, named: str,
) -> None:
    assert main(["init", MINIMAL, "--stack", "s", *DOMAIN, "--yes", option, value]) == 2
    _one_error(capsys, named)
    assert not (home / "stacks" / "hello" / "s.json").exists()


@needs_checker
def test_init_keeps_valid_and_empty_settings(home: Path) -> None:
    assert main(["init", MINIMAL, "--stack", "s", *DOMAIN, "--yes",
                 "--storage-class", "local-path", "--ingress-class", "traefik",
                 "--cert-manager-issuer", "letsencrypt-prod", "--cluster-domain", "k8s.internal",
                 "--render-group", "109",
                 "--micromanager-image", "registry.example.com:5000/mm:1.0"]) == 0
    assert main(["init", MINIMAL, "--stack", "s", "--yes", "--storage-class", ""]) == 0
    settings = json.loads((home / "stacks" / "hello" / "s.json").read_text())["settings"]
    assert settings == {"ingress_class": "traefik", "cert_manager_issuer": "letsencrypt-prod",
                        "cluster_domain": "k8s.internal", "render_group": 109,
                        "micromanager_image": "registry.example.com:5000/mm:1.0"}


# --------------------------------------------------------------------------- manager data


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the manager's server; the list records each call."""
    import manager_app.server

    calls: list[Any] = []
    monkeypatch.setattr(manager_app.server, "serve", lambda *a, **kw: calls.append(a))
    return calls


def _serve(data: Path) -> int:
    return main(["manager", "serve", "--dry-run", "--port", "0", "--data", str(data)])


def test_a_data_folder_that_is_a_file_is_misuse(
    tmp_path: Path, served: list[Any], capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    data.write_text("not a folder")
    assert _serve(data) == 2
    _one_error(capsys, f"the manager's data folder {data} is a file")
    assert served == []


def test_a_data_folder_under_a_file_is_misuse(
    tmp_path: Path, served: list[Any], capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "file").write_text("")
    data = tmp_path / "file" / "data"
    assert _serve(data) == 2
    _one_error(capsys, f"cannot write in the manager's data folder {data}")
    assert served == []


def test_a_damaged_database_is_named_with_what_to_do(
    tmp_path: Path, served: list[Any], capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "manager.sqlite3").write_bytes(b"garbage garbage garbage, not SQLite")
    assert _serve(data) == 1
    _one_error(capsys, str(data / "manager.sqlite3"), "not a manager database", "move it away")
    assert served == []


@pytest.mark.parametrize("content", [b"", b"xx\n", b"\xff\xfe"])
def test_a_damaged_answers_key_is_named(
    tmp_path: Path, served: list[Any], capsys: pytest.CaptureFixture[str], content: bytes,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "answers.key").write_bytes(content)
    assert _serve(data) == 1
    _one_error(capsys, str(data / "answers.key"), "not the manager's answers key")
    assert served == []


def test_a_healthy_data_folder_is_served(tmp_path: Path, served: list[Any]) -> None:
    from cryptography.fernet import Fernet

    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "manager.sqlite3") as db:
        db.execute("CREATE TABLE t (x)")
    (data / "answers.key").write_bytes(Fernet.generate_key())
    assert _serve(data) == 0
    assert len(served) == 1


def test_a_database_error_while_serving_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import manager_app.server

    def broken(*a: Any, **kw: Any) -> None:
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(manager_app.server, "serve", broken)
    assert _serve(tmp_path / "data") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    assert err.splitlines()[-1].startswith("mora: error: the manager's database in")
    assert "database disk image is malformed" in err


# --------------------------------------------------------------------------- micromanager run


@pytest.fixture
def sidecar(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace uvicorn; the list records each run."""
    import uvicorn

    runs: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: runs.append(kw))
    monkeypatch.setenv("MORA_MICROMANAGER_TOKEN", "tok")
    return runs


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--manager", "notaurl"], "--manager takes an http:// or https:// URL with a host"),
        (["--manager", "ftp://m"], "--manager takes an http:// or https:// URL"),
        (["--manager", "http://[::1"], "--manager: 'http://[::1' is not a URL"),
        (["--manager", "http://m:abc"], "--manager: 'http://m:abc' is not a URL"),
        (["--manager", "http://m", "--advertise-url", "x"], "--advertise-url takes an http://"),
        (["--manager", "http://m", "--port", "70000"], "--port must be between 0 and 65535"),
        (["--manager", "http://m", "--port", "0"], "--port 0 (any free port) needs --advertise-url"),
        (["--manager", "http://m", "--service-port", "http=99999"], "PORT 1-65535"),
    ],
)
def test_micromanager_run_refuses_bad_urls_and_ports(
    sidecar: list[Any], capsys: pytest.CaptureFixture[str], extra: list[str], named: str,
) -> None:
    assert main(["micromanager", "run", "ldap", "--service", "lldap", *extra]) == 2
    _one_error(capsys, named)
    assert sidecar == []


def test_micromanager_run_takes_good_urls(sidecar: list[Any]) -> None:
    pytest.importorskip("ldap3")
    assert main(["micromanager", "run", "ldap", "--service", "lldap", "--port", "0",
                 "--manager", "https://[::1]:8080", "--advertise-url", "http://10.0.0.5:9000",
                 "--service-port", "http=17170"]) == 0
    assert sidecar and sidecar[0]["port"] == 0

