"""`mora ca --stack NAME [PATH] [-o FILE]`: the internal CA's certificate, to trust it.

It reads the stack output ``ingress_ca_cert`` through the Workspace, here against
the recording stand-in for the Pulumi CLI of ``test_stack_commands``. The
certificate is public: it goes to stdout (or FILE) with no confirmation; the
command never asks the engine for secret outputs' values in anything it prints.
"""

from __future__ import annotations

import pytest
from cli_helpers import needs_checker
from test_stack_commands import MINIMAL, engine, home  # noqa: F401  (fixtures)

from mora_cli.main import main

pytestmark = needs_checker

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----"
SECRET = "pa55word-must-not-show"
INIT = ["init", MINIMAL, "--stack", "home", "--set", "domain=hello.example.org"]


def test_prints_the_certificate_on_stdout(engine, capsys) -> None:  # noqa: F811
    cli = engine(outputs={"ingress_ca_cert": PEM, "secrets": {"admin_password": SECRET}})
    assert main(INIT) == 0
    capsys.readouterr()
    cli.calls.clear()
    assert main(["ca", "--stack", "home", MINIMAL]) == 0
    captured = capsys.readouterr()
    assert captured.out == PEM + "\n"
    assert SECRET not in captured.out + captured.err
    assert cli.named("stack", "output")
    assert not cli.named("up") and not cli.named("config", "set-all")


def test_writes_the_certificate_to_a_file_without_path(engine, tmp_path, capsys) -> None:  # noqa: F811
    engine(outputs={"ingress_ca_cert": PEM + "\n"})
    assert main(INIT) == 0
    capsys.readouterr()
    target = tmp_path / "ca.crt"
    # Without PATH: the folder `mora init` recorded for the stack.
    assert main(["ca", "--stack", "home", "-o", str(target)]) == 0
    assert target.read_text() == PEM + "\n"
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"wrote the CA certificate of stack home to {target}" in captured.err


def test_before_the_first_up_it_says_what_to_run(engine, capsys) -> None:  # noqa: F811
    engine(outputs={})
    assert main(INIT) == 0
    capsys.readouterr()
    assert main(["ca", "--stack", "home", MINIMAL]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "has no internal CA yet" in captured.err and "mora up" in captured.err


def test_a_cert_manager_stack_has_no_mora_ca(engine, capsys) -> None:  # noqa: F811
    engine(outputs={})
    assert main([*INIT, "--cert-manager-issuer", "letsencrypt"]) == 0
    capsys.readouterr()
    assert main(["ca", "--stack", "home", MINIMAL]) == 1
    assert "cert-manager (issuer letsencrypt)" in capsys.readouterr().err


def test_unwritable_file_is_misuse(engine, tmp_path, capsys) -> None:  # noqa: F811
    engine(outputs={"ingress_ca_cert": PEM})
    assert main(INIT) == 0
    assert main(["ca", "--stack", "home", MINIMAL, "-o", str(tmp_path / "no" / "ca.crt")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_unknown_stack_is_misuse(engine, capsys) -> None:  # noqa: F811
    cli = engine()
    assert main(["ca", "--stack", "nope", MINIMAL]) == 2
    assert "create it with `mora init PATH --stack nope`" in capsys.readouterr().err
    assert cli.calls == []


@pytest.mark.usefixtures("home")
def test_without_pulumi_exit_3_with_one_sentence(capsys) -> None:
    # A stack this machine runs (no `mora up` through a manager): its local state needs Pulumi.
    assert main(INIT) == 0
    capsys.readouterr()
    assert main(["ca", "--stack", "home", MINIMAL]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("mora: error: The Pulumi CLI (`pulumi`) is not installed")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
