"""Every diagnostic code: a small bad program and the exact diagnostic it must produce.

Each case lists *all* the diagnostics of its program (``file:line:col: CODE: message``),
so a case also proves that the mistake is reported once, without follow-up errors.
A guard test fails when a code of :data:`mora_dsl.codes.CODES` has no case here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dsl_helpers import PROJECT as P

from mora_dsl.api import CompileResult, compile_project
from mora_dsl.codes import CODES
from mora_dsl.project import ProjectPathError

Compile = Callable[..., CompileResult]


@dataclass(frozen=True)
class Case:
    id: str
    main: str | bytes | None
    expected: list[str]  # "main.mora:3:11: E101: unknown name `imag`"; "-" when there is no span
    files: dict[str, str | bytes] = field(default_factory=dict)

    @property
    def codes(self) -> set[str]:
        return {e.split(": ")[1] for e in self.expected}


def summary(result: CompileResult) -> list[str]:
    return [f"{d.span or '-'}: {d.code}: {d.message}" for d in result.diagnostics]


CASES = [
    # ------------------------------------------------------------ E0xx: reading and parsing
    Case("E001-extra-brace", P + 'service web {\n  image = "nginx" }\n}\n',
         ["main.mora:4:1: E001: unexpected `}`"]),
    Case("E001-double-equals", P + 'service web {\n  image = = "x"\n}\n',
         ["main.mora:3:11: E001: unexpected `=`"]),
    Case("E001-decimal", P + 'service web {\n  image = "x"\n  replicas = 1.5\n}\n',
         ["main.mora:4:16: E001: unexpected `5`"]),
    Case("E001-template-file", P + 'service web {\n  image = "x"\n  file "/a.yml" = template("a.yml")\n}\n',
         ["a.yml:2:2: E001: unexpected `:`"], {"a.yml": "a: ${\nb: 2\n"}),
    Case("E002-string", P + 'service web {\n  image = "nginx\n}\n',
         ["main.mora:3:11: E002: string is not closed before the end of the line"]),
    Case("E002-block", P + 'service web {\n  image = "nginx"\n',
         ["main.mora:2:13: E002: `{` is not closed before the end of the file"]),
    Case("E002-list", P + 'service web {\n  image = "x"\n  command = ["run", "${web.name}",\n}\n',
         ["main.mora:5:1: E001: unexpected `}`"]),
    Case("E002-call-at-eof", P + 'secret s = password(length = 3',
         ["main.mora:2:20: E002: `(` is not closed before the end of the file"]),
    Case("E002-value-at-eof", P + "param p: string =",
         ["main.mora:2:18: E002: unexpected end of file"]),
    Case("E002-long-string", P + 'service web {\n  command = """\n    run\n}\n',
         ["main.mora:3:13: E002: string is not closed before the end of the file"]),
    Case("E003-at", P + "service web @ {}\n", ["main.mora:2:13: E003: unexpected character `@`"]),
    Case("E003-semicolon", P + 'service web {\n  image = "x";\n}\n',
         ["main.mora:3:14: E003: unexpected character `;`"]),
    Case("E004-not-utf8", b'project "t" {}\nservice w\xe9b { image = "x" }\n',
         ["main.mora:2:10: E004: not UTF-8 text: byte 0xe9 cannot be decoded"]),
    Case("E004-nul", b'project "t" {}\n\x00\n', ["main.mora:2:1: E004: file holds a NUL byte: not a text file"]),
    Case("E004-template-not-utf8",
         P + 'service web {\n  image = "x"\n  file "/a" = template("a.bin")\n}\n',
         ["a.bin:1:2: E004: not UTF-8 text: byte 0xff cannot be decoded"], {"a.bin": b"a\xff"}),
    Case("E005-empty-folder", None, ["-: E005: no .mora files in ."], {"README.md": "hello"}),
    # ------------------------------------------------------------ E1xx: names
    Case("E101", P + 'service web {\n  image = imag\n}\n', ["main.mora:3:11: E101: unknown name `imag`"]),
    Case("E101-in-string", P + 'param domain: domain\nservice web {\n  image = "x-${domian}"\n}\n',
         ["main.mora:4:16: E101: unknown name `domian`"]),
    Case("E102-service", P + 'service web { image = "a" }\nservice web { image = "b" }\n',
         ["main.mora:3:9: E102: `web` is already defined (as a service)"]),
    Case("E102-param-and-volume", P + 'param data: path\nvolume data { size = "1Gi" }\n',
         ["main.mora:3:8: E102: `data` is already defined (as a param)"]),
    Case("E102-port", P + 'service web {\n  image = "x"\n  port http = 80\n  port http = 81\n}\n',
         ["main.mora:5:3: E102: `port http` is given twice in `web`"]),
    Case("E102-env-key", P + 'service web {\n  image = "x"\n  environment = { A = "1", A = "2" }\n}\n',
         ["main.mora:4:28: E102: `A` is given twice"]),
    Case("E103", P + 'service web {\n  imgae = "nginx"\n}\n',
         ["main.mora:3:3: E103: service `web` has no attribute `imgae`"]),
    Case("E103-volume", P + 'volume data {\n  size = "1Gi"\n  sise = "2Gi"\n}\n',
         ["main.mora:4:3: E103: volume `data` has no attribute `sise`"]),
    Case("E103-resources-key", P + 'service web {\n  image = "x"\n'
         '  resources = { memroy = "1Gi", cpu = "fast" }\n}\n',
         ["main.mora:4:15: E103: `resources` has no key `memroy`",
          'main.mora:4:15: E304: "fast" is not a valid cpu']),
    Case("E103-health-key", P + 'service web {\n  image = "x"\n  port http = 80\n'
         '  health = { htp = "/", tcp = true }\n}\n',
         ["main.mora:5:12: E103: `health` has no key `htp`"]),
    Case("E104", P + 'service db {\n  image = "pg"\n  port pg = 5432\n}\n'
         'service web {\n  image = "x"\n  environment = { URL = db.adress }\n}\n',
         ["main.mora:8:28: E104: the service `db` has no member `adress`"]),
    Case("E104-project", P + 'service web {\n  image = "x"\n  environment = { N = project.nam }\n}\n',
         ["main.mora:4:31: E104: `project` has no member `nam`"]),
    Case("E105", P + 'servce web { image = "nginx" }\n', ["main.mora:2:1: E105: unknown declaration `servce`"]),
    Case("E106-missing", 'service web { image = "nginx" }\n',
         ["main.mora:1:1: E106: the project has no `project` block"]),
    Case("E106-twice", P + 'project "u" {}\n', ["main.mora:2:1: E106: the project has a second `project` block"]),
    Case("E107", P + "secret k = pasword()\n", ["main.mora:2:12: E107: unknown function `pasword`"]),
    Case("E107-in-expression", P + 'service web {\n  image = lowr("X")\n}\n',
         ["main.mora:3:11: E107: unknown function `lowr`"]),
    Case("E108", P + "param port: integer\n", ["main.mora:2:13: E108: unknown type `integer`"]),
    Case("E108-list", P + "param ports: list\n",
         ["main.mora:2:14: E108: `list` needs an item type, e.g. `list[string]`"]),
    Case("E109", P + 'service sonarr = ar(kind = "sonarr")\n', ["main.mora:2:18: E109: unknown template `ar`"]),
    Case("E110", P + "service web { }\n", ["main.mora:2:9: E110: service `web` has no `image`"]),
    Case("E110-mount-path", P + 'volume media { size = "1Gi" }\nservice web {\n  image = "x"\n'
         "  mount media { read_only = true }\n}\n",
         ["main.mora:5:3: E110: mount `media` needs a `path` in the container"]),
    Case("E111", P + 'service web {\n  image = "x"\n  mount media { path = "/media" }\n}\n',
         ["main.mora:4:9: E111: `media` is not a project volume"]),
    Case("E112", P + 'service { image = "nginx" }\n', ["main.mora:2:1: E112: `service` needs a name"]),
    Case("E113", P + 'service web { image = "x" }\nextend wbe { replicas = 2 }\n',
         ["main.mora:3:8: E113: `extend wbe`: there is no service `wbe`"]),
    Case("E112-size-and-host", P + 'volume data {\n  size = "1Gi"\n  host = "/srv"\n}\n',
         ["main.mora:4:10: E112: volume `data` has both `size` and `host`"]),
    # ------------------------------------------------------------ E2xx: types and values
    Case("E201", P + 'service web {\n  image = "x"\n  replicas = "two"\n}\n',
         ["main.mora:4:14: E201: `replicas` must be an `int`, not a `string`"]),
    Case("E201-shape", P + 'param admin: email = "not-an-address"\n',
         ['main.mora:2:22: E201: the default of `admin`: "not-an-address" is not an e-mail address']),
    Case("E202", P + "secret k = password(lenght = 24)\n",
         ["main.mora:2:21: E202: `password()` has no parameter `lenght`"]),
    Case("E202-missing", P + "secret k = ca()\n", ["main.mora:2:12: E202: `ca()` needs `common_name`"]),
    Case("E203", P + 'secret admin_password = password()\nservice web {\n'
         '  image = "registry/${admin_password}"\n}\n',
         ["main.mora:4:11: E203: a secret cannot be written into `image`: it would be visible in clear text"]),
    Case("E203-param-default", P + 'param key: secret = "hunter2"\n',
         ["main.mora:2:21: E203: param `key` is a secret and cannot have a default in the program"]),
    Case("E204", P + 'service web {\n  image = "x"\n  environment = { KEY = token() }\n}\n',
         ["main.mora:4:25: E204: `token()` creates a secret and can only be a `secret`'s value"]),
    Case("E205", P + 'secret key = "hunter2"\n',
         ["main.mora:2:14: E205: secret `key` must be generated by a function"]),
    Case("E205-not-a-generator", P + 'secret key = lower("X")\n',
         ["main.mora:2:14: E205: `lower()` does not generate a secret"]),
    Case("E206", P + 'param domain: domain\nservice web {\n  image = "x"\n  port http = 80\n'
         '  subdomain = "${domain}"\n}\n',
         ["main.mora:6:15: E206: `subdomain` must be known when compiling"]),
    Case("E206-env-key", P + 'param name: string\nservice web {\n  image = "x"\n'
         '  environment = { "${name}" = "1" }\n}\n',
         ["main.mora:5:19: E206: a key must be known when compiling"]),
    Case("E207", P + 'service web {\n  image = "x"\n  environment = { X = "${[1, 2]}" }\n}\n',
         ["main.mora:4:26: E207: cannot write `list[int]` into a string"]),
    Case("E207-service", P + 'service db {\n  image = "pg"\n  port pg = 5432\n}\n'
         'service web {\n  image = "x"\n  environment = { X = "${db}" }\n}\n',
         ["main.mora:8:26: E207: cannot write the service `db` into a string"]),
    # ------------------------------------------------------------ E3xx: validation
    Case("E301", P + 'service My_App { image = "x" }\n',
         ["main.mora:2:9: E301: `My_App` is not a valid service name"]),
    Case("E302", P + 'service web {\n  image = "x"\n  port http = 80\n  subdomain = "my.app"\n}\n',
         ['main.mora:5:15: E302: "my.app" is not a valid subdomain']),
    Case("E303", P + 'service web {\n  image = "x"\n  port http = 70000\n}\n',
         ["main.mora:4:15: E303: 70000 is not a port"]),
    Case("E303-zero", P + 'service web {\n  image = "x"\n  port http = 0\n}\n',
         ["main.mora:4:15: E303: 0 is not a port"]),
    Case("E304", P + 'volume data { size = "20 GB" }\n', ['main.mora:2:22: E304: "20 GB" is not a size']),
    Case("E304-memory", P + 'service web {\n  image = "x"\n  resources = { memory = "lots" }\n}\n',
         ['main.mora:4:15: E304: "lots" is not a valid memory']),
    Case("E305", P + 'service a {\n  image = "x"\n  port http = 80\n  subdomain = "app"\n}\n'
         'service b {\n  image = "x"\n  port http = 80\n  subdomain = "app"\n}\n',
         ['main.mora:10:15: E305: subdomain "app" is already used by `a`']),
    Case("E306", P + 'service web {\n  image = "x"\n  port http = 80\n  port web = 80\n}\n',
         ["main.mora:5:14: E306: port 80 is used twice in `web`"]),
    Case("E307", P + 'service web {\n  image = "x"\n  file "/etc/app.yml" = template("missing.yml")\n}\n',
         ['main.mora:4:34: E307: cannot find "missing.yml" in the project folder']),
    Case("E307-outside", P + 'service web {\n  image = "x"\n  file "/etc/passwd" = file("../../etc/passwd")\n}\n',
         ['main.mora:4:29: E307: "../../etc/passwd" is outside the project folder']),
    Case("E308", P + 'service web {\n  image = "x"\n  input k: string { when = "later" }\n}\n',
         ['main.mora:4:28: E308: `when`: "later" is not one of "before_deploy", "after_start"']),
    Case("E308-gpu", P + 'service web {\n  image = "x"\n  gpu = "amd"\n}\n',
         ['main.mora:4:9: E308: `gpu`: "amd" is not one of "intel", "nvidia"']),
    Case("E308-env-name", P + 'service web {\n  image = "x"\n  environment = { "1X" = "a" }\n}\n',
         ['main.mora:4:26: E308: "1X" is not a valid environment variable name']),
    Case("E308-file-mode", P + 'service web {\n  image = "x"\n  file "/a" = "text" { mode = "999" }\n}\n',
         ['main.mora:4:31: E308: "999" is not a file mode']),
    Case("E308-namespace", 'project "t" {\n  namespace = "Media"\n}\n',
         ['main.mora:2:15: E308: namespace "Media" is not a valid Kubernetes namespace']),
    Case("E309", P + 'service db {\n  image = "pg"\n  port pg = 5432\n}\n'
         'service web {\n  image = "x"\n  environment = { URL = db.url }\n}\n',
         ["main.mora:8:25: E309: `db` has no subdomain, so it has no `.url`"]),
    Case("E309-public-host", P + 'service db {\n  image = "pg"\n}\n'
         'service web {\n  image = "x"\n  environment = { H = db.public_host }\n}\n',
         ["main.mora:7:23: E309: `db` has no subdomain, so it has no `.public_host`"]),
    Case("E309-internal-url", P + 'service db {\n  image = "pg"\n}\n'
         'service web {\n  image = "x"\n  environment = { U = db.internal_url }\n}\n',
         ["main.mora:7:23: E309: `db` has no port, so it has no `.internal_url`"]),
    Case("E309-no-port", P + 'service web {\n  image = "x"\n  subdomain = "web"\n}\n',
         ["main.mora:4:3: E309: service `web` has a subdomain but no public port to route it to"]),
    # ------------------------------------------------------------ E4xx: the graph
    Case("E401", P + 'service a {\n  image = "x"\n  depends_on = [b]\n}\n'
         'service b {\n  image = "x"\n  depends_on = [a]\n}\n',
         ["main.mora:4:17: E401: dependency cycle: a → b → a"]),
    Case("E401-references", P + 'service a {\n  image = "x"\n  port http = 80\n  environment = { B = b.internal_url }\n}\n'
         'service b {\n  image = "x"\n  port http = 80\n  environment = { C = c.host }\n}\n'
         'service c {\n  image = "x"\n  port http = 80\n  environment = { A = a.internal_url }\n}\n',
         ["main.mora:5:23: E401: dependency cycle: a → b → c → a"]),
    Case("E402", P + 'service a {\n  image = "x"\n  depends_on = [a]\n}\n',
         ["main.mora:4:17: E402: `a` depends on itself"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_diagnostic(case: Case, compile_src: Compile) -> None:
    result = compile_src(case.main, case.files)
    assert summary(result) == case.expected
    assert result.manifest is None
    rendered = result.render_diagnostics()
    for d in result.diagnostics:
        assert f"error[{d.code}]: {d.message}" in rendered


def test_every_code_has_a_case() -> None:
    covered = set().union(*(c.codes for c in CASES))
    # W001 is the formatter's own ("file left unformatted"), tested in test_formatter.py.
    covered |= {"W001"}
    assert sorted(set(CODES) - covered) == []
    assert sorted(covered - set(CODES)) == []


# ---------------------------------------------------------------------- full rendering


def test_render_unknown_name_with_suggestion(compile_src: Compile) -> None:
    result = compile_src(P + 'param domain: domain\nservice web {\n  image = "x"\n'
                         '  environment = { D = domian }\n}\n')
    assert result.render_diagnostics() == (
        "main.mora:5:23: error[E101]: unknown name `domian`\n"
        " 5 |   environment = { D = domian }\n"
        "   |                       ^^^^^^\n"
        "  help: did you mean `domain`?\n"
        "\n"
        "1 error"
    )


def test_render_defined_twice_with_note(compile_src: Compile) -> None:
    result = compile_src(P + 'service web { image = "a" }\nservice web { image = "b" }\n')
    assert result.render_diagnostics() == (
        "main.mora:3:9: error[E102]: `web` is already defined (as a service)\n"
        " 3 | service web { image = \"b\" }\n"
        "   |         ^^^\n"
        "  note: main.mora:2:9: `web` is first defined here\n"
        " 2 | service web { image = \"a\" }\n"
        "   |         ^^^\n"
        "  help: names of params, secrets, volumes, services and templates must differ\n"
        "\n"
        "1 error"
    )


def test_render_unclosed_string(compile_src: Compile) -> None:
    result = compile_src(P + 'service web {\n  image = "nginx\n}\n')
    assert result.render_diagnostics() == (
        "main.mora:3:11: error[E002]: string is not closed before the end of the line\n"
        ' 3 |   image = "nginx\n'
        "   |           ^\n"
        '  help: close it with `"`; for text over several lines use `"""`\n'
        "\n"
        "1 error"
    )


def test_render_unclosed_block_points_at_its_brace(compile_src: Compile) -> None:
    result = compile_src(P + 'service web {\n  image = "x-${web.name}"  # {\n  port http = 80\n')
    assert result.render_diagnostics() == (
        "main.mora:2:13: error[E002]: `{` is not closed before the end of the file\n"
        " 2 | service web {\n"
        "   |             ^\n"
        "  note: main.mora:4:17: the file ends here; expected a name, `}`\n"
        " 4 |   port http = 80\n"
        "   |                 ^\n"
        "  help: add the `}` that closes it\n"
        "\n"
        "1 error"
    )


def test_render_type_mismatch_under_the_whole_value(compile_src: Compile) -> None:
    result = compile_src(P + 'service web {\n  image = "x"\n  port http = "8080"\n}\n')
    assert result.render_diagnostics() == (
        "main.mora:4:15: error[E201]: port `http` must be a `port`, not a `string`\n"
        ' 4 |   port http = "8080"\n'
        "   |               ^^^^^^\n"
        "  help: write the number without quotes: 8080\n"
        "\n"
        "1 error"
    )


def test_render_misspelt_template_in_a_template_file(compile_src: Compile) -> None:
    result = compile_src(
        P + 'service web {\n  image = "x"\n  port http = 80\n  file "/a.yml" = template("app.yml")\n}\n',
        {"app.yml": "name: web\nurl: ${web.internal_ur}\n"},
    )
    assert result.render_diagnostics() == (
        "app.yml:2:12: error[E104]: the service `web` has no member `internal_ur`\n"
        " 2 | url: ${web.internal_ur}\n"
        "   |            ^^^^^^^^^^^\n"
        "  help: did you mean `internal_url`?\n"
        "\n"
        "1 error"
    )


def test_render_cycle_with_notes(compile_src: Compile) -> None:
    result = compile_src(P + 'service a {\n  image = "x"\n  depends_on = [b]\n}\n'
                         'service b {\n  image = "x"\n  depends_on = [a]\n}\n')
    assert result.render_diagnostics() == (
        "main.mora:4:17: error[E401]: dependency cycle: a → b → a\n"
        " 4 |   depends_on = [b]\n"
        "   |                 ^\n"
        "  note: main.mora:4:17: `a` needs `b` (depends on)\n"
        " 4 |   depends_on = [b]\n"
        "   |                 ^\n"
        "  note: main.mora:8:17: `b` needs `a` (depends on)\n"
        " 8 |   depends_on = [a]\n"
        "   |                 ^\n"
        "  help: remove one of these references or `depends_on` entries\n"
        "\n"
        "1 error"
    )


# ---------------------------------------------------------------------- many errors, no cascades


def test_every_independent_error_is_reported(compile_src: Compile) -> None:
    result = compile_src(
        P
        + "param port: integer\n"
        + "servce x {}\n"
        + 'service web {\n  image = imag\n  replicas = "two"\n  port http = 70000\n}\n'
        + "secret k = pasword()\n"
        + 'volume data { size = "lots" }\n'
        + 'service db {\n  image = "pg"\n  depends_on = [db]\n}\n'
    )
    assert [d.code for d in result.diagnostics] == [
        "E108", "E105", "E101", "E201", "E303", "E107", "E304", "E402",
    ]
    assert result.render_diagnostics().endswith("\n\n8 errors")


def test_errors_in_several_files_are_all_reported(compile_src: Compile) -> None:
    result = compile_src(P, {"a.mora": 'service a {\n  image = nope\n}\n',
                             "b.mora": 'service b {\n  image = "x"\n  replicas = "1"\n}\n'})
    assert summary(result) == [
        "a.mora:2:11: E101: unknown name `nope`",
        "b.mora:3:14: E201: `replicas` must be an `int`, not a `string`",
    ]


@pytest.mark.parametrize(
    "body",
    [
        '  image = "x-${nope}"\n  port http = 80\n  subdomain = "w"\n',
        '  image = "x"\n  port http = nope\n  subdomain = "w"\n',
        '  image = "x"\n  port http = 80\n  subdomain = nope\n',
        '  image = nope\n  environment = { A = "${upper(nope)}" }\n',
        '  image = "x"\n  environment = { URL = nope.url }\n',
        '  image = "x"\n  depends_on = [nope]\n',
        '  image = "x"\n  command = ["run", nope]\n',
        '  image = "x"\n  file "/a" = template(nope)\n',
    ],
)
def test_one_unknown_name_is_one_diagnostic(body: str, compile_src: Compile) -> None:
    result = compile_src(P + "service web {\n" + body + "}\n")
    assert [d.code for d in result.diagnostics] in (["E101"], ["E101", "E101"])
    assert {d.message for d in result.diagnostics} == {"unknown name `nope`"}


def test_unknown_template_is_not_also_a_service_without_image(compile_src: Compile) -> None:
    result = compile_src(P + 'service sonarr = ar(kind = "sonarr") {\n  subdomain = "series"\n}\n')
    assert summary(result) == ["main.mora:2:18: E109: unknown template `ar`"]


def test_unknown_template_arguments_are_still_checked(compile_src: Compile) -> None:
    result = compile_src(P + "service sonarr = ar(kind = knd) {}\n")
    assert summary(result) == [
        "main.mora:2:18: E109: unknown template `ar`",
        "main.mora:2:28: E101: unknown name `knd`",
    ]


def test_misspelt_image_is_not_also_a_missing_image(compile_src: Compile) -> None:
    result = compile_src(P + 'service web {\n  imgae = "nginx"\n}\n')
    assert [d.code for d in result.diagnostics] == ["E103"]
    assert result.diagnostics[0].help == "did you mean `image`?"


def test_unknown_type_is_not_also_a_type_error_where_used(compile_src: Compile) -> None:
    result = compile_src(P + 'param p: nosuch\nservice web {\n  image = "x/${p}"\n  replicas = p\n}\n')
    assert [d.code for d in result.diagnostics] == ["E108"]


def test_bad_template_argument_is_reported_once(compile_src: Compile) -> None:
    result = compile_src(
        P + 'template t(kind: string, port: int) {\n  image = "x/${kind}"\n  port http = port\n}\n'
        'service a = t(kind = "a", port = "80") {}\n'
    )
    assert summary(result) == ["main.mora:6:34: E201: `port` must be an `int`, not a `string`"]


def test_error_in_unused_template_is_reported(compile_src: Compile) -> None:
    result = compile_src(P + 'template t(kind: string) {\n  image = "x/${knd}"\n}\n')
    assert summary(result) == ["main.mora:3:16: E101: unknown name `knd`"]


def test_syntax_error_in_one_file_does_not_make_names_unknown(compile_src: Compile) -> None:
    result = compile_src(P + 'param domain: domain\nservice web {\n  image = "x"\n',
                         {"b.mora": 'service b {\n  image = "x-${domain}"\n}\n'})
    assert [d.code for d in result.diagnostics] == ["E002"]


# ---------------------------------------------------------------------- exit-level facts


def test_empty_folder_is_e005(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = compile_project(".")
    assert [d.code for d in result.diagnostics] == ["E005"]
    assert not result.ok
    assert result.render_diagnostics() == (
        "error[E005]: no .mora files in .\n"
        "  help: a project is a folder of `*.mora` files; create `main.mora` there\n"
        "\n"
        "1 error"
    )


def test_binary_garbage_is_e004(compile_src: Compile) -> None:
    garbage = bytes(range(256)) * 4
    result = compile_src(garbage)
    assert [d.code for d in result.diagnostics] == ["E004"]
    assert result.render_diagnostics().startswith("main.mora:2:118: error[E004]: not UTF-8 text")


def test_binary_file_beside_good_files_is_e004(compile_src: Compile) -> None:
    result = compile_src(P, {"z.mora": b"\x89PNG\r\n\x1a\n\x00\x00"})
    assert summary(result) == ["z.mora:1:1: E004: not UTF-8 text: byte 0x89 cannot be decoded"]


def test_empty_file_is_only_missing_its_project(compile_src: Compile) -> None:
    result = compile_src("")
    assert summary(result) == ["-: E106: the project has no `project` block"]


def test_nonexistent_path_raises_project_path_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectPathError, match="no such file or folder"):
        compile_project(tmp_path / "nope")


def test_single_file_project(compile_src: Compile) -> None:
    compile_src(P + 'service web { image = "x" }\n')
    assert compile_project("main.mora").ok


def test_byte_order_mark_and_crlf_are_accepted(compile_src: Compile) -> None:
    result = compile_src(b'\xef\xbb\xbfproject "t" {}\r\nservice web {\r\n  image = "x"\r\n}\r\n')
    assert result.ok, result.render_diagnostics()


def test_unknown_key_of_resources_and_health_suggests_or_lists_the_keys(
    compile_src: Compile,
) -> None:
    result = compile_src(P + 'service web {\n  image = "x"\n  port http = 80\n'
                         '  resources = { memroy = "1Gi" }\n  health = { zzz = 1, tcp = true }\n}\n')
    assert [(d.code, d.help) for d in result.diagnostics] == [
        ("E103", "did you mean `memory`?"),
        ("E103", "keys: `http`, `tcp`, `command`, `port`, `initial_delay`, `period`"),
    ]
