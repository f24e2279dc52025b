# syntax=docker/dockerfile:1
# One image for every mailstream service and the operator CLI; the container's command
# picks which: `python -m services.<name>` or `mailstream ...` (see docker-compose.yml).

ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: wheels for mailstream and all of its dependencies
FROM ${PYTHON_IMAGE} AS builder
# A compiler only for dependencies that ship no wheel for this platform; it stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# Metadata first, so the slow dependency layer is rebuilt only when dependencies change.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
    > /tmp/requirements.txt
RUN pip wheel --wheel-dir /wheels -r /tmp/requirements.txt
COPY services ./services
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---- runtime
FROM ${PYTHON_IMAGE} AS runtime
# Installed from a wheel, the package's REPO_ROOT is site-packages, not /app, so the
# schema folder is named explicitly.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    MAILSTREAM_SCHEMAS_DIR=/app/schemas \
    MAILSTREAM_LOG_FORMAT=json
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels mailstream
RUN groupadd --system --gid 10001 mailstream \
    && useradd --system --uid 10001 --gid mailstream --home-dir /app --shell /usr/sbin/nologin mailstream \
    && mkdir -p /app /data/inbox \
    && chown mailstream:mailstream /data/inbox
WORKDIR /app
COPY --chown=root:root schemas ./schemas
# Credentials (Kafka SASL, Cassandra, DKIM keys) come from the environment or mounted files at
# run time; none are part of the image.
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
CMD ["mailstream", "--help"]
