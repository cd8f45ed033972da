"""The manifest: valid against its own JSON Schema, a faithful pydantic round trip, and generic
(no deploy-time value, no generated secret; references stay symbolic)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from dsl_helpers import EXAMPLES

from mora_dsl.api import CompileResult, compile_project
from mora_dsl.manifest import Manifest, Ref, json_schema
from mora_dsl.values import evaluate, refs

Compile = Callable[..., CompileResult]
EXAMPLE_NAMES = ["minimal", "media-server"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def compiled(name: str) -> CompileResult:
    result = compile_project(EXAMPLES / name)
    assert result.ok, result.render_diagnostics()
    return result


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of a JSON document, containers included."""
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_validate_against_the_json_schema(name: str, validator: Any) -> None:
    manifest = compiled(name).manifest
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_schema_rejects_a_broken_manifest(validator: Any) -> None:
    manifest = json.loads(json.dumps(compiled("minimal").manifest))
    manifest["services"][0]["environment"]["X"] = {"nonsense": 1}
    assert not validator.is_valid(manifest)
    manifest = json.loads(json.dumps(compiled("minimal").manifest))
    manifest["inputs"] = [{"id": "x"}]
    assert not validator.is_valid(manifest)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_round_trip_through_the_model(name: str) -> None:
    manifest = compiled(name).manifest
    assert manifest is not None
    model = Manifest.model_validate(manifest)
    # what the compiler wrote comes back unchanged; the model adds only its defaults
    assert model.model_dump(mode="json", exclude_unset=True) == manifest
    full = model.model_dump(mode="json")
    for path, value in walk(manifest):
        if not isinstance(value, (dict, list)):
            node: Any = full
            for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
                node = node[part[0]] if part[0] else node[int(part[1])]
            assert node == value, path
    assert Manifest.model_validate(full) == model
    assert Manifest.model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_manifest_is_plain_json_and_deterministic(name: str) -> None:
    first = compiled(name).manifest
    text = json.dumps(first, sort_keys=True)
    assert json.loads(text) == first
    assert json.dumps(compiled(name).manifest, sort_keys=True) == text


