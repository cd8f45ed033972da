"""The orchestrator commands (init, stacks, render, preview, up, destroy, secrets show).

They run in-process through ``main([...])`` with the real compiler on the
examples, ``$MORA_HOME`` in a temporary folder, and — for the engine commands — a
recording stand-in for the Pulumi CLI handed in through
``stack_commands.workspace_factory``, so the tests check the Pulumi commands and
config mora issues without the CLI. A real preview runs at the end when the
``pulumi`` CLI and a kubeconfig are present, and is skipped with the reason
otherwise.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import REPO, needs_checker, why_no_real_cluster
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import create_command_error
from semver import VersionInfo

from mora_cli import stack_commands, stack_store
from mora_cli.main import main
from stacks.automation import Workspace

pytestmark = needs_checker

MEDIA = str(REPO / "examples" / "media-server")
MINIMAL = str(REPO / "examples" / "minimal")
MEDIA_SETS = ["--set", "domain=home.example.com", "--set", "media_path=/srv/media"]
ANSWER = "s3cr3t-answer-do-not-print"

MAIL_PROJECT = """\
project "mail" {
  description = "A test project with an e-mail param"
}

param domain: domain {
  prompt  = "Base domain"
  example = "home.example.com"
}
param admin: email {
  prompt  = "Administrator e-mail"
  help    = "Receives certificate warnings."
  example = "me@example.com"
}
param replicas: int = 1

