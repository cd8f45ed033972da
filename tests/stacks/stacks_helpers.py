"""Helpers for the `stacks` tests: hand-built manifests and schema validation.

A module of its own (not conftest.py): test folders each have a conftest, and
`from conftest import ...` picks whichever was imported first.

The manifests are built from the pydantic models directly, so these tests do not
depend on the compiler; they mirror the acceptance programs of LANGUAGE.md.
"""

from __future__ import annotations

import functools
from typing import Any

from mora_dsl.manifest import (
    Concat,
    Edge,
    File,
    Graph,
    Health,
    Input,
    ListValue,
    Manifest,
    Mount,
    Param,
    Port,
    Project,
    Ref,
    Resources,
    Secret,
    Service,
    Span,
    TypeSpec,
    Volume,
)

SPAN = Span(file="main.mora", line=1, column=1, end_line=1, end_column=2)
NO_LEAK = "s3cr3t-answer-do-not-print"
#: An answer to every input of :func:`media_server`, each one :data:`NO_LEAK`.
ANSWERS = {i: NO_LEAK for i in ("lldap.admin_email", "jellyfin.api_key", "jellyseerr.api_key")}


def ref(text: str, attr: str | None = None) -> Ref:
    return Ref(ref=text, attr=attr)


def port(name: str, number: int, public: bool = True) -> Port:
    return Port(name=name, port=number, public=public, span=SPAN)


def mount(volume: str, path: str, read_only: bool = False) -> Mount:
    return Mount(volume=volume, path=path, read_only=read_only, span=SPAN)


def claim(id: str, size: str, owner: str | None = None) -> Volume:
    return Volume(id=id, name=id.rsplit(".", 1)[-1], owner=owner, kind="claim", size=size, span=SPAN)


def arr(kind: str, number: int, subdomain: str) -> tuple[Service, Secret, Volume]:
    service = Service(
        name=kind,
        template="arr",
        image=f"lscr.io/linuxserver/{kind}:latest",
        subdomain=subdomain,
        ports=[port("http", number)],
        environment={f"{kind.upper()}__AUTH__APIKEY": ref(f"secret:{kind}.api_key"),
                     "TZ": ref("param:timezone")},
        mounts=[mount(f"{kind}.config", "/config"), mount("downloads", "/downloads"),
                mount("media", "/media")],
        secrets=[f"{kind}.api_key"],
        volumes=[f"{kind}.config"],
        span=SPAN,
    )
    secret = Secret(id=f"{kind}.api_key", name="api_key", owner=kind, kind="token",
                    args={"bytes": 16, "encoding": "hex"}, span=SPAN)
    return service, secret, claim(f"{kind}.config", "2Gi", owner=kind)


def janitorr_yaml() -> Concat:
    parts: list[Any] = ["clients:\n"]
    for name in ("sonarr", "radarr", "jellyfin", "jellyseerr"):
        key = ref(f"secret:{name}.api_key") if name in ("sonarr", "radarr") else ref(
            f"input:{name}.api_key")
        parts += [f"  {name}:\n    enabled: true\n    url: \"", ref(f"service:{name}.internal_url"),
                  "\"\n    api-key: \"", key, "\"\n"]
    return Concat(concat=parts)


