"""The language commands, run in-process through ``main([...])``.

Most tests use a stand-in compiler (see conftest) so they pin what the CLI
promises: exit codes, which stream gets what, file handling. The tests at the
end run the real compiler on the examples.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import REPO, error_diagnostic, needs_checker, sample_manifest_model

from mora_cli import lang_commands
from mora_cli.main import main
from mora_dsl.codes import CODES
from mora_dsl.diagnostics import Diagnostic
from mora_dsl.syntax import Span

# --------------------------------------------------------------------------- check


def test_check_ok_prints_summary_line(fake_compile, sample_manifest, tmp_path, capsys) -> None:
    fake_compile(manifest=sample_manifest)
    assert main(["check", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "ok: demo — 5 services, 1 input, 3 waves\n"
    assert captured.err == ""


def test_check_defaults_to_current_folder(
    fake_compile, sample_manifest, tmp_path, monkeypatch, capsys
) -> None:
    fake_compile(manifest=sample_manifest)
    monkeypatch.chdir(tmp_path)
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("ok: demo")


def test_check_errors_exit_1_with_diagnostics_on_stderr(fake_compile, tmp_path, capsys) -> None:
    fake_compile(diagnostics=[error_diagnostic("E101")])
    assert main(["check", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error[E101]" in captured.err
    assert "main.mora:2:11" in captured.err
    assert "\x1b[" not in captured.err  # not a terminal: no colour


def test_check_warnings_do_not_fail(fake_compile, sample_manifest, tmp_path, capsys) -> None:
    fake_compile(manifest=sample_manifest, diagnostics=[error_diagnostic("E101", "warning")])
    assert main(["check", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "warning[E101]" in captured.err
    assert captured.out.startswith("ok: demo")


def test_check_missing_path_is_misuse(fake_compile, tmp_path, capsys) -> None:
    fake_compile()
    missing = tmp_path / "nope"
    assert main(["check", str(missing)]) == 2
    assert capsys.readouterr().err == f"mora: error: {missing}: no such file or folder\n"


@pytest.mark.parametrize(
    ("argv", "painted"),
    [
        (["--color", "always", "check"], True),
        (["check", "--color", "always"], True),  # global options work after the command too
        (["--color", "never", "check"], False),
        (["check"], False),  # auto, and stderr is not a terminal under capsys
    ],
)
def test_color_flag(fake_compile, tmp_path, monkeypatch, capsys, argv, painted) -> None:
    fake_compile(diagnostics=[error_diagnostic()])
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert ("\x1b[" in capsys.readouterr().err) is painted


# --------------------------------------------------------------------------- build


def test_build_to_stdout_is_the_validated_manifest(
    fake_compile, sample_manifest, tmp_path, capsys
) -> None:
    fake_compile(manifest=sample_manifest)
    assert main(["build", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data == sample_manifest_model().model_dump(mode="json", exclude_none=False)
    assert next(iter(data)) == "manifest_version"  # model order, not sorted keys
    assert captured.err == ""


def test_build_dash_means_stdout(fake_compile, sample_manifest, tmp_path, capsys) -> None:
    fake_compile(manifest=sample_manifest)
    assert main(["build", str(tmp_path), "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["project"]["name"] == "demo"


def test_build_writes_file_creating_folders(
    fake_compile, sample_manifest, tmp_path, capsys
) -> None:
    fake_compile(manifest=sample_manifest)
    target = tmp_path / "build" / "out" / "manifest.json"
    assert main(["build", str(tmp_path), "-o", str(target)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"wrote {target}\n"
    assert json.loads(target.read_text(encoding="utf-8"))["graph"]["waves"][1] == ["sonarr"]
    assert [p.name for p in target.parent.iterdir()] == ["manifest.json"]  # no temp file left


def test_build_with_errors_writes_nothing(fake_compile, tmp_path, capsys) -> None:
    fake_compile(diagnostics=[error_diagnostic()])
    target = tmp_path / "manifest.json"
    assert main(["build", str(tmp_path), "-o", str(target)]) == 1
    assert not target.exists()
    assert "error[E101]" in capsys.readouterr().err


def test_build_unwritable_output_is_misuse(fake_compile, sample_manifest, tmp_path, capsys) -> None:
    fake_compile(manifest=sample_manifest)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["build", str(tmp_path), "-o", str(blocker / "manifest.json")]) == 2
    assert capsys.readouterr().err.startswith(f"mora: error: cannot write {blocker}")


def test_build_invalid_manifest_is_an_internal_error(fake_compile, tmp_path, capsys) -> None:
    fake_compile(manifest={"project": {"name": "x"}})  # what a buggy compiler might emit
    assert main(["build", str(tmp_path)]) == 70
    err = capsys.readouterr().err
    assert err.startswith("mora: internal error: ValidationError")
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- graph


def test_graph_text(fake_compile, sample_manifest, tmp_path, capsys) -> None:
    fake_compile(manifest=sample_manifest)
    assert main(["graph", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "wave 1: qbittorrent, prowlarr, jellyfin",
        "wave 2: sonarr",
        "wave 3: janitorr",
    ]
    assert "sonarr   ← qbittorrent, prowlarr (depends_on)" in lines
    assert "janitorr ← sonarr, jellyfin (reference); waits for input jellyfin.api_key" in lines
    assert any(
        line.startswith("  jellyfin.api_key") and "janitorr waits for it" in line for line in lines
    )


def test_graph_mermaid(fake_compile, sample_manifest, tmp_path, capsys) -> None:
    fake_compile(manifest=sample_manifest)
    assert main(["graph", str(tmp_path), "--format", "mermaid"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == "graph TD"
    assert 'subgraph wave1["wave 1"]' in lines
    assert "qbittorrent --> sonarr" in lines
    assert "jellyfin --> janitorr" in lines
    assert "class janitorr waits" in lines


def test_graph_json_is_the_manifest_graph(fake_compile, sample_manifest, tmp_path, capsys) -> None:
    fake_compile(manifest=sample_manifest)
    assert main(["graph", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == sample_manifest["graph"]


def test_graph_with_errors_exits_1(fake_compile, tmp_path, capsys) -> None:
    fake_compile(diagnostics=[error_diagnostic()])
    assert main(["graph", str(tmp_path)]) == 1
    assert capsys.readouterr().out == ""


def test_graph_bad_format_is_misuse(capsys) -> None:
    assert main(["graph", ".", "--format", "dot"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# --------------------------------------------------------------------------- explain, schema


def test_explain_known_code(capsys) -> None:
    assert main(["explain", "e101"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"E101: {CODES['E101'].title}\n")


def test_explain_unknown_code_suggests(capsys) -> None:
    assert main(["explain", "E1O1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mora: error: unknown code `E1O1`")
    assert "E101" in err
    assert "mora explain --list" in err


def test_explain_without_code_is_misuse(capsys) -> None:
    assert main(["explain"]) == 2
    assert "mora explain --list" in capsys.readouterr().err


def test_explain_list(capsys) -> None:
    assert main(["explain", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(CODES)
    assert lines[0].endswith(CODES[lines[0].split()[0]].title)


def test_schema_is_the_manifest_json_schema(capsys) -> None:
    from mora_dsl.manifest import json_schema

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


# --------------------------------------------------------------------------- fmt


def _fake_formatter(text: str, file: str) -> tuple[str | None, list[Diagnostic]]:
    """Strips trailing blanks; `@` is a syntax error. Enough to drive the command."""
    if "@" in text:
        line = text[: text.index("@")].count("\n") + 1
        span = Span(file, line, 1, line, 2)
        return None, [Diagnostic("E003", "unexpected character `@`", span)]
    return "".join(line.rstrip() + "\n" for line in text.splitlines()), []


@pytest.fixture
def fake_formatter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lang_commands, "_load_formatter", lambda: _fake_formatter)


def _project(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return tmp_path


def test_fmt_rewrites_only_changed_files(fake_formatter, tmp_path, monkeypatch, capsys) -> None:
    _project(tmp_path, {"a.mora": "x = 1   \n", "b.mora": "y = 2\n", "notes.txt": "z   \n"})
    (tmp_path / "a.mora").chmod(0o640)
    before = (tmp_path / "b.mora").stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    assert main(["fmt"]) == 0
    assert capsys.readouterr().out == "formatted a.mora\n"
    assert (tmp_path / "a.mora").read_text() == "x = 1\n"
    assert stat.S_IMODE((tmp_path / "a.mora").stat().st_mode) == 0o640
    assert (tmp_path / "b.mora").stat().st_mtime_ns == before
    assert (tmp_path / "notes.txt").read_text() == "z   \n"  # folders mean their .mora files


def test_fmt_check_changes_nothing_and_fails(fake_formatter, tmp_path, capsys) -> None:
    _project(tmp_path, {"a.mora": "x = 1   \n", "b.mora": "y = 2\n"})
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("would reformat ") and out[0].endswith("a.mora")
    assert (tmp_path / "a.mora").read_text() == "x = 1   \n"


def test_fmt_check_clean_exits_0(fake_formatter, tmp_path, capsys) -> None:
    _project(tmp_path, {"a.mora": "x = 1\n"})
    assert main(["fmt", "--check", str(tmp_path / "a.mora")]) == 0
    assert capsys.readouterr().out == ""


def test_fmt_crlf_counts_as_a_change(fake_formatter, tmp_path, capsys) -> None:
    _project(tmp_path, {"a.mora": b"x = 1\r\n"})
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    assert main(["fmt", str(tmp_path)]) == 0
    assert (tmp_path / "a.mora").read_bytes() == b"x = 1\n"


def test_fmt_syntax_error_reports_and_leaves_file(fake_formatter, tmp_path, capsys) -> None:
    _project(tmp_path, {"bad.mora": "x = 1   \n@\n", "good.mora": "y = 2   \n"})
    assert main(["fmt", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "error[E003]" in captured.err
    assert (tmp_path / "bad.mora").read_text() == "x = 1   \n@\n"
    assert (tmp_path / "good.mora").read_text() == "y = 2\n"  # the others are still formatted


def test_fmt_binary_file_is_a_diagnostic(fake_formatter, tmp_path, capsys) -> None:
    _project(tmp_path, {"bin.mora": b"\xff\xfe\x00garbage"})
    assert main(["fmt", str(tmp_path)]) == 1
    assert "error[E004]" in capsys.readouterr().err


def test_fmt_missing_path_is_misuse(fake_formatter, tmp_path, capsys) -> None:
    assert main(["fmt", str(tmp_path / "nope.mora")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_fmt_same_file_twice_is_formatted_once(fake_formatter, tmp_path, capsys) -> None:
    _project(tmp_path, {"a.mora": "x   \n"})
    assert main(["fmt", str(tmp_path), str(tmp_path / "a.mora")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


# --------------------------------------------------------------------------- the real compiler


def _copy_example(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPO / "examples" / name, tmp_path / name))


@needs_checker
@pytest.mark.parametrize("example", ["minimal", "media-server"])
def test_examples_check_build_graph(example: str, tmp_path, capsys) -> None:
    path = str(REPO / "examples" / example)
    assert main(["check", path]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("ok: ")
    target = tmp_path / "manifest.json"
    assert main(["build", path, "-o", str(target)]) == 0
    manifest: dict[str, Any] = json.loads(target.read_text(encoding="utf-8"))
    capsys.readouterr()
    assert main(["graph", path]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wave 1: ")
    assert len([ln for ln in out.splitlines() if ln.startswith("wave ")]) == len(
        manifest["graph"]["waves"]
    )


@needs_checker
def test_real_compiler_reports_errors_with_codes(tmp_path, capsys) -> None:
    project = _copy_example("minimal", tmp_path)
    main_mora = project / "main.mora"
    main_mora.write_text(main_mora.read_text().replace("= admin_password", "= admin_pasword"))
    assert main(["check", str(project)]) == 1
    assert "[E101]" in capsys.readouterr().err


@needs_checker
def test_real_compiler_missing_path_and_empty_folder(tmp_path, capsys) -> None:
    assert main(["check", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["check", str(tmp_path)]) == 1  # a folder without .mora files is E005
    assert "[E005]" in capsys.readouterr().err


def _real_formatter_available() -> bool:
    try:
        from mora_dsl.formatter import format_source  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _real_formatter_available(), reason="mora_dsl.formatter is not there yet")
def test_fmt_real_formatter_is_stable_on_examples(tmp_path, capsys) -> None:
    for name in ("minimal", "media-server"):
        project = _copy_example(name, tmp_path)
        assert main(["fmt", str(project)]) == 0, capsys.readouterr().err
        capsys.readouterr()
        assert main(["fmt", "--check", str(project)]) == 0, capsys.readouterr().out
