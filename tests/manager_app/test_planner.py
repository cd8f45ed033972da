"""The planner: states, waves, input timing, change detection, held and removed services."""

from __future__ import annotations

import pytest
from manager_helpers import build_manifest, inp, media_server

from manager_app import planner
from manager_app.planner import SERVICE_STATES, diff, effective_manifest, plan
from mora_dsl.manifest import Manifest
from stacks.config import required_inputs as stacks_required_inputs


def states_of(p: planner.Plan) -> dict[str, str]:
    return p.states()


# --------------------------------------------------------------------------- order and waves


def test_waves_match_the_compiler_for_media_server() -> None:
    m = media_server()
    assert planner.waves(m) == m.graph.waves
    p = plan(m, set(), {})
    assert p.waves == m.graph.waves
    # Services are listed wave by wave, each with its wave number.
    assert [s.name for s in p.services] == [n for w in m.graph.waves for n in w]
    assert all(s.wave == n for n, w in enumerate(p.waves) for s in p.services if s.name in w)


def test_first_plan_of_media_server() -> None:
    p = plan(media_server(), set(), {})
    assert states_of(p) == {
        "lldap": "ready",  # its only input is asked after it starts
        "qbittorrent": "ready",
        "prowlarr": "ready",
        "jellyfin": "ready",
        "sonarr": "waiting_for_dependencies",
        "radarr": "waiting_for_dependencies",
        "jellyseerr": "waiting_for_dependencies",
        "janitorr": "waiting_for_dependencies",
    }
    assert p.deploy_set() == {"lldap", "qbittorrent", "prowlarr", "jellyfin"}
    # Everything is asked after start, so nothing can be asked yet.
    assert p.pending_inputs == []
    assert [i.id for i in p.upcoming_inputs] == [
        "lldap.admin_email", "jellyfin.api_key", "jellyseerr.api_key",
    ]


def test_every_service_has_exactly_one_known_state() -> None:
    p = plan(media_server(), {"jellyfin.api_key"}, {"lldap": "running", "jellyfin": "failed"})
    assert all(s.state in SERVICE_STATES for s in p.services)
    assert len({s.name for s in p.services}) == len(p.services)


def test_dependencies_must_run_before_a_service_is_ready() -> None:
    m = media_server()
    running = {n: "running" for n in ("lldap", "qbittorrent", "prowlarr", "jellyfin")}
    p = plan(m, set(), running)
    assert p.service("sonarr").state == "ready"
    assert p.service("jellyseerr").state == "waiting_for_dependencies"
    p = plan(m, set(), {**running, "sonarr": "deploying", "radarr": "running"})
    assert p.service("jellyseerr").state == "waiting_for_dependencies"
    p = plan(m, set(), {**running, "sonarr": "running", "radarr": "running"})
    assert p.service("jellyseerr").state == "ready"


def test_recorded_states_win_and_unknown_ones_are_ignored() -> None:
    p = plan(media_server(), set(), {"lldap": "failed", "qbittorrent": "ready", "nope": "running"})
    assert p.service("lldap").state == "failed"
    assert p.service("qbittorrent").state == "ready"
    assert "lldap" in p.deploy_set()  # a failed service is retried by the next update


# --------------------------------------------------------------------------- input timing


def test_after_start_inputs_are_asked_once_their_service_runs() -> None:
    m = media_server()
    all_running = {s.name: "running" for s in m.services if s.name != "janitorr"}
    p = plan(m, set(), {"jellyfin": "running"})
    assert [i.id for i in p.pending_inputs] == ["jellyfin.api_key"]
    p = plan(m, set(), all_running)
    assert [i.id for i in p.pending_inputs] == [
        "lldap.admin_email", "jellyfin.api_key", "jellyseerr.api_key",
    ]
    # janitorr uses both API keys: it waits for them once its dependencies run.
    janitorr = p.service("janitorr")
    assert janitorr.state == "waiting_for_input"
    assert janitorr.missing_inputs == ["jellyfin.api_key", "jellyseerr.api_key"]
    assert p.pending_inputs[1].blocks == ["janitorr"]
    p = plan(m, {"jellyfin.api_key", "jellyseerr.api_key"}, all_running)
    assert p.service("janitorr").state == "ready"
    assert [i.id for i in p.pending_inputs] == ["lldap.admin_email"]


