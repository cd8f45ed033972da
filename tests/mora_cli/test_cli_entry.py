"""The ``mora`` command as a whole: help, version, failure handling, start-up cost.

The subprocess tests run the installed console script, the way a user does,
because exit codes and imported modules are only honest in a fresh process.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import REPO, needs_checker

from mora_cli import output
from mora_cli.main import COMMAND_MODULES, build_parser, main

LANGUAGE_COMMANDS = ["check", "build", "fmt", "explain", "schema", "graph"]
HEAVY = ("pulumi", "pulumi_kubernetes", "fastapi", "pydantic", "rich", "uvicorn", "httpx")
MORA = Path(sys.executable).parent / "mora"


def test_help_lists_every_command(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in LANGUAGE_COMMANDS:
        assert f"    {command} " in out


@pytest.mark.parametrize("command", LANGUAGE_COMMANDS)
def test_each_command_has_help(command: str, capsys) -> None:
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: mora {command}")


def test_no_command_prints_help_and_is_misuse(capsys) -> None:
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_unknown_command_is_misuse(capsys) -> None:
    assert main(["chek"]) == 2
    assert "mora: error:" in capsys.readouterr().err


def test_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("mora ")


def test_every_module_registers() -> None:
    assert all(hasattr(module, "register") for module in COMMAND_MODULES)
    build_parser()  # builds without importing the compiler


def test_internal_error_is_one_line(fake_compile, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("MORA_DEBUG", raising=False)
    fake_compile(raises=RuntimeError("boom\nsecond line"))
    assert main(["check", str(tmp_path)]) == 70
    err = capsys.readouterr().err
    assert err.startswith("mora: internal error: RuntimeError: boom; please report it")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_internal_error_traceback_with_mora_debug(
    fake_compile, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MORA_DEBUG", "1")
    fake_compile(raises=RuntimeError("boom"))
    assert main(["check", str(tmp_path)]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "mora: internal error: RuntimeError: boom" in err


def test_keyboard_interrupt_exits_130_quietly(fake_compile, tmp_path, capsys) -> None:
    fake_compile(raises=KeyboardInterrupt())
    assert main(["check", str(tmp_path)]) == 130
    assert capsys.readouterr() == ("", "")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("mode", "env", "tty", "expected"),
    [
        ("auto", {}, True, True),
        ("auto", {}, False, False),
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"TERM": "dumb"}, True, False),
        ("always", {"NO_COLOR": "1"}, False, True),
        ("never", {}, True, False),
    ],
)
def test_use_color(monkeypatch, mode, env, tty, expected) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    stream = _Tty() if tty else io.StringIO()
    assert output.use_color(mode, stream) is expected


# --------------------------------------------------------------------------- real processes


def _run(*args: str, python_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MORA_DEBUG"}
    return subprocess.run(
        [sys.executable, *python_flags, str(MORA), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


pytestmark_script = pytest.mark.skipif(not MORA.exists(), reason=f"{MORA} is not installed")


def _imported(importtime_stderr: str) -> set[str]:
    """Top-level package names from ``-X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytestmark_script
def test_script_help_is_light() -> None:
    proc = _run("--help", python_flags=("-X", "importtime"))
    assert proc.returncode == 0
    assert "usage: mora" in proc.stdout
    imported = _imported(proc.stderr)
    assert not imported & set(HEAVY)
    assert "lark" not in imported  # help does not even load the parser


@pytestmark_script
def test_script_exit_codes() -> None:
    assert _run("explain", "E101").returncode == 0
    bad = _run("explain", "E999")
    assert bad.returncode == 2
    assert bad.stderr.startswith("mora: error: unknown code")
    assert _run("--color", "sometimes", "check").returncode == 2


@pytestmark_script
@needs_checker
def test_script_check_missing_path() -> None:
    proc = _run("check", "does/not/exist")
    assert proc.returncode == 2
    assert proc.stderr == "mora: error: does/not/exist: no such file or folder\n"


@pytestmark_script
@needs_checker
def test_script_check_imports_nothing_heavy() -> None:
    proc = _run("check", "examples/minimal", python_flags=("-X", "importtime"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: hello")
    assert not _imported(proc.stderr) & set(HEAVY)


@needs_checker
def test_check_leaves_heavy_modules_unloaded_in_fresh_process() -> None:
    """The same promise checked on ``sys.modules`` after ``main`` ran."""
    code = (
        "import sys\n"
        "from mora_cli.main import main\n"
        "rc = main(['check', 'examples/media-server'])\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print('HEAVY=' + ','.join(heavy))\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "HEAVY="


@pytestmark_script
def test_script_closed_pipe_is_quiet() -> None:
    """``mora schema | head -0``: the reader leaving is no internal error and no traceback."""
    proc = subprocess.Popen(
        [sys.executable, str(MORA), "schema"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert err == b""
