"""The offline renderer: the real program under Pulumi's unit-test mocks.

`mora render` needs neither the Pulumi CLI nor a cluster: :func:`render` runs
:func:`stacks.program.build` with :func:`pulumi.runtime.set_mocks` and collects
the Kubernetes objects the program declares. Generated secrets come back from the
mocks as placeholders (``<generated:secret:lldap.jwt_secret>``) and wizard answers
are replaced by placeholders (``<input:jellyfin.api_key>``) *before* the program
runs, so no real secret can reach the output.

Each run happens in a fresh :mod:`contextvars` context: Pulumi keeps its settings,
root stack and config in context variables, so a fresh context makes runs
independent of each other and of anything else in the process. Python's cycle
collector is paused during a run (:func:`_no_cyclic_gc`), so every caller — `mora
render`, the manager's offline deployer, tests — renders in linear time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import gc
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import yaml

from mora_dsl.manifest import Manifest

from .config import StackConfig, deploy_set

_LOCK = threading.Lock()
_GC_LOCK = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False
T = TypeVar("T")
_SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc._special_sig_key
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # pulumi.runtime.rpc._special_secret_sig

#: Output fields of the secret generators, by Pulumi type token.
_GENERATED_FIELDS: dict[str, tuple[str, ...]] = {
    "random:index/randomPassword:RandomPassword": ("result", "bcrypt_hash"),
    "random:index/randomId:RandomId": ("hex", "b64_url", "b64_std", "dec"),
    "random:index/randomBytes:RandomBytes": ("base64", "hex"),
    "random:index/randomUuid:RandomUuid": ("result",),
    "tls:index/privateKey:PrivateKey": (
        "private_key_pem", "public_key_pem", "public_key_openssh", "private_key_openssh",
    ),
    "tls:index/selfSignedCert:SelfSignedCert": ("cert_pem",),
    "tls:index/certRequest:CertRequest": ("cert_request_pem",),
    "tls:index/locallySignedCert:LocallySignedCert": ("cert_pem",),
}
_KIND_ORDER = [
    "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    "PersistentVolumeClaim", "ConfigMap", "Secret", "Deployment", "Service", "Ingress",
]


def placeholder(secret_id: str, part: str | None = None) -> str:
    """How a generated secret (or one part of a TLS secret) reads in rendered output."""
    return f"<generated:secret:{secret_id}>" if part is None else f"<generated:secret:{secret_id}:{part}>"


def input_placeholder(input_id: str) -> str:
    return f"<input:{input_id}>"


def token_placeholder(service: str) -> str:
    """How a micromanager's token reads in rendered output."""
    return f"<micromanager-token:{service}>"


@dataclass
class Registered:
    """One resource the program registered: its type token, Pulumi name and raw inputs."""

    type: str
    name: str
    inputs: dict[str, Any]


@dataclass
class Recording:
    resources: list[Registered] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def kubernetes(self) -> list[Registered]:
        return [r for r in self.resources if r.type.startswith("kubernetes:")]


def _generated(type_token: str, name: str) -> dict[str, str]:
    fields = _GENERATED_FIELDS.get(type_token)
    if fields is None:
        return {}
    if type_token.startswith("random:"):
        return {f: placeholder(name) for f in fields}
    # TLS: a key is "<id>-key" (or "<id>" for a bare private_key), a request "<id>-csr".
    secret_id = name.removesuffix("-key").removesuffix("-csr")
    return {f: placeholder(secret_id, f) for f in fields}


def _make_mocks(recording: Recording) -> Any:
    import pulumi

    class RenderMocks(pulumi.runtime.Mocks):
        """Returns inputs as state, and placeholders for every generated value."""

        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
            recording.resources.append(Registered(args.typ, args.name, args.inputs))
            return f"{args.name}-id", {**args.inputs, **_generated(args.typ, args.name)}

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
            return {}, None

    return RenderMocks()


def safe_config(manifest: Manifest, config: StackConfig) -> StackConfig:
    """``config`` with every answer and token replaced by its placeholder, the deploy set fixed.

    The deploy set is computed from the real answers first, so rendering shows
    exactly the services an update would deploy.
    """
    deploy = deploy_set(manifest, config)
    answers = {i: input_placeholder(i) for i in config.answers}
    tokens = {s: token_placeholder(s) for s in config.micromanager_tokens}
    fields = {**dict(config), "deploy": deploy, "answers": answers, "micromanager_tokens": tokens}
    return StackConfig.model_validate(fields)


