"""The Automation API wrapper against a recording stand-in for the Pulumi CLI.

The stand-in subclasses ``pulumi.automation.PulumiCommand`` and answers each CLI
call with canned output, so these tests check the commands and config mora
issues (stack select/init, ``config set-all`` with ``--secret`` for answers,
up/destroy flags) without the CLI. A real run is at the end, skipped when the
CLI or a kubeconfig is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult
from pulumi.automation.errors import create_command_error
from semver import VersionInfo
from stacks_helpers import NO_LEAK, PARAMS, minimal

from stacks import automation
from stacks.automation import ProgressEvent, Workspace, passphrase_file, progress_event
from stacks.config import StackConfig
from stacks.errors import KubeconfigMissing, PulumiNotInstalled, StackError

HISTORY = [{
    "kind": "update", "startTime": "2024-01-01T00:00:00.000Z", "message": "",
    "environment": {}, "config": {}, "result": "succeeded",
    "endTime": "2024-01-01T00:00:01.000Z", "version": 1,
    "resourceChanges": {"create": 3},
}]

EVENTS = [
    {"sequence": 1, "timestamp": 0, "resourcePreEvent": {"metadata": {
        "op": "create", "urn": "urn:pulumi:alice::mora-hello::kubernetes:apps/v1:Deployment::whoami",
        "type": "kubernetes:apps/v1:Deployment", "provider": ""}}},
    {"sequence": 2, "timestamp": 0, "summaryEvent": {
        "maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {"create": 3},
        "PolicyPacks": {}}},
    {"sequence": 3, "timestamp": 0, "cancelEvent": {}},
]


class RecordingPulumi(auto.PulumiCommand):
    """Records every CLI call; answers the few whose output the Automation API parses."""

    def __init__(self, outputs: dict[str, Any] | None = None, stacks: list[str] | None = None,
                 missing: tuple[str, ...] = ()):
        self._missing = set(missing)
        self.command = "pulumi"
        self.version = VersionInfo.parse("3.200.0")
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []
        self._outputs = outputs or {}
        self._stacks = stacks or []

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
            # What the engine writes while it works; the Automation API tails this file.
            with open(args[args.index("--event-log") + 1], "a", encoding="utf-8") as log:
                for event in EVENTS:
                    log.write(json.dumps(event) + "\n")
        if args[:2] == ["stack", "output"]:
            shown = self._outputs if "--show-secrets" in args else {
                k: "[secret]" if k == "secrets" else v for k, v in self._outputs.items()}
            stdout = json.dumps(shown)
        elif args[:2] == ["stack", "history"]:
            stdout = json.dumps(HISTORY)
        elif args[:2] == ["stack", "ls"]:
            stdout = json.dumps([{"name": n, "current": False, "updateInProgress": False}
                                 for n in self._stacks])
        elif args[:1] == ["config"] and "--json" in args:
            stdout = "{}"
        return CommandResult(stdout=stdout, stderr="", code=0)

    def named(self, *prefix: str) -> list[list[str]]:
        return [c for c in self.calls if c[: len(prefix)] == list(prefix)]


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    return path


def _workspace(tmp_path: Path, cli: RecordingPulumi, kubeconfig: Path | None = None) -> Workspace:
    return Workspace(minimal(), home=tmp_path / "home", pulumi_command=cli, kubeconfig=kubeconfig)


def test_init_selects_the_stack_and_sets_answers_as_secret(tmp_path):
    cli = RecordingPulumi(missing=("alice",))
    config = StackConfig(params={"domain": "example.org"}, answers={"whoami.token": NO_LEAK},
                         deploy=frozenset({"whoami"}))
    _workspace(tmp_path, cli).init("alice", config)
    assert cli.named("stack", "select")[0] == ["stack", "select", "--stack", "alice"]
    (init,) = cli.named("stack", "init")
    assert init[:3] == ["stack", "init", "alice"]
    assert init[init.index("--secrets-provider") + 1] == "passphrase"
    (set_all,) = cli.named("config", "set-all")
    assert "--plaintext" in set_all and "mora:domain=example.org" in set_all
    secret_at = set_all.index(f"mora:input.whoami.token={NO_LEAK}")
    assert set_all[secret_at - 1] == "--secret"
    assert set_all[set_all.index('mora:stack.deploy=["whoami"]') - 1] == "--plaintext"
    # The embedded backend: a file backend under the mora home, passphrase from a 0600 file.
    env = cli.envs[-1]
    passphrase = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert passphrase.parent == tmp_path / "home"
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    project = (tmp_path / "home" / "projects" / "hello" / "Pulumi.yaml").read_text()
    assert f"file://{tmp_path / 'home' / 'state'}" in project
    assert "name: mora-hello" in project


def test_passphrase_is_generated_once_and_kept_private(tmp_path):
    first = passphrase_file(tmp_path).read_text()
    (tmp_path / "pulumi-passphrase").chmod(0o644)
    path = passphrase_file(tmp_path)
    assert path.read_text() == first and len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_up_runs_inline_with_events_and_returns_public_outputs(tmp_path, kubeconfig):
    cli = RecordingPulumi(outputs={"urls": {"whoami": "https://hello.example.org"}})
    events: list[ProgressEvent] = []
    result = _workspace(tmp_path, cli, kubeconfig).up("alice", events.append)
    (up,) = cli.named("up")
    assert "--yes" in up and "--event-log" in up and "auto.inline" in up
    assert any(a.startswith("--client=127.0.0.1:") for a in up)
    assert result.outputs == {"urls": {"whoami": "https://hello.example.org"}}
    assert result.changes == {"create": 3}
    assert events[0] == ProgressEvent("start", "create", "kubernetes:apps/v1:Deployment", "whoami")
    assert events[-1] == ProgressEvent("summary", changes={"create": 3})
    assert cli.envs[-1]["KUBECONFIG"] == str(kubeconfig)


def test_destroy_keeps_protected_volumes_by_default(tmp_path, kubeconfig):
    cli = RecordingPulumi()
    _workspace(tmp_path, cli, kubeconfig).destroy("alice")
    (destroy,) = cli.named("destroy")
    assert "--exclude-protected" in destroy


def test_stack_names(tmp_path):
    cli = RecordingPulumi(stacks=["bob", "alice"])
    assert _workspace(tmp_path, cli).stack_names() == ["alice", "bob"]


def test_secret_outputs_are_not_returned_but_can_be_revealed(tmp_path):
    cli = RecordingPulumi(outputs={"namespace": "hello", "secrets": {"admin_password": "pw"}})
    # The API compares `stack output` with and without --show-secrets to flag secrets.
    ws = _workspace(tmp_path, cli)
    assert ws.outputs("alice") == {"namespace": "hello"}
    assert ws.reveal_secret("alice", "admin_password") == "pw"
    with pytest.raises(StackError, match="no generated secret 'nope'"):
        ws.reveal_secret("alice", "nope")


def test_missing_cli_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(automation.shutil, "which", lambda name: None)
    with pytest.raises(PulumiNotInstalled, match=r"get\.pulumi\.com") as err:
        Workspace(minimal(), home=tmp_path).stack_names()
    assert "\n" not in str(err.value)


def test_missing_kubeconfig_is_reported_before_the_engine_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cli = RecordingPulumi()
    with pytest.raises(KubeconfigMissing, match="KUBECONFIG"):
        _workspace(tmp_path, cli).up("alice")
    assert not cli.named("up")


def test_engine_events_become_progress_events():
    meta = auto.StepEventMetadata(
        op=auto.OpType.CREATE, urn="urn:pulumi:s::p::kubernetes:apps/v1:Deployment::whoami",
        type="kubernetes:apps/v1:Deployment", provider="")
    pre = auto.EngineEvent(sequence=1, timestamp=0,
                           resource_pre_event=auto.ResourcePreEvent(metadata=meta))
    assert progress_event(pre) == ProgressEvent("start", "create",
                                                "kubernetes:apps/v1:Deployment", "whoami")
    summary = auto.EngineEvent(sequence=2, timestamp=0, summary_event=auto.SummaryEvent(
        maybe_corrupt=False, duration_seconds=1, resource_changes={"create": 2},
        policy_packs={}))
    assert progress_event(summary) == ProgressEvent("summary", changes={"create": 2})


def test_config_round_trips_through_pulumi_config(media):
    from stacks.config import from_pulumi_config, to_pulumi_config

    config = StackConfig(params={**PARAMS, "timezone": "Europe/Paris"},
                         answers={"jellyfin.api_key": NO_LEAK}, deploy=frozenset({"lldap"}),
                         rotate={"internal_ca": "1"}, release_volumes=True, render_group=44)
    texts = {k: v for k, (v, _) in to_pulumi_config(config).items()}
    assert from_pulumi_config(media, texts) == config


def _why_no_real_run() -> str | None:
    missing = []
    if shutil.which("pulumi") is None:
        missing.append("the pulumi CLI is not installed")
    if not (os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").exists()):
        missing.append("there is no kubeconfig (no cluster to deploy to)")
    return " and ".join(missing) or None


@pytest.mark.needs_pulumi
@pytest.mark.skipif(_why_no_real_run() is not None, reason=str(_why_no_real_run()))
def test_real_preview_against_a_cluster(tmp_path):
    ws = Workspace(minimal(), home=tmp_path)
    ws.init("test", StackConfig(params={"domain": "example.org"}))
    events: list[ProgressEvent] = []
    result = ws.preview("test", events.append)
    assert result.changes.get("create", 0) > 0
    assert any(e.kind == "start" for e in events)
