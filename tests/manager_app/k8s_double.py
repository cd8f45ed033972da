"""An HTTP double of the few Kubernetes API server endpoints the manager's tools call.

Served by uvicorn on 127.0.0.1 (a thread), reached through a generated
kubeconfig, so the real client (lightkube, over HTTP) does everything it does
against a cluster: read the kubeconfig, send the bearer token, build the paths,
query strings and content types. The endpoints follow the API reference:

* ``GET|PATCH /apis/apps/v1/namespaces/{ns}/deployments/{name}`` (PATCH accepts
  ``application/strategic-merge-patch+json`` only, like the real server for the
  patch shape used by ``kubectl rollout restart``);
* ``GET /api/v1/namespaces/{ns}/pods?labelSelector=k=v,...`` (a ``PodList``);
* ``GET /api/v1/namespaces/{ns}/pods/{pod}/log?tailLines=N`` (``text/plain``;
  400 while the pod's container is waiting, as the real server answers).

Errors are ``Status`` objects with the real reason codes. Tests seed deployments
and pods, read the recorded requests, and can make the next requests fail.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

TOKEN = "k8s-double-token"
STRATEGIC = "application/strategic-merge-patch+json"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


@dataclass
class ClusterState:
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    logs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    waiting: set[tuple[str, str]] = field(default_factory=set)
    requests: list[Seen] = field(default_factory=list)
    #: Status codes to answer the next requests with (a 500, a 403, …), first first.
    fail_next: list[int] = field(default_factory=list)

    def add_deployment(self, ns: str, name: str, labels: dict[str, str], replicas: int = 1,
                       ready: int = 1) -> None:
        self.deployments[(ns, name)] = {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                    {"name": name, "image": f"example/{name}:1"}]}},
            },
            "status": {"replicas": replicas, "readyReplicas": ready},
        }

    def add_pod(self, ns: str, name: str, labels: dict[str, str], created: str,
                log: list[str] | None = None, waiting: bool = False) -> None:
        self.pods[(ns, name)] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels,
                         "creationTimestamp": created},
            "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
        }
        self.logs[(ns, name)] = list(log or [])
        if waiting:
            self.waiting.add((ns, name))


def status(code: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code},
        status_code=code,
    )


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _selector(text: str) -> dict[str, str]:
    pairs = [p for p in text.split(",") if p]
    return dict(p.split("=", 1) for p in pairs)


def build_app(state: ClusterState) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record_and_authorise(request: Request, call_next):  # type: ignore[no-untyped-def]
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        state.requests.append(Seen(request.method, request.url.path, dict(request.query_params),
                                   request.headers.get("content-type", ""), body))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return status(401, "Unauthorized", "Unauthorized")
        if state.fail_next:
            code = state.fail_next.pop(0)
            return status(code, "InternalError" if code >= 500 else "Forbidden", f"injected {code}")
        response: Response = await call_next(request)
        return response

    @app.get("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    async def get_deployment(ns: str, name: str) -> Response:
        found = state.deployments.get((ns, name))
        if found is None:
            return status(404, "NotFound", f'deployments.apps "{name}" not found')
        return JSONResponse(found)

    @app.patch("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    async def patch_deployment(ns: str, name: str, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0] != STRATEGIC:
            return status(415, "UnsupportedMediaType", "unsupported patch type")
        found = state.deployments.get((ns, name))
        if found is None:
            return status(404, "NotFound", f'deployments.apps "{name}" not found')
        _merge(found, json.loads(await request.body()))
        return JSONResponse(found)

    @app.get("/api/v1/namespaces/{ns}/pods")
    async def list_pods(ns: str, labelSelector: str = "") -> Response:
        wanted = _selector(labelSelector)
        items = [
            pod for (pod_ns, _), pod in state.pods.items()
            if pod_ns == ns and wanted.items() <= pod["metadata"]["labels"].items()
        ]
        return JSONResponse({"apiVersion": "v1", "kind": "PodList",
                             "metadata": {"resourceVersion": "1"}, "items": items})

    @app.get("/api/v1/namespaces/{ns}/pods/{pod}/log")
    async def pod_log(ns: str, pod: str, tailLines: int | None = None) -> Response:
        if (ns, pod) not in state.pods:
            return status(404, "NotFound", f'pods "{pod}" not found')
        if (ns, pod) in state.waiting:
            return status(400, "BadRequest",
                          f'container "app" in pod "{pod}" is waiting to start: ContainerCreating')
        lines = state.logs[(ns, pod)]
        if tailLines is not None:
            lines = lines[-tailLines:] if tailLines > 0 else []
        return PlainTextResponse("".join(line + "\n" for line in lines))

    return app


class KubeDouble:
    """The double running in a thread; use as a context manager."""

    def __init__(self, tmp: Path) -> None:
        self.state = ClusterState()
        self.kubeconfig = tmp / "kubeconfig"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def __enter__(self) -> KubeDouble:
        config = uvicorn.Config(build_app(self.state), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Kubernetes API double did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "admin", "user": {"token": TOKEN}}],
            "contexts": [{"name": "double",
                          "context": {"cluster": "double", "user": "admin", "namespace": "default"}}],
        }))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(10)