def _run_in_context(
    project: str, program: Callable[[], dict[str, Any]], preview: bool
) -> Recording:
    import pulumi
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    recording = Recording()
    pulumi.runtime.set_mocks(
        _make_mocks(recording),
        project=project,
        stack="render",
        preview=preview,
    )

    def run() -> None:
        recording.outputs.update(program())

    _sync_await(run_pulumi_func(run))
    return recording


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cycle collector while rendering, then restore it as it was.

    A run allocates a large graph of Pulumi objects (resources, outputs, futures)
    that stays alive until the objects are collected from it; every collection
    rescans all of it and finds almost nothing, which made time per service grow
    with the project (500 services: ~14 s instead of ~6 s, ``benchmarks/render.py``).
    Reference counting still frees memory as usual. The collector is process-wide,
    so pauses nest and may overlap across threads: the first one in records the
    state and disables it, the last one out restores it.
    """
    global _gc_pauses, _gc_was_enabled
    with _GC_LOCK:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _has_current_loop() -> bool:
    """Whether this thread has a current (not running) event loop Pulumi can use.

    Pulumi's runtime and mocks call ``asyncio.get_event_loop()``, which makes a loop
    by itself only in the main thread; in any other thread it raises.
    """
    policy = asyncio.get_event_loop_policy()
    try:
        loop = policy.get_event_loop()
    except RuntimeError:
        return False
    return not loop.is_closed()


def _with_own_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` with a fresh event loop set as this thread's current loop, then drop it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return fn()
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def run_mocked(
    project: str, program: Callable[[], dict[str, Any]], *, preview: bool = False
) -> Recording:
    """Run any Pulumi ``program`` under the render mocks; safe from any thread or loop.

    * In a thread with a usable current loop (the main thread), that loop is used.
    * In a plain worker thread (``threading.Thread``, ``asyncio.to_thread``) a loop
      is created for the run and dropped afterwards.
    * Inside a running event loop Pulumi cannot drive its own, so the run moves to a
      worker thread with a loop of its own.
    """

    def run() -> Recording:
        with _LOCK, _no_cyclic_gc():
            return contextvars.Context().run(_run_in_context, project, program, preview)

    if _in_event_loop():
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(_with_own_loop, run).result()
    if _has_current_loop():
        return run()
    return _with_own_loop(run)


def run_program(manifest: Manifest, config: StackConfig, *, preview: bool = False) -> Recording:
    """Run the program under mocks with ``config`` as given (tests use this to see secrecy).

    Callers that show the result to a person must use :func:`render`, which first
    replaces the answers by placeholders. Works from any thread (see :func:`run_mocked`).
    """
    from .program import build

    return run_mocked(manifest.project.name, lambda: build(manifest, config), preview=preview)


def unwrap(value: Any) -> Any:
    """Plain JSON data from mock inputs: secrets unwrapped, whole floats back to ints."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _order(obj: dict[str, Any]) -> tuple[int, str]:
    kind = obj.get("kind", "")
    rank = _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)
    return rank, obj.get("metadata", {}).get("name", "")


def render(manifest: Manifest, config: StackConfig) -> list[dict[str, Any]]:
    """The Kubernetes objects the stack would create, secrets as placeholders, in apply order.

    The collector stays paused until the objects are collected too: tidying
    thousands of objects while the run's graph is still alive is where it would
    otherwise scan for nothing.
    """
    with _no_cyclic_gc():
        return kubernetes_objects(run_program(manifest, safe_config(manifest, config)))


def kubernetes_objects(recording: Recording) -> list[dict[str, Any]]:
    """The Kubernetes objects of a recording as plain, sorted data, in apply order."""
    objects = [_tidy(unwrap(r.inputs)) for r in recording.kubernetes()]
    return sorted(objects, key=_order)


def _tidy(obj: dict[str, Any]) -> dict[str, Any]:
    """apiVersion, kind, metadata first: how people expect to read a manifest."""
    head = ("apiVersion", "kind", "metadata")
    ordered = _sorted(obj)
    return {**{k: ordered[k] for k in head if k in ordered},
            **{k: v for k, v in ordered.items() if k not in head}}


def _sorted(value: Any) -> Any:
    """Keys sorted at every level, so the same stack always renders the same text."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """One multi-document YAML stream (``---`` between objects), ready for ``kubectl apply -f``."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def file_name(obj: dict[str, Any]) -> str:
    """A file name for one object when `mora render -o DIR` writes one file per object."""
    return f"{obj.get('kind', 'object').lower()}-{obj.get('metadata', {}).get('name', 'unnamed')}.yaml"