def media_server() -> Manifest:
    """The media-server acceptance program, compiled by hand."""
    sonarr, sonarr_key, sonarr_cfg = arr("sonarr", 8989, "series")
    radarr, radarr_key, radarr_cfg = arr("radarr", 7878, "films")
    prowlarr, prowlarr_key, prowlarr_cfg = arr("prowlarr", 9696, "indexers")
    services = [
        Service(
            name="lldap", image="lldap/lldap:v0.6.1", subdomain="ldap",
            ports=[port("http", 17170), port("ldap", 3890, public=False)],
            environment={
                "LLDAP_LDAP_BASE_DN": {"call": "base_dn", "args": [ref("param:domain")]},
                "LLDAP_JWT_SECRET": ref("secret:lldap.jwt_secret"),
                "LLDAP_LDAP_USER_PASS": ref("secret:ldap_admin_password"),
                "TZ": ref("param:timezone"),
            },
            mounts=[mount("lldap.data", "/data")], micromanager="ldap",
            inputs=["lldap.admin_email"], secrets=["lldap.jwt_secret", "lldap.tls"],
            volumes=["lldap.data"], span=SPAN,
        ),
        Service(
            name="qbittorrent", image="lscr.io/linuxserver/qbittorrent:5.0.4",
            subdomain="torrent", ports=[port("http", 8080)],
            mounts=[mount("qbittorrent.config", "/config"), mount("downloads", "/downloads")],
            volumes=["qbittorrent.config"], span=SPAN,
        ),
        prowlarr, sonarr, radarr,
        Service(
            name="jellyfin", image="jellyfin/jellyfin:10.10.7", subdomain="watch",
            ports=[port("http", 8096)], gpu="intel",
            mounts=[mount("jellyfin.config", "/config"), mount("media", "/media", read_only=True)],
            micromanager="jellyfin", inputs=["jellyfin.api_key"], volumes=["jellyfin.config"],
            health=Health(http="/health", initial_delay=5), span=SPAN,
        ),
        Service(
            name="jellyseerr", image="fallenbagel/jellyseerr:2.5.2", subdomain="requests",
            ports=[port("http", 5055)], mounts=[mount("jellyseerr.config", "/app/config")],
            depends_on=["jellyfin", "sonarr", "radarr"], inputs=["jellyseerr.api_key"],
            volumes=["jellyseerr.config"], span=SPAN,
        ),
        Service(
            name="janitorr", image="ghcr.io/schaka/janitorr:v1.9.0",
            files=[File(path="/config/application.yml", content=janitorr_yaml(), secret=True,
                        span=SPAN)],
            mounts=[mount("media", "/media")], span=SPAN,
        ),
    ]
    volumes = [
        Volume(id="media", name="media", kind="host", host=ref("param:media_path"), span=SPAN),
        claim("downloads", "200Gi"),
        claim("lldap.data", "1Gi", owner="lldap"),
        claim("qbittorrent.config", "1Gi", owner="qbittorrent"),
        sonarr_cfg, radarr_cfg, prowlarr_cfg,
        claim("jellyfin.config", "5Gi", owner="jellyfin"),
        claim("jellyseerr.config", "1Gi", owner="jellyseerr"),
    ]
    secrets = [
        Secret(id="ldap_admin_password", name="ldap_admin_password", kind="password",
               args={"length": 32}, span=SPAN),
        Secret(id="internal_ca", name="internal_ca", kind="ca",
               args={"common_name": "media-server internal CA", "valid_days": 3650}, span=SPAN),
        Secret(id="lldap.jwt_secret", name="jwt_secret", owner="lldap", kind="token",
               args={"bytes": 32, "encoding": "base64"}, span=SPAN),
        Secret(id="lldap.tls", name="tls", owner="lldap", kind="certificate",
               args={"ca": ref("secret:internal_ca"),
                     "hosts": ListValue(list=[ref("service:lldap.host")])}, span=SPAN),
        sonarr_key, radarr_key, prowlarr_key,
    ]
    text = TypeSpec(name="string")
    inputs = [
        Input(id="lldap.admin_email", name="admin_email", service="lldap",
              type=TypeSpec(name="email"), title="Administrator e-mail", when="after_start",
              when_inferred=True, span=SPAN),
        Input(id="jellyfin.api_key", name="api_key", service="jellyfin",
              type=TypeSpec(name="secret"), title="Create a Jellyfin API key",
              when="after_start", when_inferred=True, used_by=["janitorr"], span=SPAN),
        Input(id="jellyseerr.api_key", name="api_key", service="jellyseerr",
              type=TypeSpec(name="secret"), title="Jellyseerr API key", when="after_start",
              when_inferred=True, used_by=["janitorr"], span=SPAN),
    ]
    edges = [Edge(service=s, on=o, reason="depends_on", span=SPAN) for s, o in [
        ("sonarr", "qbittorrent"), ("sonarr", "prowlarr"), ("radarr", "qbittorrent"),
        ("radarr", "prowlarr"), ("jellyseerr", "jellyfin"), ("jellyseerr", "sonarr"),
        ("jellyseerr", "radarr"),
    ]] + [Edge(service="janitorr", on=o, reason="reference", span=SPAN)
          for o in ("sonarr", "radarr", "jellyfin", "jellyseerr")]
    return Manifest(
        project=Project(name="media-server", description="Jellyfin, the *arr apps and LDAP",
                        namespace="media", span=SPAN),
        params=[
            Param(name="domain", type=TypeSpec(name="domain"), span=SPAN),
            Param(name="timezone", type=text, default="Etc/UTC", has_default=True, span=SPAN),
            Param(name="media_path", type=TypeSpec(name="path"), span=SPAN),
        ],
        secrets=secrets, volumes=volumes, services=services, inputs=inputs,
        graph=Graph(edges=edges, waves=[
            ["lldap", "qbittorrent", "prowlarr", "jellyfin"], ["sonarr", "radarr"],
            ["jellyseerr"], ["janitorr"],
        ]),
    )