def test_manifest_does_not_depend_on_the_working_directory(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = compiled("media-server").manifest
    monkeypatch.chdir(tmp_path)
    there = compile_project(EXAMPLES / "media-server").manifest
    assert there == here
    files = {v["file"] for p, v in walk(here) if p.endswith(".span")}
    assert files == {"main.mora", "automation.mora", "janitorr.yml"}
    assert os.sep + "examples" not in json.dumps(here)


def test_validated_model_helpers(media_server: CompileResult) -> None:
    m = media_server.validated()
    assert m.manifest_version == 1
    assert m.service("sonarr").template == "arr"
    assert m.input("jellyfin.api_key").when == "after_start"
    assert m.secret("lldap.tls").kind == "certificate"
    assert m.volume("downloads").size == "200Gi"
    assert m.graph.dependencies("janitorr") == ["jellyfin", "jellyseerr", "radarr", "sonarr"]


# ---------------------------------------------------------------------- generic: no values

GENERATED_LOOKING = [
    re.compile(r"\b[0-9a-f]{16,}\b"),  # hex tokens
    re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"),  # uuids
    re.compile(r"-----BEGIN"),  # keys and certificates
    re.compile(r"[A-Za-z0-9+/]{32,}={0,2}"),  # base64 blobs
]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_no_generated_looking_values(name: str) -> None:
    text = json.dumps(compiled(name).manifest)
    for pattern in GENERATED_LOOKING:
        assert not pattern.search(text), pattern.pattern


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_secret_and_input_is_a_reference(name: str) -> None:
    manifest = compiled(name).manifest
    assert manifest is not None
    for path, value in walk(manifest):
        if isinstance(value, str) and re.match(r"^(secret|input|param|service):", value):
            assert path.endswith(".ref"), f"{path} = {value!r} is not a reference"
    for secret in manifest["secrets"]:
        assert set(secret) == {"id", "name", "owner", "kind", "args", "span"}  # no value field
    secret_refs = [v for p, v in walk(manifest) if p.endswith(".ref") and v.startswith("secret:")]
    assert secret_refs  # the examples do use secrets


def test_secret_values_only_flow_as_references(compile_src: Compile) -> None:
    result = compile_src(
        'project "t" {}\n'
        'param domain: domain { example = "EXAMPLE-DOMAIN.test" }\n'
        'param api_token: secret { prompt = "paste it" }\n'
        "secret pw = password(length = 40)\n"
        'service web {\n  image = "x"\n  port http = 80\n  subdomain = "web"\n'
        "  secret key = token(bytes = 64)\n"
        '  input answer: secret { title = "Answer" }\n'
        '  environment = { PW = pw, KEY = key, TOKEN = api_token, A = answer, D = "at ${domain}" }\n'
        '  file "/etc/secret.conf" = "pw=${pw}\\nanswer=${answer}\\n"\n'
        '  file "/etc/plain.conf" = "domain=${domain}\\n"\n'
        "}\n"
    )
    manifest = result.manifest
    assert manifest is not None, result.render_diagnostics()
    env = manifest["services"][0]["environment"]
    assert env == {
        "PW": {"ref": "secret:pw"},
        "KEY": {"ref": "secret:web.key"},
        "TOKEN": {"ref": "param:api_token"},
        "A": {"ref": "input:web.answer"},
        "D": {"concat": ["at ", {"ref": "param:domain"}]},
    }
    files = {f["path"]: f for f in manifest["services"][0]["files"]}
    assert files["/etc/secret.conf"]["secret"] is True
    assert files["/etc/plain.conf"]["secret"] is False
    # the param's example is part of the program (a prompt hint); no param has a value
    assert manifest["params"][0]["example"] == "EXAMPLE-DOMAIN.test"
    assert all(p["default"] is None for p in manifest["params"])
    assert "EXAMPLE-DOMAIN" not in json.dumps(manifest["services"])
    assert manifest["inputs"][0]["default"] is None


def test_deploy_environment_never_leaks_into_the_manifest(
    compile_src: Compile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the compiler never reads stack config or environment: what is set there stays out
    monkeypatch.setenv("MORA_DOMAIN", "leaked-domain.example")
    monkeypatch.setenv("PULUMI_CONFIG", '{"mora:domain": "leaked-domain.example"}')
    result = compile_src('project "t" {}\nparam domain: domain\nservice web {\n  image = "x"\n'
                         '  environment = { D = domain }\n}\n')
    assert "leaked-domain" not in json.dumps(result.manifest)


def test_evaluate_a_media_server_value(media_server: CompileResult) -> None:
    m = media_server.validated()
    answers: dict[str, Any] = {
        "param:domain": "home.example.com",
        "param:timezone": "Europe/Paris",
        "secret:ldap_admin_password": "pw-1",
        "secret:lldap.jwt_secret": "jwt-1",
    }

    def resolve(r: Ref) -> Any:
        return answers[r.ref]

    env = m.service("lldap").environment
    assert {k: evaluate(v, resolve) for k, v in env.items()} == {
        "LLDAP_LDAP_BASE_DN": "dc=home,dc=example,dc=com",
        "LLDAP_JWT_SECRET": "jwt-1",
        "LLDAP_LDAP_USER_PASS": "pw-1",
        "TZ": "Europe/Paris",
    }
    (f,) = m.service("janitorr").files
    needed = [r.ref for r in refs(f.content)]
    assert needed[:2] == ["service:sonarr.internal_url", "secret:sonarr.api_key"]
    text = evaluate(f.content, lambda r: f"<{r.ref}>")
    assert 'url: "<service:sonarr.internal_url>"' in text
    assert 'api-key: "<input:jellyfin.api_key>"' in text
    help_text = evaluate(m.input("jellyfin.api_key").help,
                         lambda r: "https://watch.home.example.com")
    assert help_text.startswith("Open https://watch.home.example.com/web/#/dashboard/keys")
