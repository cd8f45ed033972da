"""`--namespace` on `mora init` and `mora render`: two stacks of one project, one cluster.

The namespace is a stack setting kept in mora's record (and written into the
Pulumi stack as ``mora:stack.namespace``); `mora render` uses it, `--namespace`
on render overrides it, an empty value goes back to the project's namespace, and
`mora init` notes when another stack of the project would share the namespace
through the same kubeconfig.
"""

from __future__ import annotations

from typing import Any

import yaml
from cli_helpers import needs_checker
from test_stack_commands import MEDIA, MEDIA_SETS, _record, engine, home  # noqa: F401

from mora_cli.main import main

pytestmark = needs_checker
FRIEND = ["--set", "domain=friend.example.org", "--set", "media_path=/srv/friend"]


def _rendered(capsys: Any) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]


def _namespaces(objects: list[dict[str, Any]]) -> set[str]:
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    return names | {o["metadata"]["namespace"] for o in objects if o["kind"] != "Namespace"}


def test_init_keeps_the_namespace_and_render_uses_it(home, capsys) -> None:  # noqa: F811
    assert main(["init", MEDIA, "--stack", "friend", *FRIEND,
                 "--namespace", "media-server-friend"]) == 0
    assert _record(home, "media-server", "friend")["settings"]["namespace"] == (
        "media-server-friend")
    capsys.readouterr()
    assert main(["render", MEDIA, "--stack", "friend"]) == 0
    objects = _rendered(capsys)
    assert _namespaces(objects) == {"media-server-friend"}
    lldap = next(o for o in objects if o["kind"] == "Ingress" and o["metadata"]["name"] == "lldap")
    assert lldap["spec"]["rules"][0]["host"] == "ldap.friend.example.org"
    # An empty value goes back to the project's namespace.
    assert main(["init", MEDIA, "--stack", "friend", "--namespace", ""]) == 0
    assert "namespace" not in _record(home, "media-server", "friend")["settings"]
    capsys.readouterr()
    assert main(["render", MEDIA, "--stack", "friend"]) == 0
    assert _namespaces(_rendered(capsys)) == {"media"}


def test_render_namespace_overrides_without_a_stack(capsys) -> None:
    assert main(["render", MEDIA, *MEDIA_SETS, "--namespace", "media-test"]) == 0
    assert _namespaces(_rendered(capsys)) == {"media-test"}


def test_invalid_namespace_is_misuse_and_nothing_is_saved(home, capsys) -> None:  # noqa: F811
    assert main(["init", MEDIA, "--stack", "friend", *FRIEND, "--namespace", "Media_Friend"]) == 2
    err = capsys.readouterr().err
    assert "--namespace Media_Friend: not a valid namespace name" in err
    assert not (home / "stacks" / "media-server" / "friend.json").exists()
    assert main(["render", MEDIA, *MEDIA_SETS, "--namespace", "-x"]) == 2


def test_a_second_stack_in_the_same_namespace_gets_a_note(home, capsys) -> None:  # noqa: F811
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    assert "note: stack" not in capsys.readouterr().err
    assert main(["init", MEDIA, "--stack", "friend", *FRIEND]) == 0
    err = capsys.readouterr().err
    assert "note: stack home also uses namespace media with the same kubeconfig" in err
    assert "--namespace media-server-friend" in err
    assert main(["init", MEDIA, "--stack", "friend", "--namespace", "media-server-friend"]) == 0
    assert "note: stack" not in capsys.readouterr().err


def test_the_namespace_reaches_the_pulumi_stack(engine, capsys) -> None:  # noqa: F811
    cli = engine()
    assert main(["init", MEDIA, "--stack", "friend", *FRIEND,
                 "--namespace", "media-server-friend"]) == 0
    (set_all,) = cli.named("config", "set-all")
    assert "mora:stack.namespace=media-server-friend" in set_all


def test_invalid_manager_namespace_is_misuse_before_the_manager_is_asked(home, capsys) -> None:  # noqa: F811
    assert main(["init", MEDIA, "--stack", "home", *MEDIA_SETS]) == 0
    capsys.readouterr()
    assert main(["up", MEDIA, "--stack", "home", "--manager-namespace", "Mora_System"]) == 2
    err = capsys.readouterr().err
    assert "--manager-namespace Mora_System: not a valid namespace name" in err
    assert "e.g. mora-system" in err
    assert _record(home, "media-server", "home").get("mode") is None
