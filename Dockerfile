# syntax=docker/dockerfile:1
#
# The mora manager: the wizard, the REST API and the update runner, with the
# Pulumi CLI and the provider plugins the services' stack needs, so it can run
# `pulumi up` from inside the cluster.
#
#   docker build -t mora-manager:0.1.0 .
#   # k3s without a registry:  docker save mora-manager:0.1.0 | sudo k3s ctr images import -
#   # or push it somewhere and: mora up PATH --stack NAME --manager-image REGISTRY/mora-manager:0.1.0
#
# The image holds no project: `mora up` deploys it (stacks/manager.py) and then
# POSTs the manifest and the stack's params to /api/v1/manifests, so the manager
# starts empty and waits. To try it on a workstation with a project instead:
#
#   docker run --rm -p 8080:8080 -v "$PWD/examples/minimal:/project:ro" mora-manager:0.1.0 \
#       manager serve /project --dry-run --host 0.0.0.0 --port 8080 --data /data
#
# Credentials come from the environment (MORA_ADMIN_PASSWORD, MORA_API_TOKEN:
# a Kubernetes Secret in the cluster), never from the command line.
#
# Not built on the development machines (no Docker engine there); keep the
# Pulumi CLI version in step with the `pulumi` Python SDK in pyproject.toml.

ARG PYTHON_IMAGE=python:3.11-slim
# The Pulumi CLI, pinned. Its checksum is checked against PULUMI_SHA256 when given,
# else against the checksums file Pulumi publishes with each release.
ARG PULUMI_VERSION=3.272.0
ARG PULUMI_SHA256=""

# --------------------------------------------------------------------------- the Pulumi CLI
FROM ${PYTHON_IMAGE} AS pulumi
ARG PULUMI_VERSION
ARG PULUMI_SHA256
# Set by BuildKit for the platform being built (amd64, arm64).
ARG TARGETARCH
# Debian's own versions of these tools (a slim base moves with its security updates).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The release tarball documented at https://www.pulumi.com/docs/install/ (manual install):
# pulumi-v<version>-linux-<x64|arm64>.tar.gz, a `pulumi/` folder with the CLI and its helpers.
RUN case "${TARGETARCH:-amd64}" in \
        amd64) arch=x64 ;; \
        arm64) arch=arm64 ;; \
        *) echo "unsupported architecture: ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
    && tarball="pulumi-v${PULUMI_VERSION}-linux-${arch}.tar.gz" \
    && curl -fsSL --retry 3 -o "/tmp/${tarball}" \
        "https://get.pulumi.com/releases/sdk/${tarball}" \
    && if [ -n "${PULUMI_SHA256}" ]; then \
           echo "${PULUMI_SHA256}  /tmp/${tarball}" | sha256sum -c -; \
       else \
           curl -fsSL --retry 3 -o /tmp/checksums.txt \
               "https://github.com/pulumi/pulumi/releases/download/v${PULUMI_VERSION}/pulumi-${PULUMI_VERSION}-checksums.txt" \
           && expected="$(awk -v f="${tarball}" '$2 == f { print $1 }' /tmp/checksums.txt)" \
           && test -n "${expected}" \
           && echo "${expected}  /tmp/${tarball}" | sha256sum -c -; \
       fi \
    && mkdir -p /opt/pulumi \
    && tar -xzf "/tmp/${tarball}" -C /opt/pulumi \
    && /opt/pulumi/pulumi/pulumi version \
    && rm -f /tmp/*.tar.gz /tmp/checksums.txt

# --------------------------------------------------------------------------- the manager
FROM ${PYTHON_IMAGE}

# tini as PID 1: the Pulumi CLI starts provider plugins that can outlive it; tini
# reaps them and forwards SIGTERM to the manager (uvicorn shuts down cleanly).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/pulumi/pulumi:$PATH \
    HOME=/home/mora \
    PULUMI_HOME=/home/mora/.pulumi \
    PULUMI_SKIP_UPDATE_CHECK=true \
    PULUMI_SKIP_CONFIRMATIONS=true

COPY --from=pulumi /opt/pulumi /opt/pulumi

WORKDIR /src
# Dependencies first, so a source change does not reinstall them. The project
# metadata alone is enough for pip to resolve them; the real packages follow.
COPY pyproject.toml ./
RUN mkdir -p mora_dsl stacks manager_app micromanager_kit mora_cli \
    && pip install . \
    && pip uninstall -y mora

COPY mora_dsl ./mora_dsl
COPY stacks ./stacks
COPY manager_app ./manager_app
COPY micromanager_kit ./micromanager_kit
COPY mora_cli ./mora_cli
RUN pip install --no-deps . && rm -rf /src

# An unprivileged user; the Deployment enforces the same UID (stacks/manager.py).
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/mora mora \
    && mkdir -p /data \
    && chown 10001:10001 /data
USER 10001
WORKDIR /home/mora

# The provider plugins, at the versions of the installed Python SDKs (they must
# match), so an update in the cluster downloads nothing. They live in PULUMI_HOME,
# which the CLI also writes to at run time (hence no read-only root filesystem).
RUN set -eu; \
    v() { python -c "from importlib.metadata import version; print(version('$1'))"; }; \
    pulumi plugin install resource kubernetes "v$(v pulumi_kubernetes)"; \
    pulumi plugin install resource random "v$(v pulumi_random)"; \
    pulumi plugin install resource tls "v$(v pulumi_tls)"; \
    pulumi plugin ls

# The manager's state: its SQLite store and the services' Pulumi backend.
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["tini", "--", "mora"]
# No PATH: start empty and wait for the manifest `mora up` sends.
CMD ["manager", "serve", "--host", "0.0.0.0", "--port", "8080", "--data", "/data"]