def test_before_deploy_inputs_are_asked_first_and_block_their_service() -> None:
    m = build_manifest(
        {"db": [], "app": ["db"]},
        [
            inp("app.admin_email", "before_deploy", type="email"),
            inp("db.password", "before_deploy", used_by=["db", "app"], type="secret"),
            inp("app.api_key", "after_start", used_by=[]),
        ],
    )
    p = plan(m, set(), {})
    # Wave order: db's input before app's, before_deploy before after_start.
    assert [i.id for i in p.pending_inputs] == ["db.password", "app.admin_email"]
    assert [i.id for i in p.upcoming_inputs] == ["app.api_key"]
    assert p.service("db").state == "waiting_for_input"
    assert p.service("app").state == "waiting_for_dependencies"
    assert p.pending_inputs[0].blocks == ["app", "db"]

    p = plan(m, {"db.password"}, {"db": "running"})
    assert p.service("app").state == "waiting_for_input"
    assert p.service("app").missing_inputs == ["app.admin_email"]
    p = plan(m, {"db.password", "app.admin_email"}, {"db": "running"})
    assert p.service("app").state == "ready"


def test_optional_inputs_are_asked_but_never_block() -> None:
    m = build_manifest({"app": []}, [inp("app.motd", used_by=["app"], optional=True)])
    p = plan(m, set(), {})
    assert p.service("app").state == "ready"
    assert [(i.id, i.optional) for i in p.pending_inputs] == [("app.motd", True)]


def test_required_inputs_agree_with_the_stack_program() -> None:
    """The planner's deploy rule must match what stacks accepts, or updates would fail."""
    m = media_server()
    order = [i.id for i in m.inputs]
    for service in m.services:
        required = planner.required_inputs(m, service)
        assert set(required) == stacks_required_inputs(m, service)
        assert required == sorted(required, key=order.index)  # manifest order, for the wizard
    assert any(planner.required_inputs(m, s) for s in m.services)  # not vacuous


def test_complete_once_everything_runs_and_is_answered() -> None:
    m = media_server()
    running = {s.name: "running" for s in m.services}
    assert not plan(m, {"jellyfin.api_key"}, running).complete
    assert plan(m, {i.id for i in m.inputs}, running).complete


# --------------------------------------------------------------------------- change detection


def test_diff_of_a_first_manifest_adds_everything() -> None:
    m = media_server()
    changes = diff(None, m)
    assert changes.added_services == sorted(s.name for s in m.services)
    assert changes.added_inputs == sorted(i.id for i in m.inputs)
    assert not changes.removed_services and not changes.changed_services


def test_diff_ignores_positions_and_sees_real_changes() -> None:
    old = build_manifest({"a": [], "b": ["a"]}, [inp("a.x", used_by=["a"])])
    moved = build_manifest({"a": [], "b": ["a"]}, [inp("a.x", used_by=["a"])], line=42)
    assert diff(old, moved).empty
    changed = build_manifest(
        {"a": [], "b": ["a"]}, [inp("a.x", used_by=["a"], title="New title")],
        env={"b": {"LOG": "debug"}},
    )
    changes = diff(old, changed)
    assert changes.changed_services == ["b"]
    assert changes.changed_inputs == ["a.x"]
    assert changes.summary() == ["changed services: b", "changed inputs: a.x"]


INSERT_OLD = {"proxy": [], "app": ["proxy"]}
INSERT_NEW = {"proxy": [], "cache": ["proxy"], "app": ["proxy", "cache"]}


def _inserted() -> tuple[planner.Plan, planner.Changes, Manifest, Manifest]:
    old = build_manifest(
        INSERT_OLD,
        [inp("proxy.email", "before_deploy", used_by=["proxy"], type="email"),
         inp("app.key", "before_deploy", used_by=["app"])],
    )
    new = build_manifest(
        INSERT_NEW,
        [inp("proxy.email", "before_deploy", used_by=["proxy"], type="email"),
         inp("cache.password", "before_deploy", used_by=["cache", "app"], type="secret"),
         inp("app.key", "before_deploy", used_by=["app"])],
    )
    answers = {"proxy.email", "app.key"}
    states = {"proxy": "running", "app": "running"}
    return plan(new, answers, states), diff(old, new), old, new


