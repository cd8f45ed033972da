"""``mora micromanager run --token-file``: where the sidecar's token comes from.

Precedence: ``--token-file``, else ``--token``, else ``$MORA_MICROMANAGER_TOKEN``
(``--token-file`` and ``--token`` together are misuse). A file that cannot be
read, or is empty, is misuse too: exit 2 with one line, never the token. The
server is not started: ``uvicorn.run`` is replaced, and the client the command
builds records the token it was given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mora_cli.main import main

TOKEN = "tok-from-the-file-never-printed"
ENV_TOKEN = "tok-from-the-environment"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the server and record the token and service the client gets."""
    import uvicorn

    import micromanager_kit.client as client_module

    seen: dict[str, Any] = {}
    real = client_module.ManagerClient

    class RecordingClient(real):  # type: ignore[misc,valid-type]
        def __init__(self, base_url: str, token: str, service: str, **kw: Any) -> None:
            seen.update(manager=base_url, token=token, service=service)
            super().__init__(base_url, token, service, **kw)

    monkeypatch.setattr(client_module, "ManagerClient", RecordingClient)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(served=kw))
    monkeypatch.delenv("MORA_MICROMANAGER_TOKEN", raising=False)
    return seen


def _run(*extra: str) -> int:
    return main(["micromanager", "run", "ldap", "--manager", "http://manager:8080",
                 "--service", "lldap", "--port", "9000", *extra])


def test_the_token_file_is_read_and_stripped(served, tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "lldap.token"
    path.write_text(f"  {TOKEN}\n", encoding="utf-8")
    monkeypatch.setenv("MORA_MICROMANAGER_TOKEN", ENV_TOKEN)
    assert _run("--token-file", str(path)) == 0
    assert served["token"] == TOKEN  # the file wins over the variable
    assert served["service"] == "lldap" and served["served"]["port"] == 9000
    captured = capsys.readouterr()
    assert TOKEN not in captured.out + captured.err


def test_the_variable_is_the_fallback(served, monkeypatch) -> None:
    monkeypatch.setenv("MORA_MICROMANAGER_TOKEN", f"{ENV_TOKEN}\n")
    assert _run() == 0
    assert served["token"] == ENV_TOKEN


def test_token_beats_the_variable(served, monkeypatch) -> None:
    monkeypatch.setenv("MORA_MICROMANAGER_TOKEN", ENV_TOKEN)
    assert _run("--token", "from-the-option") == 0
    assert served["token"] == "from-the-option"


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_an_unreadable_token_file_is_misuse(served, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.token"
    assert _run("--token-file", str(missing)) == 2
    line = _one_error_line(capsys)
    assert f"cannot read the token file {missing}" in line
    assert "served" not in served

    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert _run("--token-file", str(folder)) == 2
    assert "cannot read the token file" in _one_error_line(capsys)


def test_an_empty_token_file_is_misuse(served, tmp_path: Path, capsys) -> None:
    path = tmp_path / "empty.token"
    path.write_text("\n", encoding="utf-8")
    assert _run("--token-file", str(path)) == 2
    assert "is empty" in _one_error_line(capsys)


def test_no_token_at_all_names_the_ways_to_give_one(served, capsys) -> None:
    assert _run() == 2
    line = _one_error_line(capsys)
    assert "--token-file" in line and "MORA_MICROMANAGER_TOKEN" in line


def test_token_and_token_file_together_are_misuse(served, tmp_path: Path, capsys) -> None:
    path = tmp_path / "lldap.token"
    path.write_text(TOKEN, encoding="utf-8")
    assert _run("--token-file", str(path), "--token", "t") == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_help_says_the_precedence(capsys) -> None:
    assert main(["micromanager", "run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "comes from --token-file, else --token, else $MORA_MICROMANAGER_TOKEN" in text
