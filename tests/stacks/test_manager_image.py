"""The Dockerfile and the manager's Deployment must agree (no Docker engine here to build it).

The image cannot be built on these machines, so what can be checked offline is:
the user, port, data folder and command the Deployment assumes are the image's,
and the pinned Pulumi CLI is the version of the Python SDK the project installs.
"""

from __future__ import annotations

import json
import re
from importlib.metadata import version
from pathlib import Path

from stacks.manager import DATA_PATH, PORT, UID, manager_args
from stacks.manager_program import ManagerConfig

DOCKERFILE = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()


def _instruction(name: str) -> list[str]:
    return [ln.split(None, 1)[1] for ln in DOCKERFILE.splitlines() if ln.startswith(name + " ")]


def test_the_pulumi_cli_is_pinned_to_the_sdk_version():
    (pinned,) = re.findall(r"^ARG PULUMI_VERSION=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert pinned == version("pulumi")


def test_user_port_data_and_command_match_the_deployment():
    assert f"--uid {UID}" in DOCKERFILE and _instruction("USER") == [str(UID)]
    assert _instruction("EXPOSE") == [str(PORT)]
    assert _instruction("VOLUME") == [f'["{DATA_PATH}"]']
    (entrypoint,) = _instruction("ENTRYPOINT")
    assert json.loads(entrypoint)[-1] == "mora"
    (cmd,) = _instruction("CMD")
    args = manager_args(ManagerConfig(stack="home", domain="example.org",
                                      project_namespaces=["x"]))
    # The Deployment adds only --stack to the image's default command.
    without_stack = args[:2] + args[4:]
    assert json.loads(cmd) == without_stack


def test_plugins_follow_the_installed_sdks():
    for plugin, sdk in (("kubernetes", "pulumi_kubernetes"), ("random", "pulumi_random"),
                        ("tls", "pulumi_tls")):
        assert f'pulumi plugin install resource {plugin} "v$(v {sdk})"' in DOCKERFILE
