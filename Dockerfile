# syntax=docker/dockerfile:1
# One image for every CHIMP Python service (and the MLflow server in compose); the command
# picks the service. Targets:
#   runtime (default) - CPU torch + onnxruntime
#   gpu               - CUDA torch + onnxruntime-gpu (run with the NVIDIA container toolkit)
#     docker build -t chimp:local .
#     docker build --target gpu -t chimp:local-gpu .

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---------------------------------------------------------------------------- build stages
FROM base AS venv
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY pyproject.toml README.md ./
# An empty package lets pip resolve and install the dependencies in their own layer, so editing
# the source does not reinstall torch.
RUN mkdir -p src/chimp && touch src/chimp/__init__.py

FROM venv AS builder-cpu
# The CPU wheel from PyTorch's CPU index: the PyPI wheel drags in several GB of CUDA libraries.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
# psycopg2 lets the same image run MLflow on PostgreSQL (Kubernetes guide).
RUN pip install ".[cpu]" "psycopg2-binary>=2.9,<3" && pip uninstall -y chimp
COPY src ./src
RUN pip install --no-deps .

FROM venv AS builder-gpu
# PyPI's torch is the CUDA build; its nvidia-* wheels also give onnxruntime-gpu its CUDA libs.
RUN pip install "torch==2.13.0"
RUN pip install ".[gpu]" "psycopg2-binary>=2.9,<3" && pip uninstall -y chimp
COPY src ./src
RUN pip install --no-deps .

# --------------------------------------------------------------------------- runtime stages
FROM base AS runtime-base
# libglib is what opencv-python-headless still loads from the system.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group chimp \
    && mkdir -p /data \
    && chown chimp:chimp /data
ENV PATH=/opt/venv/bin:$PATH \
    CHIMP_DATA_DIR=/data
WORKDIR /home/chimp
EXPOSE 8000
# Named volumes mounted here start out owned by the non-root user.
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
