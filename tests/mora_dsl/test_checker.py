"""Semantic facts: graph and waves, input timing, templates, constant folding, references."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from dsl_helpers import PROJECT as P

from mora_dsl.api import CompileResult

Compile = Callable[..., CompileResult]


def service(result: CompileResult, name: str) -> dict[str, Any]:
    assert result.manifest is not None, result.render_diagnostics()
    return next(s for s in result.manifest["services"] if s["name"] == name)


def inputs(result: CompileResult) -> dict[str, dict[str, Any]]:
    assert result.manifest is not None, result.render_diagnostics()
    return {i["id"]: i for i in result.manifest["inputs"]}


def deps(result: CompileResult, name: str) -> dict[str, set[str]]:
    """What ``name`` depends on, by reason."""
    assert result.manifest is not None
    out: dict[str, set[str]] = {}
    for e in result.manifest["graph"]["edges"]:
        if e["service"] == name:
            out.setdefault(e["reason"], set()).add(e["on"])
    return out


# ---------------------------------------------------------------------- media-server


def test_media_server_waves(media_server: CompileResult) -> None:
    assert media_server.manifest is not None
    assert media_server.manifest["graph"]["waves"] == [
        ["lldap", "qbittorrent", "prowlarr", "jellyfin"],
        ["sonarr", "radarr"],
        ["jellyseerr"],
        ["janitorr"],
    ]


def test_janitorr_depends_only_through_references(media_server: CompileResult) -> None:
    assert deps(media_server, "janitorr") == {
        "reference": {"sonarr", "radarr", "jellyfin", "jellyseerr"}
    }
    assert service(media_server, "janitorr")["depends_on"] == []
    # the references are in the template file: the edges point there
    spans = {e["on"]: e["span"] for e in media_server.manifest["graph"]["edges"]  # type: ignore[index]
             if e["service"] == "janitorr"}
    assert {s["file"] for s in spans.values()} == {"janitorr.yml"}
    assert (spans["sonarr"]["line"], spans["sonarr"]["column"]) == (4, 13)


def test_depends_on_edges_are_kept_as_written(media_server: CompileResult) -> None:
    assert deps(media_server, "sonarr") == {"depends_on": {"qbittorrent", "prowlarr"}}
    assert deps(media_server, "jellyseerr") == {"depends_on": {"jellyfin", "sonarr", "radarr"}}
    assert deps(media_server, "jellyfin") == {}  # its own `.url` in its input's help is no edge


def test_media_server_input_timing(media_server: CompileResult) -> None:
    got = {i: (v["when"], v["when_inferred"], v["used_by"]) for i, v in inputs(media_server).items()}
    assert got == {
        "lldap.admin_email": ("after_start", True, []),
        "jellyfin.api_key": ("after_start", True, ["janitorr"]),
        "jellyseerr.api_key": ("after_start", True, ["janitorr"]),
    }
    assert inputs(media_server)["lldap.admin_email"]["type"] == {"name": "email"}
    assert inputs(media_server)["jellyfin.api_key"]["type"] == {"name": "secret"}


def test_generated_api_keys_are_secrets_not_inputs(media_server: CompileResult) -> None:
    assert media_server.manifest is not None
    secrets = {s["id"]: s for s in media_server.manifest["secrets"]}
    for kind in ("prowlarr", "sonarr", "radarr"):
        assert secrets[f"{kind}.api_key"]["kind"] == "token"
        assert secrets[f"{kind}.api_key"]["args"] == {"bytes": 16, "encoding": "hex"}
        assert secrets[f"{kind}.api_key"]["owner"] == kind
    assert not any(i.endswith(("sonarr.api_key", "radarr.api_key")) for i in inputs(media_server))


def test_template_parameters_fold(media_server: CompileResult) -> None:
    sonarr = service(media_server, "sonarr")
    assert sonarr["template"] == "arr"
    assert sonarr["image"] == "lscr.io/linuxserver/sonarr:latest"
    assert sonarr["environment"] == {
        "SONARR__AUTH__APIKEY": {"ref": "secret:sonarr.api_key"},
        "TZ": {"ref": "param:timezone"},
    }
    assert [(p["name"], p["port"]) for p in sonarr["ports"]] == [("http", 8989)]
    assert service(media_server, "radarr")["image"] == "lscr.io/linuxserver/radarr:latest"
    assert "RADARR__AUTH__APIKEY" in service(media_server, "radarr")["environment"]


def test_template_overrides(media_server: CompileResult) -> None:
    assert service(media_server, "prowlarr")["subdomain"] == "indexers"
    assert service(media_server, "sonarr")["subdomain"] == "series"
    assert service(media_server, "sonarr")["depends_on"] == ["qbittorrent", "prowlarr"]
    # each instance gets its own volumes and secrets, named after it
    assert service(media_server, "sonarr")["volumes"] == ["sonarr.config"]
    assert service(media_server, "radarr")["secrets"] == ["radarr.api_key"]
    mounts = [(m["volume"], m["path"]) for m in service(media_server, "sonarr")["mounts"]]
    assert mounts == [("sonarr.config", "/config"), ("downloads", "/downloads"), ("media", "/media")]


def test_project_name_interpolation_folds(media_server: CompileResult) -> None:
    assert media_server.manifest is not None
    ca = next(s for s in media_server.manifest["secrets"] if s["id"] == "internal_ca")
    assert ca["args"]["common_name"] == "media-server internal CA"
    assert media_server.manifest["project"]["namespace"] == "media"


def test_references_stay_symbolic(media_server: CompileResult) -> None:
    lldap = service(media_server, "lldap")
    assert lldap["environment"]["LLDAP_LDAP_BASE_DN"] == {"call": "base_dn",
                                                        "args": [{"ref": "param:domain"}]}
    assert lldap["environment"]["LLDAP_JWT_SECRET"] == {"ref": "secret:lldap.jwt_secret"}
    assert lldap["environment"]["LLDAP_LDAP_USER_PASS"] == {"ref": "secret:ldap_admin_password"}
    assert media_server.manifest is not None
    volumes = {v["id"]: v for v in media_server.manifest["volumes"]}
    assert volumes["media"]["host"] == {"ref": "param:media_path"}
    tls = next(s for s in media_server.manifest["secrets"] if s["id"] == "lldap.tls")
    assert tls["args"]["ca"] == {"ref": "secret:internal_ca"}
    assert tls["args"]["hosts"] == {"list": [{"ref": "service:lldap.host"}]}
    jellyfin_help = inputs(media_server)["jellyfin.api_key"]["help"]
    assert jellyfin_help["concat"][:2] == ["Open ", {"ref": "service:jellyfin.url"}]


def test_template_file_is_interpolated_symbolically(media_server: CompileResult) -> None:
    (f,) = service(media_server, "janitorr")["files"]
    assert f["path"] == "/config/application.yml"
    assert f["secret"] is True
    refs = [p["ref"] for p in f["content"]["concat"] if isinstance(p, dict)]
    assert refs == [
        "service:sonarr.internal_url", "secret:sonarr.api_key",
        "service:radarr.internal_url", "secret:radarr.api_key",
        "service:jellyfin.internal_url", "input:jellyfin.api_key",
        "service:jellyseerr.internal_url", "input:jellyseerr.api_key",
    ]
    assert f["content"]["concat"][0].startswith("clients:\n  sonarr:\n")


def test_minimal(minimal: CompileResult) -> None:
    assert minimal.manifest is not None
    whoami = service(minimal, "whoami")
    assert whoami["environment"] == {
        "WHOAMI_NAME": {"concat": ["hello from ", {"ref": "param:domain"}]},
        "ADMIN_PASSWORD": {"ref": "secret:admin_password"},
    }
    assert minimal.manifest["graph"]["waves"] == [["whoami"]]
    assert minimal.manifest["secrets"][0]["args"]["length"] == 24


# ---------------------------------------------------------------------- small programs

ARR = """
template arr(kind: string, port: int = 8989) {
  image = "lscr.io/linuxserver/${kind}:latest"
  subdomain = kind
  port http = port
  secret api_key = token()
  environment = {
    "${upper(kind)}__AUTH__APIKEY" = api_key
    TZ = "Etc/UTC"
    MODE = "template"
  }
}
"""


def test_override_environment_merges_instance_keys_win(compile_src: Compile) -> None:
    result = compile_src(P + ARR + 'service sonarr = arr(kind = "sonarr") {\n'
                         '  subdomain = "series"\n'
                         '  environment = { MODE = "instance", EXTRA = "1" }\n}\n')
    s = service(result, "sonarr")
    assert s["subdomain"] == "series"
    assert s["environment"] == {
        "SONARR__AUTH__APIKEY": {"ref": "secret:sonarr.api_key"},
        "TZ": "Etc/UTC",
        "MODE": "instance",
        "EXTRA": "1",
    }
    assert [(p["name"], p["port"]) for p in s["ports"]] == [("http", 8989)]  # the default


def test_template_argument_becomes_subdomain(compile_src: Compile) -> None:
    result = compile_src(P + ARR + 'service radarr = arr(kind = "radarr", port = 7878) {}\n')
    assert service(result, "radarr")["subdomain"] == "radarr"
    assert service(result, "radarr")["ports"][0]["port"] == 7878


def test_port_member_folds(compile_src: Compile) -> None:
    result = compile_src(P + ARR + 'service sonarr = arr(kind = "sonarr") {}\n'
                         'service web {\n  image = "x"\n  environment = {\n'
                         '    PORT = sonarr.port.http\n    URL = "http://sonarr:${sonarr.port.http}/api"\n'
                         '    NAME = sonarr.name\n  }\n}\n')
    env = service(result, "web")["environment"]
    assert env["PORT"] == 8989
    assert env["URL"] == "http://sonarr:8989/api"
    assert env["NAME"] == "sonarr"
    assert deps(result, "web") == {"reference": {"sonarr"}}


def test_input_used_by_own_service_is_before_deploy(compile_src: Compile) -> None:
    result = compile_src(P + 'service app {\n  image = "x"\n'
                         '  environment = { ADMIN = admin_email }\n'
                         "  input admin_email: email { title = \"Admin\" }\n"
                         '  input later: string { title = "Later" }\n}\n')
    got = inputs(result)
    assert (got["app.admin_email"]["when"], got["app.admin_email"]["when_inferred"]) == (
        "before_deploy", True)
    assert got["app.admin_email"]["used_by"] == ["app"]
    assert got["app.later"]["when"] == "after_start"
    assert service(result, "app")["environment"] == {"ADMIN": {"ref": "input:app.admin_email"}}


def test_input_used_by_another_service_is_after_start_and_an_edge(compile_src: Compile) -> None:
    result = compile_src(P + 'service a {\n  image = "x"\n  input key: secret { title = "Key" }\n}\n'
                         'service b {\n  image = "x"\n  environment = { KEY = a.key }\n}\n')
    got = inputs(result)["a.key"]
    assert (got["when"], got["used_by"]) == ("after_start", ["b"])
    assert deps(result, "b") == {"reference": {"a"}}
    assert result.manifest is not None
    assert result.manifest["graph"]["waves"] == [["a"], ["b"]]


def test_when_override(compile_src: Compile) -> None:
    result = compile_src(P + 'service a {\n  image = "x"\n'
                         '  input key: secret {\n    title = "Key"\n    when = "before_deploy"\n  }\n}\n')
    got = inputs(result)["a.key"]
    assert (got["when"], got["when_inferred"], got["used_by"]) == ("before_deploy", False, [])


def test_multi_file_project(compile_src: Compile) -> None:
    result = compile_src(None, {
        "a.mora": P + 'param domain: domain { example = "home.example.com" }\n',
        "b.mora": 'service web {\n  image = "x"\n  environment = { D = "www.${domain}" }\n}\n',
    })
    assert service(result, "web")["environment"] == {"D": {"concat": ["www.", {"ref": "param:domain"}]}}
    assert result.manifest is not None
    assert result.manifest["params"][0]["span"]["file"] == "a.mora"
    assert service(result, "web")["span"]["file"] == "b.mora"


def test_order_of_declarations_does_not_matter(compile_src: Compile) -> None:
    result = compile_src('service web = t(kind = "w") {}\ntemplate t(kind: string) { image = kind }\n'
                         'project "t" {}\n')
    assert service(result, "web")["image"] == "w"


def test_template_file_error_is_positioned_in_the_template(compile_src: Compile) -> None:
    result = compile_src(
        P + 'service web {\n  image = "x"\n  file "/etc/app.yml" = template("app.yml")\n}\n',
        {"app.yml": "server:\n  name: web\n  host: ${nope}\n"},
    )
    assert [f"{d.span}: {d.code}" for d in result.diagnostics] == ["app.yml:3:11: E101"]
    assert " 3 |   host: ${nope}\n   |           ^^^^" in result.render_diagnostics()


def test_template_file_in_a_template_sees_the_arguments(compile_src: Compile) -> None:
    result = compile_src(
        P + 'template t(kind: string) {\n  image = "x"\n  file "/a" = template("a.txt")\n}\n'
        'service one = t(kind = "first") {}\nservice two = t(kind = "second") {}\n',
        {"a.txt": "kind=${kind} $${literal}\n"},
    )
    assert service(result, "one")["files"][0]["content"] == "kind=first ${literal}\n"
    assert service(result, "two")["files"][0]["content"] == "kind=second ${literal}\n"


def test_template_file_error_reported_once_for_many_instances(compile_src: Compile) -> None:
    result = compile_src(
        P + 'template t(kind: string) {\n  image = "x"\n  file "/a" = template("a.txt")\n}\n'
        'service one = t(kind = "first") {}\nservice two = t(kind = "second") {}\n',
        {"a.txt": "kind=${knd}\n"},
    )
    assert [f"{d.span}: {d.code}" for d in result.diagnostics] == ["a.txt:1:8: E101"]


def test_file_reads_text_as_is(compile_src: Compile) -> None:
    result = compile_src(P + 'service web {\n  image = "x"\n  file "/a" = file("a.txt")\n}\n',
                         {"a.txt": "no ${interpolation} here\n"})
    assert service(result, "web")["files"][0] == {
        **service(result, "web")["files"][0], "content": "no ${interpolation} here\n", "secret": False,
    }


@pytest.mark.parametrize(
    ("program", "cycle"),
    [
        ('service a {\n  image = "x"\n  depends_on = [b]\n}\nservice b {\n  image = "x"\n  depends_on = [a]\n}\n',
         "a → b → a"),
        ('service b {\n  image = "x"\n  depends_on = [c]\n}\nservice c {\n  image = "x"\n  port p = 1\n'
         '  environment = { B = b.host }\n}\nservice a {\n  image = "x"\n  depends_on = [b]\n}\n'
         'service z {\n  image = "x"\n  port p = 1\n}\n',
         "b → c → b"),
    ],
)
def test_cycles_print_the_cycle(program: str, cycle: str, compile_src: Compile) -> None:
    result = compile_src(P + program)
    assert [d.message for d in result.diagnostics] == [f"dependency cycle: {cycle}"]


def test_two_cycles_are_two_diagnostics(compile_src: Compile) -> None:
    body = '  image = "x"\n  depends_on = [{}]\n'
    result = compile_src(P + "".join(
        f"service {a} {{\n" + body.replace("{}", b) + "}\n"
        for a, b in (("a", "b"), ("b", "a"), ("c", "d"), ("d", "c"))
    ))
    assert [d.message for d in result.diagnostics] == [
        "dependency cycle: a → b → a", "dependency cycle: c → d → c",
    ]


def test_waves_keep_declaration_order(compile_src: Compile) -> None:
    svc = 'service {} {{\n  image = "x"\n  depends_on = [{}]\n}}\n'
    result = compile_src(P + 'service base { image = "x" }\n'
                         + svc.format("z", "base") + svc.format("y", "base") + svc.format("top", "y"))
    assert result.manifest is not None
    assert result.manifest["graph"]["waves"] == [["base"], ["z", "y"], ["top"]]


def test_secret_parts(compile_src: Compile) -> None:
    result = compile_src(P + 'secret ca1 = ca(common_name = "x")\nservice web {\n  image = "x"\n'
                         "  secret key = private_key()\n"
                         "  environment = { CA = ca1.cert_pem, PUB = key.public_key_openssh, K = key }\n}\n")
    env = service(result, "web")["environment"]
    assert env == {
        "CA": {"ref": "secret:ca1", "attr": "cert_pem"},
        "PUB": {"ref": "secret:web.key", "attr": "public_key_openssh"},
        "K": {"ref": "secret:web.key"},
    }


def test_long_string_dedent_and_escapes(compile_src: Compile) -> None:
    result = compile_src(P + 'service web {\n  image = "x"\n  environment = {\n'
                         '    A = """\n      first\n        second ${web.name}\n      """\n'
                         '    B = "tab\\tquote\\" dollar $${x} $5"\n  }\n}\n')
    env = service(result, "web")["environment"]
    assert env["A"] == "first\n  second web"
    assert env["B"] == 'tab\tquote" dollar ${x} $5'


def test_comments_are_ignored(compile_src: Compile) -> None:
    result = compile_src('# a project\nproject "t" { # here\n}\n'
                         'service web {\n  image = "x#not-a-comment" # comment\n}\n')
    assert service(result, "web")["image"] == "x#not-a-comment"
