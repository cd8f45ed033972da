"""Bugs found while writing the language reference, kept fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mora_dsl import compile_project


def _compile(tmp_path: Path, source: str):  # type: ignore[no-untyped-def]
    (tmp_path / "main.mora").write_text(source)
    return compile_project(tmp_path)


def _codes(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.code for d in result.diagnostics]


HEAD = 'project "t" {}\nparam domain: domain\n'


def test_references_in_command_and_args_stay_symbolic(tmp_path: Path) -> None:
    r = _compile(tmp_path, HEAD + 'secret k = token()\nservice web {\n  image = "x"\n'
                 '  command = ["app", "--token", k]\n  args = ["--domain", domain]\n}\n')
    assert r.ok, r.render_diagnostics()
    svc = r.manifest["services"][0]
    assert svc["command"] == ["app", "--token", {"ref": "secret:k"}]
    assert svc["args"] == ["--domain", {"ref": "param:domain"}]


def test_replicas_from_a_param_is_an_error_not_silently_one(tmp_path: Path) -> None:
    r = _compile(tmp_path, HEAD + 'param n: int = 3\nservice web {\n  image = "x"\n  replicas = n\n}\n')
    assert _codes(r) == ["E206"]


def test_uninstantiated_template_with_port_parameter_compiles(tmp_path: Path) -> None:
    r = _compile(tmp_path, HEAD + 'template t(x: int, y: port) {\n  image = "x"\n'
                 '  port http = x\n  port other = y\n}\n')
    assert r.ok, r.render_diagnostics()


@pytest.mark.parametrize(
    "body",
    ['secret pw = password(length = null)\nservice web { image = "x" }\n',
     'service web {\n  image = "x"\n  subdomain = null\n}\n'],
)
def test_null_is_refused_with_e201(tmp_path: Path, body: str) -> None:
    assert _codes(_compile(tmp_path, HEAD + body)) == ["E201"]


def test_port_given_twice_is_reported_once(tmp_path: Path) -> None:
    r = _compile(tmp_path, HEAD + 'service web {\n  image = "x"\n  port http = 80\n  port http = 81\n}\n')
    assert _codes(r) == ["E102"]
