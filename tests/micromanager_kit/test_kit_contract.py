"""The contract both sides import: models round-trip, scoping is what the manifest says."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from micromanager_kit import contract as c
from micromanager_kit.micromanager import Field

FORM = [Field("uid", "User name"), Field("password", type="secret"), Field("n", type="int", required=False)]

SAMPLES: list[c._Model] = [
    c.ErrorBody(detail="the directory refused", code="hook_failed", retryable=True, hook="after_start",
                hint="retry", fields={"uid": "required"}),
    c.ActionSpec(name="add_person", title="Add a person", fields=FORM),
    c.Registration(service="lldap", micromanager="ldap", version="0.1.0", url="http://10.0.0.5:8765",
                   hooks=["after_start", "health"], actions=[c.ActionSpec(name="a", title="A")],
                   hook_token="t" * 20),
    c.RegistrationAccepted(service="lldap", micromanager="ldap"),
    c.ConfigResponse(service="lldap", micromanager="ldap", values={"param:domain": "x.example",
                     "secret:ldap_admin_password": "pw-123456", "param:n": 3, "param:l": [1, "a"]},
                     secret_keys=["secret:ldap_admin_password"], missing=["input:lldap.admin_email"],
                     environment={"TZ": "Etc/UTC"}, ports={"ldap": 3890}),
    c.Report(idempotency_key="k-1", values={"api_key": "abc123", "enabled": True}),
    c.ReportAccepted(inputs=["jellyfin.api_key"], changed=[], replayed=True),
    c.InputRequests(inputs=[c.InputRequest(name="temporary_password", title="T",
                                           type=c.type_spec("secret"), help="h", optional=True)]),
    c.InputRequestsAccepted(inputs=[c.InputStatus(id="qbittorrent.x", answered=False)]),
    c.Liveness(micromanager="ldap"),
    c.HookCall(service="lldap", call_id="1", answered=["lldap.admin_email"], changed=["param:timezone"]),
    c.ActionCall(service="lldap", values={"uid": "ada", "n": "3"}),
    c.HookResult(hook="after_start", message="ok", changes=["created x"], reported=["api_key"],
                 requested_inputs=["x"], data={"dn": "uid=ada"}),
    c.HealthResult(healthy=False, message="down"),
]


@pytest.mark.parametrize("model", SAMPLES, ids=lambda m: type(m).__name__)
def test_models_round_trip_through_json(model):
    text = model.model_dump_json()
    again = type(model).model_validate_json(text)
    assert again == model
    assert json.loads(again.model_dump_json()) == json.loads(text)


def test_models_refuse_unknown_fields_and_carry_the_version():
    with pytest.raises(ValidationError):
        c.HookCall.model_validate({"service": "x", "surprise": 1})
    assert c.HookCall(service="x").contract_version == c.CONTRACT_VERSION == 1
    schema = c.ConfigResponse.model_json_schema()
    assert "values" in schema["properties"]


def test_reprs_mask_secrets():
    config = next(s for s in SAMPLES if isinstance(s, c.ConfigResponse))
    registration = next(s for s in SAMPLES if isinstance(s, c.Registration))
    assert "pw-123456" not in repr(config) and "x.example" in repr(config)
    assert "t" * 20 not in repr(registration)
    assert "abc123" not in repr(c.Report(idempotency_key="k", values={"api_key": "abc123"}))
    assert "hunter22" not in repr(c.ActionCall(service="x", values={"password": "hunter22"}))


def test_paths_are_fixed():
    assert c.PATH_REGISTER.format(service="lldap") == "/api/v1/micromanagers/lldap/register"
    assert c.PATH_CONFIG.startswith(c.API_PREFIX)
    assert c.PATH_HOOK_ACTION.format(name="add_person") == "/hooks/actions/add_person"
    assert set(c.HOOK_PATHS) == set(c.LIFECYCLE_HOOKS)


def test_refs_of_the_lldap_entry(media_manifest):
    assert c.refs_of_service(media_manifest, "lldap") == {
        "param:domain", "param:timezone",
        "secret:ldap_admin_password", "secret:lldap.jwt_secret", "secret:lldap.tls",
        "input:lldap.admin_email",
        "service:lldap.url", "service:lldap.internal_url", "service:lldap.host",
        "service:lldap.public_host",
    }


def test_scope_excludes_other_services(media_manifest):
    assert c.ref_in_scope(media_manifest, "sonarr", "secret:sonarr.api_key")
    assert not c.ref_in_scope(media_manifest, "sonarr", "secret:radarr.api_key")
    assert not c.ref_in_scope(media_manifest, "jellyfin", "secret:ldap_admin_password")
    # an input the micromanager requested at run time is its own
    assert c.ref_in_scope(media_manifest, "qbittorrent", "input:qbittorrent.temporary_password")
    assert not c.ref_in_scope(media_manifest, "qbittorrent", "input:jellyfin.api_key")
    with pytest.raises(KeyError):
        c.refs_of_service(media_manifest, "nope")


def test_report_keys_name_inputs_of_the_service_only():
    assert c.report_key_to_input_id("jellyfin", "api_key") == "jellyfin.api_key"
    assert c.report_key_to_input_id("jellyfin", "jellyfin.api_key") == "jellyfin.api_key"
    assert c.report_key_to_input_id("jellyfin", "sonarr.api_key") is None
    assert c.report_key_to_input_id("jellyfin", "not a name") is None


def test_scoped_config_resolves_the_environment_and_marks_secrets(media_manifest):
    known = {
        "param:domain": "home.example.com", "param:timezone": "Europe/Paris",
        "secret:ldap_admin_password": "pw-0123456789", "secret:sonarr.api_key": "other",
        "input:lldap.admin_email": "a@b.example",
    }
    config = c.scoped_config(media_manifest, "lldap", known)
    assert "secret:sonarr.api_key" not in config.values
    assert config.values["param:domain"] == "home.example.com"
    assert set(config.secret_keys) == {"secret:ldap_admin_password"}
    assert "secret:lldap.jwt_secret" in config.missing
    assert config.environment["LLDAP_LDAP_BASE_DN"] == "dc=home,dc=example,dc=com"
    assert config.environment["LLDAP_LDAP_USER_PASS"] == "pw-0123456789"
    assert "LLDAP_JWT_SECRET" not in config.environment  # its secret is not known yet
    assert config.ports == {"http": 17170, "ldap": 3890}
    assert config.micromanager == "ldap"
    jellyfin = c.scoped_config(media_manifest, "jellyfin", {"input:jellyfin.api_key": "k" * 32})
    assert jellyfin.secret_keys == ["input:jellyfin.api_key"]  # a secret-typed input