def minimal() -> Manifest:
    """The minimal acceptance program, compiled by hand."""
    return Manifest(
        project=Project(name="hello", description="One web page behind a password",
                        namespace="hello", span=SPAN),
        params=[Param(name="domain", type=TypeSpec(name="domain"), span=SPAN)],
        secrets=[Secret(id="admin_password", name="admin_password", kind="password",
                        args={"length": 24}, span=SPAN)],
        services=[Service(
            name="whoami", image="traefik/whoami:v1.10", subdomain="hello",
            ports=[port("http", 80)],
            environment={"WHOAMI_NAME": Concat(concat=["hello from ", ref("param:domain")]),
                         "ADMIN_PASSWORD": ref("secret:admin_password")},
            resources=Resources(cpu="100m", memory="64Mi", memory_limit="128Mi"),
            span=SPAN,
        )],
        graph=Graph(waves=[["whoami"]]),
    )


PARAMS = {"domain": "home.example.com", "media_path": "/srv/media"}


@functools.lru_cache(maxsize=1)
def _cache_schemas() -> None:
    """Cache kubernetes-validate's schema loading (it re-reads 1.2 MB per object otherwise)."""
    import kubernetes_validate.utils as utils

    if not hasattr(utils.schema_contents, "cache_info"):
        utils.schema_contents = functools.lru_cache(maxsize=None)(utils.schema_contents)


def validate(obj: dict[str, Any], version: str = "1.30.0") -> None:
    """Validate one object against the Kubernetes schema in strict mode (raises on error)."""
    import kubernetes_validate

    _cache_schemas()
    kubernetes_validate.validate(obj, version, strict=True)


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def ints_are_ints(value: Any) -> None:
    """Assert no number in ``value`` came out as a float (Kubernetes wants ints)."""
    if isinstance(value, dict):
        for v in value.values():
            ints_are_ints(v)
    elif isinstance(value, list):
        for v in value:
            ints_are_ints(v)
    else:
        assert not isinstance(value, float), value


def record_claim_options(monkeypatch: Any) -> dict[str, Any]:
    """Claim name → the ``pulumi.ResourceOptions`` the program creates it with, from now on."""
    import pulumi_kubernetes as k8s

    seen: dict[str, Any] = {}
    original = k8s.core.v1.PersistentVolumeClaim.__init__

    def recording_init(self: Any, resource_name: str, *args: Any, **kwargs: Any) -> None:
        seen[resource_name] = kwargs["opts"]
        original(self, resource_name, *args, **kwargs)

    monkeypatch.setattr(k8s.core.v1.PersistentVolumeClaim, "__init__", recording_init)
    return seen