service web {
  image     = "traefik/whoami:v1.10"
  subdomain = "web"
  port http = 80
  environment = {
    ADMIN = admin
  }
}
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private mora home, no Pulumi CLI, stdin that is not a terminal."""
    path = tmp_path / "mora-home"
    monkeypatch.setenv("MORA_HOME", str(path))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return path


def _record(home: Path, project: str, stack: str) -> dict[str, Any]:
    return json.loads((home / "stacks" / project / f"{stack}.json").read_text())


class _TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def _answers(monkeypatch: pytest.MonkeyPatch, answers: list[str]) -> list[str]:
    """Make stdin a terminal and ``input`` return ``answers`` in order; returns the prompts."""
    prompts: list[str] = []
    queue = list(answers)

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    monkeypatch.setattr(sys, "stdin", _TtyInput(""))
    monkeypatch.setattr(builtins, "input", fake_input)
    return prompts


# --------------------------------------------------------------------------- init


def test_init_non_interactive_writes_a_private_record(home, capsys) -> None:
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    path = home / "stacks" / "media-server" / "home.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "stacks").stat().st_mode) == 0o700
    record = _record(home, "media-server", "home")
    assert record["project"] == "media-server" and record["stack"] == "home"
    assert record["params"] == {"domain": "home.example.com", "media_path": "/srv/media"}
    assert record["backend"] is None and record["domain"] == "home.example.com"
    assert record["path"] == MEDIA
    err = capsys.readouterr().err
    assert "created stack home of media-server" in err
    assert "defaults: timezone" in err
    # No Pulumi CLI: one line says what will need it, and it is not an error.
    assert "deploying the manager (the first `mora up`) and everything with --local need it" \
        in err


def test_init_again_updates_given_values_and_keeps_others(home, capsys) -> None:
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    assert main(["init", MEDIA, "--stack", "home", "--set", "timezone=Europe/Paris",
                 "--backend", "file:///srv/state", "--cert-manager-issuer", "letsencrypt"]) == 0
    record = _record(home, "media-server", "home")
    assert record["params"] == {"domain": "home.example.com", "media_path": "/srv/media",
                                "timezone": "Europe/Paris"}
    assert record["backend"] == "file:///srv/state"
    assert record["settings"] == {"cert_manager_issuer": "letsencrypt"}
    err = capsys.readouterr().err
    assert "updated stack home" in err
    assert "kept: domain, media_path" in err
    # An empty value returns to the default; `local` to the embedded backend.
    assert main(["init", MEDIA, "--stack", "home", "--cert-manager-issuer", "",
                 "--backend", "local"]) == 0
    record = _record(home, "media-server", "home")
    assert record["settings"] == {} and record["backend"] is None


def test_init_interactive_asks_and_re_asks_on_invalid_values(tmp_path, home, monkeypatch,
                                                            capsys) -> None:
    project = tmp_path / "mail"
    project.mkdir()
    (project / "main.mora").write_text(MAIL_PROJECT)
    prompts = _answers(monkeypatch, [
        "not a domain", "Mail.Example.ORG",  # domain: re-asked, then normalised
        "nobody", "me@mail.example.org",     # admin: re-asked
        "",                                  # replicas: Enter takes the default
    ])
    assert main(["init", str(project), "--stack", "home"]) == 0
    assert prompts == ["  domain: ", "  domain: ", "  admin: ", "  admin: ", "  replicas [1]: "]
    record = _record(home, "mail", "home")
    assert record["params"] == {"domain": "mail.example.org", "admin": "me@mail.example.org"}
    err = capsys.readouterr().err
    assert "Base domain (domain, domain)" in err
    assert "example: home.example.com" in err
    assert "Receives certificate warnings." in err
    assert '"not a domain" is not a domain name; try again' in err
    assert '"nobody" is not an e-mail address; try again' in err
    assert err.count("try again") == 2
    assert "defaults: replicas" in err


def test_init_interactive_only_asks_what_is_missing_on_an_existing_stack(
    home, monkeypatch, capsys
) -> None:
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    prompts = _answers(monkeypatch, [])
    assert main(["init", MEDIA, "--stack", "home"]) == 0
    assert prompts == []


def test_init_input_ending_is_misuse(home, monkeypatch, capsys) -> None:
    _answers(monkeypatch, [])
    assert main(["init", MINIMAL, "--stack", "home"]) == 2
    assert "no value for param `domain` (input ended)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "domain"], "--set expects PARAM=VALUE"),
        (["--set", "=x"], "--set expects PARAM=VALUE"),
        (["--set", "domian=home.example.com"], "did you mean `domain`?"),
        (["--set", "domain=not_a_domain"], "--set domain: \"not_a_domain\" is not a domain name"),
        (["--set", "domain=home.example.com"], "no value for media_path"),
    ],
)
def test_init_misuse_exits_2(home, extra, message, capsys) -> None:
    assert main(["init", MEDIA, "--stack", "home", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and err.startswith("mora: error: ")
    assert not (home / "stacks").exists()


def test_init_lists_missing_params_with_the_set_to_give(home, capsys) -> None:
    assert main(["init", MEDIA, "--stack", "home"]) == 2
    err = capsys.readouterr().err
    assert "no value for domain, media_path" in err
    assert "--set domain=home.example.com --set media_path=VALUE" in err


def test_init_yes_asks_nothing_even_on_a_terminal(home, monkeypatch, capsys) -> None:
    prompts = _answers(monkeypatch, ["ignored"])
    assert main(["init", MEDIA, "--stack", "home", "--yes", "--set", "domain=a.example.com"]) == 2
    assert prompts == []
    assert "no value for media_path" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../evil", "with space", "-x", ""])
def test_init_rejects_bad_stack_names(home, name, capsys) -> None:
    assert main(["init", MEDIA, f"--stack={name}", *MEDIA_SETS]) == 2
    assert "invalid stack name" in capsys.readouterr().err


def test_init_compile_errors_exit_1(tmp_path, home, capsys) -> None:
    (tmp_path / "main.mora").write_text('service web {\n  image = imag\n}\n')
    assert main(["init", str(tmp_path), "--stack", "home"]) == 1
    assert "error[" in capsys.readouterr().err


# --------------------------------------------------------------------------- render


def _parse_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def _check_rendered(objects: list[dict[str, Any]]) -> None:
    text = json.dumps(objects)
    assert "${" not in text and '"ref"' not in text  # every reference was resolved
    assert "<generated:secret:" in text  # generated secrets stay placeholders
    for obj in objects:
        if obj["kind"] == "Secret":
            values = {**obj.get("stringData", {}), **obj.get("data", {})}
            # Every secret value is (or contains) a placeholder, never a generated value.
            assert all("<generated:secret:" in v or "<input:" in v for v in values.values()), obj


def test_render_to_stdout_from_the_stack_record(home, capsys) -> None:
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    capsys.readouterr()
    assert main(["render", MEDIA, "--stack", "home"]) == 0
    captured = capsys.readouterr()
    objects = _parse_all(captured.out)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "Service", "Ingress", "Secret",
            "PersistentVolumeClaim"} <= kinds
    hosts = [r["host"] for o in objects if o["kind"] == "Ingress" for r in o["spec"]["rules"]]
    assert "watch.home.example.com" in hosts
    _check_rendered(objects)
    assert f"{len(objects)} objects for 7 of 8 services" in captured.err
    assert "waiting for inputs: janitorr (jellyfin.api_key, jellyseerr.api_key)" in captured.err


def test_render_set_overlays_the_record(home, capsys) -> None:
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    capsys.readouterr()
    assert main(["render", MEDIA, "--stack", "home", "--set", "domain=other.example.net"]) == 0
    out = capsys.readouterr().out
    assert "watch.other.example.net" in out and "home.example.com" not in out


def test_render_to_a_folder_one_file_per_object(tmp_path, capsys) -> None:
    from stacks.render import file_name

    out = tmp_path / "out"
    assert main(["render", MINIMAL, "--set", "domain=hello.example.org", "-o", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    objects = [yaml.safe_load((out / name).read_text()) for name in files]
    assert files == sorted(file_name(o) for o in objects)
    assert {"deployment-whoami.yaml", "service-whoami.yaml", "ingress-whoami.yaml"} <= set(files)
    _check_rendered(objects)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"wrote {len(files)} files to {out}" in captured.err


def test_render_without_stack_needs_the_params(home, capsys) -> None:
    assert main(["render", MEDIA, "--set", "domain=home.example.com"]) == 2
    err = capsys.readouterr().err
    assert "no value for media_path" in err and "--set media_path=VALUE" in err


def test_render_unknown_stack_is_misuse(home, capsys) -> None:
    assert main(["render", MINIMAL, "--stack", "nope"]) == 2
    assert "hello has no stack 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------- stacks


def test_stacks_lists_every_stack(home, capsys) -> None:
    assert main(["stacks"]) == 0
    assert "no stacks yet" in capsys.readouterr().err
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    assert main(["init", MEDIA, "--stack", "friend", "--set", "domain=friend.example.org",
                 "--set", "media_path=/srv/friend", "--backend", "cloud"]) == 0
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    capsys.readouterr()
    assert main(["stacks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["project", "stack", "domain", "backend", "last", "modified"]
    rows = [line.split()[:4] for line in lines[2:]]
    assert rows == [
        ["hello", "home", "hello.example.org", "local"],
        ["media-server", "friend", "friend.example.org", "cloud"],
        ["media-server", "home", "home.example.com", "local"],
    ]
    assert main(["stacks", MINIMAL]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


# --------------------------------------------------------------------------- no Pulumi CLI


@pytest.mark.parametrize(
    "argv",
    [
        ["preview", MEDIA, "--stack", "home"],
        ["up", MEDIA, "--stack", "home", "--local"],
        ["destroy", MEDIA, "--stack", "home", "--yes"],
        ["secrets", "show", "ldap_admin_password", "--stack", "home", MEDIA, "--yes"],
    ],
)
def test_engine_commands_without_pulumi_exit_3_with_one_sentence(argv, capsys) -> None:
    # A stack this machine runs (no `mora up` went through a manager): Pulumi is needed.
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    capsys.readouterr()
    assert main(argv) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("mora: error: The Pulumi CLI (`pulumi`) is not installed")
    assert "get.pulumi.com" in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_missing_kubeconfig_exits_3(tmp_path, engine, monkeypatch, capsys) -> None:
    cli = engine()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    capsys.readouterr()
    assert main(["up", MINIMAL, "--stack", "home", "--local"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("mora: error: No kubeconfig found") and err.count("\n") == 1
    # A stack can name its own cluster's kubeconfig.
    assert main(["init", MINIMAL, "--stack", "home", "--kubeconfig", str(tmp_path / "k.yaml")]) == 0
    capsys.readouterr()
    assert main(["preview", MINIMAL, "--stack", "home"]) == 3
    err = capsys.readouterr().err
    assert f"the kubeconfig of stack home ({tmp_path / 'k.yaml'}) does not exist" in err
    assert not cli.named("up") and not cli.named("preview")


# --------------------------------------------------------------------------- a recording Pulumi


EVENTS = [
    {"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": {
        "op": "create", "urn": "urn:pulumi:home::mora-hello::kubernetes:apps/v1:Deployment::whoami",
        "type": "kubernetes:apps/v1:Deployment", "provider": ""}}},
    {"sequence": 2, "timestamp": 0, "resOutputsEvent": {"metadata": {
        "op": "create", "urn": "urn:pulumi:home::mora-hello::kubernetes:apps/v1:Deployment::whoami",
        "type": "kubernetes:apps/v1:Deployment", "provider": ""}}},
    {"sequence": 3, "timestamp": 0, "summaryEvent": {
        "maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"create": 3},
        "PolicyPacks": {}}},
    {"sequence": 4, "timestamp": 0, "cancelEvent": {}},
]
HISTORY = [{
    "kind": "update", "startTime": "2024-01-01T00:00:00.000Z", "message": "",
    "environment": {}, "config": {}, "result": "succeeded",
    "endTime": "2024-01-01T00:00:01.000Z", "version": 1, "resourceChanges": {"create": 3},
}]


class RecordingPulumi(auto.PulumiCommand):
    """Records every CLI call; answers the few whose output the Automation API parses."""

    def __init__(self, *, outputs: dict[str, Any] | None = None,
                 config: dict[str, tuple[str, bool]] | None = None,
                 missing: tuple[str, ...] = (), fail: str | None = None) -> None:
        self.command = "pulumi"
        self.version = VersionInfo.parse("3.200.0")
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self._outputs = outputs or {}
        self._config = config or {}
        self._missing = set(missing)
        self._fail = fail

    def run(self, args, cwd, additional_env, on_output=None, on_error=None) -> CommandResult:
        self.calls.append(list(args))
        self.envs.append(dict(additional_env))
        stdout = ""
        if args[:2] == ["stack", "select"] and args[-1] in self._missing:
            raise create_command_error(CommandResult(
                stdout="", stderr=f"error: no stack named '{args[-1]}' found", code=255))
        if args[:2] == ["stack", "init"]:
            self._missing.discard(args[2])
        if "--event-log" in args:
            if self._fail:
                raise create_command_error(CommandResult(stdout="", stderr=self._fail, code=255))
            with open(args[args.index("--event-log") + 1], "a", encoding="utf-8") as log:
                for event in EVENTS:
                    log.write(json.dumps(event) + "\n")
        if args[:2] == ["stack", "output"]:
            shown = self._outputs if "--show-secrets" in args else {
                k: "[secret]" if k == "secrets" else v for k, v in self._outputs.items()}
            stdout = json.dumps(shown)
        elif args[:2] == ["stack", "history"]:
            stdout = json.dumps(HISTORY)
        elif args[:1] == ["config"] and "--json" in args:
            stdout = json.dumps({k: {"value": v, "secret": s}
                                 for k, (v, s) in self._config.items()})
        return CommandResult(stdout=stdout, stderr="", code=0)

    def named(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls if c[: len(prefix)] == list(prefix)]


Engine = Callable[..., RecordingPulumi]


@pytest.fixture
def engine(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Pretend the CLI is installed and a kubeconfig exists; route the workspace to a stand-in."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setattr(shutil, "which", lambda name, *a, **kw: "/usr/local/bin/" + name)

    def install(**kw: Any) -> RecordingPulumi:
        cli = RecordingPulumi(**kw)
        created: list[dict[str, Any]] = []

        def factory(manifest, *, backend_url=None, kubeconfig=None) -> Workspace:
            created.append({"backend_url": backend_url, "kubeconfig": kubeconfig})
            return Workspace(manifest, backend_url=backend_url, kubeconfig=kubeconfig,
                             pulumi_command=cli)

        monkeypatch.setattr(stack_commands, "workspace_factory", factory)
        cli.workspaces = created  # type: ignore[attr-defined]
        return cli

    return install


def _set_all(cli: RecordingPulumi) -> list[str]:
    (call,) = cli.named("config", "set-all")
    return call


def test_init_with_pulumi_creates_the_stack_and_writes_config(home, engine, capsys) -> None:
    cli = engine(missing=("home",))
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org",
                 "--storage-class", "local-path"]) == 0
    (init,) = cli.named("stack", "init")
    assert init[:3] == ["stack", "init", "home"]
    set_all = _set_all(cli)
    assert "mora:domain=hello.example.org" in set_all
    assert "mora:stack.storage_class=local-path" in set_all
    assert cli.envs[-1]["PULUMI_CONFIG_PASSPHRASE_FILE"].startswith(str(home))
    assert "Pulumi stack home is ready (backend: local)" in capsys.readouterr().err


def test_up_writes_config_keeps_answers_runs_and_prints_urls(home, engine, capsys) -> None:
    cli = engine(
        outputs={"urls": {"whoami": "https://hello.hello.example.org"}, "deployed": ["whoami"]},
        config={"mora:domain": ("old.example.org", False),
                "mora:input.whoami.token": (ANSWER, True)},
    )
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    cli.calls.clear()
    capsys.readouterr()
    assert main(["up", MINIMAL, "--stack", "home", "--local"]) == 0
    assert cli.named("stack", "select")[0][-1] == "home"
    set_all = _set_all(cli)
    assert "mora:domain=hello.example.org" in set_all
    # The wizard's answers live only in Pulumi: kept, and still written as secrets.
    assert set_all[set_all.index(f"mora:input.whoami.token={ANSWER}") - 1] == "--secret"
    (up,) = cli.named("up")
    assert "--yes" in up and "--event-log" in up
    assert cli.workspaces[-1]["kubeconfig"] == Path(os.environ["KUBECONFIG"])
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].split() == ["whoami", "https://hello.hello.example.org"]
    assert "created Deployment whoami" in captured.err
    assert "Update done: 3 created, 0 updated, 0 deleted, 0 unchanged" in captured.err
    assert "internal CA" in captured.err
    assert ANSWER not in captured.out + captured.err


def test_a_stack_uses_its_own_kubeconfig(tmp_path, home, engine, capsys) -> None:
    friend = tmp_path / "friend.yaml"
    friend.write_text("apiVersion: v1\nkind: Config\n")
    cli = engine()
    assert main(["init", MINIMAL, "--stack", "friend", "--set", "domain=friend.example.org",
                 "--kubeconfig", str(friend)]) == 0
    assert _record(home, "hello", "friend")["kubeconfig"] == str(friend)
    assert main(["up", MINIMAL, "--stack", "friend", "--local"]) == 0
    assert cli.workspaces[-1]["kubeconfig"] == friend
    assert cli.envs[-1]["KUBECONFIG"] == str(friend)


def test_preview_with_a_cloud_backend(home, engine, capsys) -> None:
    cli = engine()
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org",
                 "--backend", "cloud"]) == 0
    capsys.readouterr()
    assert main(["preview", MINIMAL, "--stack", "home"]) == 0
    assert cli.workspaces[-1]["backend_url"] == "cloud"
    (preview,) = cli.named("preview")
    assert "--event-log" in preview
    assert not cli.named("up")
    assert "Preview done: 3 to create, 0 to update, 0 to delete" in capsys.readouterr().err


def test_up_local_runs_the_stack_from_here(home, engine, capsys) -> None:
    """Without --local the in-cluster manager deploys (tests/mora_cli/test_bootstrap.py)."""
    cli = engine()
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    assert main(["up", MINIMAL, "--stack", "home", "--local"]) == 0
    assert cli.named("up")
    assert "manager" not in capsys.readouterr().err


def test_up_of_an_unknown_stack_is_misuse(home, engine, capsys) -> None:
    cli = engine()
    assert main(["up", MINIMAL, "--stack", "nope"]) == 2
    assert "create it with `mora init PATH --stack nope`" in capsys.readouterr().err
    assert cli.calls == []


def test_engine_failure_is_one_clear_line(home, engine, capsys) -> None:
    engine(fail="Updating (home):\n  kubernetes:apps/v1:Deployment whoami  **failed**\n"
                "error: resource whoami was not created: the cluster refused it\n")
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    capsys.readouterr()
    assert main(["up", MINIMAL, "--stack", "home", "--local"]) == 1
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("mora: error:")]
    assert "up of stack home failed" in line and "resource whoami was not created" in line
    assert "Traceback" not in err


def test_destroy_confirms_and_keeps_volumes(home, engine, monkeypatch, capsys) -> None:
    cli = engine()
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    cli.calls.clear()
    prompts = _answers(monkeypatch, ["n"])
    assert main(["destroy", MINIMAL, "--stack", "home"]) == 1
    assert "volumes and the namespace are kept. Continue? [y/N]" in prompts[0]
    assert not cli.named("destroy")
    _answers(monkeypatch, ["y"])
    assert main(["destroy", MINIMAL, "--stack", "home"]) == 0
    (destroy,) = cli.named("destroy")
    assert "--exclude-protected" in destroy
    assert "Volumes and the namespace were kept" in capsys.readouterr().err


def test_destroy_yes_delete_volumes_lifts_the_protection_first(home, engine, capsys) -> None:
    cli = engine()
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    cli.calls.clear()
    assert main(["destroy", MINIMAL, "--stack", "home", "--yes", "--delete-volumes"]) == 0
    assert any("mora:stack.release_volumes=true" in c for c in cli.named("config", "set-all"))
    (destroy,) = cli.named("destroy")
    assert "--exclude-protected" not in destroy


def test_secrets_show_confirms_then_prints_only_the_value(home, engine, monkeypatch,
                                                          capsys) -> None:
    engine(outputs={"secrets": {"admin_password": "pa55word-xyz"}})
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    capsys.readouterr()
    prompts = _answers(monkeypatch, ["no"])
    assert main(["secrets", "show", "admin_password", "--stack", "home", MINIMAL]) == 1
    assert prompts == ["This prints the secret in clear text. Continue? [y/N] "]
    assert "pa55word-xyz" not in capsys.readouterr().out
    _answers(monkeypatch, ["y"])
    # Without PATH: the folder `mora init` recorded for the stack.
    assert main(["secrets", "show", "admin_password", "--stack", "home"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "pa55word-xyz\n"
    assert "pa55word-xyz" not in captured.err


def test_secrets_show_unknown_secret_is_misuse(home, engine, capsys) -> None:
    cli = engine()
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    cli.calls.clear()
    assert main(["secrets", "show", "admin_pasword", "--stack", "home", MINIMAL, "--yes"]) == 2
    assert "did you mean `admin_password`?" in capsys.readouterr().err
    assert cli.calls == []


def test_secrets_without_action_is_misuse(capsys) -> None:
    assert main(["secrets"]) == 2
    assert "mora secrets show NAME" in capsys.readouterr().err


# --------------------------------------------------------------------------- a real engine


_NO_REAL_RUN = why_no_real_cluster()


@pytest.mark.needs_pulumi
@pytest.mark.skipif(_NO_REAL_RUN is not None, reason=str(_NO_REAL_RUN))
def test_real_init_and_preview(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.undo()  # the real `which`, stdin and environment
    monkeypatch.setenv("MORA_HOME", str(tmp_path / "home"))
    assert main(["init", MINIMAL, "--stack", "clitest", "--yes",
                 "--set", "domain=example.org"]) == 0
    assert main(["preview", MINIMAL, "--stack", "clitest"]) == 0
    assert "Preview done:" in capsys.readouterr().err


def test_up_local_notes_once_that_micromanagers_need_the_manager(home, engine, capsys) -> None:
    """`mora up --local` has no manager: micromanaged services deploy without sidecars."""
    engine(outputs={"deployed": ["lldap"]})
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS,
                 "--micromanager-image", "registry.lan/mm:1"]) == 0
    assert _record(home, "media-server", "home")["settings"]["micromanager_image"] == (
        "registry.lan/mm:1")
    capsys.readouterr()
    assert main(["up", MEDIA, "--stack", "home", "--local"]) == 0
    err = capsys.readouterr().err
    assert err.count("micromanagers need the in-cluster manager") == 1
    assert "lldap (ldap)" in err
    # The minimal example has no micromanager: no note.
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]) == 0
    assert main(["up", MINIMAL, "--stack", "home", "--local"]) == 0
    assert "micromanagers need" not in capsys.readouterr().err


def test_init_micromanager_image_reaches_the_pulumi_config(home, engine, capsys) -> None:
    cli = engine(missing=("home",))
    assert main(["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org",
                 "--micromanager-image", "registry.lan/mm:1"]) == 0
    assert "mora:stack.micromanager_image=registry.lan/mm:1" in _set_all(cli)


def test_record_settings_are_the_ones_the_manager_applies() -> None:
    """stack_store keeps its own copy (no pydantic at start-up); it must not drift."""
    from stacks.config import FORWARDED_SETTINGS

    assert stack_store.SETTINGS == FORWARDED_SETTINGS