def test_a_service_inserted_between_two_deployed_ones_asks_only_for_its_new_inputs() -> None:
    p, changes, _, _ = _inserted()
    assert changes.added_services == ["cache"]
    assert changes.added_inputs == ["cache.password"]
    assert changes.changed_services == ["app"]  # it now references cache
    assert changes.now_reference == {"app": ["cache"]}
    # Existing answers are reused: only the new input is pending.
    assert [i.id for i in p.pending_inputs] == ["cache.password"]
    assert p.service("cache").state == "waiting_for_input"
    # app keeps running; its new definition waits for cache to run (and for the input it now uses).
    app = p.service("app")
    assert app.state == "running"
    assert app.update_after == ["cache"]
    assert app.missing_inputs == ["cache.password"]
    assert p.held() == {"app"}
    # The next update keeps proxy and app deployed and leaves cache out until answered.
    assert p.deploy_set() == {"proxy", "app"}


def test_the_inserted_service_deploys_then_its_referrers_update() -> None:
    _, _, _, new = _inserted()
    answers = {"proxy.email", "app.key", "cache.password"}
    p = plan(new, answers, {"proxy": "running", "app": "running"})
    assert p.service("cache").state == "ready"
    assert p.deploy_set() == {"proxy", "cache", "app"}
    assert p.held() == {"app"}  # app keeps its old definition while cache deploys
    after = plan(new, answers, {"proxy": "running", "app": "running", "cache": "running"})
    assert after.held() == set()  # now app takes its new definition


def test_held_services_keep_their_previous_definition_in_the_deployed_manifest() -> None:
    p, _, old, new = _inserted()
    eff = effective_manifest(new, old, p.held())
    assert eff.service("app") == old.service("app")
    assert eff.graph.dependencies("app") == ["proxy"]
    assert {s.name for s in eff.services} == {"proxy", "cache", "app"}
    assert eff.graph.waves == [["proxy"], ["cache", "app"]]


def test_a_removal_waits_for_confirmation() -> None:
    old = build_manifest({"db": [], "app": ["db"], "extra": []}, [inp("extra.key", used_by=["extra"])])
    new = build_manifest({"db": [], "app": ["db"]})
    changes = diff(old, new)
    assert changes.removed_services == ["extra"]
    assert changes.removed_inputs == ["extra.key"]
    states = {"db": "running", "app": "running", "extra": "running"}
    p = plan(new, {"extra.key"}, states, pending_removals=["extra"])
    assert p.pending_removals == ["extra"]
    assert "extra" not in p.states()
    # Until confirmed, the deployed manifest still has it, with what it uses.
    kept = effective_manifest(new, old, ["extra"])
    assert kept.service("extra") == old.service("extra")
    assert kept.input("extra.key") == old.input("extra.key")
    # Once confirmed, it is gone from what gets deployed.
    assert {s.name for s in effective_manifest(new, old, []).services} == {"db", "app"}


def test_effective_manifest_without_anything_to_keep_is_the_new_one() -> None:
    m = media_server()
    assert effective_manifest(m, None, ["lldap"]) is m
    assert effective_manifest(m, m, []) is m


@pytest.mark.parametrize("name", ["jellyseerr", "janitorr"])
def test_effective_manifest_brings_what_a_kept_service_references(name: str) -> None:
    m = media_server()
    smaller = m.model_copy(
        update={"services": [s for s in m.services if s.name != name],
                "inputs": [i for i in m.inputs if i.service != name],
                "secrets": [s for s in m.secrets if s.owner != name],
                "volumes": [v for v in m.volumes if v.owner != name]}
    )
    kept = effective_manifest(smaller, m, [name])
    assert kept.service(name) == m.service(name)
    for sid in m.service(name).secrets:
        assert kept.secret(sid) == m.secret(sid)
    for vid in m.service(name).volumes:
        assert kept.volume(vid) == m.volume(vid)
