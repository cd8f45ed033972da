"""``Workspace.update_config``: new params and settings, the stack's answers kept.

Against the recording stand-in for the Pulumi CLI (``test_automation``), extended
to answer ``config --json`` with a stack's current config: the answers already
in the stack must be written back with ``--secret``, the deploy set and rotation
stamps kept, stale settings removed, and nothing else lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pulumi.automation._cmd import CommandResult
from stacks_helpers import NO_LEAK, minimal
from test_automation import RecordingPulumi

from stacks.automation import Workspace
from stacks.config import StackConfig


class ConfiguredPulumi(RecordingPulumi):
    """The stand-in, with a stack whose config already holds ``config``."""

    def __init__(self, config: dict[str, tuple[str, bool]], **kw: Any) -> None:
        super().__init__(**kw)
        self._config = config

    def run(self, args, cwd, additional_env, on_output=None, on_error=None) -> CommandResult:
        result = super().run(args, cwd, additional_env, on_output, on_error)
        if args[:1] == ["config"] and "--json" in args:
            return CommandResult(stdout=json.dumps(
                {k: {"value": v, "secret": s} for k, (v, s) in self._config.items()}),
                stderr="", code=0)
        return result


EXISTING = {
    "mora:domain": ("old.example.org", False),
    "mora:input.whoami.token": (NO_LEAK, True),
    "mora:stack.deploy": ('["whoami"]', False),
    "mora:stack.rotate": ('{"admin_password": "1"}', False),
    "mora:stack.storage_class": ("old-class", False),
}


def _workspace(tmp_path: Path, cli: RecordingPulumi) -> Workspace:
    return Workspace(minimal(), home=tmp_path / "home", pulumi_command=cli)


def test_answers_deploy_set_and_stamps_survive_as_they_were(tmp_path):
    cli = ConfiguredPulumi(EXISTING)
    written = _workspace(tmp_path, cli).update_config(
        "alice", StackConfig(params={"domain": "new.example.org"}, namespace="hello-alice"))
    (set_all,) = cli.named("config", "set-all")
    assert "mora:domain=new.example.org" in set_all
    assert "mora:stack.namespace=hello-alice" in set_all
    assert set_all[set_all.index(f"mora:input.whoami.token={NO_LEAK}") - 1] == "--secret"
    assert set_all[set_all.index('mora:stack.deploy=["whoami"]') - 1] == "--plaintext"
    assert 'mora:stack.rotate={"admin_password": "1"}' in set_all
    # A setting the new config no longer has is removed, not kept.
    (remove,) = cli.named("config", "rm-all")
    assert "mora:stack.storage_class" in remove
    assert written.answer("whoami.token") == NO_LEAK
    assert written.deploy == frozenset({"whoami"})
    assert NO_LEAK not in repr(written)


def test_given_answers_win_and_a_given_deploy_set_replaces_the_stacks(tmp_path):
    cli = ConfiguredPulumi(EXISTING)
    written = _workspace(tmp_path, cli).update_config(
        "alice", StackConfig(params={"domain": "example.org"}, answers={"whoami.token": "new"},
                             deploy=frozenset(), rotate={"other": "2"}))
    set_all = cli.named("config", "set-all")[0]
    assert set_all[set_all.index("mora:input.whoami.token=new") - 1] == "--secret"
    assert "mora:stack.deploy=[]" in set_all
    assert written.rotate == {"admin_password": "1", "other": "2"}


def test_a_new_stack_is_created_and_written_once(tmp_path):
    cli = ConfiguredPulumi({}, missing=("bob",))
    _workspace(tmp_path, cli).update_config(
        "bob", StackConfig(params={"domain": "example.org"}), create=True)
    assert [c[:3] for c in cli.named("stack", "init")] == [["stack", "init", "bob"]]
    assert len(cli.named("config", "set-all")) == 1
    assert not cli.named("config", "rm-all")


def test_micromanager_tokens_are_kept_like_answers_the_manager_url_is_a_setting(tmp_path):
    """Only the manager issues tokens, so a config without them keeps the stack's;
    the manager's URL is a setting: a config without one (`mora up --local`) drops it."""
    manifest = minimal()
    (service,) = manifest.services
    manifest = manifest.model_copy(
        update={"services": [service.model_copy(update={"micromanager": "whoami"})]})
    cli = ConfiguredPulumi({
        **EXISTING,
        "mora:micromanager_token.whoami": (NO_LEAK, True),
        "mora:stack.manager_url": ("http://mora-manager.mora-system.svc.cluster.local:8080",
                                   False),
    })
    ws = Workspace(manifest, home=tmp_path / "home", pulumi_command=cli)
    written = ws.update_config("alice", StackConfig(params={"domain": "example.org"}))
    (set_all,) = cli.named("config", "set-all")
    assert set_all[set_all.index(f"mora:micromanager_token.whoami={NO_LEAK}") - 1] == "--secret"
    (remove,) = cli.named("config", "rm-all")
    assert "mora:stack.manager_url" in remove
    assert written.micromanager_token("whoami") == NO_LEAK and written.manager_url is None
    assert NO_LEAK not in repr(written)

    cli = ConfiguredPulumi(EXISTING)
    ws = Workspace(manifest, home=tmp_path / "home", pulumi_command=cli)
    written = ws.update_config("alice", StackConfig(
        params={"domain": "example.org"}, micromanager_tokens={"whoami": "new"},
        manager_url="http://m.example:8080"))
    (set_all,) = cli.named("config", "set-all")
    assert set_all[set_all.index("mora:micromanager_token.whoami=new") - 1] == "--secret"
    assert "mora:stack.manager_url=http://m.example:8080" in set_all
