# flowpipe as a container: a NetFlow v5/v9, IPFIX and sFlow collector built to run as a sidecar.
#
#   docker build -t flowpipe .
#   docker run --rm --stop-timeout 30 -p 2055:2055/udp -p 4739:4739/udp -p 6343:6343/udp -p 9090:9090 flowpipe
#
# Stop grace period: on SIGTERM flowpipe flushes every flow context it holds and delivers it (up to
# forwarder.stop_timeout, 10 s by default) or spools it. A Dockerfile cannot set the grace period, so
# give it where the container runs: `docker run --stop-timeout 30`, compose `stop_grace_period: 30s`,
# Kubernetes `terminationGracePeriodSeconds: 30` (deploy/ does all three).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: wheels are built here, never in the final image ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/flowpipe
# A C compiler for flowpipe's compiled modules (payload JSON, flowpipe/render/_jsonflows.c; the context
# table and rollup trackers, flowpipe/aggregate/_tables.c); the final image takes only the built
# virtualenv. Without it the build still succeeds and runs the same code paths in Python.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY flowpipe ./flowpipe
# The README's install command, word for word (tests/test_deploy.py holds them to one source of
# truth): pip builds flowpipe's wheel (and any dependency that has none) and installs it into the
# virtualenv, which is all the final stage takes.
RUN python3 -m venv .venv && .venv/bin/pip install .

# ---- run ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="flowpipe" \
      org.opencontainers.image.description="NetFlow v5/v9, IPFIX and sFlow v5 collector with Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 flowpipe \
    && useradd --system --uid 10001 --gid flowpipe --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin flowpipe \
    && mkdir -p /etc/flowpipe /var/lib/flowpipe/spool \
    && chown -R flowpipe:flowpipe /var/lib/flowpipe
# The virtualenv keeps the path it was built at.
COPY --from=build /opt/flowpipe/.venv /opt/flowpipe/.venv
COPY deploy/docker/flowpipe.toml /etc/flowpipe/flowpipe.toml
ENV PATH="/opt/flowpipe/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/flowpipe
# NetFlow v9/v5, IPFIX, sFlow; then /metrics and /healthz.
EXPOSE 2055/udp 4739/udp 6343/udp 9090/tcp
# The config, and the data volume: forwarder spool (spool/) and saved v9/IPFIX templates.
VOLUME ["/etc/flowpipe", "/var/lib/flowpipe"]
STOPSIGNAL SIGTERM
# /healthz answers 200 while every pipeline stage runs (assumes [metrics] listen on port 9090).
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=4)"]
ENTRYPOINT ["flowpipe", "run", "--config", "/etc/flowpipe/flowpipe.toml"]
