# The Tollgate operator: `tollgate run` (kopf with Tollgate's handlers) as a non-root user.
# Works with a read-only root filesystem: nothing is written at run time but to /tmp (mount an
# emptyDir there). Build: docker build -t tollgate:dev .  (docs/install.md)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/tollgate
COPY requirements-operator.lock ./
# the runtime pins only, each checked against its sha256 (.ci/operator_lock.py, .ci/hash_lock.py)
RUN /opt/tollgate/bin/pip install --require-hashes --no-deps -r requirements-operator.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/tollgate/bin/pip install --no-deps . \
    && /opt/tollgate/bin/python -m compileall -q /opt/tollgate

FROM ${PYTHON_IMAGE}
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="tollgate" \
      org.opencontainers.image.description="Progressive delivery for Kubernetes: code and LLM prompt releases, promoted or rolled back on evidence" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/tollgate /opt/tollgate
ENV PATH=/opt/tollgate/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["tollgate"]
CMD ["run"]
