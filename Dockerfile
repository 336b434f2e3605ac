# syntax=docker/dockerfile:1
# Vulcan Operator: one image for the operator (`vulcan-operator run`) and the solver pods
# (`python -m vulcan_operator.solverpod ...`). Backup and maintenance Jobs use a
# PostgreSQL client image instead (VULCAN_POSTGRES_IMAGE).
#
#   docker build -t ghcr.io/vulcan-engine/vulcan-operator:0.1.0 .
#
# The base image is pinned by digest (the multi-platform index of python:3.11-slim, so the
# release's linux/amd64 and linux/arm64 builds share it) for reproducible releases; refresh it
# with `docker buildx imagetools inspect python:3.11-slim` (the "Digest:" line), in both FROMs.

# --- build: the wheel and a virtualenv with every dependency -----------------------------
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY templates/ templates/

# pip builds the wheel (hatchling, in an isolated build environment) and installs it, with
# the templates inside, into /opt/venv (byte-compiled, as the final image's root filesystem
# is read-only). Every dependency comes as a binary wheel, so no compiler is needed; should
# one ever build from source, install build-essential here: it stays in this stage.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir /src \
    && /opt/venv/bin/vulcan-operator --help > /dev/null

# --- run: slim Python, the virtualenv, a non-root user -------------------------------------
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

LABEL org.opencontainers.image.title="vulcan-operator" \
      org.opencontainers.image.description="Kubernetes operator for the Vulcan Engine, with the OR-Tools CP-SAT solver" \
      org.opencontainers.image.source="https://github.com/vulcan-engine/vulcan-operator" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 vulcan \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin vulcan

COPY --from=builder /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /tmp
USER 10001:10001

# 8080: Kopf's liveness endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090

ENTRYPOINT ["vulcan-operator"]
CMD ["run"]
